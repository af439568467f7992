"""``trainer.precision`` / ``trainer.compile`` parsing and validation, the retired
``trainer.amp`` mapping, and tiny ``train()`` runs in bf16, 16-mixed and channels_last."""

from __future__ import annotations

import logging

import pytest
import torch
from attention_net import tiny_net_config
from hydra import compose, initialize_config_module

from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.engine.checkpoint import load_checkpoint, save_checkpoint
from defcon_exp.engine.precision import (
    autocast,
    grad_scaler,
    parse_precision,
    precision_from_amp,
)
from defcon_exp.engine.speedups import parse_compile
from defcon_exp.run.checkpoint_tools import evaluate_checkpoint
from defcon_exp.run.launch import check_group_overrides
from defcon_exp.run.plan import plan_resume
from defcon_exp.run.stored import upgrade_config
from defcon_exp.run.train import train

CPU = torch.device("cpu")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("32", "32"),
        (32, "32"),
        ("32-true", "32"),
        ("bf16", "bf16"),
        ("bf16-mixed", "bf16"),
        ("16-mixed", "16-mixed"),
        ("16", "16-mixed"),
        (16, "16-mixed"),
    ],
)
def test_parse_precision_accepts_names_and_aliases(value, expected):
    assert parse_precision(value) == expected


@pytest.mark.parametrize("value", ["fp16", "64", "16-true", True, 8, None, ""])
def test_parse_precision_refuses_with_value_and_fix(value):
    with pytest.raises(
        ValueError, match=r"trainer\.precision=.* is invalid.*trainer\.precision=bf16"
    ) as info:
        parse_precision(value)
    assert repr(value) in str(info.value)


@pytest.mark.parametrize(
    ("precision", "dtype", "scaled"),
    [
        ("32", torch.float32, False),
        ("bf16", torch.bfloat16, False),
        ("16-mixed", torch.float16, True),
    ],
)
def test_autocast_and_scaler_per_precision(precision, dtype, scaled):
    layer = torch.nn.Linear(4, 3)
    with autocast(precision, CPU):
        out = layer(torch.randn(2, 4))
    assert out.dtype == dtype
    scaler = grad_scaler(precision, CPU)
    assert scaler.is_enabled() is scaled
    loss = out.float().sum()
    assert (scaler.scale(loss) is loss) is not scaled


def test_amp_maps_to_what_it_meant():
    assert precision_from_amp(False, torch.device("cuda")) == "32"
    assert precision_from_amp(False, CPU) == "32"
    assert precision_from_amp(True, torch.device("cuda")) == "16-mixed"
    assert precision_from_amp(True, CPU) == "bf16"


def test_parse_compile():
    assert parse_compile(False) is None and parse_compile(None) is None
    assert parse_compile(True) == "default"
    assert parse_compile("max-autotune") == "max-autotune"
    with pytest.raises(ValueError, match=r"trainer\.compile='fast' is invalid.*reduce-overhead"):
        parse_compile("fast")


def _compose(*overrides: str):
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_config_defaults_and_command_line_values():
    cfg = _compose()
    assert cfg.trainer.precision == "32"  # YAML's int 32, typed as a string by the schema
    assert cfg.trainer.channels_last is False and cfg.trainer.compile is False
    validate_config(cfg)
    for value in ("32", "bf16", "16-mixed", "bf16-mixed", "32-true"):
        validate_config(_compose(f"trainer.precision={value}", "trainer.compile=reduce-overhead"))


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("trainer.precision=fp16", "trainer.precision='fp16' is invalid"),
        ("trainer.compile=fast", "trainer.compile='fast' is invalid"),
        ("trainer.compile=1", "trainer.compile=1 is invalid"),
    ],
)
def test_validate_config_names_key_value_and_rule(override, needle):
    with pytest.raises(ConfigError, match="must be") as info:
        validate_config(_compose(override))
    assert needle in str(info.value)


def test_retired_amp_on_the_command_line_says_what_to_use():
    with pytest.raises(
        ConfigError, match=r"trainer\.amp='true' is invalid.*trainer\.precision=bf16"
    ):
        check_group_overrides(["trainer.amp=true"])


