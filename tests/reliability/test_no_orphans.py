"""Issue 22, items 7 and 8: nothing outlives a SIGKILLed ``defcon-train``. Its DataLoader
workers do not keep the run dir's lock (an immediate resume is not refused), and the joblib
workers of a ``local_parallel`` sweep checkpoint and stop instead of training on."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import test_kill_resume as kill_resume
from test_kill_resume import ckpt_where, start, wait_for
from tiny_net import TINY_NET_ARGS

from defcon_exp.run.lock import hold_run_dir

pytestmark = pytest.mark.slow
IN_PROCESS_LOADER = ("data.loader=", "data.num_workers=")


def test_dataloader_workers_do_not_hold_the_lock_of_a_killed_run(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    args = [a for a in TINY_NET_ARGS if not a.startswith(IN_PROCESS_LOADER)]
    proc = start([*args, "data.loader=dataloader", "data.num_workers=2", "data.pin_memory=false",
                  "trainer.checkpoint_every_n_steps=1", f"hydra.run.dir={run_dir}"], tmp_path)
    wait_for(proc, lambda: ckpt_where(run_dir / "checkpoints" / "last.pt") is not None)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with hold_run_dir(run_dir):  # at once: the workers (alive for a few s more) hold no copy
        pass


def holder_pid(run_dir: Path) -> int:
    """The pid written into ``run_dir/.lock`` by the process that holds it."""
    return int((run_dir / ".lock").read_text().split()[1])


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_joblib_workers_stop_when_the_sweep_is_sigkilled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    monkeypatch.setitem(kill_resume.SLOW_ENV, "DEFCON_TEST_STEP_SLEEP", "0.5")  # 4 s an epoch
    proc = start(["-m", *TINY_NET_ARGS, "trainer.epochs=20", "optim.lr=0.05,0.02", "resume=auto",
                  "trainer.checkpoint_every_n_steps=1",
                  "hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2", f"hydra.sweep.dir={sweep}"],
                 tmp_path)
    jobs = [sweep / "0", sweep / "1"]
    wait_for(proc, lambda: all(ckpt_where(j / "checkpoints" / "last.pt") is not None for j in jobs))
    workers = [holder_pid(j) for j in jobs]
    assert proc.pid not in workers
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 8  # a poll (0.5 s) + the current step + a checkpoint write
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "joblib workers train on after the sweep died"
    for job in jobs:  # each stopped with a checkpoint, long before its 20 epochs
        epoch, _batches = ckpt_where(job / "checkpoints" / "last.pt")
        assert epoch < 20 and not (job / "summary.json").exists()
        with hold_run_dir(job):
            pass
