"""trainer=gpu: the recommended GPU setting composes, validates and keeps user overrides."""

from __future__ import annotations

from hydra import compose, initialize_config_module

from defcon_exp.config import register_configs
from defcon_exp.config_rules import validate_config


def _compose(*overrides: str):
    register_configs()
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_gpu_preset_values():
    cfg = _compose("trainer=gpu")
    validate_config(cfg)
    assert cfg.trainer.precision == "bf16"
    assert cfg.trainer.channels_last is True
    assert cfg.trainer.compile is True
    assert cfg.trainer.device == "cuda"
    assert cfg.data.loader == "tensor"
    assert cfg.trainer.epochs == 200  # the rest is trainer/default.yaml


def test_gpu_preset_yields_to_the_command_line():
    cfg = _compose("trainer=gpu", "data=synthetic", "data.loader=dataloader", "trainer.epochs=2")
    assert cfg.data.loader == "dataloader"
    assert cfg.data.name == "synthetic"
    assert cfg.trainer.epochs == 2
    assert cfg.trainer.precision == "bf16"
