"""torch.compile and bf16 with the regularisation options on (issue 14): one small CPU run
each (Mixup/CutMix, label smoothing, accumulation, EMA, drop path in the bottleneck)."""

from __future__ import annotations

import math

import pytest
import torch
from attention_net import tiny_net_config
from torch._dynamo.utils import counters

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.run.train import train

OPTIONS = (
    "trainer.label_smoothing=0.1", "trainer.accumulate_grad_batches=2",
    "trainer.mix.mixup_alpha=0.4", "trainer.mix.cutmix_alpha=1.0",
    "trainer.ema.enabled=true", "trainer.ema.decay=0.5", "model.drop_path_rate=0.2",
)


def check(summary: dict, run) -> None:
    assert summary["epochs_done"] == 1 and summary["global_step"] == 1  # 2 batches, 1 step
    assert all(math.isfinite(summary[k]["loss"]) for k in ("test", "test_ema"))
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert int(ckpt["ema"]["n_averaged"]) == 1
    assert not any(k.startswith("_orig_mod.") for k in ckpt["model"])


def test_bf16_with_options(tmp_path):
    run = tmp_path / "run"
    check(train(tiny_net_config(run, "trainer.epochs=1", "trainer.precision=bf16", *OPTIONS)), run)


def test_compile_with_options(tmp_path):
    try:
        torch.compile(lambda x: x * 2 + 1)(torch.randn(4))
    except Exception as err:  # no C++ compiler, or inductor broken on this platform
        pytest.skip(f"torch.compile (inductor) does not work here: {type(err).__name__}: {err}")
    torch._dynamo.reset()
    counters.clear()
    run = tmp_path / "run"
    check(train(tiny_net_config(run, "trainer.epochs=1", "trainer.compile=true", *OPTIONS)), run)
    assert counters["stats"]["unique_graphs"] >= 1
