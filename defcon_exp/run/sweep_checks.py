"""What the Optuna sweeper (``hydra/sweeper=optuna``) checks before it writes anything: its own
config (no code named, known keys), the storage, the objective, the search space against the
fixed settings (the one-sweeper-per-study lock: :mod:`defcon_exp.run.study_lock`). Each
refusal is a :class:`ConfigError` naming the value and the fix; the plugin prints it as one line and exits 1
(``hydra_plugins/defcon_optuna_sweeper``). :class:`SweeperGuard` runs the config check before
Hydra instantiates the sweeper, so ``_recursive_`` and nested ``_target_`` keys never run code.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from defcon_exp.analysis.objectives import TRIAL_KEYS
from defcon_exp.config import ConfigError
from defcon_exp.rates import first_line

__all__ = [
    "SWEEPER_CLASS",
    "SearchStopped",
    "SweeperGuard",
    "check_search_keys",
    "check_space_values",
    "check_storage",
    "check_stored_study",
    "check_study_file",
    "check_sweeper_node",
]

SWEEPER_CLASS = "hydra_plugins.defcon_optuna_sweeper.optuna_sweeper.DefconOptunaSweeper"
#: the keys of ``hydra.sweeper`` (conf/hydra/sweeper/optuna.yaml)
SWEEPER_KEYS = ("_target_", "_recursive_", "sampler", "pruner", "direction", "storage",
                "study_name", "n_trials", "n_jobs", "max_failure_rate", "params")


class SearchStopped(Exception):
    """The search stopped before ``n_trials`` (failed trials); the message is one line."""


def check_sweeper_node(node: Mapping[str, Any]) -> None:
    """``hydra.sweeper`` (unresolved): known keys only, ``_recursive_`` false, and no Hydra
    instantiation key (``_target_``, ``_args_``...) except the sampler's and pruner's
    ``_target_`` (built by name from an allow-list, never imported)."""
    for key, value in node.items():
        if key not in SWEEPER_KEYS:
            near = difflib.get_close_matches(str(key), SWEEPER_KEYS, n=1)
            hint = f"did you mean hydra.sweeper.{near[0]}?" if near else "see docs/search.md"
            raise ConfigError(f"hydra.sweeper.{key}={value!r} is invalid: the optuna sweeper has no "
                              f"key {key!r}; {hint}")
    for key in ("sampler", "pruner", "params"):
        if node.get(key) is not None and not isinstance(node[key], Mapping):
            raise ConfigError(f"hydra.sweeper.{key}={node[key]!r} is invalid: must be a mapping "
                              f"(key: value lines; see conf/hydra/sweeper/ and docs/search.md)")
    if node.get("_recursive_", False) is not False:
        raise ConfigError(
            f"hydra.sweeper._recursive_={node['_recursive_']!r} is invalid: the sweeper builds its "
            "sampler and pruner by name and never instantiates its config; remove the override"
        )

    def walk(value: Any, path: str) -> None:
        items = value.items() if isinstance(value, Mapping) else (
            enumerate(value) if isinstance(value, list) else ())
        for key, child in items:
            where = f"{path}.{key}"
            allowed = key == "_target_" and path in ("hydra.sweeper.sampler", "hydra.sweeper.pruner")
            if isinstance(key, str) and key.startswith("_") and key.endswith("_") and not allowed:
                raise ConfigError(
                    f"{where}={child!r} is invalid: the sweeper's config never names code (samplers "
                    "and pruners are chosen by name: hydra/sweeper/sampler=tpe, "
                    "hydra/sweeper/pruner=median; docs/search.md); remove it"
                )
            walk(child, where)

    for key in ("sampler", "pruner", "params", "direction", "storage", "study_name"):
        walk(node.get(key), f"hydra.sweeper.{key}")


def check_counts(n_trials: Any, n_jobs: Any, max_failure_rate: Any) -> None:
    """``n_trials >= 1``, ``n_jobs >= 1`` (ints), ``max_failure_rate`` in [0, 1]."""
    for key, value in (("n_trials", n_trials), ("n_jobs", n_jobs)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"hydra.sweeper.{key}={value!r} is invalid: must be an int >= 1")
    rate = max_failure_rate
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0.0 <= rate <= 1.0:
        raise ConfigError(
            f"hydra.sweeper.max_failure_rate={rate!r} is invalid: must be in [0, 1] (0: stop at "
            "the first failed trial, 1: never stop for failures)"
        )


def check_storage(url: str, sweep_dir: Path, check_file: bool = True) -> Path | None:
    """Refuse a storage URL Optuna cannot use or must not write; returns the SQLite file (None
    for a server database). Nothing is created or opened for writing. ``check_file=False``:
    an existing file is checked later (:func:`check_study_file`, once the study lock is held:
    another sweeper may be writing it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    key = f"hydra.sweeper.storage={url!r}"
    try:
        parsed = make_url(url)
        backend = parsed.get_backend_name()
        parsed.get_dialect().import_dbapi()
    except ArgumentError:
        raise ConfigError(f"{key} is invalid: not a database URL; use sqlite:///<file>.db or a server "
                          "URL such as postgresql://user@host/db (null: <hydra.sweep.dir>/optuna.db)") from None
    except (NoSuchModuleError, ImportError) as err:
        raise ConfigError(f"{key} is invalid here: its database driver is not installed ({err}); "
                          "pip install it (e.g. psycopg2-binary for postgresql, pymysql for "
                          "mysql+pymysql://), or leave storage null for SQLite") from None
    if backend != "sqlite":
        return None
    if parsed.database in (None, "", ":memory:"):
        raise ConfigError(f"{key} is invalid: an in-memory database loses the study and the trials "
                          "cannot reach it; give a file, sqlite:///<path>.db")
    path = Path(parsed.database).expanduser().absolute()
    from defcon_exp.run.launch import check_writable_folder

    if path.exists():
        if check_file:
            check_study_file(path, url)
    elif not path.parent.is_dir() and not path.parent.is_relative_to(sweep_dir):
        raise ConfigError(f"{key} is invalid: the folder {path.parent} does not exist; create it "
                          "or choose another file")
    try:
        check_writable_folder(path.parent, "hydra.sweeper.storage")
    except ConfigError:
        raise ConfigError(f"{key} is invalid: the folder {path.parent} is not writable (the study "
                          "is written there); choose another file") from None
    return path


def check_study_file(path: Path, url: str) -> None:
    """An existing SQLite file must be an Optuna study (read only, nothing written)."""
    from defcon_exp.analysis.study_file import study_file_problem

    if not path.exists():
        return
    problem = study_file_problem(path)
    if problem is not None:
        raise ConfigError(f"hydra.sweeper.storage={url!r} is invalid: {path} {problem}; choose "
                          "another file (or move this one away)")


def check_search_keys(space: Mapping[str, Any], fixed: Mapping[str, str],
                      texts: Mapping[str, str]) -> None:
    """The objective is fixed for a study (never a search parameter); the trial keys are the
    sweeper's own."""
    for key in space:
        if key.lstrip("+").startswith("search."):
            raise ConfigError(
                f"{key}={texts.get(key, '?')} is invalid as a search parameter: a study optimises one objective for all "
                "its trials (search.* is fixed); pass one value, e.g. search.objective=val/top1_final "
                "(a list for a Pareto search: 'search.objective=[val/top1_final,params]')"
            )
    for key in fixed:
        if key.lstrip("+") in TRIAL_KEYS:
            raise ConfigError(f"{key}={fixed[key]} is invalid: the sweeper sets it for each trial; "
                              "use hydra.sweeper.storage / hydra.sweeper.study_name instead")


def compare_stored_study(study: Any, names: list[str], wanted: list[str], where: str) -> None:
    """A resumed (Optuna) ``study`` keeps its objective and directions (its objective names
    are None for a study of another tool)."""
    directions = [d.name.lower() for d in study.directions]
    objectives = study.user_attrs.get("objectives")
    if directions != wanted or (objectives is not None and list(objectives) != names):
        raise ConfigError(
            f"search.objective={names} ({', '.join(wanted)}) is invalid for the stored study {where}: "
            f"its trials optimised {objectives or '?'} ({', '.join(directions)}); use the same "
            "objective, or start a new study (another hydra.sweep.dir or hydra.sweeper.study_name)"
        )


def check_stored_study(db: Path | None, study_name: str, names: list[str], wanted: list[str],
                       where: str) -> None:
    """The SQLite study ``study_name`` in ``db``, when it exists, read without writing."""
    if db is None or not db.is_file():
        return
    import optuna

    from defcon_exp.analysis.study_file import open_read_only

    storage = open_read_only(db)
    if study_name not in optuna.get_all_study_names(storage):
        return
    study = optuna.load_study(study_name=study_name, storage=storage)
    compare_stored_study(study, names, wanted, where)


def _one_value(base: DictConfig, override_line: str,
               compose: Callable[[list[str]], DictConfig], fixed: Sequence[str]) -> DictConfig:
    """``base`` with one ``key=value`` applied: set in a copy (fast), or composed again when
    ``key`` is a config group (``model=eca`` selects a file)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from defcon_exp.run.stored import GROUP_NAMES

    (override,) = OverridesParser.create().parse_overrides([override_line])
    key = override.key_or_group
    if key in GROUP_NAMES or "/" in key or override.is_delete():
        return compose([*fixed, override_line])
    cfg = base.copy()
    OmegaConf.update(cfg, key, override.value(), merge=False, force_add=override.is_add())
    return cfg


def check_space_values(space: Mapping[str, Any], texts: Mapping[str, str], fixed: Sequence[str],
                       compose: Callable[[list[str]], DictConfig]) -> None:
    """Every value a parameter can take (one parameter at a time, the others at their fixed
    values) must pass the config's value rules (:func:`~defcon_exp.config_rules.validate_config`),
    so a search never starts with a space that fails its trials."""
    from defcon_exp.config_rules import validate_config
    from defcon_exp.run.optuna_objects import discrete_values

    def validated(build: Callable[..., DictConfig], *args: Any) -> None:
        try:
            validate_config(build(*args))
        except ConfigError:
            raise
        except Exception as err:  # a composition error: Hydra / OmegaConf's message
            raise ConfigError(first_line(err)) from None

    base: list[DictConfig] = []
    try:
        validated(lambda: base.append(compose(list(fixed))) or base[0])
    except ConfigError as err:
        raise ConfigError(f"{err} (a setting fixed for every trial of the search)") from None
    for key, dist in space.items():
        # every choice, every value of a grid of at most 100 points, else the two ends
        values = discrete_values(dist, most=100)
        for value in [dist.low, dist.high] if values is None else values:
            try:
                validated(_one_value, base[0], f"{key}={value}", compose, fixed)
            except ConfigError as err:
                raise ConfigError(
                    f"hydra.sweeper.params: {key}={texts.get(key, '?')} can sample {value}: {err}; "
                    "narrow the search space (or change the fixed settings) so every value is valid"
                ) from None


class SweeperGuard(Callback):
    """Hydra callback (``hydra.callbacks.sweeper_guard``): before Hydra instantiates
    ``hydra/sweeper=optuna``, refuse a sweeper config that names code, in one line, exit 1."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        node = OmegaConf.to_container(config.hydra.sweeper, resolve=False)
        if not isinstance(node, dict) or node.get("_target_") != SWEEPER_CLASS:
            return
        try:
            check_sweeper_node(node)
        except ConfigError as err:
            print(f"defcon-train: error: {err}", file=sys.stderr, flush=True)
            sys.exit(1)  # SystemExit passes Hydra's callback and error handlers: no traceback
