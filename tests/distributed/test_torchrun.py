"""``torchrun --nproc_per_node=2`` end to end on the CPU (gloo), in subprocesses.

A tiny BatchNorm CNN (``ddp_net``, no dropout) stands in for ResNet-50. With synchronised
BatchNorm and the global batch split across the ranks, the 2-process run must reproduce the
single-process run of the same config: per-epoch metrics, test result and weights. Only rank
0 writes, into one run dir shared by both ranks; a SIGTERM seen by one rank stops both at the
same step, and resuming that checkpoint under torchrun ends exactly like the straight run."""

from __future__ import annotations

import csv
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from ddp_net import DDP_ARGS
from hydra import compose, initialize_config_module

from defcon_exp.engine.checkpoint import CheckpointError, load_checkpoint
from defcon_exp.run.train import train

pytestmark = pytest.mark.slow
HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
DEFCON_TRAIN = Path(sys.executable).parent / "defcon-train"
TIMEOUT = 240


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(args: list[str], script: bool = False) -> list[str]:
    """``torchrun --nproc_per_node=2 (-m defcon_exp.train | <defcon-train script>) args``."""
    target = [str(DEFCON_TRAIN)] if script else ["-m", "defcon_exp.train"]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            "--master_addr=127.0.0.1", f"--master_port={free_port()}", *target, *args]


def environment(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, **ENV, **(extra or {})}
    for key in ("HYDRA_FULL_ERROR", "WORLD_SIZE", "RANK", "LOCAL_RANK"):
        env.pop(key, None)
    return env


def torchrun(args: list[str], cwd: Path, script: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(torchrun_command(args, script), cwd=cwd, capture_output=True, text=True,
                          timeout=TIMEOUT, env=environment())


def rows(run_dir: Path) -> list[dict[str, float]]:
    drop = {"epoch_time_s", "images_per_s"}
    return [{k: float(v) for k, v in r.items() if k not in drop}
            for r in csv.DictReader((run_dir / "metrics.csv").open())]


def assert_same_training(got: Path, want: Path, tol: float) -> None:
    """Same per-epoch metrics, test result and final weights (within ``tol``)."""
    got_rows, want_rows = rows(got), rows(want)
    assert len(got_rows) == len(want_rows) == 2
    for a, b in zip(got_rows, want_rows, strict=True):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == pytest.approx(b[key], rel=tol, abs=tol), key
    got_test = json.loads((got / "summary.json").read_text())["test"]
    want_test = json.loads((want / "summary.json").read_text())["test"]
    for key in ("top1", "top5", "loss"):
        assert got_test[key] == pytest.approx(want_test[key], rel=tol, abs=tol), key
    a = load_checkpoint(got / "checkpoints" / "last.pt")
    b = load_checkpoint(want / "checkpoints" / "last.pt")
    assert a["global_step"] == b["global_step"] == 12 and a["position"] is None
    assert a["model"].keys() == b["model"].keys()  # plain keys: no "module." prefix
    for name, tensor in b["model"].items():
        torch.testing.assert_close(a["model"][name], tensor, rtol=tol, atol=tol, msg=name)


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """One straight 2-process run through the ``defcon-train`` console script, in a fresh
    folder with Hydra's default (timestamped) run dir."""
    cwd = tmp_path_factory.mktemp("ddp")
    result = torchrun(DDP_ARGS, cwd, script=True)
    assert result.returncode == 0, result.stderr[-4000:]
    return cwd, result


def test_two_processes_write_one_run_dir_from_rank_0(ddp_run) -> None:
    cwd, result = ddp_run
    run_dirs = [p for p in (cwd / "outputs").glob("*/*") if p.is_dir()]
    assert len(run_dirs) == 1, run_dirs  # both ranks in one Hydra run dir
    assert sorted(p.name for p in cwd.iterdir()) == ["outputs"]
    run_dir = run_dirs[0]
    files = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file())
    tb = [f for f in files if f.startswith("tb/")]
    assert len(tb) == 1  # one TensorBoard writer
    assert sorted(set(files) - set(tb)) == [
        ".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", ".lock", "checkpoints/best.pt",
        "checkpoints/last.pt", "config.yaml", "metrics.csv", "summary.json", "train.log",
    ]  # rank 1 wrote no .hydra/resume-* record, checkpoint, temporary file...
    log_text = (run_dir / "train.log").read_text()
    assert "distributed: 2 processes, global batch 8 = 4 per process, sync_batchnorm=True" in log_text
    assert "(21 images)" in log_text  # the test metrics cover the whole test set once
    output = result.stdout + result.stderr
    assert output.count("epoch 2/2") == 1 and "[rank 1]" not in output  # rank 1 logs nothing


def test_two_processes_match_a_single_process(ddp_run, tmp_path: Path) -> None:
    cwd, _ = ddp_run
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*DDP_ARGS, f"run_dir={tmp_path / 'single'}"])
    train(cfg)
    (run_dir,) = (cwd / "outputs").glob("*/*")
    assert_same_training(run_dir, tmp_path / "single", tol=1e-5)


