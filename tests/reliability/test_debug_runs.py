"""debug=fast_dev_run end to end, and the exactness of a killed and resumed run with
trainer.limit_train_batches or trainer.early_stopping (issue 25.2, 25.11)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from cli_helpers import run_module
from hydra import compose, initialize_config_module
from test_kill_resume import ENV, TRAIN, assert_same_run, ckpt_where, rows, start, wait_for
from tiny_net import TINY_NET_ARGS

from defcon_exp.run.train import train


def test_fast_dev_run_trains_a_few_batches_of_every_phase(tmp_path: Path, caplog) -> None:
    args = [*(a for a in TINY_NET_ARGS if not a.startswith("trainer.epochs=")),
            "data.train_size=64", "data.val_size=32", "data.test_size=48",
            "data.loader=dataloader", "debug=fast_dev_run"]
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=args)
    with caplog.at_level("INFO"):
        summary = train(cfg, run_dir=tmp_path)
    assert "train 16 images (2 batches)" in caplog.text  # 2 batches of 8
    assert "(32 images) | summary" in caplog.text  # 2 test batches of 16
    assert summary["global_step"] == 2
    assert summary["epochs_done"] == 1 and summary["status"] == "finished"
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["best.pt"]


def reference_run(tmp_path: Path, args: list[str]) -> Path:
    run_dir = tmp_path / "reference"
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=args)
    train(cfg, run_dir=run_dir)
    return run_dir


def kill_and_resume(tmp_path: Path, args: list[str], at: tuple[int, int]) -> Path:
    """Run ``args`` in a subprocess, SIGKILL it once last.pt reaches ``at`` (epochs done,
    batches into the next), resume it; the run dir."""
    run_dir = tmp_path / "run"
    proc = start([*args, f"hydra.run.dir={run_dir}"], tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    wait_for(proc, lambda: (ckpt_where(last) or (0, 0)) >= at)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert not (run_dir / "summary.json").exists()
    resumed = run_module(TRAIN, [f"resume={run_dir}"], tmp_path, timeout=120, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    return run_dir


@pytest.mark.slow
def test_limited_epochs_resume_exactly_mid_epoch(tmp_path: Path) -> None:
    args = [*TINY_NET_ARGS, "trainer.limit_train_batches=4", "trainer.limit_val_batches=1",
            "trainer.checkpoint_every_n_steps=1"]
    reference = reference_run(tmp_path, args)
    assert json.loads((reference / "summary.json").read_text())["global_step"] == 12  # 3 x 4
    run_dir = kill_and_resume(tmp_path, args, (1, 2))
    assert "resumed from epoch 1 + " in (run_dir / "train.log").read_text()
    assert_same_run(run_dir, reference)


@pytest.mark.slow
def test_early_stopping_stops_at_the_same_epoch_after_a_kill(tmp_path: Path) -> None:
    # improvements must beat 100 (never): epoch 1 is the best, the run stops after epoch 3
    args = [*TINY_NET_ARGS, "trainer.epochs=6", "trainer.early_stopping.monitor=val/loss",
            "trainer.early_stopping.patience=2", "trainer.early_stopping.min_delta=100"]
    reference = reference_run(tmp_path, args)
    want = json.loads((reference / "summary.json").read_text())
    assert (want["status"], want["epochs_done"]) == ("stopped_early", 3)
    run_dir = kill_and_resume(tmp_path, args, (2, 0))
    got = json.loads((run_dir / "summary.json").read_text())
    assert (got["status"], got["epochs_done"], got["test"]) == ("stopped_early", 3, want["test"])
    assert [r["epoch"] for r in rows(run_dir)] == ["1", "2", "3"]
