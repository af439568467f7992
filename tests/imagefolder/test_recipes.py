"""The ImageNet recipes compose, pass the value rules and scale the lr by the global batch."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from defcon_exp.config_rules import validate_config


def composed(*overrides: str):
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


@pytest.mark.parametrize(("experiment", "per_256", "batch"), [
    ("imagenet_resnet50", 0.1, 256), ("imagenet_resnet50_modern", 0.125, 1024),
])
def test_recipes_scale_the_lr_linearly_with_the_global_batch(experiment, per_256, batch) -> None:
    cfg = composed(f"experiment={experiment}", "model=eca")
    validate_config(cfg)
    assert cfg.data.name == "imagenet" and cfg.model.arch == "resnet50_imagenet"
    assert cfg.model.attention == "eca" and cfg.data.loader == "dataloader"
    assert cfg.trainer.precision == "bf16" and cfg.trainer.channels_last  # trainer=gpu
    assert cfg.data.batch_size == batch and cfg.optim.lr == pytest.approx(per_256 * batch / 256)
    smaller = composed(f"experiment={experiment}", "data.batch_size=64")
    assert smaller.optim.lr == pytest.approx(per_256 * 64 / 256)
    resolved = OmegaConf.to_container(smaller, resolve=True)
    assert resolved["optim"]["lr"] == pytest.approx(per_256 / 4)


def test_paper_recipe_values() -> None:
    cfg = composed("experiment=imagenet_resnet50")
    assert (cfg.optim.name, cfg.optim.momentum, cfg.optim.weight_decay) == ("sgd", 0.9, 1e-4)
    assert list(cfg.scheduler.milestones) == [30, 60, 90] and cfg.scheduler.gamma == 0.1
    assert cfg.trainer.epochs == 100
    modern = composed("experiment=imagenet_resnet50_modern")
    assert (modern.data.train_crop, modern.data.eval_resize, modern.data.eval_crop) == (176, 232, 224)
    assert modern.trainer.epochs == 600 and modern.trainer.label_smoothing == 0.1
