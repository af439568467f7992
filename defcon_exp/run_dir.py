"""A run dir's layout, named once: where a run writes (fresh unique dirs, the original dir
when resuming), which entries it holds, its lock file and the probe that tells who holds it.
A leaf below every layer: ``run/``, ``engine/`` and ``analysis/`` all read it.

Design (documented in the README): the engine never ``chdir``s; it writes everything under
an explicit ``run_dir``. Under Hydra, ``hydra.run.dir`` is computed by the
``defcon_run_dir`` resolver: with ``resume=<run dir or checkpoint>`` it *is* the original
run dir, so Hydra creates no stray folder and its logs append to the original ``train.log``.
Hydra writes no ``.hydra/`` record itself (``hydra.output_subdir: null``): the job that holds
the run dir's lock writes it (:mod:`defcon_exp.run.record`), a resume appending to
``.hydra/resumes.yaml``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

RUN_MARKERS = ("checkpoints", "metrics.csv", "summary.json")
#: every entry a command writes into a run dir (the layout, named here once): the lock, Hydra's
#: record and log, the effective config, checkpoints, records, TensorBoard, defcon-inspect's
RUN_LAYOUT = (".lock", ".hydra", "train.log", "config.yaml", *RUN_MARKERS, "tb", "inspect")


class RunDirEscape(ValueError):
    """An entry of a run dir is a symlink leading out of it: writing there would change
    another run (past its lock) or any file."""


def _layout_entries(root: Path) -> Iterator[Path]:
    """Every path of :data:`RUN_LAYOUT` under ``root``, folders walked without following links."""
    for name in RUN_LAYOUT:
        entry = root / name
        yield entry
        if entry.is_dir() and not entry.is_symlink():
            for folder, dirs, files in os.walk(entry):
                yield from (Path(folder, n) for n in (*dirs, *files))


def contained_run_dir(run_dir: str | os.PathLike) -> Path:
    """``run_dir`` resolved, after checking that no entry of its layout is a symlink leading out
    of it (``checkpoints -> ../B/checkpoints``, ``last.pt -> B/checkpoints/last.pt``, dangling
    links included). Called once, by whoever takes the run dir's lock.

    Raises:
        RunDirEscape: one line naming the link, where it leads and the fix.
    """
    root = Path(run_dir).expanduser().resolve()
    for path in _layout_entries(root):
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            raise RunDirEscape(
                f"{path} is a symlink to {path.resolve()}, outside its run dir {root}: a command "
                "writes only into the run dir it was given; replace the link by a copy "
                f"(cp -rL) or use {path.resolve()}'s own run dir"
            )
    return root


def run_dir_of_checkpoint(ckpt: str | os.PathLike) -> Path:
    """The run dir holding ``ckpt`` (``<run>/checkpoints/x.pt`` -> ``<run>``), by the path as
    given: a symlinked checkpoint belongs to the dir of the link, not of its target (whose run
    :func:`contained_run_dir` then refuses to write through)."""
    ckpt = Path(ckpt).expanduser().absolute()
    return (ckpt.parent.parent if is_in_run_dir(ckpt) else ckpt.parent).resolve()


def is_in_run_dir(ckpt: str | os.PathLike) -> bool:
    """Whether ``ckpt`` (as given, links not followed) is ``<run>/checkpoints/<name>``."""
    return Path(ckpt).expanduser().absolute().parent.name == "checkpoints"


def resume_run_dir(resume: str | os.PathLike) -> Path:
    """The original run dir of ``resume`` (a run dir, or a checkpoint file inside one)."""
    path = Path(resume).expanduser()
    if path.is_file() or path.suffix == ".pt":
        return run_dir_of_checkpoint(path)
    return path.resolve()


#: ``resume`` values that mean no resume: unset, empty, or null as the command line spells it
#: (Hydra turns ``null`` into None but keeps ``None`` a string)
NO_RESUME = (None, "", "null", "None")


def resume_kind(resume: object) -> Literal["fresh", "auto", "path"]:
    """What ``resume`` asks for, decided here once for the resolvers, the pre-Hydra checks and
    the job: ``fresh`` (:data:`NO_RESUME`), ``auto`` (resume the job's own dir when it holds a
    checkpoint, skip it when finished, else start there) or ``path`` (that run dir or checkpoint,
    written in its own dir)."""
    if resume in NO_RESUME:
        return "fresh"
    return "auto" if resume == "auto" else "path"


def hydra_run_dir(resume: str | None, default: str) -> str:
    """Resolver body for ``hydra.run.dir``: the resumed run's dir, else ``default``."""
    if resume_kind(resume) != "path":  # auto: the job's own (sweep) dir
        return default
    return str(resume_run_dir(resume))


