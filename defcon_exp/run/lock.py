"""One process per run dir: an exclusive OS file lock on ``<run dir>/.lock``.

``fcntl.flock`` locks belong to the open file, so the kernel drops them when the holder dies
(SIGKILL included): a crashed run never leaves a stale lock. The file holds the holder's
``pid@host`` for the loser's message. Re-entrant inside one process (the CLI may take the
lock before Hydra writes, and the run takes it again).

Only the process that took the lock holds it: a forked child (DataLoader workers) closes its
inherited copy at once (``os.register_at_fork``), so when the holder is SIGKILLed the lock is
free at once, not when its workers notice. Whoever takes the lock also checks, once, that no
entry of the run dir is a symlink leading out of it
(:func:`~defcon_exp.run_dir.contained_run_dir`): holding a dir's lock is the permission
to write into that dir and nowhere else.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

from defcon_exp.config import ConfigError
from defcon_exp.run_dir import LOCK_NAME, contained_run_dir, holder_text, take_lock

__all__ = ["LOCK_NAME", "RunDirBusy", "hold_run_dir"]

_held: dict[Path, list[int]] = {}  # resolved lock path -> [fd, depth]


def _close_inherited_locks() -> None:
    """In a forked child: drop the parent's lock fds (the flock stays with the parent's)."""
    for fd, _depth in _held.values():
        with contextlib.suppress(OSError):
            os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_close_inherited_locks)
_OPEN_FLAGS = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


class RunDirBusy(ConfigError):
    """Another live process holds the run dir."""


def _acquire(path: Path, check: Callable[[Path], None] | None = None) -> None:
    entry = _held.get(path)
    if entry is not None:
        entry[1] += 1
        return
    try:  # O_NOFOLLOW: a symlinked .lock would lock another run's file
        fd = os.open(path, _OPEN_FLAGS, 0o666)
    except OSError as err:
        raise ConfigError(
            f"run dir {path.parent} cannot be locked ({path}: {err.strerror}); remove a "
            f"symlinked or foreign {LOCK_NAME} file, or choose another hydra.run.dir"
        ) from None
    if not take_lock(fd):
        holder = holder_text(fd)
        os.close(fd)
        raise RunDirBusy(
            f"run dir {path.parent} is in use by another process ({holder}); wait for it to "
            "end or stop it, or choose another hydra.run.dir"
        ) from None
    try:  # before this process's pid goes into the file: a refusal leaves it as it was
        contained_run_dir(path.parent)
        if check is not None:
            check(path.parent)
    except ValueError:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[path] = [fd, 1]


def _release(path: Path) -> None:
    entry = _held[path]
    entry[1] -= 1
    if entry[1] == 0:
        del _held[path]
        os.close(entry[0])  # closing the file drops the flock


def _lock_path(run_dir: Path, create: bool) -> Path:
    """The lock file of ``run_dir`` (created when ``create``, else it must exist)."""
    if create:
        run_dir.mkdir(parents=True, exist_ok=True)
    elif not run_dir.is_dir():
        raise FileNotFoundError(f"no such run dir: {run_dir}")
    return run_dir.resolve() / LOCK_NAME


@contextlib.contextmanager
def hold_run_dir(run_dir: str | os.PathLike, create: bool = True) -> Iterator[Path]:
    """Hold ``run_dir``'s lock (creating the dir when ``create``) for the ``with`` block.

    Raises:
        RunDirBusy: another process holds it; the message names the dir and the holder.
        RunDirEscape: an entry of the dir is a symlink leading out of it.
    """
    run_dir = Path(run_dir)
    path = _lock_path(run_dir, create)
    _acquire(path)
    try:
        yield run_dir
    finally:
        _release(path)


def acquire_for_process(
    run_dir: str | os.PathLike, create: bool = True, check: Callable[[Path], None] | None = None
) -> None:
    """Take ``run_dir``'s lock until this process ends (the CLI, before Hydra writes there).
    ``check(run_dir)`` runs once the lock is held and may refuse (a ``ValueError``)."""
    new = not Path(run_dir).exists()
    _acquire(_lock_path(Path(run_dir), create), check)
    if new:
        _created.append(Path(run_dir))


_created: list[Path] = []  # dirs acquire_for_process created


def remove_lock_only_dirs() -> None:
    """Remove the dirs this process created for a lock and left holding nothing else (a
    start stopped before Hydra wrote there: Ctrl-C)."""
    for run_dir in _created:
        with contextlib.suppress(OSError):
            if {p.name for p in run_dir.iterdir()} <= {LOCK_NAME}:
                (run_dir / LOCK_NAME).unlink()
                run_dir.rmdir()
