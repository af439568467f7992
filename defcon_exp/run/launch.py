"""Checks and plumbing around ``defcon-train``'s command line, before Hydra runs: group
options, launcher plugins, output folders, torchrun argv, SIGTERM forwarding in sweeps.

Where a single run writes is checked before Hydra writes anything there: an output folder
that can be created (and whose names fit the file system), a fresh start into a dir that
holds no run, a resume of a path that is a run, and the run dir's lock taken
(:mod:`defcon_exp.run.lock`) before Hydra's ``.hydra/`` record and ``train.log``. The checks
of single overrides (keys, types, group options, sweep dirs) are in
:mod:`defcon_exp.run.override_checks`."""

from __future__ import annotations

import contextlib
import importlib.resources
import importlib.util
import logging
import multiprocessing
import os
import re
import signal
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from defcon_exp.config import ConfigError
from defcon_exp.run.lock import acquire_for_process
from defcon_exp.run.stored import GROUP_NAMES, compose_config
from defcon_exp.run_dir import remember_output_anchor, resume_kind, resume_run_dir

log = logging.getLogger("defcon_exp.train")

_OPTION_LIST = re.compile(r"^[A-Za-z_][\w.-]*(,[A-Za-z_][\w.-]*)*$")


def group_options(group: str) -> list[str]:
    """The option names of a config group (``conf/<group>/*.yaml``)."""
    folder = importlib.resources.files("defcon_exp.conf") / group
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def check_group_overrides(args: Sequence[str]) -> None:
    """Refuse ``group=<not an option name>`` (``model=0``, ``model=[0]``) with the choices;
    Hydra would answer those with a raw traceback. Unknown *names* are left to Hydra, whose
    message lists the available options."""
    for arg in args:
        key, sep, value = arg.partition("=")
        key = key.lstrip("+~")
        if key == "trainer.amp":
            raise ConfigError(
                f"trainer.amp={value!r} is invalid: trainer.amp was replaced by "
                "trainer.precision; use trainer.precision=bf16 (or 16-mixed: float16 + "
                "GradScaler, what amp=true did on CUDA; 32 for float32)"
            )
        if sep and key in GROUP_NAMES and not _OPTION_LIST.match(value):
            if key == "experiment" and value in ("null", ""):
                continue
            raise ConfigError(
                f"{key}={value!r} is invalid: a config group takes an option name (or a "
                f"comma-separated list under -m), one of {group_options(key)}"
            )


#: Hydra launcher plugins (their ``hydra/launcher`` option) -> (module, pip name, our extra)
LAUNCHER_PLUGINS = {
    "joblib": ("hydra_plugins.hydra_joblib_launcher", "hydra-joblib-launcher", "joblib"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "hydra-submitit-launcher", "slurm"),
}


def module_available(name: str) -> bool:
    """Whether ``name`` can be imported (a missing parent package counts as missing)."""
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def check_launcher(args: Sequence[str]) -> None:
    """Refuse ``hydra/launcher=<option>`` when the plugin behind it (for our
    ``conf/hydra/launcher/*.yaml``: the plugin option in their defaults) is not installed, with
    the pip command; Hydra would only say that ``hydra/launcher/joblib`` cannot be found."""
    for arg in args:
        key, sep, value = arg.partition("=")
        if key.lstrip("+") != "hydra/launcher" or not sep:
            continue
        base = value
        ours = importlib.resources.files("defcon_exp.conf") / "hydra" / "launcher" / f"{value}.yaml"
        if ours.is_file():
            defaults = OmegaConf.create(ours.read_text()).get("defaults") or []
            base = next((d for d in defaults if isinstance(d, str) and d != "_self_"), value)
        if base in LAUNCHER_PLUGINS and not module_available(LAUNCHER_PLUGINS[base][0]):
            _, pip_name, extra = LAUNCHER_PLUGINS[base]
            raise ConfigError(
                f"hydra/launcher={value} is invalid here: it needs the Hydra plugin {pip_name}, "
                f"which is not installed; pip install 'defcon_exp[{extra}]' (or {pip_name})"
            )


#: Hydra flags refused under torchrun (rank 0 resolves the run dir from the default config)
DISTRIBUTED_REFUSED = ("-m", "--multirun", "-cn", "--config-name", "-cp", "--config-path",
                       "-cd", "--config-dir", "--experimental-rerun")


def check_distributed_args(args: Sequence[str]) -> None:
    """Refuse Hydra flags that cannot work under torchrun (``-m`` and config-source flags)."""
    for arg in args:
        flag = arg.partition("=")[0]
        if flag in ("-m", "--multirun"):
            raise ConfigError(
                f"{flag} is invalid under torchrun: every process would run the whole sweep; "
                "launch one torchrun per job (e.g. a shell loop or a Slurm array, each with its "
                "own hydra.run.dir=...), or sweep without torchrun"
            )
        if flag in DISTRIBUTED_REFUSED:
            raise ConfigError(
                f"{flag} is invalid under torchrun: the packaged config is used; pass "
                "group=option and key=value overrides instead"
            )


