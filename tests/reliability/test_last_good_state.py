"""Issue 12.3 and 12.4: checkpoints are written only from finite states, a NaN validation
loss stops the run, non-finite DEFCON offsets never reach an index, and no state of a run dir
is a dead end (every refusal names the command that works)."""

from __future__ import annotations

import errno
import json
import logging
import math
from pathlib import Path

import pytest
import torch
from attention_net import tiny_net_config
from hydra import compose, initialize_config_module

from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.engine import checkpoint as checkpoint_module
from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.loop import NonFiniteLossError
from defcon_exp.engine.run_state import (
    CheckpointWriteError,
    NonFiniteStateError,
    non_finite_tensors,
)
from defcon_exp.ops import deform_conv1d
from defcon_exp.run.launch import check_output_dirs
from defcon_exp.run.plan import plan_run
from defcon_exp.run.train import train


def all_finite(path: Path) -> bool:
    state = load_checkpoint(path)
    return all(torch.isfinite(t).all() for t in state["model"].values() if t.is_floating_point())


@pytest.mark.parametrize("attention", ["defcon", "eca"])
def test_divergence_stops_and_every_checkpoint_is_finite(tmp_path: Path, attention: str) -> None:
    cfg = tiny_net_config(tmp_path / "run", "optim.lr=1e6", "trainer.epochs=4", "data.val_size=8",
                          "trainer.checkpoint_every_n_steps=1")
    cfg.model.attention = attention
    with pytest.raises((NonFiniteLossError, NonFiniteStateError)) as err:
        train(cfg)
    assert "NaN/Inf" in str(err.value) and "\n" not in str(err.value)
    for ckpt in (tmp_path / "run" / "checkpoints").glob("*.pt"):
        assert all_finite(ckpt), ckpt


def test_non_finite_offsets_give_nan_not_an_index_error() -> None:
    signal = torch.randn(2, 1, 8)
    weight = torch.randn(1, 1, 3)
    for bad in (float("nan"), float("inf"), -float("inf"), 1e30):
        offsets = torch.zeros(2, 3, 8)
        offsets[0, 1, 4] = bad
        out = deform_conv1d(signal, offsets, weight, padding=1)
        assert out.shape == (2, 1, 8)
        assert torch.isfinite(out[1]).all()  # the other sample is untouched
        if not math.isfinite(bad):
            assert not torch.isfinite(out[0]).all()  # the bad one shows as NaN


def test_nan_validation_loss_stops_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from defcon_exp.engine import fit as fit_module

    real = fit_module.evaluate

    def nan_after_first(*args, **kwargs):
        result = real(*args, **kwargs)
        nan_after_first.calls += 1
        return {**result, "loss": float("nan")} if nan_after_first.calls >= 2 else result

    nan_after_first.calls = 0
    monkeypatch.setattr(fit_module, "evaluate", nan_after_first)
    cfg = tiny_net_config(tmp_path / "run", "trainer.epochs=3", "data.val_size=8")
    with pytest.raises(NonFiniteLossError, match="val loss became NaN/Inf after epoch 2"):
        train(cfg)
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["epoch"] == 1


def test_non_finite_buffers_are_found() -> None:
    net = torch.nn.BatchNorm1d(3)
    assert non_finite_tensors(net) == []
    net.running_var[1] = float("nan")
    assert non_finite_tensors(net) == ["running_var"]


def compose_cfg(*overrides: str):
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("optim.lr=inf", "optim.lr"),
        ("optim.lr=1e400", "optim.lr"),
        ("optim.momentum=nan", "optim.momentum"),
        ("seed=-1", "seed"),
        ("seed=12345678901234567890123", "seed"),
        ("optim.eps=-1", "optim.eps"),
        ("optim.betas=[2,0.5]", "optim.betas"),
        ("model.attention=nope", "model.attention"),
        ("+model.attention_kwargs.x._target_=os.system", "model.attention_kwargs.x._target_"),
    ],
)
def test_bad_values_are_refused_up_front(override: str, key: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate_config(compose_cfg(override))
    message = str(err.value)
    assert message.startswith(key) and "\n" not in message, message


def test_an_unwritable_output_folder_is_one_line() -> None:
    with pytest.raises(ConfigError, match=r"hydra.run.dir='/proc/x' is invalid.*choose another"):
        check_output_dirs(["hydra.run.dir=/proc/x"])


def killed_before_first_checkpoint(run_dir: Path) -> Path:
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / ".hydra").mkdir()
    (run_dir / ".hydra" / "overrides.yaml").write_text("- model=eca\n- trainer.epochs=3\n")
    return run_dir


def test_a_dir_killed_before_its_first_checkpoint_is_no_dead_end(tmp_path: Path) -> None:
    run_dir = killed_before_first_checkpoint(tmp_path / "run")
    cfg = tiny_net_config(run_dir, "trainer.epochs=1")
    with pytest.raises(ConfigError, match="plus resume=auto"):
        plan_run(cfg, run_dir)  # a fresh start says how to start over
    resume_cfg = tiny_net_config(run_dir, f"resume={run_dir}")
    with pytest.raises(ConfigError) as err:
        plan_run(resume_cfg, run_dir)  # resume= names the exact command
    assert f"defcon-train model=eca trainer.epochs=3 hydra.run.dir={run_dir} resume=auto" in str(err.value)
    auto = tiny_net_config(run_dir, "resume=auto", "trainer.epochs=1")
    assert train(auto, run_dir, restart_incomplete=True)["epochs"] == 1  # and that works


def test_disk_full_is_one_line_and_keeps_the_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = tmp_path / "run"
    train(tiny_net_config(run_dir, "trainer.epochs=1"))
    before = (run_dir / "checkpoints" / "last.pt").read_bytes()

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", full)
    with pytest.raises(CheckpointWriteError) as err:
        train(tiny_net_config(run_dir, f"resume={run_dir}", "trainer.epochs=2"))
    message = str(err.value)
    assert "\n" not in message and "last.pt" in message and "MiB free" in message and "intact" in message
    assert (run_dir / "checkpoints" / "last.pt").read_bytes() == before
    assert not list((run_dir / "checkpoints").glob(".*.tmp"))


def test_stale_temp_files_are_removed_on_the_next_start(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(tiny_net_config(run_dir, "trainer.epochs=1"))
    stale = run_dir / "checkpoints" / ".last.pt.k1ll3d.tmp"
    stale.write_bytes(b"x" * 1000)
    train(tiny_net_config(run_dir, f"resume={run_dir}", "trainer.epochs=2"))
    assert not stale.exists()


def test_resume_with_only_the_test_left_keeps_images_per_s(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    first = train(tiny_net_config(run_dir, "trainer.epochs=1"))
    (run_dir / "summary.json").unlink()  # killed between the last checkpoint and the summary
    again = train(tiny_net_config(run_dir, f"resume={run_dir}", "trainer.epochs=1"))
    assert again["images_per_s"] is not None
    assert again["images_per_s"] == pytest.approx(first["images_per_s"])
    assert json.loads((run_dir / "summary.json").read_text())["images_per_s"] == again["images_per_s"]


def test_a_deleted_metrics_csv_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_dir = tmp_path / "run"
    train(tiny_net_config(run_dir, "trainer.epochs=1"))
    (run_dir / "metrics.csv").unlink()
    with caplog.at_level(logging.WARNING):
        train(tiny_net_config(run_dir, f"resume={run_dir}", "trainer.epochs=2"))
    assert "metrics.csv is missing, so epochs 1-1 have no rows" in caplog.text
