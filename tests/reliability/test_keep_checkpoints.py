"""trainer.keep_checkpoints: what a finished run keeps, resume where the policy allows it, a
clear refusal where it does not, and the sweep default (auto -> last_slim for -m jobs)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig
from tiny_net import TINY_NET_ARGS

from defcon_exp.config import ConfigError
from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.keep import SLIM_KEY
from defcon_exp.run.job import run_job
from defcon_exp.run.train import train


def make_cfg(*overrides: str) -> DictConfig:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=[*TINY_NET_ARGS, "trainer.epochs=2", *overrides])


def weights_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_a_single_run_keeps_everything_by_default(tmp_path: Path) -> None:
    train(make_cfg(), run_dir=tmp_path)
    assert "optimizer" in load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    summary = train(make_cfg("trainer.epochs=3", f"resume={tmp_path}"))  # extendable
    assert summary["epochs_done"] == 3


def test_last_slim_keeps_the_final_weights_without_optimiser_state(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    full_dir, slim_dir = tmp_path / "full", tmp_path / "slim"
    train(make_cfg("trainer.keep_checkpoints=all"), run_dir=full_dir)
    train(make_cfg("trainer.keep_checkpoints=last_slim"), run_dir=slim_dir)
    full = load_checkpoint(full_dir / "checkpoints" / "last.pt")
    slim = load_checkpoint(slim_dir / "checkpoints" / "last.pt")
    assert "optimizer" not in slim and "rng" not in slim and "last_slim" in slim[SLIM_KEY]
    assert weights_equal(full["model"], slim["model"])  # same seed: the same final weights
    assert (slim["epoch"], slim["global_step"]) == (full["epoch"], full["global_step"])
    assert (slim_dir / "checkpoints" / "best.pt").is_file()
    assert (slim_dir / "checkpoints" / "last.pt").stat().st_size < (
        full_dir / "checkpoints" / "last.pt").stat().st_size
    # the same epochs: finished, nothing to do; more epochs: refused, saying why and how
    assert train(make_cfg(f"resume={slim_dir}"))["epochs_done"] == 2
    assert "already finished" in capsys.readouterr().err
    with pytest.raises(ConfigError, match=r"cannot be extended exactly; start a new run .*"
                                          r"trainer.keep_checkpoints=all") as err:
        train(make_cfg("trainer.epochs=3", f"resume={slim_dir}"))
    assert "slimmed its last.pt" in str(err.value) and "\n" not in str(err.value)


def test_best_keeps_only_best_pt_and_says_so_on_resume(tmp_path: Path) -> None:
    train(make_cfg("trainer.keep_checkpoints=best"), run_dir=tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt"]
    with pytest.raises(ConfigError, match=r"kept only best.pt .* cannot be extended"):
        train(make_cfg("trainer.epochs=3", f"resume={tmp_path}"))


def test_an_interrupted_run_keeps_a_full_last_pt_and_resumes(tmp_path: Path) -> None:
    calls = {"n": 0}

    def stop_in_epoch_two(epoch: int, *_args) -> None:
        calls["n"] += 1
        if epoch == 1:
            signal.raise_signal(signal.SIGTERM)  # stops after epoch 1 with a checkpoint

    from defcon_exp.engine.preemption import TrainingInterrupted

    with pytest.raises(TrainingInterrupted):
        train(make_cfg("trainer.keep_checkpoints=last_slim"), run_dir=tmp_path,
              epoch_hooks=[stop_in_epoch_two])
    assert "optimizer" in load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    summary = train(make_cfg("trainer.keep_checkpoints=last_slim", f"resume={tmp_path}"))
    assert summary["epochs_done"] == 2
    assert SLIM_KEY in load_checkpoint(tmp_path / "checkpoints" / "last.pt")


def test_sweep_jobs_default_to_last_slim(tmp_path: Path) -> None:
    run_job(make_cfg(), tmp_path / "0", 0, [])  # job 0 of a -m sweep, trainer.keep_checkpoints=auto
    last = load_checkpoint(tmp_path / "0" / "checkpoints" / "last.pt")
    assert "optimizer" not in last and "last_slim" in last[SLIM_KEY]