def resolve_hydra_run_dir(args: Sequence[str]) -> str | None:
    """Hydra's ``hydra.run.dir`` for these command-line overrides (``${now:...}`` evaluated
    once, here), or None when the overrides do not compose (Hydra then reports the error)."""
    try:
        return str(compose_config([a for a in args if not a.startswith("-")], True).hydra.run.dir)
    except Exception:  # Hydra's own run reports the problem properly
        return None


def _quote_override(value: str) -> str:
    """``value`` as a Hydra override value (quoted unless it is a plain path)."""
    if re.fullmatch(r"[\w./~+-]+", value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def distributed_hydra_args(args: Sequence[str], run_dir: str | None, main: bool) -> list[str]:
    """The command line each rank gives Hydra: the user's, with rank 0's ``hydra.run.dir``;
    ranks > 0 also keep Hydra from writing ``.hydra/`` and ``train.log`` there."""
    out = list(args)
    if run_dir is not None:
        out = [a for a in out if not a.lstrip("+").startswith("hydra.run.dir=")]
        out.append(f"hydra.run.dir={_quote_override(run_dir)}")
    if not main:
        out += ["hydra.output_subdir=null", "hydra/job_logging=none"]
    return out


def forward_sigterm_to_workers(signum: int, _frame: Any) -> None:
    """SIGTERM handler of a sweep's main process. A launcher's worker processes (joblib) get the
    signal too: each training job checkpoints and stops (exit 143), which ends the sweep, instead
    of training on as orphans after ``kill <defcon-train>``. Without workers (the basic launcher
    between jobs, submitit): the default action, exit at once. The basic launcher's running job
    has its own handler (:func:`defcon_exp.engine.fit.stop_on_signals`)."""
    # joblib's loky workers only: torch DataLoader workers are children too, and not launchers'
    workers = [p for p in multiprocessing.active_children() if type(p).__name__ == "LokyProcess"]
    if not workers:
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)
        return
    log.warning("received SIGTERM: passing it to the %d worker processes", len(workers))
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker.pid, signum)


def error_line(err: BaseException) -> str:
    """Hydra's and OmegaConf's multi-line messages in one line (the key kept, a list of options
    comma-separated; node types, search path and the HYDRA_FULL_ERROR hint dropped)."""
    text = f"{err}\n{err.__cause__}" if err.__cause__ is not None else str(err)
    text = text.split("Config search path")[0]
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    noise = ("full_key:", "reference_type", "object_type", "Set the environment variable HYDRA")
    out, listing = "", False
    for line in (line for line in lines if not line.startswith(noise)):
        listing = listing or out.endswith(":")
        if listing and re.fullmatch(r"[\w.-]+", line):
            out += (" " if out.endswith(":") else ", ") + line
        else:
            out, listing = f"{out}: {line}" if out else line, False
    key = next((line.partition(":")[2].strip() for line in lines if line.startswith("full_key:")), "")
    out = out or type(err).__name__
    return f"{out} (key {key})" if key and key not in out else out


def value_overrides(args: Sequence[str]) -> list[tuple[str, str, str]]:
    """``(argument, key, value)`` of each ``key=value`` / ``+key=value`` override on the command
    line (the key without ``+``); flags and ``~key`` deletions are left out."""
    return [(a, *a.lstrip("+").split("=", 1)) for a in args if "=" in a and a[0] not in "-~"]


def given_values(args: Sequence[str]) -> dict[str, str]:
    """``key -> value`` of the command line's overrides (the last of a repeated key)."""
    return {key: value for _, key, value in value_overrides(args)}


#: flags that print and exit: nothing is written
INFO_FLAGS = ("-h", "--help", "--hydra-help", "-c", "--cfg", "-i", "--info")


def check_output_dirs(args: Sequence[str]) -> None:
    """Refuse an explicit ``hydra.run.dir=``/``hydra.sweep.dir=`` (or, without one, the current
    folder) that cannot be created or written: Hydra would fail there with a traceback."""
    if any(a in INFO_FLAGS for a in args):
        return  # nothing is written
    multirun = any(a in ("-m", "--multirun") for a in args)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    given = [a.partition("=")[2] for a in args if a.startswith(f"{key}=")]
    target = Path(given[-1]) if given else Path.cwd() / ("multirun" if multirun else "outputs")
    if "${" in str(target):
        return
    check_writable_folder(target, key)
    remember_output_anchor(target)


#: the longest file or folder name (bytes) of Linux and macOS file systems
NAME_MAX = 255


