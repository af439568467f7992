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
  early; they are recorded PRUNED (not failed) and their run dirs are kept;
* before anything is written, :mod:`defcon_exp.run.sweep_checks` checks the sweeper's config,
  the storage, the objective (fixed for a study) and every value the space can sample against
  the fixed settings; one sweeper runs per study (a lock beside it). A refusal or a stop is a
  :class:`~defcon_exp.config.ConfigError` / :class:`SearchStopped`: one line, exit 1.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
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
from defcon_exp.config import ConfigError
from defcon_exp.config_rules import as_config_error
from defcon_exp.rates import first_line
from defcon_exp.run.optuna_objects import (
    build_pruner,
    build_sampler,
    grid_values,
    parse_search_space,
)
from defcon_exp.run.stored import compose_config
from defcon_exp.run.study_lock import StudyLock
from defcon_exp.run.sweep_checks import (
    SearchStopped,
    check_counts,
    check_search_keys,
    check_space_values,
    check_storage,
    check_stored_study,
    check_study_file,
    compare_stored_study,
)

log = logging.getLogger(__name__)

DEFAULT_STUDY = "defcon_search"


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def _counts(study: optuna.Study) -> str:
    counts = Counter(trial.state.name for trial in study.get_trials(deepcopy=False))
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none"


