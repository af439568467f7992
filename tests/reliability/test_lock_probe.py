"""The lock probe is one function (:func:`defcon_exp.run_dir.lock_holder`) for the run
dir, the study and the report, and a probe never makes a taker fail: the probe holds a shared
lock for an instant, and a job starting in that instant (``check_sweep_dir`` probing its
dir while the job takes its lock) waits it out instead of being refused as busy (before: refused
naming the prober's lock)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from defcon_exp.run.lock import RunDirBusy, hold_run_dir
from defcon_exp.run.study_lock import StudyLock
from defcon_exp.run_dir import LOCK_NAME, lock_holder

#: a stand-in prober: takes a shared lock on argv[1], says so, keeps it for argv[2] seconds
PROBER = """import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDONLY)
fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
print("held", flush=True)
time.sleep(float(sys.argv[2]))
"""
#: a stand-in holder: takes the run dir's lock as a job does and keeps it until stdin closes
HOLDER = """import sys
from defcon_exp.run.lock import hold_run_dir
with hold_run_dir(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()
"""


def start(code: str, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code, *args], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
    return proc


def test_a_missing_or_free_lock_has_no_holder_and_nothing_is_created(tmp_path: Path) -> None:
    assert lock_holder(tmp_path / "run" / LOCK_NAME) is None
    assert not (tmp_path / "run").exists()
    with hold_run_dir(tmp_path / "run"):
        pass
    assert lock_holder(tmp_path / "run" / LOCK_NAME) is None


def test_the_holder_is_named_while_it_holds(tmp_path: Path) -> None:
    holder = start(HOLDER, str(tmp_path / "run"))
    try:
        assert lock_holder(tmp_path / "run" / LOCK_NAME) == f"pid {holder.pid} on " + \
            (tmp_path / "run" / LOCK_NAME).read_text().split(" on ", 1)[1].strip()
        with pytest.raises(RunDirBusy, match=f"pid {holder.pid}"), hold_run_dir(tmp_path / "run"):
            pass
    finally:
        holder.communicate("")
    assert lock_holder(tmp_path / "run" / LOCK_NAME) is None


def test_a_probe_at_the_moment_a_job_starts_does_not_refuse_it(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with hold_run_dir(run_dir):  # the job's dir has its lock file from an earlier start
        pass
    prober = start(PROBER, str(run_dir / LOCK_NAME), "0.05")
    try:
        with hold_run_dir(run_dir):  # waits the probe out
            pass
    finally:
        prober.communicate()


def test_a_probe_at_the_moment_a_sweeper_starts_does_not_refuse_it(tmp_path: Path) -> None:
    path = tmp_path / "optuna.db.lock"
    path.write_text("")
    prober = start(PROBER, str(path), "0.05")
    try:
        lock = StudyLock(path, "'s' in sqlite:///x").acquire()
        lock.release()
    finally:
        prober.communicate()


#: a holder that takes the lock and writes its name a moment later (as a job does after its
#: checks): argv[1] the lock file
LATE_WRITER = """import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
print("held", flush=True)
time.sleep(0.3)
os.pwrite(fd, f"pid {os.getpid()} on here".encode(), 0)
sys.stdin.read()
"""


def test_a_refusal_names_a_holder_that_has_just_taken_the_lock(tmp_path: Path) -> None:
    """Two starts at once: the loser used to read the lock file in the instant between the
    winner's lock and its name, and said "in use by another process (unknown)"."""
    (tmp_path / "run").mkdir()
    holder = start(LATE_WRITER, str(tmp_path / "run" / LOCK_NAME))
    try:
        with pytest.raises(RunDirBusy, match=f"pid {holder.pid} on here"), hold_run_dir(tmp_path / "run"):
            pass
        assert lock_holder(tmp_path / "run" / LOCK_NAME) == f"pid {holder.pid} on here"
    finally:
        holder.communicate("")
