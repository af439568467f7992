"""Issue 25.1: a key the chosen data set does not read is refused in one line, never ignored."""

from __future__ import annotations

import pytest

from defcon_exp.config import ConfigError
from defcon_exp.data import build_data
from defcon_exp.data.registry import DATASETS, set_specific_keys
from defcon_exp.run.launch import check_config_values
from defcon_exp.run.train_help import HIDDEN_UNLESS


@pytest.mark.parametrize(
    ("args", "key", "data_set"),
    [
        (["data.train_size=64"], "data.train_size=64", "cifar100"),
        (["data=cifar10", "data.test_size=32"], "data.test_size=32", "cifar10"),
        (["data=synthetic", "data.root=/datasets"], "data.root='/datasets'", "synthetic"),
        (["data=synthetic", "data.download=false"], "data.download=False", "synthetic"),
    ],
)
def test_a_key_the_data_set_ignores_is_refused_before_anything_runs(
    args: list[str], key: str, data_set: str
) -> None:
    with pytest.raises(ConfigError) as err:
        check_config_values(args)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{key} is invalid")
    assert f"does not apply to data set {data_set}" in message


def test_build_data_refuses_it_too_and_defaults_pass() -> None:
    with pytest.raises(ValueError, match=r"data\.train_size=5 is invalid: it does not apply"):
        build_data({"name": "cifar100", "train_size": 5, "download": False}, seed=0)
    check_config_values(["data=synthetic", "data.train_size=64"])  # its own key: fine
    check_config_values(["data.root=/datasets", "data.download=false"])


def test_the_help_hides_exactly_the_keys_the_specs_declare() -> None:
    declared = {f"data.{k}": tuple(sorted(v)) for k, v in set_specific_keys().items()}
    assert declared == {k: tuple(sorted(v)) for k, v in HIDDEN_UNLESS.items()}
    assert set(DATASETS) == {"cifar10", "cifar100", "synthetic", "imagefolder", "imagenet"}
