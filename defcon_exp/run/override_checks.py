"""Command-line overrides checked before Hydra composes: a key the config does not have
(``trainer.epoch=3`` -> "did you mean trainer.epochs?"), a group option that does not exist
(``model=defcn`` -> "did you mean defcon?"), a value of the wrong type
(``trainer.epochs=abc``) and a used sweep dir without ``resume=auto``, each refused in one
line instead of Hydra's multi-line text (and before Hydra writes anything).

No code from a preset or an override through Hydra's own node (:func:`check_hydra_code`):
before Hydra starts, the ``hydra`` node is composed exactly as Hydra will compose it (its
argument parser, config search path with ``--config-dir``/``--config-path``/``--config-name``,
presets and overrides) and every call key in it (``hydra.callbacks.*._target_``,
``hydra.launcher._target_``, ``hydra.sweeper._target_``, anything nested) is checked against
:data:`defcon_exp.safety.HYDRA_ALLOWED_TARGETS` by :func:`defcon_exp.safety.check_hydra_node`:
Hydra instantiates callbacks, launcher and sweeper before any job (and before any callback of
ours) runs, so this is the last point where a refusal runs no code."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from defcon_exp.config import ConfigError
from defcon_exp.rates import first_line
from defcon_exp.run.launch import INFO_FLAGS, given_values, group_options, value_overrides
from defcon_exp.run.stored import GROUP_NAMES

__all__ = ["CHECKED_GROUPS", "check_group_choices", "check_hydra_code", "check_override_keys",
           "check_override_types", "check_sweep_dir", "composed_hydra_node", "schema_keys"]

#: our config groups whose option names are checked (hydra/* groups are Hydra's)
CHECKED_GROUPS = (*GROUP_NAMES, "hparams_search")

#: the type a typed schema key expects, as a user reads it
_TYPE_WORDS = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def schema_keys() -> tuple[set[str], set[str]]:
    """``(dotted keys, open prefixes)`` of the typed schema (:class:`~defcon_exp.config.Config`):
    every key an override may set; below an open prefix (a ``Dict[str, Any]`` field such as
    ``model.attention_kwargs``, or a list) any sub-key is allowed."""
    from omegaconf import DictConfig

    from defcon_exp.config import Config

    keys: set[str] = set()
    open_prefixes: set[str] = set()

    def walk(node: DictConfig, prefix: str) -> None:
        for key in node:
            name, child = f"{prefix}{key}", node._get_node(key)
            keys.add(name)
            if isinstance(child, DictConfig) and OmegaConf.get_type(child) is not dict:
                walk(child, f"{name}.")
            elif isinstance(child, DictConfig) or OmegaConf.get_type(node, key) is list:
                open_prefixes.add(name)

    walk(OmegaConf.structured(Config), "")
    return keys, open_prefixes


def check_override_keys(args: Sequence[str]) -> None:
    """Refuse ``key=value`` for a key the config does not have (``trainer.epoch=3``) in one
    line with the nearest valid key; Hydra would print OmegaConf's internals. Group choices
    (``model=se``), ``+key=``/``~key``, Hydra's own keys and flags are not checked here."""
    keys, open_prefixes = schema_keys()
    nodes = {k.rpartition(".")[0] for k in keys} - {""}
    for arg, key, _value in value_overrides(args):
        if arg.startswith("+") or "/" in key:
            continue
        if key in (*CHECKED_GROUPS, "hydra") or key.startswith("hydra."):
            continue
        if key in keys or any(key.startswith(f"{p}.") for p in open_prefixes):
            continue
        group, _, leaf = key.rpartition(".")
        leaves = sorted(k for k in keys if k.rpartition(".")[0] == group and k not in nodes)
        near = [f"{group}.{m}" if group else m for m in difflib.get_close_matches(
            leaf, [k.rpartition(".")[2] for k in leaves], n=1, cutoff=0.6)]
        near = near or sorted(k for k in keys - nodes if k.endswith(f".{leaf}"))[:1]
        near = near or difflib.get_close_matches(key, sorted(keys - nodes), n=1, cutoff=0.75)
        if near:
            hint = f"did you mean {near[0]}?"
        elif group and leaves:
            hint = f"the keys of {group} are {', '.join(k.rpartition('.')[2] for k in leaves)}"
        else:
            hint = "defcon-train --help lists every key"
        raise ConfigError(f"{arg} is invalid: the config has no key {key!r}; {hint}")


