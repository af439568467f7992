"""Configs read from disk (a checkpoint's ``config``, a run dir's ``config.yaml``): checked so
that nothing stored there chooses what code runs (:mod:`defcon_exp.safety`), upgraded, merged
onto the schema, overridden."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from defcon_exp.config import Config, ConfigError
from defcon_exp.rates import first_line
from defcon_exp.safety import check_no_code

__all__ = [
    "apply_overrides",
    "compose_config",
    "schema_config",
    "upgrade_config",
]

log = logging.getLogger(__name__)


def compose_config(overrides: Sequence[str], hydra_node: bool = False) -> DictConfig:
    """The packaged ``config`` composed with ``overrides`` as Hydra will (with Hydra's own
    ``hydra`` node when ``hydra_node``)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra_node)


def upgrade_config(container: dict[str, Any], warn: bool = True) -> dict[str, Any]:
    """A copy of a stored config with retired keys replaced (the input is not modified).

    ``trainer.amp`` (before ``trainer.precision``): ``false`` -> ``precision: "32"``; ``true``
    -> what it meant on the run's ``trainer.device`` (``"16-mixed"`` on CUDA, ``"bf16"`` on the
    CPU, see :func:`~defcon_exp.engine.precision.precision_from_amp`), with a deprecation
    warning when ``warn``. An explicit ``trainer.precision`` next to it wins.
    """
    trainer = container.get("trainer")
    if not isinstance(trainer, dict) or "amp" not in trainer:
        return container
    import torch  # here, not at the top: the CLI's checks and --help stay torch-free

    from defcon_exp.engine.precision import precision_from_amp

    container = copy.deepcopy(container)
    trainer = container["trainer"]
    amp = bool(trainer.pop("amp"))
    spec = str(trainer.get("device", "auto"))
    cuda = spec.startswith("cuda") or (spec == "auto" and torch.cuda.is_available())
    precision = precision_from_amp(amp, torch.device("cuda" if cuda else "cpu"))
    if "precision" not in trainer:
        trainer["precision"] = precision
    if warn and amp:
        log.warning(
            "the config uses the retired trainer.amp=true: running it as trainer.precision=%r "
            "(what amp meant on trainer.device=%s); pass trainer.precision=... to choose",
            trainer["precision"],
            spec,
        )
    return container


def schema_config(container: dict[str, Any], source: str = "the stored config") -> DictConfig:
    """A plain-data config read from ``source`` (a checkpoint, a saved ``config.yaml``), checked
    by :func:`check_no_code`, upgraded (:func:`upgrade_config`) and merged onto the schema."""
    if not isinstance(container, Mapping):
        raise ConfigError(f"{source} holds no config mapping (found {type(container).__name__})")
    check_no_code(container, source)
    try:
        return OmegaConf.merge(OmegaConf.structured(Config), upgrade_config(dict(container)))
    except Exception as err:  # OmegaConf's validation errors: one line, with the file
        raise ConfigError(f"{source} holds a config this version cannot use: {first_line(err)}") from None


def apply_overrides(
    cfg: DictConfig,
    overrides: Sequence[str],
    tool: str,
    *,
    groups: Mapping[str, Any] | None = None,
) -> DictConfig:
    """``key=value`` command-line overrides applied to a stored config (resume, eval, inspect).

    ``groups``: group names this tool may swap whole (``data=cifar10``) -> a function
    ``(option) -> DictConfig`` of that group; any other group name is refused. Deleting keys
    (``~key``) is refused. The result is checked by :func:`check_no_code` again.
    """
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from defcon_exp.run.override_checks import check_override_keys, check_override_types

    check_override_keys(overrides)  # one line with the nearest key (trainer.epoch -> epochs)
    check_override_types(overrides)
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.key_or_group
        if key == "resume" or key.startswith("hydra"):
            continue
        if override.is_delete():
            raise ConfigError(f"~{key} is invalid for {tool}: keys cannot be deleted")
        if groups is not None and key in groups:
            cfg[key] = groups[key](override.value())
            continue
        if key in GROUP_NAMES:
            raise ConfigError(
                f"{key}={override.value()!r} is invalid for {tool}: a stored run keeps its config "
                "groups; change values (e.g. trainer.epochs=...) or start a new run"
            )
        OmegaConf.update(cfg, key, override.value(), merge=True, force_add=override.is_add())
    check_no_code(cfg, "the command line")
    return cfg


#: the config groups (conf/<group>/): a stored run keeps them
GROUP_NAMES = ("model", "arch", "data", "optim", "scheduler", "trainer", "experiment", "debug")

