"""One sweeper per study, taken in one step: the sweeper takes the study's lock
(``optuna.db.lock``, ``flock(LOCK_EX | LOCK_NB)``) before it reads the study and keeps it for
its life, instead of probing the lock, checking the study, then taking it. Before, a sweeper
started while another was creating the study passed the probe and then read the half-written
file (refused for the wrong reason, or a traceback); two sweepers started together: exactly
one runs, the other is refused in one line naming the holder, and a refusal leaves nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="pip install 'defcon_exp[search]'")

from test_sweeper_cli import ENV, SPACE, TINY, assert_one_line, defcon_train  # noqa: E402

from defcon_exp.config import ConfigError  # noqa: E402
from defcon_exp.run.study_lock import StudyLock, hold_study_lock  # noqa: E402


@pytest.mark.slow
def test_a_sweeper_never_reads_a_study_another_one_holds(tmp_path: Path) -> None:
    sweep = tmp_path / "busy"
    sweep.mkdir()
    db = sweep / "optuna.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\x00" * 50)  # as the holder is writing it
    with hold_study_lock(sweep / "optuna.db.lock", "held by the test"):
        result = defcon_train(sweep)
    assert_one_line(result, f"is in use by another sweeper (pid {os.getpid()} on ")
    assert db.read_bytes() == b"SQLite format 3\x00" + b"\x00" * 50
    assert sorted(p.name for p in sweep.iterdir()) == ["optuna.db", "optuna.db.lock"]


@pytest.mark.slow
def test_two_sweepers_started_together_one_runs_one_is_refused(tmp_path: Path) -> None:
    sweep = tmp_path / "together"
    command = [sys.executable, "-m", "defcon_exp.train", "-m", "hydra/sweeper=optuna", *TINY, SPACE,
               f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=1"]
    procs = [subprocess.Popen(command, cwd=tmp_path, env=ENV, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p, *p.communicate(timeout=300)) for p in procs]
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes == [0, 1], [err[-2000:] for _, _, err in results]
    _, out, err = next(r for r in results if r[0].returncode == 1)
    assert out == "" and err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("defcon-train: error: the study 'defcon_search' in sqlite:///") and (
        "is in use by another sweeper (pid " in err), err
    study = optuna.load_study(study_name="defcon_search", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["COMPLETE"]  # one sweeper ran one trial


def test_the_lock_is_taken_in_one_step_and_a_refusal_removes_what_it_created(tmp_path: Path) -> None:
    path = tmp_path / "new" / "sweep" / "optuna.db.lock"
    first = StudyLock(path, "'s' in x").acquire()
    assert path.read_text().startswith(f"pid {os.getpid()} on ")
    with pytest.raises(ConfigError, match=r"is in use by another sweeper \(pid "):
        StudyLock(path, "'s' in x").acquire()
    first.release(remove_created=True)  # a sweeper that refused after taking it
    assert not (tmp_path / "new").exists()
    second = StudyLock(path, "'s' in x").acquire()  # a new file, a new holder
    second.release()
    assert path.is_file()  # kept: a lock file of a sweeper that ran
    third = StudyLock(path, "'s' in x").acquire()
    third.release(remove_created=True)
    assert path.is_file()  # not created by this one: left alone