def check_group_choices(args: Sequence[str]) -> None:
    """Refuse ``group=<name>`` (or one name of a ``-m`` list) that is not an option of one of
    :data:`CHECKED_GROUPS`, naming the nearest option and listing the others compactly."""
    for _arg, group, value in value_overrides(args):
        if group not in CHECKED_GROUPS:
            continue
        options = group_options(group)
        for name in value.split(","):
            if name in options or name in ("null", ""):
                continue
            near = [o for o in options if name and o.startswith(name)][:1]  # debug=fast
            near = near or difflib.get_close_matches(name, options, n=1, cutoff=0.6)
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


def check_override_types(args: Sequence[str]) -> None:
    """Refuse ``key=value`` whose value the typed schema cannot take (``trainer.epochs=abc``)
    with the key, the value and the expected type, in one line."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import ChoiceSweep
    from omegaconf.errors import OmegaConfBaseException

    from defcon_exp.config import Config

    keys, _ = schema_keys()
    schema = OmegaConf.structured(Config)
    parser = OverridesParser.create()
    for arg, key, _value in value_overrides(args):
        if key not in keys or key in CHECKED_GROUPS:
            continue
        try:
            override = parser.parse_override(arg)
        except Exception as err:  # Hydra's grammar error: its first line
            raise ConfigError(f"{arg} is invalid: {first_line(err)}") from None
        given = override.value()  # each choice of a -m list is checked; ranges are Hydra's
        if override.is_sweep_override() and not isinstance(given, ChoiceSweep):
            continue
        for value in given.list if isinstance(given, ChoiceSweep) else [given]:
            if isinstance(value, str) and "${" in value:
                continue
            try:
                OmegaConf.update(schema.copy(), key, value, merge=True)
            except OmegaConfBaseException:
                raise ConfigError(
                    f"{key}={value!r} is invalid: {key} takes {_expected(schema, key)}"
                ) from None


def _composed_sweep_dir(overrides: list[str]) -> str | None:
    """``hydra.sweep.dir`` as Hydra will resolve it for ``overrides`` (the sweep's own ``a=1,2``
    left out); None when it cannot be composed."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from defcon_exp.run.stored import compose_config

    try:
        plain = [o.input_line for o in OverridesParser.create().parse_overrides(overrides)
                 if not o.is_sweep_override()]
        return str(compose_config(plain, hydra_node=True).hydra.sweep.dir)
    except Exception:  # Hydra tells a bad override itself; each job's lock still holds
        return None


def check_sweep_dir(args: Sequence[str]) -> None:
    """Refuse ``-m ... hydra.sweep.dir=DIR`` before Hydra writes DIR's ``multirun.yaml`` (and
    rewrites every job's ``.hydra/``), each in one line:

    * while a job of DIR still runs (its run-dir lock is held), naming the job and its holder.
      A job that starts after this check is still protected: each job takes its own lock
      before anything is written into its dir (:func:`defcon_exp.run.job.run_job`);
    * when DIR already holds a sweep's jobs with records and this command does not resume it
      (``resume=auto``).

    Searches (``hparams_search=``, ``hydra/sweeper=``) are left to their sweeper: they continue
    their study by design, one sweeper per study (its lock). Nothing is checked when DIR is not
    given or cannot be told before Hydra runs; an interpolation (``${oc.env:SWEEP}``) is
    resolved by composing the config as Hydra will, without the sweep's own overrides."""
    from defcon_exp.run_dir import LOCK_NAME, is_used_run_dir, lock_holder, resume_kind

    values = given_values(args)
    given = values.get("hydra.sweep.dir")
    if not any(a in ("-m", "--multirun") for a in args) or not given or (
            "hparams_search" in values or "hydra/sweeper" in values):
        return
    path = given if "${" not in given else _composed_sweep_dir(
        [a for a in args if not a.startswith("-")])
    if path is None:
        return
    sweep = Path(path).expanduser()
    try:
        dirs = sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: (len(p.name), p.name))
    except OSError:
        return
    for job in (p for p in dirs if not p.is_symlink()):
        holder = lock_holder(job / LOCK_NAME)
        if holder is not None:
            raise ConfigError(
                f"hydra.sweep.dir={given} is invalid now: run dir {job.absolute()} of its job "
                f"{job.name} is in use by another process ({holder}); wait for the running sweep "
                "to end or stop it, then run the same command again (resume=auto continues it)"
            )
    jobs = sorted(p.name for p in dirs if is_used_run_dir(p))
    if jobs and resume_kind(values.get("resume")) != "auto":
        shown = ", ".join(jobs[:5]) + (" ..." if len(jobs) > 5 else "")
        raise ConfigError(
            f"hydra.sweep.dir={given} is invalid: it already holds a sweep (jobs {shown} have "
            "records); re-run the same command with resume=auto (skips finished jobs, resumes "
            "interrupted ones) or choose a new hydra.sweep.dir"
        )


