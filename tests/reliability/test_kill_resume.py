"""Hard kill, pre-emption and pre-empted sweeps, end to end in real subprocesses (issue 6,
points 1, 2 and 7). A tiny CNN (``tiny_net``) stands in for ResNet-50 so each run takes
seconds; ``DEFCON_TEST_STEP_SLEEP`` slows the killed runs so signals land mid-epoch."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from cli_helpers import run_module
from hydra import compose, initialize_config_module
from tiny_net import TINY_NET_ARGS

from defcon_exp.engine.checkpoint import CheckpointError, load_checkpoint
from defcon_exp.run.train import train

pytestmark = pytest.mark.slow
TRAIN = "defcon_exp.cli.train"
HERE = Path(__file__).resolve().parent
ARGS = TINY_NET_ARGS
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
SLOW_ENV = {**ENV, "DEFCON_TEST_STEP_SLEEP": "0.1"}  # 6 steps per epoch: >= 0.6 s an epoch


def start(args: list[str], cwd: Path) -> subprocess.Popen:
    env = {**os.environ, **SLOW_ENV}
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.Popen([sys.executable, "-m", TRAIN, *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if proc.poll() is not None:
            raise AssertionError(f"run ended before the kill point:\n{proc.communicate()[1][-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("kill point never reached")
        time.sleep(0.02)


def ckpt_where(path: Path) -> tuple[int, int] | None:
    """(completed epochs, batches done in the next) of ``path``, or None if not there yet."""
    try:
        state = load_checkpoint(path)
    except (FileNotFoundError, CheckpointError):
        return None
    position = state.get("position")
    return int(state["epoch"]), int(position["batches_done"]) if position else 0


def rows(run_dir: Path) -> list[dict[str, str]]:
    drop = {"epoch_time_s", "images_per_s"}
    return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader((run_dir / "metrics.csv").open())]


def assert_same_run(run_dir: Path, reference: Path) -> None:
    """Same final weights, same per-epoch metrics, same test result."""
    got = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    want = load_checkpoint(reference / "checkpoints" / "last.pt")
    assert got["global_step"] == want["global_step"] and got.get("position") is None  # slim in sweeps
    for name, tensor in want["model"].items():
        assert torch.equal(got["model"][name], tensor), name
    assert rows(run_dir) == rows(reference)
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["test"] == json.loads((reference / "summary.json").read_text())["test"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same run left alone (in process: same code path as the CLI below Hydra)."""
    run_dir = tmp_path_factory.mktemp("reference")
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=ARGS)
    train(cfg, run_dir=run_dir)
    return run_dir


def test_sigkill_mid_epoch_then_resume_is_exact(tmp_path: Path, reference: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start([*ARGS, "trainer.checkpoint_every_n_steps=2", f"hydra.run.dir={run_dir}"], tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    wait_for(proc, lambda: (ckpt_where(last) or (0, 0)) >= (1, 2))  # inside epoch 2
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert not (run_dir / "summary.json").exists()
    killed_at = ckpt_where(last)
    assert killed_at is not None and killed_at[1] > 0, killed_at  # a mid-epoch checkpoint

    resumed = run_module(TRAIN, [f"resume={run_dir}"], tmp_path, timeout=120, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    batches = f"{killed_at[1]} batch{'es' if killed_at[1] != 1 else ''}"
    assert f"resumed from epoch {killed_at[0]} + {batches}" in (run_dir / "train.log").read_text()
    assert_same_run(run_dir, reference)


def test_sigterm_checkpoints_prints_resume_and_resume_is_exact(tmp_path: Path, reference: Path) -> None:
    run_dir = tmp_path / "run"
    proc = start([*ARGS, f"hydra.run.dir={run_dir}"], tmp_path)
    last = run_dir / "checkpoints" / "last.pt"
    wait_for(proc, lambda: ckpt_where(last) is not None)  # epoch 1 done
    time.sleep(0.15)  # a step or two into epoch 2
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    assert f"resume with: defcon-train resume={run_dir}" in stderr
    assert "Traceback" not in stderr
    stopped_at = ckpt_where(last)
    assert stopped_at is not None and stopped_at[0] == 1 and stopped_at[1] > 0, stopped_at

    resumed = run_module(TRAIN, [f"resume={run_dir}"], tmp_path, timeout=120, env=ENV)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_run(run_dir, reference)


def test_relaunched_sweep_skips_finished_and_resumes_interrupted_jobs(tmp_path: Path, reference: Path) -> None:
    sweep = tmp_path / "sweep"
    command = ["-m", *ARGS, "optim.lr=0.05,0.02", "resume=auto", f"hydra.sweep.dir={sweep}"]
    proc = start(command, tmp_path)
    wait_for(proc, lambda: ckpt_where(sweep / "1" / "checkpoints" / "last.pt") is not None)
    proc.send_signal(signal.SIGKILL)  # job 0 finished, job 1 after its first epoch
    proc.communicate(timeout=30)
    assert (sweep / "0" / "summary.json").is_file() and not (sweep / "1" / "summary.json").exists()
    finished = (sweep / "0" / "summary.json").stat().st_mtime_ns
    job0_ckpt = (sweep / "0" / "checkpoints" / "last.pt").stat().st_mtime_ns

    again = run_module(TRAIN, command, tmp_path, timeout=120, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished" in again.stderr
    assert (sweep / "0" / "summary.json").stat().st_mtime_ns == finished  # not re-run
    assert (sweep / "0" / "checkpoints" / "last.pt").stat().st_mtime_ns == job0_ckpt
    assert "resumed from epoch" in (sweep / "1" / "train.log").read_text()  # not from zero
    assert [int(r["epoch"]) for r in rows(sweep / "1")] == [1, 2, 3]
    assert json.loads((sweep / "1" / "summary.json").read_text())["epochs"] == 3
    assert_same_run(sweep / "0", reference)  # job 0 is the reference config (lr 0.05)


def test_ctrl_c_to_the_process_group_with_dataloader_workers(tmp_path: Path) -> None:
    """A terminal Ctrl-C reaches the workers too; the run still stops cleanly with exit 130."""
    run_dir = tmp_path / "run"
    args = [a for a in ARGS if not a.startswith(("data.loader=", "data.num_workers="))]
    env = {**os.environ, **SLOW_ENV}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", TRAIN, *args, "data.loader=dataloader", "data.num_workers=2",
                             "data.pin_memory=false", f"hydra.run.dir={run_dir}"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    last = run_dir / "checkpoints" / "last.pt"
    wait_for(proc, lambda: ckpt_where(last) is not None)
    time.sleep(0.15)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGINT, stderr[-3000:]
    assert "SIGINT received" in stderr and "resume with: defcon-train resume=" in stderr
    assert "Traceback" not in stderr
    where = ckpt_where(last)
    assert where is not None and where[0] == 1 and where[1] > 0, where
