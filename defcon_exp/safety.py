"""Nothing read from disk chooses what code runs: the check every stored config goes through.

Hydra's ``instantiate`` calls whatever a ``_target_`` names, at any depth. Checkpoints are
what researchers download from strangers, so this package never instantiates a config: it
builds by name. The only Hydra call keys a config may hold are the three ``_target_`` values
of :data:`ALLOWED_TARGETS`, which name this package's builders; any other (``_target_``
elsewhere, ``_partial_``, ``_args_``, ``_recursive_``, ``_convert_``) is refused with one
line naming the key and the file. No imports from the package: every layer may use it.

Trust model of ``$DEFCON_TRUSTED_MODEL_TARGETS`` (the person running the command lists their
own model builders there; a file never adds one): a config names a model builder by its
*registry name* only, the name that entry gives it (``name=module.function``, or
``module.function`` named by itself), so a checkpoint can name the builder it was trained
with and nothing else is imported. Whatever a checkpoint holds, at most a builder of that
list is called, with the checkpoint's plain-data model settings: list only builders you
would run on anyone's checkpoint. An entry is used only if it imports as a model builder (a
Python function or ``nn.Module`` class with a ``num_classes`` parameter): ``os.system``,
``pathlib.Path.touch`` and the like are refused with one line, never called.
"""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Callable, Collection, Mapping
from typing import Any

from defcon_exp.keys import walk_items

__all__ = [
    "ALLOWED_TARGETS",
    "CODE_KEYS",
    "HYDRA_ALLOWED_TARGETS",
    "TRUSTED_CALLBACKS_ENV",
    "TRUSTED_MODELS_ENV",
    "UnsafeConfigError",
    "allowed_targets",
    "check_hydra_node",
    "check_no_code",
    "trusted_model_builder",
    "trusted_model_builders",
    "without_code_keys",
]

#: environment variable: comma-separated ``module.function`` model builders the person running
#: the command trusts (their own models, test models), allowed as ``model._target_`` beside
#: ours. The environment is set by whoever runs the command, never read from a run dir.
TRUSTED_MODELS_ENV = "DEFCON_TRUSTED_MODEL_TARGETS"
#: environment variable: comma-separated ``module.Class`` Hydra callbacks the person running the
#: command trusts (their own loggers, test probes), allowed as ``hydra.callbacks.*._target_``
TRUSTED_CALLBACKS_ENV = "DEFCON_TRUSTED_HYDRA_CALLBACKS"


class UnsafeConfigError(ValueError):
    """A config names code to call; nothing from it was run."""


#: keys through which Hydra's instantiate would call or shape a call
CODE_KEYS = ("_target_", "_partial_", "_args_", "_recursive_", "_convert_")
#: the only call keys a config may hold: where, and which of this package's builders
ALLOWED_TARGETS: dict[str, str] = {
    "model._target_": "defcon_exp.models.cifar_resnet50",
    "optim._target_": "defcon_exp.engine.optim.build_optimizer",
    "scheduler._target_": "defcon_exp.engine.schedulers.build_schedulers",
}

#: the only call keys of Hydra's own node (``*``: any one key), whichever preset or override set
#: them: Hydra instantiates its callbacks, launcher and sweeper from there before a job runs.
#: Our callbacks; the launchers of ``conf/hydra/launcher/`` (basic, joblib, submitit); the basic
#: sweeper and ours (whose own node, sampler and pruner included, ``check_sweeper_node`` checks:
#: it never instantiates them, ``_recursive_: false``).
CALLBACK_KEY = "hydra.callbacks.*._target_"
HYDRA_ALLOWED_TARGETS: dict[str, tuple[Any, ...]] = {
    CALLBACK_KEY: (
        "defcon_exp.run.sweep_checks.SweeperGuard",
        "defcon_exp.run.sweep_summary.SweepSummary",
    ),
    "hydra.launcher._target_": (
        "hydra._internal.core_plugins.basic_launcher.BasicLauncher",
        "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher",
        "hydra_plugins.hydra_submitit_launcher.submitit_launcher.LocalLauncher",
    ),
    "hydra.sweeper._target_": (
        "hydra._internal.core_plugins.basic_sweeper.BasicSweeper",
        "hydra_plugins.defcon_optuna_sweeper.optuna_sweeper.DefconOptunaSweeper",
    ),
    "hydra.sweeper._recursive_": (False,),
}
#: the handler, formatter and filter classes Hydra's logging configs may name (``class``)
LOGGING_CLASSES = ("logging.StreamHandler", "logging.FileHandler", "logging.NullHandler",
                   "logging.handlers.RotatingFileHandler", "logging.handlers.WatchedFileHandler",
                   "logging.Formatter")