#: flags under which Hydra only prints (help, config, info, version, completion)
NOTHING_RUNS = (*INFO_FLAGS, "--version", "-sc", "--shell-completion", "-p", "--package",
                "--resolve")


def composed_hydra_node(args: Sequence[str]) -> Any:
    """The ``hydra`` node Hydra will compose for ``defcon-train ARGS`` (unresolved), or None
    when the command line does not compose (Hydra then reports that itself)."""
    import os

    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import create_automatic_config_search_path, get_args_parser
    from hydra.core.config_search_path import SearchPathQuery
    from hydra.types import RunMode

    parser = get_args_parser()  # (the schema and the resolvers: imported with ConfigError)

    def refuse(message: str) -> Any:  # argparse would print its usage and exit
        raise ValueError(message)

    parser.error = refuse  # type: ignore[method-assign]
    try:
        parsed = parser.parse_args(list(args))
        search_path = create_automatic_config_search_path(
            None, "defcon_exp.cli.train", parsed.config_path or "pkg://defcon_exp.conf")
        if parsed.config_dir is not None:
            search_path.prepend(provider="command-line",
                                path=f"file://{os.path.abspath(parsed.config_dir)}",
                                anchor=SearchPathQuery(provider="schema"))
        hydra = Hydra(task_name="train", config_loader=ConfigLoaderImpl(config_search_path=search_path))
        # MULTIRUN: sweep overrides are left out; the hydra node is the same in both modes
        cfg = hydra.compose_config(parsed.config_name or "config", parsed.overrides,
                                   run_mode=RunMode.MULTIRUN, from_shell=True)
    except (Exception, SystemExit):  # argparse exits; Hydra reports its own errors
        return None
    return cfg.hydra


def check_hydra_code(args: Sequence[str]) -> None:
    """Refuse ``defcon-train ARGS`` when Hydra's node names code outside the allow-list.

    Raises:
        ConfigError: one line naming the key, the value and the allowed values.
    """
    from defcon_exp.safety import UnsafeConfigError, check_hydra_node

    if any(a.partition("=")[0] in NOTHING_RUNS for a in args):
        return  # Hydra prints and exits: it instantiates nothing
    node = composed_hydra_node(args)
    if node is None:
        return
    from defcon_exp.run.sweep_checks import SWEEPER_CLASS, check_sweeper_node

    plain = OmegaConf.to_container(node, resolve=False)
    sweeper = plain.get("sweeper")
    if isinstance(sweeper, dict) and sweeper.get("_target_") == SWEEPER_CLASS:
        check_sweeper_node(sweeper)  # ours: its own keys; sampler/pruner are built by name
        plain["sweeper"] = {k: v for k, v in sweeper.items() if k not in ("sampler", "pruner")}
    try:
        check_hydra_node(plain, "the composed config (command line and presets)")
    except UnsafeConfigError as err:
        raise ConfigError(str(err)) from None
