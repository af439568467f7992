"""Command-line overrides checked before Hydra composes: a group option that does not exist
(``model=defcn`` -> "did you mean defcon?") and a value of the wrong type
(``trainer.epochs=abc``), each refused in one line instead of Hydra's multi-line text."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from typing import Any

from omegaconf import DictConfig, OmegaConf

from defcon_exp.config import ConfigError

__all__ = ["CHECKED_GROUPS", "check_group_choices", "check_override_types"]

#: our config groups whose option names are checked (hydra/* groups are Hydra's)
CHECKED_GROUPS = ("model", "data", "optim", "scheduler", "trainer", "experiment",
                  "hparams_search", "debug")

#: the type a typed schema key expects, as a user reads it
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _options(group: str) -> list[str]:
    from defcon_exp.run.launch import group_options

    return group_options(group)


def check_group_choices(args: Sequence[str]) -> None:
    """Refuse ``group=<name>`` (or one name of a ``-m`` list) that is not an option of one of
    :data:`CHECKED_GROUPS`, naming the nearest option and listing the others compactly."""
    for arg in args:
        key, sep, value = arg.partition("=")
        group = key.lstrip("+")
        if not sep or arg.startswith(("-", "~")) or group not in CHECKED_GROUPS:
            continue
        options = _options(group)
        for name in value.split(","):
            if name in options or name in ("null", ""):
                continue
            near = difflib.get_close_matches(name, options, n=1, cutoff=0.5)
            hint = f"did you mean {near[0]}? " if near else ""
            raise ConfigError(
                f"{group}={name} is invalid: {hint}{group} options: {', '.join(options)}"
            )


def _expected(schema: DictConfig, key: str) -> str:
    parent, _, leaf = key.rpartition(".")
    node = OmegaConf.select(schema, parent) if parent else schema
    child = node._get_node(leaf)
    ref_type = child._metadata.ref_type
    for kind, word in _TYPE_WORDS.items():
        if ref_type is kind:
            return word + (" or null" if child._is_optional() else "")
        if str(ref_type).endswith(f"[{kind.__name__}]"):  # List[float]
            return f"a list of {word.removeprefix('a ').removeprefix('an ')}s"
    return f"a value of type {getattr(ref_type, '__name__', ref_type)}"


def _values(override: Any) -> list[Any]:
    """The plain values of an override (each choice of a ``-m`` list; ranges are Hydra's)."""
    from hydra.core.override_parser.types import ChoiceSweep

    value = override.value()
    if isinstance(value, ChoiceSweep):
        return list(value.list)
    return [] if override.is_sweep_override() else [value]


def check_override_types(args: Sequence[str]) -> None:
    """Refuse ``key=value`` whose value the typed schema cannot take (``trainer.epochs=abc``)
    with the key, the value and the expected type, in one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from omegaconf.errors import OmegaConfBaseException

    from defcon_exp.config import Config
    from defcon_exp.run.launch import schema_keys

    keys, _ = schema_keys()
    schema = OmegaConf.structured(Config)
    parser = OverridesParser.create()
    for arg in args:
        key = arg.partition("=")[0].lstrip("+")
        if arg.startswith(("-", "~")) or "=" not in arg or key not in keys or key in CHECKED_GROUPS:
            continue
        try:
            override = parser.parse_override(arg)
        except Exception as err:  # Hydra's grammar error: its first line
            first = str(err).strip().splitlines()[0]
            raise ConfigError(f"{arg} is invalid: {first}") from None
        for value in _values(override):
            if isinstance(value, str) and "${" in value:
                continue
            try:
                OmegaConf.update(schema.copy(), key, value, merge=True)
            except OmegaConfBaseException:
                raise ConfigError(
                    f"{key}={value!r} is invalid: {key} takes {_expected(schema, key)}"
                ) from None
