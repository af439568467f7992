"""SIGKILL + resume stays exact with the regularisation options on (issue 14): Mixup/CutMix,
label smoothing, gradient accumulation, weight EMA and a DataLoader augmentation policy
(their randomness comes from (seed, epoch, batch/image) or the checkpoint)."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
import torch
from cli_helpers import run_module
from hydra import compose, initialize_config_module
from test_kill_resume import ENV, TRAIN, assert_same_run, ckpt_where, start, wait_for
from tiny_net import TINY_NET_ARGS

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.run.train import train

pytestmark = pytest.mark.slow

OPTIONS = [
    "trainer.label_smoothing=0.1", "trainer.accumulate_grad_batches=2",
    "trainer.mix.mixup_alpha=0.4", "trainer.mix.cutmix_alpha=1.0", "trainer.mix.prob=0.8",
    "trainer.ema.enabled=true", "trainer.ema.decay=0.8", "trainer.ema.select=ema",
    "data.loader=dataloader", "data.num_workers=0", "data.pin_memory=false",
    "data.auto_augment=trivialaugment", "data.random_erasing=0.25",
]
ARGS = [*TINY_NET_ARGS, *OPTIONS]


def test_sigkill_mid_epoch_then_resume_is_exact_with_options_on(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        train(compose("config", overrides=ARGS), run_dir=reference)

    run_dir = tmp_path / "run"
    proc = start([*ARGS, "trainer.checkpoint_every_n_steps=1", f"hydra.run.dir={run_dir}"], tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    wait_for(proc, lambda: (ckpt_where(last) or (0, 0)) >= (1, 2))  # inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    killed_at = ckpt_where(last)
    assert killed_at is not None and killed_at[1] > 0 and killed_at[1] % 2 == 0, killed_at

    resumed = run_module(TRAIN, [f"resume={run_dir}"], tmp_path, timeout=300, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"resumed from epoch {killed_at[0]} + {killed_at[1]} batches" in (run_dir / "train.log").read_text()
    assert_same_run(run_dir, reference)
    got, want = (load_checkpoint(d / "checkpoints" / "last.pt") for d in (run_dir, reference))
    assert got["weights"] == "ema"
    for key, value in want["ema"].items():
        assert torch.equal(got["ema"][key], value), key
