"""Every config group option composes onto the schema and builds; value rules fail early."""

from __future__ import annotations

from collections.abc import Iterator
from importlib import resources

import pytest
import torch
from hydra import compose, initialize_config_module
from hydra.utils import instantiate
from omegaconf import DictConfig

from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.models import MODEL_NAMES, MODELS
from defcon_exp.run.build import build_model


def options(group: str) -> list[str]:
    folder = resources.files("defcon_exp.conf") / group
    return sorted(p.name.removesuffix(".yaml") for p in folder.iterdir() if p.name.endswith(".yaml"))


@pytest.fixture()
def composer() -> Iterator:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides))


def test_default_is_the_paper_setting(composer) -> None:
    cfg = composer()
    assert cfg.data.name == "cifar100" and cfg.model.attention == "defcon"
    assert cfg.model.kernel_size == "paper" and cfg.model._target_ == "defcon_exp.models.cifar_resnet50"
    validate_config(cfg)


@pytest.mark.parametrize("name", options("model"))
def test_model_options_build(composer, name: str) -> None:
    cfg = composer(f"model={name}")
    assert (cfg.model.attention, cfg.model.kernel_size) == MODELS[name]
    model = build_model(cfg.model, num_classes=7, device=torch.device("cpu"))
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


def test_group_options_are_complete() -> None:
    assert options("model") == sorted(MODEL_NAMES)  # the group mirrors the model registry
    assert options("scheduler") == sorted(["constant", "step", "cosine", "warm_restarts", "plateau"])
    assert options("optim") == ["adamw", "sgd"]
    assert {"eca_recipe", "se_eca_baseline", "defcon_best", "smoke"} <= set(options("experiment"))


@pytest.mark.parametrize("optim", options("optim"))
@pytest.mark.parametrize("scheduler", options("scheduler"))
def test_optim_and_scheduler_options_build(composer, optim: str, scheduler: str) -> None:
    cfg = composer(f"optim={optim}", f"scheduler={scheduler}")
    validate_config(cfg)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    optimizer = instantiate(cfg.optim, model=model, _convert_="all")
    schedule, plateau = instantiate(cfg.scheduler, optimizer=optimizer, epochs=cfg.trainer.epochs,
                                    steps_per_epoch=10, _convert_="all")
    assert schedule.lrs_at(0)[0] == pytest.approx(cfg.optim.lr)
    assert (plateau is not None) == (scheduler == "plateau")
    if cfg.optim.exclude_norm_and_bias:
        assert [g["weight_decay"] for g in optimizer.param_groups] == [cfg.optim.weight_decay, 0.0]


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose_and_validate(composer, experiment: str) -> None:
    cfg = composer(f"experiment={experiment}")
    validate_config(cfg)
    assert isinstance(cfg, DictConfig)


def test_experiment_recipes_hold_the_paper_values(composer) -> None:
    eca = composer("experiment=eca_recipe")
    assert (eca.optim.lr, eca.optim.weight_decay, eca.data.batch_size, eca.scheduler.name) == (0.1, 1e-4, 256, "step")
    base = composer("experiment=se_eca_baseline")
    assert (base.trainer.epochs, base.data.batch_size, base.optim.lr, base.optim.weight_decay,
            base.optim.momentum) == (200, 128, 0.1, 5e-4, 0.9)
    best = composer("experiment=defcon_best")
    assert (best.model.attention, best.optim.lr, best.data.batch_size, best.scheduler.name,
            best.scheduler.T_0, best.scheduler.T_mult, best.trainer.epochs) == (
        "defcon", 0.01, 128, "warm_restarts", 50, 2, 400)
    assert composer("experiment=smoke").data.name == "synthetic"
    assert composer("experiment=se_eca_baseline", "model=se").model.attention == "se"


@pytest.mark.parametrize(("override", "message"), [
    ("optim.lr=0", r"optim.lr=0.0 is invalid: must be > 0"),
    ("optim.lr=-0.1", r"optim.lr=-0.1 is invalid: must be > 0"),
    ("trainer.epochs=0", r"trainer.epochs=0 is invalid: must be >= 1"),
    ("data.batch_size=0", r"data.batch_size=0 is invalid: must be >= 1"),
    ("scheduler.name=linear", r"scheduler.name='linear' is invalid: must be one of \['constant'"),
    ("trainer.device=gpu", r"trainer.device='gpu' is invalid"),
    ("scheduler.warmup_epochs=500", r"scheduler.warmup_epochs=500.0 is invalid: must be >= 0 and < trainer.epochs"),
    ("optim.name=adam", r"optim.name='adam' is invalid: must be one of \['sgd', 'adamw'\]"),
    ("trainer.num_threads=0", r"trainer.num_threads=0 is invalid: must be null \(torch's default\) or >= 1"),
])
def test_value_rules_name_key_value_and_rule(composer, override: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        validate_config(composer(override))


def test_schema_rejects_wrong_types_and_unknown_keys(composer) -> None:
    with pytest.raises(Exception, match=r"optim\.lr=fast") as info:
        composer("optim.lr=fast")
    assert "could not be converted to Float" in str(info.value.__cause__)
    with pytest.raises(Exception, match=r"optim\.learning_rate") as info:
        composer("optim.learning_rate=0.1")


def test_unknown_group_option_lists_the_valid_ones(composer) -> None:
    with pytest.raises(Exception, match=r"(?s)Could not find 'model/foo'.*Available options in 'model'.*defcon_shuffle"):
        composer("model=foo")


def test_released_code_experiment_holds_the_released_recipe(composer) -> None:
    cfg = composer("experiment=released_code")
    validate_config(cfg)
    assert (cfg.model.attention, cfg.model.kernel_size, cfg.model.stem) == (
        "defcon_released", 3, "released")
    assert cfg.model.attention_kwargs.dropout == 0.25
    assert (cfg.optim.name, cfg.optim.lr, cfg.optim.momentum, cfg.optim.weight_decay) == (
        "sgd", 0.1, 0.9, 5e-4)
    assert (cfg.data.name, cfg.data.batch_size, cfg.data.val_size, cfg.seed) == (
        "cifar100", 128, 0, 42)
    assert (cfg.scheduler.name, list(cfg.scheduler.milestones), cfg.scheduler.gamma,
            cfg.scheduler.interval, cfg.trainer.epochs) == ("step", [80, 140, 180], 0.2, "epoch", 200)
    model = build_model(cfg.model, num_classes=100, device=torch.device("meta"))
    assert model.stem_name == "released" and model.stage_kernel_sizes == [3, 3, 3, 3]
    # cifar_main.py's adjust_learning_rate(epoch): 0.1, then x0.2 from epochs 80, 140, 180
    optimizer = instantiate(cfg.optim, model=torch.nn.Linear(2, 2), _convert_="all")
    schedule, _ = instantiate(cfg.scheduler, optimizer=optimizer, epochs=cfg.trainer.epochs,
                              steps_per_epoch=391, _convert_="all")
    lrs = {epoch: schedule.lrs_at(epoch * 391 + 390)[0] for epoch in (0, 79, 80, 139, 140, 180, 199)}
    expected = {0: 0.1, 79: 0.1, 80: 0.02, 139: 0.02, 140: 0.004, 180: 0.0008, 199: 0.0008}
    assert lrs == pytest.approx(expected)


def test_model_stem_is_validated(composer) -> None:
    assert composer().model.stem == "cifar"
    with pytest.raises(ConfigError, match=r"model.stem='imagenet' is invalid: must be one of"):
        validate_config(composer("model.stem=imagenet"))