def test_upgrade_config_maps_amp_per_device(caplog):
    stored = {"trainer": {"amp": True, "device": "cpu", "epochs": 3}, "seed": 1}
    with caplog.at_level(logging.WARNING):
        upgraded = upgrade_config(stored)
    assert upgraded == {"trainer": {"device": "cpu", "epochs": 3, "precision": "bf16"}, "seed": 1}
    assert "amp" in stored["trainer"]  # the input is left alone
    assert "retired trainer.amp=true" in caplog.text and "'bf16'" in caplog.text
    assert (
        upgrade_config({"trainer": {"amp": True, "device": "cuda:1"}})["trainer"]["precision"]
        == "16-mixed"
    )
    assert (
        upgrade_config({"trainer": {"amp": False, "device": "cuda"}})["trainer"]["precision"]
        == "32"
    )
    explicit = {"trainer": {"amp": True, "device": "cpu", "precision": "32"}}
    assert upgrade_config(explicit)["trainer"] == {"device": "cpu", "precision": "32"}
    plain = {"trainer": {"precision": "bf16"}}
    assert upgrade_config(plain) is plain


@pytest.mark.parametrize(
    ("precision", "channels_last"), [("bf16", True), ("16-mixed", False), ("16-mixed", True)]
)
def test_tiny_run_in_mixed_precision(tmp_path, precision, channels_last):
    run = tmp_path / "run"
    summary = train(
        tiny_net_config(
            run,
            "trainer.epochs=1",
            f"trainer.precision={precision}",
            f"trainer.channels_last={str(channels_last).lower()}",
        )
    )
    assert torch.isfinite(torch.tensor(summary["test"]["loss"]))
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    assert bool(ckpt["scaler"]) is (precision == "16-mixed")  # the scale is saved and resumed
    assert all(
        v.dtype != torch.bfloat16 and v.dtype != torch.float16 for v in ckpt["model"].values()
    )


def test_resume_across_precisions(tmp_path):
    run = tmp_path / "run"
    train(tiny_net_config(run, "trainer.epochs=1", "trainer.precision=32"))
    for epochs, precision in ((2, "16-mixed"), (3, "bf16"), (4, "16-mixed")):
        cfg = tiny_net_config(run, f"trainer.epochs={epochs}", f"trainer.precision={precision}")
        cfg.resume = str(run)
        assert train(cfg)["epochs"] == epochs  # an empty (32/bf16) scaler state is no error


def test_legacy_amp_checkpoint_resumes_and_evaluates(tmp_path, caplog):
    run = tmp_path / "run"
    train(tiny_net_config(run, "trainer.epochs=1"))
    # Rewrite the checkpoints as an older version wrote them: trainer.amp, no precision keys.
    for name in ("last.pt", "best.pt"):
        path = run / "checkpoints" / name
        state = load_checkpoint(path)
        trainer = state["config"]["trainer"]
        for key in ("precision", "channels_last", "compile"):
            del trainer[key]
        trainer["amp"] = True
        save_checkpoint(state, path)

    with caplog.at_level(logging.WARNING):
        cfg = plan_resume(tiny_net_config(run, f"resume={run}"), ["trainer.epochs=2"]).cfg
    assert cfg.trainer.precision == "bf16"  # amp=true meant bfloat16 autocast on the CPU
    assert "retired trainer.amp=true" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert train(cfg)["epochs"] == 2
    assert "changed" not in caplog.text  # no spurious "trainer.amp changed" warnings

    result = evaluate_checkpoint(run / "checkpoints" / "best.pt", ["trainer.device=cpu"])
    assert result["precision"] == "bf16" and 0 <= result["top1"] <= 100
    as_float32 = evaluate_checkpoint(
        run / "checkpoints" / "best.pt", ["trainer.precision=32"], out=tmp_path / "fp32.json"
    )
    assert as_float32["precision"] == "32"
    assert abs(as_float32["loss"] - result["loss"]) < 0.05  # same weights, other arithmetic
