"""One process per run dir: an exclusive OS file lock on ``<run dir>/.lock``.

``fcntl.flock`` locks belong to the open file, so the kernel drops them when the holder dies
(SIGKILL included): a crashed run never leaves a stale lock. The file holds the holder's
``pid@host`` for the loser's message. Re-entrant inside one process (the CLI may take the
lock before Hydra writes, and the run takes it again).
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from defcon_exp.config import ConfigError

__all__ = ["LOCK_NAME", "RunDirBusy", "hold_run_dir"]

LOCK_NAME = ".lock"
_held: dict[Path, list[int]] = {}  # resolved lock path -> [fd, depth]


class RunDirBusy(ConfigError):
    """Another live process holds the run dir."""


def _acquire(path: Path) -> None:
    import fcntl  # POSIX only; imported here so the module imports everywhere

    entry = _held.get(path)
    if entry is not None:
        entry[1] += 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise RunDirBusy(
            f"run dir {path.parent} is in use by another process ({holder}); wait for it to "
            "end or stop it, or choose another hydra.run.dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[path] = [fd, 1]


def _release(path: Path) -> None:
    entry = _held[path]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[path]
        os.close(entry[0])  # closing the file drops the flock


@contextlib.contextmanager
def hold_run_dir(run_dir: str | os.PathLike) -> Iterator[Path]:
    """Hold ``run_dir``'s lock (creating the dir) for the ``with`` block.

    Raises:
        RunDirBusy: another process holds it; the message names the dir and the holder.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = (run_dir / LOCK_NAME).resolve()
    _acquire(path)
    try:
        yield run_dir
    finally:
        _release(path)


def acquire_for_process(run_dir: str | os.PathLike) -> None:
    """Take ``run_dir``'s lock until this process ends (the CLI, before Hydra writes there)."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    _acquire((run_dir / LOCK_NAME).resolve())
