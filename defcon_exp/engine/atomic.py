"""Atomic file writes: a temporary file in the destination folder, flushed, fsynced, given
the mode a plain ``open()`` would (the umask respected, so colleagues on a shared file system
can read results) and moved into place with ``os.replace``: a crash never leaves a
half-written file, and the previous one stays intact until the new one is complete."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO

__all__ = ["atomic_write", "default_file_mode"]


def default_file_mode() -> int:
    """``0o666`` less this process's umask (what ``open(path, "w")`` creates)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(binary handle)`` on a temp file and move it to ``path``; returns ``path``.
    Temp files are named ``.<name>.<random>.tmp`` (a killed write's leftovers are found by it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, default_file_mode())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable (not supported everywhere)
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass
    return path