#: the ``ext://`` objects they may name (the streams)
LOGGING_EXT = ("ext://sys.stdout", "ext://sys.stderr")


_DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def trusted_model_builders() -> dict[str, str]:
    """Registry name -> ``module.function`` of the builders in ``$DEFCON_TRUSTED_MODEL_TARGETS``
    (comma-separated ``name=module.function`` or ``module.function``, named by itself)."""
    builders: dict[str, str] = {}
    for entry in (e.strip() for e in os.environ.get(TRUSTED_MODELS_ENV, "").split(",")):
        if not entry:
            continue
        name, sep, target = (part.strip() for part in entry.partition("="))
        target = target if sep else name
        if not name or not _DOTTED.fullmatch(target):
            raise UnsafeConfigError(
                f"${TRUSTED_MODELS_ENV} entry {entry!r} is invalid: list model builders as "
                "module.function or name=module.function, comma-separated"
            )
        builders[name] = target
    return builders


def allowed_targets() -> dict[str, set[str]]:
    """Key -> the values it may hold: :data:`ALLOWED_TARGETS` plus, for ``model._target_``,
    the registry names of the builders listed in ``$DEFCON_TRUSTED_MODEL_TARGETS``."""
    allowed = {key: {value} for key, value in ALLOWED_TARGETS.items()}
    allowed["model._target_"] |= set(trusted_model_builders())
    return allowed


def _is_model_builder(obj: Any) -> bool:
    """A Python function, or an ``nn.Module`` class, with a ``num_classes`` parameter."""
    if inspect.isclass(obj):
        import torch  # only for a class entry

        if not issubclass(obj, torch.nn.Module):
            return False
    elif not inspect.isfunction(obj):  # builtins (os.system), partials, C methods
        return False
    try:
        parameter = inspect.signature(obj).parameters.get("num_classes")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
        inspect.Parameter.KEYWORD_ONLY,
    )


def trusted_model_builder(name: str) -> Callable[..., Any]:
    """The model builder registered as ``name`` in ``$DEFCON_TRUSTED_MODEL_TARGETS``
    (imported only because that variable lists it, and only if it is a model builder).

    Raises:
        UnsafeConfigError: ``name`` is not registered, or its entry does not import as a
            model builder (one line naming the entry; nothing was called).
    """
    builders = trusted_model_builders()
    if name not in builders:
        raise UnsafeConfigError(f"model._target_={name!r} is not a trusted model builder")
    target = builders[name]
    module, _, attr = target.rpartition(".")
    try:
        builder = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise UnsafeConfigError(
            f"${TRUSTED_MODELS_ENV} entry {target!r} cannot be imported ({err}); fix or remove it"
        ) from None
    if not _is_model_builder(builder):
        raise UnsafeConfigError(
            f"${TRUSTED_MODELS_ENV} entry {target!r} is not a model builder (a Python function "
            "or nn.Module class taking num_classes); remove it: nothing was called"
        )
    return builder


def _code_keys(node: Any, prefix: str = "") -> list[tuple[str, Any]]:
    """Every ``(dotted key, value)`` whose last part is a :data:`CODE_KEYS` name, any depth
    (dict keys of any type, lists included)."""
    return [(dotted, value) for dotted, key, value in walk_items(node, prefix)
            if str(key) in CODE_KEYS]


def _allowed_for(allowed: Mapping[str, Collection[Any]], key: str) -> Collection[Any]:
    """The values ``allowed`` lists for the dotted ``key`` (a ``*`` part matches any one part)."""
    if key in allowed:
        return allowed[key]
    parts = key.split(".")
    for pattern, values in allowed.items():
        wanted = pattern.split(".")
        if len(wanted) == len(parts) and all(w in ("*", p) for w, p in zip(wanted, parts, strict=True)):
            return values
    return ()


