"""Issue 12.2: one process per run dir. Two starts into one dir, or two resumes of one run,
at the same moment: exactly one trains, the other exits 1 with one line naming the dir and
the holder. A SIGKILLed holder leaves no stale lock (the kernel drops it)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from test_kill_resume import SLOW_ENV, ckpt_where, start, wait_for
from tiny_net import TINY_NET_ARGS

from defcon_exp.run.lock import RunDirBusy, hold_run_dir
from defcon_exp.run.train import train

pytestmark = pytest.mark.slow
QUICK = [*TINY_NET_ARGS, "trainer.epochs=2"]


def finish(proc: subprocess.Popen) -> tuple[int, str]:
    _out, err = proc.communicate(timeout=300)
    return proc.returncode, err


def assert_one_winner(results: list[tuple[int, str]], run_dir: Path) -> None:
    codes = sorted(code for code, _ in results)
    assert codes == [0, 1], results
    loser = next(err for code, err in results if code == 1).strip().splitlines()
    refusal = [line for line in loser if "is in use by another process" in line]
    assert len(refusal) == 1 and str(run_dir) in refusal[0] and "pid" in refusal[0], loser
    with (run_dir / "metrics.csv").open() as handle:
        lines = handle.read().splitlines()
    assert sum(line.startswith("epoch,") for line in lines) == 1  # one header, one run's rows
    assert [int(r["epoch"]) for r in csv.DictReader(lines)] == [1, 2]


def test_two_fresh_starts_into_one_dir(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    procs = [start([*QUICK, f"hydra.run.dir={run_dir}", f"seed={seed}"], tmp_path) for seed in (1, 2)]
    assert_one_winner([finish(p) for p in procs], run_dir)


def test_a_second_start_while_the_first_trains(tmp_path: Path) -> None:
    """Both orders: the second start loses whether it comes first to the dir or not."""
    run_dir = tmp_path / "run"
    first = start([*QUICK, f"hydra.run.dir={run_dir}"], tmp_path)  # >= 1.6 s of steps after locking
    wait_for(first, lambda: (run_dir / ".lock").is_file() and (run_dir / ".lock").read_text() != "")
    # the first holds the lock and is stopped there, so that it is still training (not
    # finished) when the second has imported torch, however long that takes on a busy machine
    first.send_signal(signal.SIGSTOP)
    try:
        second = start([*QUICK, f"hydra.run.dir={run_dir}", "seed=7"], tmp_path)
        refused = finish(second)
    finally:
        first.send_signal(signal.SIGCONT)
    assert_one_winner([refused, finish(first)], run_dir)


def test_two_resumes_of_one_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):  # in process: the run
        # to resume is not what is under test (the two resumes below are)
        train(compose("config", overrides=[*QUICK, "trainer.epochs=1"]), run_dir=run_dir)
    procs = [start([f"resume={run_dir}", "trainer.epochs=2"], tmp_path) for _ in range(2)]
    assert_one_winner([finish(p) for p in procs], run_dir)


def test_a_sigkilled_holder_leaves_no_stale_lock(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    victim = start([*QUICK, "trainer.checkpoint_every_n_steps=1", f"hydra.run.dir={run_dir}"], tmp_path)
    wait_for(victim, lambda: ckpt_where(run_dir / "checkpoints" / "last.pt") is not None)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert "pid" in (run_dir / ".lock").read_text()  # the file stays; the lock went with the pid
    resumed = start([f"resume={run_dir}"], tmp_path)
    code, err = finish(resumed)
    assert code == 0, err
    assert (run_dir / "summary.json").is_file()


def test_lock_is_reentrant_in_one_process_and_exclusive_across(tmp_path: Path) -> None:
    with hold_run_dir(tmp_path / "r"), hold_run_dir(tmp_path / "r"):
        child = subprocess.run(
            ["python", "-c", "from defcon_exp.run.lock import hold_run_dir\n"
             f"with hold_run_dir({str(tmp_path / 'r')!r}): pass"],
            capture_output=True, text=True, env={**os.environ, **SLOW_ENV},
        )
        assert child.returncode == 1 and "RunDirBusy" in child.stderr and f"pid {os.getpid()}" in child.stderr
    with hold_run_dir(tmp_path / "r"):  # released: free again
        pass
    assert issubclass(RunDirBusy, ValueError)  # a user error: one line, exit 1