def _rank_pid(parent: int, rank: int) -> int | None:
    """The pid of torchrun worker ``rank`` (a child of ``parent`` with RANK=rank)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) != parent:
                continue
            environ = (stat.parent / "environ").read_bytes().split(b"\0")
        except (OSError, IndexError, ValueError):
            continue
        if f"RANK={rank}".encode() in environ:
            return int(stat.parent.name)
    return None


def _epochs_done(path: Path) -> int | None:
    try:
        return int(load_checkpoint(path)["epoch"])
    except (FileNotFoundError, CheckpointError, EOFError, RuntimeError):
        return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the worker via /proc")
def test_sigterm_to_one_rank_stops_both_and_resume_is_exact(ddp_run, tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(torchrun_command([*DDP_ARGS, f"hydra.run.dir={run_dir}"]), cwd=tmp_path,
                            env=environment({"DEFCON_TEST_STEP_SLEEP": "0.15"}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + TIMEOUT
        while _epochs_done(run_dir / "checkpoints" / "last.pt") != 1:  # inside epoch 2
            assert proc.poll() is None, proc.communicate()[1][-4000:]
            assert time.monotonic() < deadline, "epoch 1 never ended"
            time.sleep(0.02)
        rank1 = _rank_pid(proc.pid, 1)
        assert rank1 is not None
        os.kill(rank1, signal.SIGTERM)  # rank 0 sees no signal: it must follow rank 1
        _, stderr = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert stderr.count("defcon-train: interrupted: SIGTERM received: stopped at global step") == 1
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt")
    assert state["epoch"] == 1 and state["position"] is not None  # a mid-epoch checkpoint
    assert 0 < state["position"]["batches_done"] < 6
    assert state["position"]["metrics"]["count"] == 8 * state["position"]["batches_done"]  # global

    # the data order does not depend on the number of processes: one process can go on too
    copy = tmp_path.parent / f"{tmp_path.name}-single"
    shutil.copytree(run_dir, copy)
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        cfg = compose("config", overrides=[*DDP_ARGS, f"resume={copy}"])
    train(cfg)

    resumed = torchrun([f"resume={run_dir}"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed"]  # no second run dir
    (straight,) = (ddp_run[0] / "outputs").glob("*/*")
    assert_same_training(run_dir, straight, tol=1e-6)
    assert_same_training(copy, straight, tol=1e-5)


def test_srun_tasks_train_together_without_torchrun(ddp_run, tmp_path: Path) -> None:
    """Two processes with the variables srun gives the tasks of a 2-task job step."""
    port = str(free_port())
    procs = []
    for rank in range(2):
        env = environment({"SLURM_STEP_NUM_TASKS": "2", "SLURM_PROCID": str(rank),
                           "SLURM_LOCALID": str(rank), "SLURM_STEP_NODELIST": "localhost",
                           "SLURM_JOB_ID": "77", "MASTER_PORT": port})
        procs.append(subprocess.Popen([sys.executable, "-m", "defcon_exp.train", *DDP_ARGS],
                                      cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    outputs = [proc.communicate(timeout=TIMEOUT) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs[0][1][-3000:] + outputs[1][1][-3000:]
    (run_dir,) = (tmp_path / "outputs").glob("*/*")  # one run dir for both tasks
    (straight,) = (ddp_run[0] / "outputs").glob("*/*")
    assert_same_training(run_dir, straight, tol=1e-6)


def test_multirun_is_refused_under_torchrun(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "defcon_exp.train", "-m", "optim.lr=0.1,0.2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=TIMEOUT,
                            env={**environment(), "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert result.returncode == 1
    assert "-m is invalid under torchrun" in result.stderr and "one torchrun per job" in result.stderr
    assert "Traceback" not in result.stderr and not any(tmp_path.iterdir())


def _alive(pid: int) -> bool:
    """``pid`` exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the workers via /proc")
def test_ranks_stop_when_the_torchrun_agent_is_killed(tmp_path: Path) -> None:
    """SIGKILL to the agent forwards nothing: the ranks must notice it is gone (the kernel's
    parent-death signal), stop together at the next agreed step and write one last.pt."""
    run_dir = tmp_path / "orphans"
    log_path = tmp_path / "torchrun.log"
    with log_path.open("w") as log_file:
        proc = subprocess.Popen(
            torchrun_command([*DDP_ARGS, "trainer.epochs=6", f"hydra.run.dir={run_dir}"]),
            cwd=tmp_path, env=environment({"DEFCON_TEST_STEP_SLEEP": "0.3"}),
            stdout=log_file, stderr=subprocess.STDOUT)
    ranks: list[int | None] = [None, None]
    try:
        deadline = time.monotonic() + TIMEOUT
        while _epochs_done(run_dir / "checkpoints" / "last.pt") != 1:  # inside epoch 2
            assert proc.poll() is None, log_path.read_text()[-4000:]
            assert time.monotonic() < deadline, "epoch 1 never ended"
            time.sleep(0.02)
        ranks = [_rank_pid(proc.pid, rank) for rank in (0, 1)]
        assert None not in ranks
        proc.kill()  # the agent: no chance to forward anything
        proc.wait()
        deadline = time.monotonic() + 60
        while any(_alive(pid) for pid in ranks if pid is not None):
            assert time.monotonic() < deadline, "orphaned ranks still running"
            time.sleep(0.1)
    finally:
        for pid in ranks:
            if pid is not None and _alive(pid):
                os.kill(pid, signal.SIGKILL)
    output = log_path.read_text()
    assert "SIGTERM received: stopped at global step" in output, output[-4000:]
    ckpt = run_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(ckpt)  # complete, and from the interruption, not a finished run
    assert state["epoch"] == 1 and state["position"] is not None, (state["epoch"], output[-3000:])
    before = ckpt.stat().st_mtime_ns
    time.sleep(1.0)
    assert ckpt.stat().st_mtime_ns == before  # nobody is left to rewrite it
    assert not list(ckpt.parent.glob(".last.pt.*"))  # no half-written temporary file
