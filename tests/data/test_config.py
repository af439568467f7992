"""DataConfig, the conf/data/*.yaml group files and build_data's validation messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from omegaconf import OmegaConf

from defcon_exp.data import DataConfig, build_data

CONF_DATA = Path(__file__).resolve().parents[2] / "conf" / "data"


@pytest.mark.parametrize("name", ["cifar100", "cifar10", "synthetic"])
def test_group_files_fit_the_schema(name: str) -> None:
    node = OmegaConf.merge(
        OmegaConf.structured(DataConfig), OmegaConf.load(CONF_DATA / f"{name}.yaml")
    )
    config = OmegaConf.to_object(node)
    assert isinstance(config, DataConfig) and config.name == name
    assert "_target_" not in OmegaConf.load(CONF_DATA / f"{name}.yaml")


def test_defaults_follow_the_paper() -> None:
    config = DataConfig()
    assert (config.name, config.root, config.download, config.val_size) == (
        "cifar100",
        "data",
        True,
        0,
    )
    assert (config.batch_size, config.augment, config.cutout) == (128, True, 0)


def test_synthetic_group_builds_from_a_dictconfig() -> None:
    node = OmegaConf.merge(
        OmegaConf.structured(DataConfig), OmegaConf.load(CONF_DATA / "synthetic.yaml")
    )
    node.train_size, node.test_size = 200, 50
    bundle = build_data(node, seed=0, device="cpu")
    assert bundle.num_classes == 10 and bundle.train.num_samples == 200


@pytest.mark.parametrize(
    ("override", "pattern"),
    [
        ({"name": "imagenet21k"}, r"data\.name='imagenet21k' is invalid: must be one of"),
        (
            {"loader": "fast"},
            r"data\.loader='fast' is invalid: must be one of \['dataloader', 'tensor'\]",
        ),
        ({"batch_size": 0}, r"data\.batch_size=0 is invalid: must be an integer >= 1"),
        ({"val_size": -5}, r"data\.val_size=-5 is invalid"),
        ({"val_size": 200}, r"data\.val_size=200 is invalid: must be smaller than the 200"),
        ({"cutout": 40}, r"data\.cutout=40 is invalid"),
        ({"num_workers": -1}, r"data\.num_workers=-1 is invalid"),
        ({"num_classes": 1}, r"data\.num_classes=1 is invalid"),
        (
            {"name": "cifar100", "num_classes": 10, "train_size": 10_000, "test_size": 2_000},
            r"data\.num_classes=10 is invalid: cifar100 has 100",
        ),
        ({"colour": "red"}, r"unknown key\(s\) \['colour'\]"),
    ],
)
def test_invalid_values_name_key_value_and_rule(override: dict, pattern: str) -> None:
    config = {"name": "synthetic", "train_size": 200, "test_size": 20, **override}
    with pytest.raises(ValueError, match=pattern):
        build_data(config, seed=0)


def test_negative_seed_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"data\.seed=-1"):
        build_data({"name": "synthetic", "train_size": 20, "test_size": 5}, seed=-1)
