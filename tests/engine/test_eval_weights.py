"""``defcon-eval weights=raw|ema`` (issue 14): the default is the run's selected weights,
and each choice reproduces what training measured with those weights."""

from __future__ import annotations

from pathlib import Path

import pytest
from attention_net import tiny_net_config

from defcon_exp.config import ConfigError
from defcon_exp.run.checkpoint_tools import evaluate_checkpoint
from defcon_exp.run.train import train


@pytest.fixture(scope="module")
def ema_run(tmp_path_factory) -> tuple[Path, dict]:
    run = tmp_path_factory.mktemp("ema") / "run"
    summary = train(tiny_net_config(
        run, "trainer.epochs=2", "trainer.ema.enabled=true", "trainer.ema.decay=0.5",
        "trainer.ema.select=ema", "optim.lr=0.1",
    ))
    return run, summary


def test_tiny_builder_is_really_used(ema_run):
    assert ema_run[1]["num_params"] < 10_000  # not a silently substituted ResNet-50


@pytest.mark.parametrize("weights", [None, "raw", "ema"])
def test_eval_weights_reproduce_the_run(ema_run, weights):
    run, summary = ema_run
    last = run / "checkpoints" / "last.pt"
    result = evaluate_checkpoint(last, weights=weights, out=run / f"eval_{weights}.json")
    chosen = weights or "ema"  # the run selected the EMA weights
    assert result["weights"] == chosen
    assert result["top1"] == pytest.approx(summary[f"test_{chosen}"]["top1"], abs=1e-6)
    assert result["loss"] == pytest.approx(summary[f"test_{chosen}"]["loss"], rel=1e-5)


def test_eval_ema_of_a_run_without_ema_is_refused(tmp_path):
    run = tmp_path / "run"
    train(tiny_net_config(run, "trainer.epochs=1"))
    with pytest.raises(ConfigError, match=r"weights='ema' is invalid: .* use weights=raw"):
        evaluate_checkpoint(run, weights="ema")
    assert evaluate_checkpoint(run)["weights"] == "raw"