class OptunaSweeperImpl:
    """The sweep loop (see the module docstring). The settings are checked in :meth:`sweep`,
    never here: Hydra would wrap an error raised while instantiating in a multi-line message."""

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
        self.sampler_spec = _plain(sampler)
        self.direction = _plain(direction)
        self.storage = storage
        self.study_name = study_name or DEFAULT_STUDY
        self.n_trials, self.n_jobs, self.max_failure_rate = n_trials, n_jobs, max_failure_rate
        self.params = {str(k): str(v) for k, v in (_plain(params) or {}).items()}
        self.pruner_spec = _plain(pruner)
        self.hydra_context: HydraContext | None = None

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction,
              config: DictConfig) -> None:
        """Called by the plugin class once it has checked ``hydra.sweeper`` (no code named)."""
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir)).absolute()

    def _objectives(self) -> tuple[list[str], list[str]]:
        objective = self.config.search.objective
        names = as_config_error(check_objectives, objective)
        wanted = directions(names)
        if self.direction is not None:
            given = [self.direction] if isinstance(self.direction, str) else list(self.direction)
            if [str(d) for d in given] != wanted:
                raise ConfigError(
                    f"hydra.sweeper.direction={self.direction!r} is invalid: search.objective="
                    f"{names} is optimised as {wanted}; leave direction null (it follows)"
                )
        if int(self.config.data.val_size) <= 0:
            raise ConfigError(
                f"data.val_size={self.config.data.val_size} is invalid for a search: the sweeper "
                "optimises a validation metric, never the test set; hold out a validation split, "
                "e.g. data.val_size=5000 (CIFAR) or data.val_size=64 (a tiny synthetic set)"
            )
        return names, wanted

    def _compose(self, overrides: list[str]) -> DictConfig:
        """One trial's job config for ``overrides``, as the launcher will compose it."""
        if self.hydra_context is not None:
            return self.hydra_context.config_loader.load_sweep_config(self.config, overrides)
        return compose_config(overrides)

    def _preflight(self, arguments: Sequence[str]) -> tuple[list[str], list[str], dict, dict]:
        """Every check before anything is written; (names, directions, space, fixed)."""
        check_counts(self.n_trials, self.n_jobs, self.max_failure_rate)
        names, wanted = self._objectives()
        lines = [*(f"{k}={v}" for k, v in self.params.items()), *arguments]
        try:
            space, fixed = parse_search_space(lines)
        except ConfigError:
            raise
        except Exception as err:  # Hydra's override grammar
            raise ConfigError(f"hydra.sweeper.params: {first_line(err)}") from None
        texts = {line.partition("=")[0]: line.partition("=")[2] for line in lines}
        check_search_keys(space, fixed, texts)
        if not space:
            raise ConfigError(
                "hydra/sweeper=optuna has nothing to search: hydra.sweeper.params is empty and no "
                "key=choice(...)/interval(...) is given; e.g. 'optim.lr=tag(log, interval(1e-3, 0.3))' "
                "(docs/search.md)"
            )
        self.storage_url = self.storage or f"sqlite:///{self.sweep_dir / 'optuna.db'}"
        self.db = check_storage(self.storage_url, self.sweep_dir, check_file=False)
        self.where = f"{self.study_name!r} in {self.storage_url}"
        path = self.db.with_name(self.db.name + ".lock") if self.db else self.sweep_dir / ".study.lock"
        # one step, kept for the whole search: of two sweepers started together exactly one
        # gets it; the other is refused before it reads a study the first may be writing
        self.lock = StudyLock(path, self.where).acquire()
        try:
            if self.db is not None:
                check_study_file(self.db, self.storage_url)
            self.sampler = build_sampler(self.sampler_spec, grid_values(space) if self._is_grid() else None)
            self.pruner = build_pruner(self.pruner_spec if len(wanted) == 1 else None)
            check_stored_study(self.db, self.study_name, names, wanted, self.where)
            check_space_values(space, texts, [f"{k}={v}" for k, v in fixed.items()], self._compose)
        except BaseException:
            self.lock.release(remove_created=True)  # a refusal leaves nothing behind
            raise
        return names, wanted, space, fixed

    def _is_grid(self) -> bool:
        return str((self.sampler_spec or {}).get("_target_", "")).endswith("GridSampler")

    def _study(self, names: list[str], wanted: list[str]) -> optuna.Study:
        self.sweep_dir.mkdir(parents=True, exist_ok=True)
        if self.pruner_spec and len(wanted) > 1:
            log.warning("hydra.sweeper.pruner is ignored: Optuna cannot prune multi-objective trials")
        study = optuna.create_study(
            storage=self.storage_url, study_name=self.study_name, sampler=self.sampler,
            pruner=self.pruner, directions=wanted, load_if_exists=True,
        )
        compare_stored_study(study, names, wanted, self.where)
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
        names, wanted, space, fixed = self._preflight(arguments)  # takes the study lock
        try:
            study = self._study(names, wanted)
            study.set_user_attr("objectives", names)
            study.set_user_attr("fixed_overrides", sorted(f"{k}={v}" for k, v in fixed.items()))
            return self._trials(study, space, fixed, prune=len(wanted) == 1)
        finally:
            self.lock.release()

    def _trials(self, study: optuna.Study, space: Mapping[str, Any], fixed: Mapping[str, str],
                prune: bool) -> list[JobReturn]:
        log.info("study %s: %d trials stored, n_trials=%d, objectives %s",
                 self.where, len(study.trials), self.n_trials, study.user_attrs["objectives"])
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
            returns += self._run_batch(study, batch, space, fixed, prune, len(returns))
        log.info("search done: %d trial(s) ran now; the study has %d of n_trials=%d (%s)%s",
                 len(returns), len(study.trials), self.n_trials, _counts(study),
                 "" if returns else "; raise hydra.sweeper.n_trials to continue it")
        return returns

    def _run_batch(self, study: optuna.Study, numbers: Sequence[int], space: Mapping[str, Any],
                   fixed: Mapping[str, str], prune: bool, ran_before: int) -> list[JobReturn]:
        trials = {t.number: t for t in study.get_trials(deepcopy=False)}
        overrides = [
            self._overrides(n, {k: trials[n].params[k] for k in space if k in trials[n].params},
                            fixed, prune)
            for n in numbers
        ]
        returns = self.launcher.launch(overrides, initial_job_idx=min(numbers))
        failed = []
        for number, ret in zip(numbers, returns, strict=True):
            state, values, error = self._outcome(number, ret, len(study.directions))
            if state == TrialState.FAIL:
                failed.append(number)  # its error line, for the report (search_report.md)
                study._storage.set_trial_user_attr(trials[number]._trial_id, "error", error[:500])
            study.tell(number, values if state == TrialState.COMPLETE else None, state=state)
            log.info("trial %d: %s %s", number, state.name, values if values else "")
        if len(failed) / len(numbers) > self.max_failure_rate:
            rate = self.max_failure_rate
            ran = ran_before + len(numbers)
            raise SearchStopped(
                f"the search stopped after {ran} trial{'s' if ran != 1 else ''} of this run (study "
                f"{self.where}: {_counts(study)}, n_trials={self.n_trials}): trial "
                f"{', '.join(map(str, failed))} failed (error above and in "
                f"{self.sweep_dir / str(failed[0]) / 'train.log'}) and hydra.sweeper."
                f"max_failure_rate={rate} allows {'none' if rate == 0 else f'at most {rate:g} per batch'}; "
                "fix the cause and run the same command to continue the study, or raise "
                "max_failure_rate to go on past failed trials"
            )
        return list(returns)

    def _outcome(self, number: int, ret: JobReturn,
                 n_objectives: int) -> tuple[TrialState, list[float] | None, str]:
        """(state, objective values, the error line of a failed trial)."""
        if ret.status != JobStatus.COMPLETED:  # the job's exception (read without re-raising)
            lines = str(getattr(ret, "_return_value", "") or "").strip().splitlines()
            return TrialState.FAIL, None, lines[0] if lines else "the job failed"
        try:
            summary = json.loads((self.sweep_dir / str(number) / "summary.json").read_text())
        except (OSError, ValueError, RecursionError):
            summary = None
        if isinstance(summary, dict) and summary.get("status") == "pruned":
            return TrialState.PRUNED, None, ""
        value = ret.return_value
        try:
            values = [float(v) for v in (value if isinstance(value, (list, tuple)) else [value])]
        except (TypeError, ValueError):
            values = []
        if len(values) != n_objectives:
            error = f"the job returned {value!r}, expected {n_objectives} objective value(s)"
            log.warning("trial %d: %s", number, error)
            return TrialState.FAIL, None, error
        return TrialState.COMPLETE, values, ""
