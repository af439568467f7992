"""Where a single ``defcon-train`` run writes, checked before Hydra writes anything there:
an output folder that can be created (and whose names fit the file system), a fresh start
into a dir that holds no run, a resume of a path that is a run, and the run dir's lock taken
(:mod:`defcon_exp.run.lock`) before Hydra's ``.hydra/`` record and ``train.log``."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from defcon_exp.config import ConfigError
from defcon_exp.run.lock import acquire_for_process
from defcon_exp.run_dir import remember_output_anchor, resume_kind, resume_run_dir

__all__ = ["INFO_FLAGS", "NAME_MAX", "check_output_dirs", "check_writable_folder", "lock_known_run_dir"]

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
    values = dict(a.lstrip("+").split("=", 1) for a in args if "=" in a and not a.startswith("-"))
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