def check_no_code(
    container: Any,
    source: str,
    prefix: str = "",
    allowed: Mapping[str, Collection[Any]] | None = None,
) -> None:
    """Refuse a config that names code to call anywhere but :data:`ALLOWED_TARGETS` (or the
    key -> values table ``allowed``, keys with ``*`` parts: :data:`HYDRA_ALLOWED_TARGETS`).

    ``prefix``: the dotted place of ``container`` in the whole config (``"model."`` for the
    model group alone).

    Raises:
        UnsafeConfigError: one line naming the key, its value, ``source`` (the file) and what
            is allowed there.
    """
    if hasattr(container, "_metadata"):  # an OmegaConf node
        from omegaconf import OmegaConf

        container = OmegaConf.to_container(container, resolve=False)
    table = allowed_targets() if allowed is None else allowed
    for key, value in _code_keys(container, prefix):
        values = _allowed_for(table, key)
        if isinstance(value, (dict, list)) or value not in values:
            if allowed is None:
                raise UnsafeConfigError(
                    f"{key}={str(value)[:80]!r} in {source} was refused: a config may not name code "
                    f"to call (allowed: {', '.join(f'{k}={v}' for k, v in ALLOWED_TARGETS.items())}, "
                    f"and model builders listed in ${TRUSTED_MODELS_ENV}); nothing from it was run"
                )
            choices = ", ".join(map(str, values)) if values else "none: remove the key"
            raise UnsafeConfigError(
                f"{key}={str(value)[:80]!r} in {source} was refused: a config may name only "
                f"known code there (allowed for {key}: {choices}); nothing from it was run"
            )


def check_hydra_node(hydra_node: Any, source: str) -> None:
    """Refuse a call key in Hydra's own node (``hydra.callbacks.*``, ``hydra.launcher``,
    ``hydra.sweeper`` and anywhere else below ``hydra``) that :data:`HYDRA_ALLOWED_TARGETS`
    does not list (callbacks: also those in ``$DEFCON_TRUSTED_HYDRA_CALLBACKS``), before Hydra
    instantiates anything from it.

    Raises:
        UnsafeConfigError: one line naming the key, its value and the allowed values.
    """
    trusted = tuple(e.strip() for e in os.environ.get(TRUSTED_CALLBACKS_ENV, "").split(",") if e.strip())
    allowed = {**HYDRA_ALLOWED_TARGETS, CALLBACK_KEY: (*HYDRA_ALLOWED_TARGETS[CALLBACK_KEY], *trusted)}
    check_no_code(hydra_node, source, "hydra.", allowed)
    for name in ("job_logging", "hydra_logging"):  # logging.config.dictConfig imports these
        for key, value in _logging_code(hydra_node.get(name), f"hydra.{name}."):
            ext = isinstance(value, str) and value.startswith("ext://")
            values = LOGGING_EXT if ext else LOGGING_CLASSES if key.endswith(".class") else ()
            if value not in values:
                choices = ", ".join(values) if values else "none: remove the key"
                raise UnsafeConfigError(
                    f"{key}={str(value)[:80]!r} in {source} was refused: a logging config may name "
                    f"only known code there (allowed for {key}: {choices}); nothing from it was run"
                )


def _logging_code(node: Any, prefix: str) -> list[tuple[str, Any]]:
    """Every ``(dotted key, value)`` of a dictConfig ``node`` that imports or calls code: a
    ``()`` factory, a ``class``, an ``ext://`` object (any depth)."""
    return [(dotted, value) for dotted, key, value in walk_items(node, prefix)
            if str(key) in ("()", "class") or (isinstance(value, str) and value.startswith("ext://"))]


def without_code_keys(node: Mapping[str, Any], group: str) -> dict[str, Any]:
    """Config group ``group``'s ``node`` checked by :func:`check_no_code`, without its call keys."""
    check_no_code(node, "the config", f"{group}.")
    return {k: v for k, v in node.items() if k not in CODE_KEYS}
