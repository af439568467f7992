"""The ``hydra/sweeper=optuna`` sweeper: an Optuna study over ``defcon-train`` jobs.

Used through the thin plugin class
``hydra_plugins.defcon_optuna_sweeper.optuna_sweeper.DefconOptunaSweeper``; parameter names are
the upstream hydra-optuna-sweeper's (``n_trials``, ``n_jobs``, ``direction``, ``storage``,
``study_name``, ``sampler``, ``params``, ``max_failure_rate``) plus ``pruner``. Differences:

* the objective is the job config's ``search.objective`` (validation metrics only); the
  directions follow from it (an explicit ``direction`` must agree);
* the study is stored (default ``sqlite:///<sweep dir>/optuna.db``, study ``defcon_search``)
  and ``n_trials`` counts every trial of the study: re-running the same command continues it.
  A trial left RUNNING by a killed sweep is launched again under its own number in its own
  run dir ``<sweep dir>/<trial number>`` with ``resume=auto``, so it continues from its last
  checkpoint (or is just read back if its summary.json exists); no trial number runs twice;
* each job reports per-epoch validation values to its trial; the ``pruner`` stops bad trials
  early; they are recorded PRUNED (not failed) and their run dirs are kept.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import optuna
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig, OmegaConf
from optuna.trial import TrialState

from defcon_exp.analysis.objectives import check_objectives, directions
from defcon_exp.run.optuna_objects import (
    build_pruner,
    build_sampler,
    grid_values,
    parse_search_space,
)

log = logging.getLogger(__name__)

DEFAULT_STUDY = "defcon_search"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


class OptunaSweeperImpl:
    """The sweep loop (see the module docstring)."""

    def __init__(
        self,
        sampler: Any = None,
        direction: Any = None,
        storage: str | None = None,
        study_name: str | None = None,
        n_trials: int = 20,
        n_jobs: int = 1,
        max_failure_rate: float = 0.0,
        params: Mapping[str, Any] | None = None,
        pruner: Any = None,
    ) -> None:
        if n_trials < 1 or n_jobs < 1 or not 0.0 <= max_failure_rate <= 1.0:
            raise ValueError(
                f"hydra.sweeper: n_trials={n_trials}, n_jobs={n_jobs}, max_failure_rate="
                f"{max_failure_rate} is invalid: n_trials >= 1, n_jobs >= 1, rate in [0, 1]"
            )
        self.sampler_spec = _plain(sampler)
        self.direction = _plain(direction)
        self.storage = storage
        self.study_name = study_name or DEFAULT_STUDY
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.params = {str(k): str(v) for k, v in (_plain(params) or {}).items()}
        self.pruner_spec = _plain(pruner)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        self.config = config
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()

    def _objectives(self) -> tuple[list[str], list[str]]:
        objective = self.config.search.objective
        names = check_objectives(objective)
        wanted = directions(names)
        if self.direction is not None:
            given = [self.direction] if isinstance(self.direction, str) else list(self.direction)
            if [str(d) for d in given] != wanted:
                raise ValueError(
                    f"hydra.sweeper.direction={self.direction!r} is invalid: search.objective="
                    f"{names} is optimised as {wanted}; leave direction null (it follows)"
                )
        if int(self.config.data.val_size) <= 0:
            raise ValueError(
                f"data.val_size={self.config.data.val_size} is invalid for a search: the sweeper "
                "optimises a validation metric, never the test set; hold out a validation split, "
                "e.g. data.val_size=5000 (CIFAR) or data.val_size=64 (a tiny synthetic set)"
            )
        return names, wanted

    def _study(self, wanted: list[str], space: Mapping[str, Any]) -> optuna.Study:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = self.storage or f"sqlite:///{self.sweep_dir / 'optuna.db'}"
        self.storage_url = storage
        is_grid = str((self.sampler_spec or {}).get("_target_", "")).endswith("GridSampler")
        sampler = build_sampler(self.sampler_spec, grid_values(space) if is_grid else None)
        pruning = len(wanted) == 1
        if self.pruner_spec and not pruning:
            log.warning("hydra.sweeper.pruner is ignored: Optuna cannot prune multi-objective trials")
        study = optuna.create_study(
            storage=storage, study_name=self.study_name, sampler=sampler,
            pruner=build_pruner(self.pruner_spec if pruning else None),
            directions=wanted, load_if_exists=True,
        )
        stored = [d.name.lower() for d in study.directions]
        if stored != wanted:
            raise ValueError(
                f"hydra.sweeper.study_name={self.study_name!r} is invalid: the stored study in "
                f"{storage} optimises {stored}, this config {wanted}; use a new study_name or sweep dir"
            )
        return study

    def _overrides(self, trial_number: int, params: Mapping[str, Any],
                   fixed: Mapping[str, str], prune: bool) -> list[str]:
        pruner = json.dumps(self.pruner_spec) if self.pruner_spec else None
        return [
            *(f"{k}={v}" for k, v in fixed.items()),
            *(f"{k}={v}" for k, v in params.items()),
            f"search.storage={_quote(self.storage_url)}",
            f"search.study_name={_quote(self.study_name)}",
            f"search.trial_number={trial_number}",
            f"search.prune={str(prune).lower()}",
            f"search.pruner={_quote(pruner) if pruner else 'null'}",
            "resume=auto",
            f"hydra.sweep.subdir={trial_number}",
        ]

    def sweep(self, arguments: list[str]) -> list[JobReturn]:
        names, wanted = self._objectives()
        space, fixed = parse_search_space([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        if not space:
            raise ValueError("hydra.sweeper.params is empty: nothing to search (see docs/search.md)")
        study = self._study(wanted, space)
        study.set_user_attr("objectives", names)
        study.set_user_attr("fixed_overrides", sorted(f"{k}={v}" for k, v in fixed.items()))
        log.info("study %r in %s: %d trials stored, n_trials=%d, objectives %s (%s)",
                 self.study_name, self.storage_url, len(study.trials), self.n_trials, names, wanted)
        # trials a killed sweep left RUNNING continue first, under their own numbers and dirs
        queue = [t.number for t in study.trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        if queue:
            log.info("resuming interrupted trials %s (resume=auto in their run dirs)", queue)
        returns: list[JobReturn] = []
        while True:
            to_ask = min(self.n_jobs - len(queue), self.n_trials - len(study.trials))
            batch = queue + [study.ask(space).number for _ in range(max(0, to_ask))]
            queue = []
            if not batch:
                break
            returns += self._run_batch(study, batch, space, fixed, prune=len(wanted) == 1)
        return returns

    def _run_batch(self, study: optuna.Study, numbers: Sequence[int], space: Mapping[str, Any],
                   fixed: Mapping[str, str], prune: bool) -> list[JobReturn]:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        overrides = [
            self._overrides(n, {k: trials[n].params[k] for k in space if k in trials[n].params},
                            fixed, prune)
            for n in numbers
        ]
        returns = self.launcher.launch(overrides, initial_job_idx=min(numbers))
        failures = 0
        for number, ret in zip(numbers, returns, strict=True):
            state, values = self._outcome(number, ret, len(study.directions))
            failures += state == TrialState.FAIL
            study.tell(number, values if state == TrialState.COMPLETE else None, state=state)
            log.info("trial %d: %s %s", number, state.name, values if values else "")
        if failures / len(numbers) > self.max_failure_rate:
            for ret in returns:
                if ret.status == JobStatus.FAILED:
                    _ = ret.return_value  # re-raises the job's error
            raise RuntimeError(f"{failures} of {len(numbers)} trials failed (max_failure_rate)")
        return list(returns)

    def _outcome(self, number: int, ret: JobReturn,
                 n_objectives: int) -> tuple[TrialState, list[float] | None]:
        if ret.status != JobStatus.COMPLETED:
            return TrialState.FAIL, None
        summary_path = self.sweep_dir / str(number) / "summary.json"
        if summary_path.is_file() and json.loads(summary_path.read_text()).get("status") == "pruned":
            return TrialState.PRUNED, None
        value = ret.return_value
        try:
            values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        except (TypeError, ValueError):
            values = []
        if len(values) != n_objectives:
            log.warning("trial %d returned %r, expected %d values", number, value, n_objectives)
            return TrialState.FAIL, None
        return TrialState.COMPLETE, values
