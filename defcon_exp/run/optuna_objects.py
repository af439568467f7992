"""Optuna samplers, pruners and search spaces from config, by name (never by importing a
config's ``_target_``): the sweeper's ``sampler``/``pruner`` accept the upstream
hydra-optuna-sweeper spelling (``_target_: optuna.samplers.TPESampler`` + kwargs) but only the
classes listed here; ``params`` use Hydra's override grammar as upstream does:
``choice(a, b)``, ``range(start, stop, step)``, ``interval(lo, hi)``, ``tag(log, interval(lo, hi))``.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Mapping, Sequence
from typing import Any

import optuna
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import (
    ChoiceSweep,
    IntervalSweep,
    Override,
    RangeSweep,
    Transformer,
)
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from defcon_exp.config import ConfigError

#: the classes a config may name (``_target_: optuna.samplers.<name>``), by name
SAMPLERS = {name: getattr(optuna.samplers, name) for name in (
    "TPESampler", "RandomSampler", "CmaEsSampler", "NSGAIISampler", "QMCSampler", "GridSampler")}
PRUNERS = {name: getattr(optuna.pruners, name) for name in (
    "MedianPruner", "PercentilePruner", "SuccessiveHalvingPruner", "HyperbandPruner",
    "ThresholdPruner", "NopPruner")}


#: words in an Optuna keyword's annotation that mean it takes Python objects (code), which a
#: config cannot give: such keywords are refused like unknown ones
CODE_ANNOTATIONS = ("Callable", "Sampler", "Crossover", "Mutation", "FrozenTrial", "Mapping")


def _class_and_kwargs(
    spec: Mapping[str, Any], kind: str, classes: Mapping[str, type]
) -> tuple[type, dict[str, Any]]:
    """The allow-listed class ``spec`` names and its keyword arguments, checked against the
    class's signature (plain values only); ConfigError naming the key and the choices."""
    kwargs = {str(k): v for k, v in dict(spec).items() if k not in ("_target_", "_partial_")}
    target = str(spec.get("_target_", ""))
    name = target.rsplit(".", 1)[-1]
    if not target.startswith(f"optuna.{kind}s.") or name not in classes:
        choices = [f"optuna.{kind}s.{n}" for n in classes]
        raise ConfigError(
            f"hydra.sweeper.{kind}._target_={target!r} is invalid: choose one of {choices}"
        )
    accepted = [
        key for key, param in inspect.signature(classes[name].__init__).parameters.items()
        if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and key != "self"
        and key != "search_space" and not any(w in str(param.annotation) for w in CODE_ANNOTATIONS)
    ]
    for key, value in kwargs.items():
        if key not in accepted:
            near = difflib.get_close_matches(key, accepted, n=1)
            hint = f"did you mean {near[0]}?" if near else f"its keywords are {accepted or 'none'}"
            raise ConfigError(
                f"hydra.sweeper.{kind}.{key}={value!r} is invalid: {name} takes no keyword "
                f"{key!r} a config can set; {hint}"
            )
    return classes[name], kwargs


def _construct(kind: str, cls: type, *args: Any, **kwargs: Any) -> Any:
    try:
        return cls(*args, **kwargs)
    except (TypeError, ValueError) as err:
        given = ", ".join(f"{k}={v!r}" for k, v in kwargs.items())
        raise ConfigError(
            f"hydra.sweeper.{kind} {cls.__name__}({given}) is invalid: {err}; fix the keyword "
            f"values (docs/search.md)"
        ) from None


def build_sampler(
    spec: Mapping[str, Any] | None, grid: Mapping[str, Sequence[Any]] | None = None
) -> optuna.samplers.BaseSampler | None:
    """The sampler of ``spec`` (None -> Optuna's default). ``grid``: the search space as value
    lists, for ``GridSampler``."""
    if not spec:
        return None
    cls, kwargs = _class_and_kwargs(spec, "sampler", SAMPLERS)
    if cls is optuna.samplers.GridSampler:
        if grid is None:
            raise ConfigError("hydra.sweeper.sampler=GridSampler needs discrete params (choice or range)")
        return _construct("sampler", cls, dict(grid), **kwargs)
    return _construct("sampler", cls, **kwargs)


def build_pruner(spec: Mapping[str, Any] | None) -> optuna.pruners.BasePruner:
    """The pruner of ``spec``; None -> ``NopPruner`` (never prunes)."""
    if not spec:
        return optuna.pruners.NopPruner()
    cls, kwargs = _class_and_kwargs(spec, "pruner", PRUNERS)
    return _construct("pruner", cls, **kwargs)


def _encoded_choices(override: Override) -> list[Any]:
    return list(override.sweep_iterator(transformer=Transformer.encode))


def distribution(override: Override) -> BaseDistribution | str:
    """A sweep override -> its Optuna distribution; a plain override -> its value string."""
    if not override.is_sweep_override():
        return override.get_value_element_as_str()
    value = override.value()
    if override.is_choice_sweep():
        assert isinstance(value, ChoiceSweep)
        return CategoricalDistribution(_encoded_choices(override))
    if override.is_range_sweep():
        assert isinstance(value, RangeSweep)
        if value.shuffle:
            return CategoricalDistribution(_encoded_choices(override))
        if any(isinstance(v, float) for v in (value.start, value.stop, value.step)):
            # range's stop is exclusive; Optuna's high is inclusive
            steps = round((value.stop - value.start) / value.step) - 1
            high = value.start + steps * value.step
            return FloatDistribution(value.start, high, step=value.step)
        return IntDistribution(int(value.start), int(value.stop) - 1, step=int(value.step))
    if override.is_interval_sweep():
        assert isinstance(value, IntervalSweep)
        log = "log" in value.tags
        if isinstance(value.start, int) and isinstance(value.end, int):
            return IntDistribution(value.start, value.end, log=log)
        return FloatDistribution(float(value.start), float(value.end), log=log)
    raise ConfigError(f"{override.input_line!r} is not a search space the optuna sweeper knows")


def parse_search_space(
    arguments: Sequence[str],
) -> tuple[dict[str, BaseDistribution], dict[str, str]]:
    """``["optim.lr=tag(log, interval(1e-4, 1e-1))", "seed=3"]`` -> (distributions, fixed)."""
    space: dict[str, BaseDistribution] = {}
    fixed: dict[str, str] = {}
    for override in OverridesParser.create().parse_overrides(list(arguments)):
        key = override.get_key_element()
        value = distribution(override)
        if isinstance(value, BaseDistribution):
            space[key] = value
            fixed.pop(key, None)
        else:
            fixed[key] = value
            space.pop(key, None)
    return space, fixed


def discrete_values(dist: BaseDistribution, most: float = float("inf")) -> list[Any] | None:
    """Every value of ``dist``: its choices, or the points of a stepped linear range (at most
    ``most`` of them); None for a continuous or log interval (or a longer range)."""
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    count = round((dist.high - dist.low) / dist.step) + 1 if dist.step and not dist.log else None
    return None if count is None or count > most else [dist.low + i * dist.step for i in range(count)]


def grid_values(space: Mapping[str, BaseDistribution]) -> dict[str, list[Any]]:
    """Every value of each discrete distribution (GridSampler's search space)."""
    grid: dict[str, list[Any]] = {}
    for name, dist in space.items():
        grid[name] = discrete_values(dist)
        if grid[name] is None:
            raise ConfigError(
                f"hydra.sweeper.sampler=GridSampler is invalid with {name} (a continuous "
                "interval): a grid needs discrete params; use choice(...) or range(...) for "
                f"{name}, or another sampler (hydra/sweeper/sampler=tpe)"
            )
    return grid
