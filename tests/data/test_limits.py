"""trainer.limit_{train,val,test}_batches and debug=fast_dev_run (issue 25.2): Lightning's
semantics, every data set and loader, a scratch dir."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_module

from defcon_exp.config import ConfigError
from defcon_exp.config_rules import validate_config
from defcon_exp.data import build_data
from defcon_exp.data.limits import check_limit, limit_bundle, limited_count

SYNTH = {"name": "synthetic", "train_size": 40, "test_size": 24, "val_size": 8, "batch_size": 8,
         "eval_batch_size": 8, "num_workers": 0}


def test_counts_and_fractions_like_lightning() -> None:
    assert limited_count(10, 3) == 3 and limited_count(10, 30) == 10
    assert limited_count(10, 0.25) == 2 and limited_count(10, 1.0) == 10
    assert limited_count(10, 0.01) == 1  # a fraction keeps at least one batch
    for bad in (0, -1, 0.0, 1.5, "a", True):
        with pytest.raises(ValueError, match=r"trainer\.limit_train_batches="):
            check_limit("limit_train_batches", bad)


@pytest.mark.parametrize("loader", ["tensor", "dataloader"])
def test_limited_loaders_yield_the_first_batches_of_the_epoch(loader: str) -> None:
    data = build_data({**SYNTH, "loader": loader}, seed=0)
    limited = limit_bundle(data, {"limit_train_batches": 2, "limit_val_batches": 1,
                                  "limit_test_batches": 0.7})
    assert (len(limited.train), len(limited.val), len(limited.test)) == (2, 1, 2)
    assert limited.train.num_samples == 16
    for epoch in (0, 1):
        data.train.set_epoch(epoch)
        limited.train.set_epoch(epoch)
        full = [labels.tolist() for _, labels in data.train][:2]
        assert [labels.tolist() for _, labels in limited.train] == full
    assert limit_bundle(data, {}) is data


def compose_args(args: list[str]):
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=args, return_hydra_config=True)


def test_the_config_refuses_bad_limits_in_one_line() -> None:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=["trainer.limit_val_batches=0"])
    with pytest.raises(ConfigError, match=r"trainer.limit_val_batches=0 is invalid: must be a"):
        validate_config(cfg)


def test_fast_dev_run_preset() -> None:
    cfg = compose_args(["debug=fast_dev_run", "data=synthetic", "trainer.epochs=5"])
    trainer = cfg.trainer
    assert (trainer.limit_train_batches, trainer.limit_val_batches, trainer.limit_test_batches) == (2, 2, 2)
    assert trainer.epochs == 5  # the command line still wins
    assert str(cfg.hydra.run.dir).startswith("outputs/debug/")
    assert str(cfg.hydra.sweep.dir).startswith("multirun/debug/")
    assert compose_args(["debug=fast_dev_run", "resume=/runs/a"]).hydra.run.dir == "/runs/a"
