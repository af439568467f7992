"""The search objective: validation metrics only (a test metric cannot be configured), values
read from summary.json, directions, the search-space grammar, and refusals before any job."""

from __future__ import annotations

import math

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from defcon_exp.analysis.objectives import directions, objective_value
from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.run.objective import sweeper_return

optuna = pytest.importorskip("optuna", reason="pip install 'defcon_exp[search]'")
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution  # noqa: E402

from defcon_exp.run.optuna_objects import build_pruner, build_sampler, parse_search_space  # noqa: E402
from defcon_exp.run.sweeper import OptunaSweeperImpl  # noqa: E402

SUMMARY = {"test": {"top1": 99.0, "top5": 100.0, "loss": 0.01},
           "val": {"top1": 61.5, "top5": 88.0, "loss": 1.25},
           "best_val": {"epoch": 3, "top1": 63.0, "top5": 89.0, "loss": 1.2},
           "num_params": 1234, "images_per_s": 50.0}


def compose_cfg(*overrides: str):
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def test_values_come_from_the_validation_fields_of_the_summary() -> None:
    assert objective_value(SUMMARY, "val/top1_final") == 61.5
    assert objective_value(SUMMARY, "val/top1_best") == 63.0
    assert objective_value(SUMMARY, "val/loss_final") == 1.25
    assert sweeper_return(SUMMARY, ["val/top1_final", "params"]) == [61.5, 1234.0]
    assert directions(["val/top1_final", "val/loss_final", "params", "images_per_s"]) == [
        "maximize", "minimize", "minimize", "maximize"]
    # no validation split: nothing valid to return (the test top-1 is never returned)
    assert sweeper_return({"test": SUMMARY["test"]}, "val/top1_final") is None


@pytest.mark.parametrize("objective", ["test/top1", "test/top1_final", ["val/top1_final", "test/loss"]])
def test_a_test_metric_objective_is_refused_by_config_validation(objective) -> None:
    cfg = compose_cfg("data=synthetic", "data.val_size=64")
    OmegaConf.update(cfg, "search.objective", objective)
    with pytest.raises(ConfigError, match=r"search.objective=.* is invalid: .*test.* choose from"):
        validate_config(cfg)


def test_cost_alone_is_not_an_objective() -> None:
    cfg = compose_cfg("search.objective=[params]")
    with pytest.raises(ConfigError, match="needs a validation metric"):
        validate_config(cfg)


def test_a_trial_without_validation_split_is_refused_with_the_fix() -> None:
    cfg = compose_cfg("data=synthetic", "data.val_size=0", "search.trial_number=3")
    with pytest.raises(ConfigError, match=r"data.val_size=0 is invalid: .*data.val_size=5000"):
        validate_config(cfg)
    validate_config(compose_cfg("data=synthetic", "data.val_size=0"))  # a plain run is fine


def test_the_sweeper_refuses_before_launching(tmp_path) -> None:
    sweeper = OptunaSweeperImpl(params={"optim.lr": "interval(0.01, 0.1)"})
    sweeper.config = compose_cfg("data=synthetic", "data.val_size=0")
    with pytest.raises(ValueError, match=r"data.val_size=0 is invalid for a search.*val_size=5000"):
        sweeper.sweep([])
    sweeper.config = compose_cfg("data.val_size=10", "search.objective=val/loss_final")
    sweeper.direction = "maximize"
    with pytest.raises(ValueError, match=r"direction='maximize' is invalid: .*\['minimize'\]"):
        sweeper.sweep([])


def test_search_space_grammar_matches_the_upstream_plugin() -> None:
    space, fixed = parse_search_space([
        "optim.lr=tag(log, interval(1e-4, 0.1))", "optim.weight_decay=interval(0.0, 0.01)",
        "scheduler.warmup_epochs=range(0, 5)", "optim.momentum=range(0.8, 1.0, 0.05)",
        "model.kernel_size=choice(paper, 3, [3,5,5,7])", "seed=7",
    ])
    assert space["optim.lr"] == FloatDistribution(1e-4, 0.1, log=True)
    assert space["optim.weight_decay"] == FloatDistribution(0.0, 0.01)
    assert space["scheduler.warmup_epochs"] == IntDistribution(0, 4)  # range's stop is exclusive
    lr_grid = space["optim.momentum"]
    assert math.isclose(lr_grid.low, 0.8) and math.isclose(lr_grid.high, 0.95) and lr_grid.step == 0.05
    assert space["model.kernel_size"] == CategoricalDistribution(["paper", 3, "[3,5,5,7]"])
    assert fixed == {"seed": "7"}


