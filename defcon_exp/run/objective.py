"""What a hyper-parameter search optimises: validation metrics only, never a test metric.

``search.objective`` (one name, or a list for a multi-objective Pareto search) picks values of
a run's ``summary.json``; :func:`objective_value` reads them, :func:`directions` says whether
each is maximised or minimised. The sweeper (``hydra/sweeper=optuna``,
:mod:`defcon_exp.run.sweeper`) sets the trial fields of :class:`SearchConfig` for each job;
:class:`TrialPruningHook` then reports the per-epoch validation value to that Optuna trial and
stops the run (``StopRun(status="pruned")``) when the study's pruner says so.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from defcon_exp.analysis.objectives import (
    OBJECTIVES,
    check_objectives,
    objective_names,
    objective_value,
)
from defcon_exp.engine.hooks import EpochHook, StopRun

log = logging.getLogger(__name__)

__all__ = ["TrialPruningHook", "epoch_hooks", "sweeper_return"]


def sweeper_return(summary: Mapping[str, Any], objective: Any) -> float | list[float] | None:
    """What the Hydra task returns to a sweeper: the objective value (a list for several), or
    None when the run has no validation split (nothing valid to optimise)."""
    if summary.get("val") is None and summary.get("best_val") is None:
        return None
    values = [objective_value(summary, name) for name in check_objectives(objective)]
    return values[0] if len(values) == 1 else values


class TrialPruningHook:
    """An :class:`~defcon_exp.engine.hooks.EpochHook`: reports the objective's per-epoch
    validation value to Optuna trial ``trial_number`` and raises ``StopRun(status="pruned")``
    when the study's pruner prunes it. Optuna is imported here only (the ``search`` extra)."""

    def __init__(self, search: Any) -> None:
        import optuna

        from defcon_exp.run.optuna_objects import build_pruner

        names = check_objectives(search.objective)
        self.metric = OBJECTIVES[names[0]].epoch_metric
        pruner = build_pruner(json.loads(search.pruner) if search.pruner else None)
        study = optuna.load_study(
            study_name=search.study_name, storage=search.storage, pruner=pruner
        )
        self.number = int(search.trial_number)
        trial_id = study._storage.get_trial_id_from_study_id_trial_number(
            study._study_id, self.number
        )
        self.trial = optuna.trial.Trial(study, trial_id)

    def __call__(
        self, epoch: int, global_step: int, metrics: Mapping[str, Mapping[str, float]], writer: object
    ) -> None:
        if self.metric is None or "val" not in metrics:
            return
        self.trial.report(float(metrics["val"][self.metric]), step=epoch)
        if self.trial.should_prune():
            raise StopRun(
                f"Optuna pruned trial {self.number} after epoch {epoch} (val/{self.metric} "
                f"{metrics['val'][self.metric]:.4g})",
                status="pruned",
            )


def epoch_hooks(search: Any) -> Sequence[EpochHook]:
    """The hooks a run of ``search`` needs: a pruning hook for a pruning trial, else none."""
    if search is None or search.trial_number is None or not search.prune:
        return ()
    if len(objective_names(search.objective)) > 1:
        return ()  # Optuna cannot prune multi-objective trials
    return (TrialPruningHook(search),)
