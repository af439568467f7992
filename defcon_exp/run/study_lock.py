"""One sweeper per study: the lock beside the study file, taken in one step and held for the
sweeper's life (:class:`StudyLock`), and a probe for tools and tests."""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path

from defcon_exp.config import ConfigError
from defcon_exp.run_dir import holder_text, lock_holder, take_lock

__all__ = ["StudyLock", "check_study_free", "hold_study_lock"]


def _busy(holder: str, path: Path, where: str) -> ConfigError:
    return ConfigError(
        f"the study {where} is in use by another sweeper ({holder}; lock {path}); wait for it "
        "to end or stop it (the same command then continues the study), or use another "
        "hydra.sweep.dir"
    )


def check_study_free(path: Path, where: str) -> None:
    """Whether another sweeper holds the study's lock (a probe for tools and tests; creates
    nothing). The sweeper itself takes the lock at once (:class:`StudyLock`): a probe followed
    by a take would let two sweepers started together both pass the probe."""
    holder = lock_holder(path)
    if holder is not None:
        raise _busy(holder, path, where)


class StudyLock:
    """One sweeper per study: an exclusive ``flock`` on ``path`` (beside the study), taken in one
    step (``LOCK_EX | LOCK_NB`` on the opened file, never probe-then-take) and held until
    :meth:`release`; the kernel drops it when the holder dies. Forked children (DataLoader
    workers of a trial run in this process) close their copy, so they never keep it.

    :meth:`acquire` creates the lock file (and its missing folders) when needed and remembers
    what it created, so a sweeper that then refuses (a later check) removes them again while it
    still holds the lock; a lock file unlinked that way is never held by anyone else, because
    every acquirer checks that the file it locked is still the one at ``path``."""

    def __init__(self, path: Path, where: str) -> None:
        self.path, self.where = Path(path), where
        self.held: list[int] = []  # emptied on release: the fork hook never closes a reused fd
        self.created: list[Path] = []

    def acquire(self) -> StudyLock:
        """Take the lock now, or raise the one-line busy :class:`ConfigError`."""
        missing = []
        folder = self.path.parent
        while not folder.exists() and folder != folder.parent:
            missing.append(folder)
            folder = folder.parent
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.created = list(missing)  # innermost first
        flags = os.O_RDWR | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
        while True:
            try:
                fd, new = os.open(self.path, flags | os.O_CREAT | os.O_EXCL, 0o666), True
            except FileExistsError:
                try:
                    fd, new = os.open(self.path, flags), False
                except FileNotFoundError:  # removed meanwhile by a refusing holder: again
                    continue
            if not take_lock(fd):
                holder = holder_text(fd)
                os.close(fd)
                raise _busy(holder, self.path, self.where)
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path, follow_symlinks=False))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # we locked a file a refusing holder had just unlinked: take the new one
        if new:
            self.created.insert(0, self.path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        self.held.append(fd)
        os.register_at_fork(after_in_child=lambda: _close_held(self.held))
        return self

    def release(self, remove_created: bool = False) -> None:
        """Drop the lock; with ``remove_created``, first remove the lock file and the folders
        :meth:`acquire` created (a sweeper that refused: it leaves nothing behind)."""
        if remove_created and self.held:
            for created in self.created:
                with contextlib.suppress(OSError):
                    created.unlink() if created == self.path else created.rmdir()
        self.created = []
        _close_held(self.held)


@contextlib.contextmanager
def hold_study_lock(path: Path, where: str) -> Iterator[None]:
    """:class:`StudyLock` on ``path`` for the ``with`` block."""
    lock = StudyLock(path, where).acquire()
    try:
        yield
    finally:
        lock.release()


def _close_held(held: list[int]) -> None:
    while held:
        with contextlib.suppress(OSError):
            os.close(held.pop())