def test_samplers_and_pruners_come_from_an_allowlist() -> None:
    assert isinstance(build_sampler({"_target_": "optuna.samplers.TPESampler", "seed": 1}),
                      optuna.samplers.TPESampler)
    assert isinstance(build_pruner({"_target_": "optuna.pruners.MedianPruner", "n_warmup_steps": 2}),
                      optuna.pruners.MedianPruner)
    with pytest.raises(ValueError, match=r"hydra.sweeper.sampler._target_='os.system' is invalid"):
        build_sampler({"_target_": "os.system"})


def test_presets_compose_onto_our_sweeper() -> None:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["hparams_search=defcon_optuna"], return_hydra_config=True)
        pareto = compose("config", overrides=["hparams_search=attention_pareto"], return_hydra_config=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_ == "hydra_plugins.defcon_optuna_sweeper.optuna_sweeper.DefconOptunaSweeper"
    assert sweeper.sampler._target_ == "optuna.samplers.TPESampler"
    assert sweeper.pruner._target_ == "optuna.pruners.MedianPruner"
    assert cfg.data.val_size > 0 and cfg.search.objective == "val/top1_final"
    space, _ = parse_search_space([f"{k}={v}" for k, v in sweeper.params.items()])
    assert set(space) == {"optim.lr", "optim.weight_decay", "scheduler.warmup_epochs",
                          "model.kernel_size", "+model.attention_kwargs.offset_init"}
    validate_config(cfg)
    assert list(pareto.search.objective) == ["val/top1_final", "params"]
    assert pareto.hydra.sweeper.sampler._target_ == "optuna.samplers.NSGAIISampler"


def test_the_regularisation_preset_searches_valid_values() -> None:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["hparams_search=defcon_regularisation"], return_hydra_config=True)
    space, _ = parse_search_space([f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()])
    assert {"trainer.label_smoothing", "trainer.mix.cutmix_alpha", "model.drop_path_rate",
            "data.auto_augment", "trainer.ema.decay"} <= set(space)
    validate_config(cfg)
    corners = {"trainer.label_smoothing": 0.2, "data.auto_augment": "randaugment",
               "trainer.mix.mixup_alpha": 0.8, "trainer.mix.cutmix_alpha": 1.0,
               "model.drop_path_rate": 0.2, "data.random_erasing": 0.25, "trainer.ema.decay": 0.9999}
    for key, value in corners.items():  # the corners of the space are valid configs
        OmegaConf.update(cfg, key, value)
    validate_config(cfg)


def test_pruning_hook_reports_each_epoch_and_stops_a_pruned_trial(tmp_path) -> None:
    from defcon_exp.analysis.objectives import SearchConfig
    from defcon_exp.engine.hooks import StopRun
    from defcon_exp.run.objective import epoch_hooks

    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    number = study.ask().number
    pruner = '{"_target_": "optuna.pruners.ThresholdPruner", "lower": 50.0}'
    search = SearchConfig(storage=storage, study_name="s", trial_number=number, prune=True, pruner=pruner)
    (hook,) = epoch_hooks(search)
    hook(1, 10, {"train": {"top1": 0.0}, "val": {"top1": 60.0, "loss": 1.0}}, None)  # above: goes on
    with pytest.raises(StopRun) as stop:
        hook(2, 20, {"val": {"top1": 40.0, "loss": 2.0}}, None)
    assert stop.value.status == "pruned" and "after epoch 2" in stop.value.reason
    assert optuna.load_study(study_name="s", storage=storage).trials[0].intermediate_values == {
        1: 60.0, 2: 40.0}
    # no hooks outside a search, without pruning, or for several objectives (Optuna cannot prune)
    assert epoch_hooks(SearchConfig()) == ()
    assert epoch_hooks(SearchConfig(storage=storage, study_name="s", trial_number=number)) == ()
    multi = SearchConfig(objective=["val/top1_final", "params"], storage=storage, study_name="s",
                         trial_number=number, prune=True)
    assert epoch_hooks(multi) == ()