def unique_run_dir(root: str | os.PathLike = "outputs") -> Path:
    """A new ``<root>/YYYY-MM-DD/HH-MM-SS_ffffff`` dir (suffixed ``-1``, ``-2``... if taken)."""
    now = datetime.now()
    base = Path(root) / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S_%f")
    candidate, n = base, 0
    while True:
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            n += 1
            candidate = base.with_name(f"{base.name}-{n}")


def is_used_run_dir(run_dir: str | os.PathLike) -> bool:
    """True when ``run_dir`` already holds a run's outputs (checkpoints, metrics, summary)."""
    run_dir = Path(run_dir)
    return any((run_dir / marker).exists() for marker in RUN_MARKERS)


_OUTPUT_ANCHOR: list[Path] = []


def remember_output_anchor(target: Path) -> None:
    """Note, before Hydra creates anything, the deepest folder that exists on the way to the
    output root ``target`` (``./outputs``, or ``hydra.run.dir``): a failed start removes the
    empty folders it created below it (:func:`defcon_exp.run.job.remove_failed_start`)."""
    existing = target.expanduser().absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    _OUTPUT_ANCHOR[:] = [existing.resolve()]


def output_anchor() -> Path | None:
    """The folder :func:`remember_output_anchor` noted in this process (None: none)."""
    return _OUTPUT_ANCHOR[0] if _OUTPUT_ANCHOR else None


#: a run dir's lock file (:mod:`defcon_exp.run.lock` holds it; probes read it)
LOCK_NAME = ".lock"
#: how long a taker retries a lock held in shared mode: a probe (:func:`lock_holder`) holds
#: one for microseconds, and a job starting in that instant must not be refused as busy
PROBE_PATIENCE_S = 0.2


def lock_holder(lock_file: str | os.PathLike) -> str | None:
    """Who holds the ``flock`` on ``lock_file`` (its text, ``pid N on HOST``), or None when it
    is free or missing. Opens it read-only without following a link and creates nothing; the
    kernel drops a dead holder's lock, so the answer is never stale."""
    import fcntl

    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(lock_file, flags)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return holder_text(fd)
    finally:
        os.close(fd)  # also drops the probe's shared lock at once
    return None


def holder_text(fd: int, patience_s: float = 1.0) -> str:
    """The holder's ``pid N on HOST`` from the locked file ``fd``: a holder writes it just after
    taking the lock (and its checks), so an empty file is read again for up to ``patience_s``
    before the holder is called "unknown"."""
    import time

    deadline = time.monotonic() + patience_s
    while True:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        if text or time.monotonic() >= deadline:
            return text or "unknown"
        time.sleep(0.02)


def take_lock(fd: int) -> bool:
    """Take the exclusive ``flock`` on the open ``fd`` without blocking on a holder: False when
    another process holds it. A shared lock (a :func:`lock_holder` probe, held for an instant)
    is waited out: the lock is tried again for up to :data:`PROBE_PATIENCE_S`."""
    import fcntl
    import time

    deadline = time.monotonic() + PROBE_PATIENCE_S
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)