def check_writable_folder(target: Path, key: str) -> None:
    """Refuse ``target`` (the value of ``key``) when it cannot be created or written."""
    existing = target.expanduser().absolute()
    too_long = [part for part in existing.parts if len(os.fsencode(part)) > NAME_MAX]
    if too_long:
        raise ConfigError(
            f"{key}={str(target)[:80]!r}... is invalid: its folder name {too_long[0][:24]}... is "
            f"{len(os.fsencode(too_long[0]))} bytes long, over the {NAME_MAX} a file system "
            f"allows; choose a shorter {key}=..."
        )
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    what = None
    if not existing.is_dir():
        what = "is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable"
    else:  # root passes os.access everywhere: try it (/proc, read-only mounts)
        try:
            tempfile.TemporaryDirectory(dir=existing, prefix=".defcon-write-test-").cleanup()
        except OSError as err:
            what = f"cannot hold new folders: {err.strerror or err}"
    if what is not None:
        raise ConfigError(
            f"{key}={str(target)!r} is invalid: the output folder must be writable "
            f"({existing} {what}); choose another {key}=..."
        )


def lock_known_run_dir(args: Sequence[str]) -> None:
    """A single run into a dir known before Hydra starts (``hydra.run.dir=`` or
    ``resume=<path>``): refuse a fresh start into a used dir and a resume of a path that is
    no run, then take its lock now, before Hydra writes ``.hydra/`` and ``train.log`` there,
    and hold it until this process ends (the run takes it again, re-entrantly)."""
    if any(a in (*INFO_FLAGS, "-m", "--multirun") for a in args):
        return
    values = given_values(args)
    resume, run_dir = values.get("resume"), values.get("hydra.run.dir")
    if resume_kind(resume) == "path":
        # refusals before anything is written into the run (nothing on disk)
        from defcon_exp.run.plan import check_resume, resume_checkpoint  # imports torch

        overrides = [a for a in args if "=" in a]
        acquire_for_process(
            resume_run_dir(resume_checkpoint(resume)),
            create=False,
            check=lambda _run_dir: check_resume(resume, overrides),
        )
    elif run_dir and "${" not in run_dir:
        # a run in use is refused by its lock first; else one that would be overwritten
        check = _refuse_used_dir if resume_kind(resume) == "fresh" else None
        acquire_for_process(Path(run_dir).expanduser(), check=check)


def _refuse_used_dir(run_dir: Path) -> None:
    """A fresh start into a dir holding a run: refused before Hydra rewrites its record."""
    from defcon_exp.run.plan import used_run_dir_error

    error = used_run_dir_error(run_dir)
    if error is not None:
        raise error


def check_config_values(args: Sequence[str]) -> None:
    """A single run: compose the config as Hydra will and, for a fresh run, apply the value
    rules (:func:`~defcon_exp.config_rules.validate_config`) before Hydra creates the run dir, so a
    bad value leaves no ``outputs/DATE/TIME`` (and no lock-only ``hydra.run.dir``) and is
    told in one line. Sweeps and resumes' values (the checkpoint's config decides) are left
    to the run."""
    if any(a.startswith("-") for a in args):  # -m, --help, --cfg, -cn ...: not a plain run
        return
    from defcon_exp.config_rules import validate_config

    try:
        cfg = compose_config(args)
    except Exception as err:  # OmegaConf / Hydra: multi-line; told here in one line
        raise ConfigError(
            f"{error_line(err)}; fix the override (defcon-train --help lists every key)"
        ) from None
    if resume_kind(given_values(args).get("resume")) == "fresh":
        validate_config(cfg)


def detect_distributed() -> Any:
    """The torchrun/srun environment, or None; a plain process (no ``WORLD_SIZE``, no
    ``SLURM_STEP_NUM_TASKS``) is told without importing torch's distributed machinery."""
    if "WORLD_SIZE" not in os.environ and "SLURM_STEP_NUM_TASKS" not in os.environ:
        return None
    from defcon_exp.engine import distributed

    return distributed.detect()


def check_command_line(args: Sequence[str]) -> Any:
    """All checks before Hydra runs; the torchrun environment (None outside torchrun).

    Raises:
        ConfigError: naming the argument and the fix.
    """
    from defcon_exp.run.override_checks import (
        check_group_choices,
        check_hydra_code,
        check_override_keys,
        check_override_types,
        check_sweep_dir,
    )

    check_group_overrides(args)
    check_group_choices(args)
    check_override_keys(args)
    check_override_types(args)
    check_launcher(args)
    check_output_dirs(args)
    check_sweep_dir(args)
    check_hydra_code(args)
    env = detect_distributed()
    if env is not None:
        check_distributed_args(args)
    else:
        check_config_values(args)
        lock_known_run_dir(args)
    return env
