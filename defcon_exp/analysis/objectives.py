"""What a hyper-parameter search optimises: validation metrics only, never a test metric.

``search.objective`` (one name, or a list for a multi-objective Pareto search) picks values of
a run's ``summary.json``; :func:`objective_value` reads them, :func:`directions` says whether
each is maximised or minimised. The sweeper (``hydra/sweeper=optuna``) sets the trial fields of
:class:`SearchConfig` for each job.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Optional

__all__ = [
    "OBJECTIVES",
    "TRIAL_KEYS",
    "Objective",
    "SearchConfig",
    "check_objectives",
    "directions",
    "objective_names",
    "objective_value",
]


@dataclass(frozen=True)
class Objective:
    """``path``: keys into ``summary.json``; ``epoch_metric``: the per-epoch value pruning
    reports (``metrics["val"][...]``), None for a cost that is not known per epoch."""

    path: tuple[str, ...]
    direction: str
    epoch_metric: str | None
    validation: bool


#: The objective names a search may use. Validation metrics: ``_final`` = the last epoch's
#: weights (what a run ships), ``_best`` = the best epoch by validation top-1. Costs (only next
#: to a validation metric, for a Pareto front): trainable parameters, measured training img/s.
OBJECTIVES: dict[str, Objective] = {
    "val/top1_final": Objective(("val", "top1"), "maximize", "top1", True),
    "val/top1_best": Objective(("best_val", "top1"), "maximize", "top1", True),
    "val/loss_final": Objective(("val", "loss"), "minimize", "loss", True),
    "params": Objective(("num_params",), "minimize", None, False),
    "images_per_s": Objective(("images_per_s",), "maximize", None, False),
}


@dataclass
class SearchConfig:
    """``cfg.search``: the objective, and the fields the sweeper sets for each trial (null when
    not searching)."""

    objective: Any = "val/top1_final"
    """what a search optimises: validation metrics only (docs/search.md)

    A name of :data:`OBJECTIVES` or a list of them (a multi-objective search)."""
    storage: Optional[str] = None  # noqa: UP045
    """set by the Optuna sweeper for each trial

    The Optuna storage URL."""
    study_name: Optional[str] = None  # noqa: UP045
    """set by the Optuna sweeper for each trial"""
    trial_number: Optional[int] = None  # noqa: UP045
    """set by the Optuna sweeper for each trial"""
    prune: bool = False
    """set by the Optuna sweeper: report per-epoch values and obey the pruner"""
    pruner: Optional[str] = None  # noqa: UP045
    """set by the Optuna sweeper: the study's pruner

    A JSON object: ``_target_`` + kwargs."""


#: the ``search.*`` keys the sweeper sets for each trial (every field but the objective): never
#: given on the command line, never part of a command that reruns a trial
TRIAL_KEYS = tuple(f"search.{f.name}" for f in fields(SearchConfig) if f.name != "objective")


def objective_names(objective: Any) -> list[str]:
    """``"a"`` -> ``["a"]``; a list (or ListConfig) -> a list of str."""
    if isinstance(objective, str):
        return [objective]
    return [str(name) for name in objective]


def check_objectives(objective: Any) -> list[str]:
    """The objective names, or ValueError naming the value and the choices. A test metric is
    refused with the reason (a search tuned on the test set reports an optimistic result)."""
    names = objective_names(objective)
    for name in names:
        if name not in OBJECTIVES:
            why = (
                " (a search tunes on the validation split; tuning on the test set makes the "
                "test result optimistic)"
                if "test" in name
                else ""
            )
            raise ValueError(
                f"search.objective={objective!r} is invalid: {name!r} is not an objective{why}; "
                f"choose from {list(OBJECTIVES)}"
            )
    if not names or not any(OBJECTIVES[n].validation for n in names):
        raise ValueError(
            f"search.objective={objective!r} is invalid: it needs a validation metric "
            f"({[n for n, o in OBJECTIVES.items() if o.validation]}); costs only join one"
        )
    if len(set(names)) != len(names):
        raise ValueError(f"search.objective={objective!r} is invalid: a name is repeated")
    return names


def directions(objective: Any) -> list[str]:
    """``maximize`` / ``minimize`` per objective name."""
    return [OBJECTIVES[name].direction for name in check_objectives(objective)]


def objective_value(summary: Mapping[str, Any], objective: str) -> float:
    """One objective's value from a run's summary (``summary.json``)."""
    if objective not in OBJECTIVES:
        check_objectives(objective)  # raises, naming the choices
    spec = OBJECTIVES[objective]
    value: Any = summary
    for key in spec.path:
        if not isinstance(value, Mapping) or value.get(key) is None:
            raise ValueError(
                f"summary has no {'.'.join(spec.path)} for objective {objective!r} (a validation "
                "metric needs data.val_size > 0)"
            )
        value = value[key]
    return float(value)
