"""A run's ``.hydra/`` record, written by the holder of the run dir's lock.

Hydra would write ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` into a job's
dir before any code of ours runs (``hydra.core.utils.run_job``), so a re-launched sweep
rewrote the record of a job that another process was still running, and every resume
replaced the record of how the run was started. ``conf/hydra/default.yaml`` therefore sets
``hydra.output_subdir: null`` and :func:`defcon_exp.run.job.run_job` writes the record here,
once it holds the lock:

* a fresh start (also ``resume=auto`` starting over a dir that never wrote ``last.pt``):
  the three files, as Hydra wrote them;
* a resume (``resume=<run>``, or ``resume=auto`` finding ``checkpoints/last.pt``): the
  original record is kept; one entry (time, host, pid, overrides) is appended to
  ``.hydra/resumes.yaml``, a YAML list;
* a finished run skipped by ``resume=auto``, or a start the plan refuses: nothing.

Files are replaced through a temporary file and ``os.replace`` (never written through a
symlink); the resume log is opened with ``O_NOFOLLOW``.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

__all__ = ["RECORD_DIR", "RESUMES_NAME", "append_resume", "read_overrides", "write_start_record"]

RECORD_DIR = ".hydra"
RESUMES_NAME = "resumes.yaml"


def _replace(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically (a link at ``path`` is replaced, not followed)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_start_record(run_dir: Path, task_cfg: Any, hydra_cfg: Any, overrides: Sequence[str]) -> None:
    """``run_dir/.hydra/{config,hydra,overrides}.yaml`` of a fresh start (the caller holds the
    run dir's lock). ``hydra_cfg``: Hydra's ``{hydra: ...}`` node (``HydraConfig.instance().cfg``)."""
    record = run_dir / RECORD_DIR
    record.mkdir(exist_ok=True)
    _replace(record / "config.yaml", OmegaConf.to_yaml(task_cfg))
    _replace(record / "hydra.yaml", OmegaConf.to_yaml(hydra_cfg))
    _replace(record / "overrides.yaml", OmegaConf.to_yaml(OmegaConf.create(list(overrides))))


def read_overrides(run_dir: Path) -> list[str] | None:
    """The overrides of ``run_dir``'s start record (``.hydra/overrides.yaml``), or None when
    it is missing or unreadable."""
    try:
        overrides = OmegaConf.to_container(OmegaConf.load(run_dir / RECORD_DIR / "overrides.yaml"))
        return [str(o) for o in overrides]
    except Exception:
        return None


def append_resume(run_dir: Path, overrides: Sequence[str]) -> None:
    """Append this resume's time, host, pid and overrides to ``run_dir/.hydra/resumes.yaml``
    (the caller holds the lock); the start record stays the original."""
    record = run_dir / RECORD_DIR
    record.mkdir(exist_ok=True)
    entry = OmegaConf.to_yaml(OmegaConf.create([{
        "time": datetime.now().isoformat(timespec="seconds"),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "overrides": [str(o) for o in overrides],
    }]))
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(record / RESUMES_NAME, flags, 0o666)
    try:
        os.write(fd, entry.encode())
    finally:
        os.close(fd)
