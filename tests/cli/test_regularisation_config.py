"""The regularisation keys (issue 14): off by default and in the paper presets, validated with
one line each, listed by ``defcon-train --help``; the two new recipes hold their values."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cli_helpers import run_module
from hydra import compose, initialize_config_module

from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.engine.schedulers import build_schedulers

OFF = {
    "trainer.label_smoothing": 0.0,
    "trainer.accumulate_grad_batches": 1,
    "trainer.mix.mixup_alpha": 0.0,
    "trainer.mix.cutmix_alpha": 0.0,
    "trainer.ema.enabled": False,
    "data.auto_augment": "none",
    "data.random_erasing": 0.0,
    "model.drop_path_rate": 0.0,
}


@pytest.fixture()
def composer() -> Iterator:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides))


def pick(cfg, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


@pytest.mark.parametrize(
    "experiment", [None, "defcon_best", "eca_recipe", "se_eca_baseline", "released_code", "pytorch_cifar100"]
)
def test_default_and_paper_presets_leave_everything_off(composer, experiment):
    cfg = composer(*([f"experiment={experiment}"] if experiment else []))
    assert {key: pick(cfg, key) for key in OFF} == OFF


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("trainer.label_smoothing=1.0", r"trainer\.label_smoothing=1\.0 is invalid: must be in \[0, 1\)"),
        ("trainer.accumulate_grad_batches=0", r"trainer\.accumulate_grad_batches=0 is invalid"),
        ("trainer.mix.mixup_alpha=-1", r"trainer\.mix\.mixup_alpha=-1\.0 is invalid"),
        ("trainer.mix.cutmix_alpha=-0.5", r"trainer\.mix\.cutmix_alpha=-0\.5 is invalid"),
        ("trainer.mix.prob=1.5", r"trainer\.mix\.prob=1\.5 is invalid: must be in \[0, 1\]"),
        ("trainer.mix.switch_prob=-0.1", r"trainer\.mix\.switch_prob=-0\.1 is invalid"),
        ("trainer.ema.decay=1.0", r"trainer\.ema\.decay=1\.0 is invalid"),
        ("trainer.ema.select=best", r"trainer\.ema\.select='best' is invalid: must be one of"),
        ("trainer.ema.select=ema", r"trainer\.ema\.select='ema' is invalid: .*trainer\.ema\.enabled=true"),
        ("data.auto_augment=autoaugment", r"data\.auto_augment='autoaugment' is invalid: must be one of"),
        ("data.random_erasing=2", r"data\.random_erasing=2\.0 is invalid"),
        ("model.drop_path_rate=1", r"model\.drop_path_rate=1\.0 is invalid"),
        ("data.auto_augment=randaugment data.loader=tensor",
         r"data\.auto_augment='randaugment' is invalid: is not supported by data\.loader=tensor; "
         r"use data\.loader=dataloader"),
    ],
)
def test_bad_values_fail_with_one_line(composer, override, message):
    cfg = composer(*override.split())
    with pytest.raises(ConfigError, match=message) as info:
        validate_config(cfg)
    assert "\n" not in str(info.value)


def test_recipes_compose_validate_and_hold_their_values(composer):
    recipe = composer("experiment=pytorch_cifar100")
    validate_config(recipe)
    assert (recipe.optim.lr, recipe.optim.weight_decay, recipe.data.batch_size) == (0.1, 5e-4, 128)
    assert recipe.trainer.epochs == 200 and recipe.scheduler.warmup_epochs == 1
    kwargs = {k: v for k, v in recipe.scheduler.items() if k not in ("_target_", "plateau")}
    schedule, _ = build_schedulers(
        kwargs.pop("name"), optimizer=_sgd(0.1), epochs=200, steps_per_epoch=10, **kwargs
    )
    lr = {epoch: schedule.lrs_at(epoch * 10)[0] for epoch in (0, 1, 59, 60, 61, 119, 120, 159, 160, 199)}
    # 0-based epochs: warm-up from 0 in epoch 0, then x0.2 from epochs 60, 120, 160 (theirs 61/121/161 1-based)
    assert lr[0] == 0.0 and lr[1] == pytest.approx(0.1) and lr[59] == pytest.approx(0.1)
    assert lr[60] == pytest.approx(0.02) and lr[120] == pytest.approx(0.004) and lr[160] == pytest.approx(0.0008)
    strong = composer("experiment=strong")
    validate_config(strong)
    assert strong.trainer.ema.enabled and strong.trainer.mix.cutmix_alpha > 0
    assert strong.data.loader == "dataloader" and strong.data.auto_augment != "none"


def _sgd(lr: float):
    import torch

    return torch.optim.SGD(torch.nn.Linear(2, 2).parameters(), lr=lr)


def test_help_lists_the_new_keys(tmp_path):
    result = run_module("defcon_exp.cli.train", ["--help"], tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    for key in ("trainer.label_smoothing=0.0", "trainer.accumulate_grad_batches=1",
                "trainer.mix.mixup_alpha=0.0", "trainer.mix.cutmix_alpha=0.0", "trainer.mix.switch_prob=0.5",
                "trainer.ema.enabled=false", "trainer.ema.decay=", "trainer.ema.select=raw",
                "data.auto_augment=none", "data.random_erasing=0.0", "model.drop_path_rate=0.0"):
        assert key in result.stdout, key
