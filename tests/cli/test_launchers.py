"""Sweeps through Hydra launcher plugins (``conf/hydra/launcher/``): the packaged configs compose
onto the plugins' schemas (and the SLURM one into an sbatch script), a real parallel sweep runs in
joblib worker processes and re-launching it with ``resume=auto`` skips the finished jobs, a
failing or crashing job does not stop the others, SIGTERM to a parallel sweep reaches its
workers, and submitit's pre-emption signal checkpoints before submitit requeues the job.
Real runs use the reliability tests' tiny CNN (what is under test is the launchers and the
processes, not the model: a ResNet-50 job would only add seconds of training)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from cli_helpers import run_module
from hydra import compose, initialize_config_module

from defcon_exp.config import ConfigError
from defcon_exp.run import launch

HERE = Path(__file__).resolve().parent
#: the tiny CNN of the reliability tests (tests/reliability/tiny_net.py): a job of about a second
TINY_NET_ENV = {"PYTHONPATH": os.pathsep.join([str(HERE.parent / "reliability"), str(HERE),
                                               os.environ.get("PYTHONPATH", "")])}
#: job_return_probe.py: each job's status and return value as Hydra saw them
PROBE = "+hydra.callbacks.probe._target_=job_return_probe.RecordJobReturn"
#: the person running the tests trusts the probe (Hydra callbacks are otherwise only ours)
TRUST_PROBE = {"DEFCON_TRUSTED_HYDRA_CALLBACKS": "job_return_probe.RecordJobReturn"}
TINY_NET = [
    "data=synthetic", "model=resnet50", "model._target_=tiny_net.tiny_cifar_model", "model.kernel_size=3",
    "data.train_size=32", "data.val_size=8", "data.test_size=16", "data.batch_size=8", "data.eval_batch_size=16",
    "data.loader=tensor", "data.num_workers=0", "trainer.epochs=1", "trainer.device=cpu", "trainer.progress=false",
]
JOBLIB = "hydra_plugins.hydra_joblib_launcher"
SUBMITIT = "hydra_plugins.hydra_submitit_launcher"
#: what README/slurm_gpu.yaml document for a GPU job array
SLURM_KEYS = ("partition", "account", "qos", "nodes", "tasks_per_node", "gpus_per_node", "cpus_per_task",
              "mem_gb", "timeout_min", "array_parallelism", "signal_delay_s", "max_num_timeout",
              "additional_parameters", "setup")


def launcher_options() -> list[str]:
    return launch.group_options("hydra/launcher")


@pytest.fixture()
def hydra_cfg() -> Iterator:
    with initialize_config_module("defcon_exp.conf", version_base="1.3"):
        yield lambda *overrides: compose("config", overrides=list(overrides), return_hydra_config=True)


def test_packaged_launcher_options() -> None:
    assert launcher_options() == ["local_parallel", "local_submitit", "slurm_cpu", "slurm_gpu"]


def test_local_parallel_composes_onto_the_joblib_schema(hydra_cfg) -> None:
    pytest.importorskip(JOBLIB, reason="hydra-joblib-launcher is not installed (pip install '.[joblib]')")
    launcher = hydra_cfg("hydra/launcher=local_parallel", "hydra.launcher.n_jobs=3").hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_joblib_launcher.joblib_launcher.JoblibLauncher"
    assert launcher.n_jobs == 3 and launcher.prefer == "processes"
    assert "mmap_mode" in launcher  # the plugin's own defaults are merged in
    with pytest.raises(Exception, match=r"n_jobs"):  # the plugin's schema types the keys
        hydra_cfg("hydra/launcher=local_parallel", "hydra.launcher.n_jobs=many")


@pytest.mark.parametrize(("option", "gpus"), [("slurm_gpu", 1), ("slurm_cpu", None)])
def test_slurm_configs_compose_with_the_documented_keys(hydra_cfg, option: str, gpus: int | None) -> None:
    pytest.importorskip(SUBMITIT, reason="hydra-submitit-launcher is not installed (pip install '.[slurm]')")
    cfg = hydra_cfg(f"hydra/launcher={option}", "hydra.launcher.partition=gpu", "hydra.sweep.dir=/sweeps/t1")
    launcher = cfg.hydra.launcher
    assert launcher._target_ == "hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher"
    assert set(SLURM_KEYS) <= set(launcher)
    assert launcher.partition == "gpu" and launcher.gpus_per_node == gpus
    assert launcher.nodes == 1 and launcher.tasks_per_node == 1 and launcher.cpus_per_task >= 1
    assert launcher.timeout_min >= 60 and launcher.mem_gb >= 1 and launcher.array_parallelism >= 1
    assert launcher.submitit_folder == "/sweeps/t1/.submitit/%j"  # next to the run dirs
    with pytest.raises(Exception, match=r"timeout_min"):
        hydra_cfg(f"hydra/launcher={option}", "hydra.launcher.timeout_min=soon")


def test_slurm_gpu_builds_an_sbatch_script(hydra_cfg, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The composed launcher config is accepted by submitit's SLURM executor and becomes these
    sbatch lines (parameters passed as the plugin's launch() does; no SLURM here to submit to)."""
    pytest.importorskip(SUBMITIT, reason="hydra-submitit-launcher is not installed (pip install '.[slurm]')")
    import submitit
    from hydra.utils import instantiate
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf
    from submitit.slurm.slurm import _make_sbatch_string

    fake_bin = tmp_path / "bin"  # submitit's SLURM executor insists on finding srun
    fake_bin.mkdir()
    (fake_bin / "srun").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake_bin}{os.pathsep}{os.environ['PATH']}")
    cfg = hydra_cfg("hydra/launcher=slurm_gpu", "hydra.launcher.partition=gpu", f"hydra.sweep.dir={tmp_path}")
    launcher = instantiate(cfg.hydra.launcher)
    params = dict(launcher.params)
    executor = submitit.AutoExecutor(cluster="slurm", folder=params.pop("submitit_folder"),
                                     slurm_max_num_timeout=params.pop("max_num_timeout"))
    base = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in base else f"slurm_{k}": v for k, v in params.items()})
    script = _make_sbatch_string(command="true", folder=executor.folder, map_count=18,
                                 **executor._executor.parameters)
    for line in ("--partition=gpu", "--gpus-per-node=1", "--cpus-per-task=8", "--mem=32GB",
                 "--time=1440", "--signal=USR2@120", "--array=0-17%18", "--nodes=1", "--ntasks-per-node=1"):
        assert f"#SBATCH {line}" in script, line


def test_missing_launcher_plugin_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(launch, "module_available", lambda name: False)
    with pytest.raises(ConfigError, match=re.escape(
            "hydra/launcher=local_parallel is invalid here: it needs the Hydra plugin hydra-joblib-launcher, "
            "which is not installed; pip install 'defcon_exp[joblib]'")):
        launch.check_launcher(["-m", "hydra/launcher=local_parallel", "model=eca"])
    with pytest.raises(ConfigError, match=re.escape("pip install 'defcon_exp[slurm]'")):
        launch.check_launcher(["hydra/launcher=slurm_gpu"])
    with pytest.raises(ConfigError, match=re.escape("pip install 'defcon_exp[slurm]'")):
        launch.check_launcher(["hydra/launcher=submitit_local"])  # the plugin's own option
    launch.check_launcher(["hydra/launcher=basic", "model=eca"])  # Hydra's own: nothing needed
    monkeypatch.setattr(launch, "module_available", lambda name: True)
    launch.check_launcher(["hydra/launcher=local_parallel"])


def pids(run_dir: Path) -> set[int]:
    return {int(p) for p in re.findall(r"run dir: .* pid (\d+)", (run_dir / "train.log").read_text())}


@pytest.mark.slow
def test_parallel_sweep_in_joblib_workers_then_resume_auto_skips_it(tmp_path: Path) -> None:
    pytest.importorskip(JOBLIB, reason="hydra-joblib-launcher is not installed (pip install '.[joblib]')")
    sweep = tmp_path / "sweep"
    command = ["-m", *TINY_NET, "trainer.num_threads=1", "hydra/launcher=local_parallel",
               "hydra.launcher.n_jobs=2", "model=resnet50,eca", "resume=auto", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, **TINY_NET_ENV, "OMP_NUM_THREADS": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "defcon_exp.cli.train", *command], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert "Joblib.Parallel(n_jobs=2" in stdout + stderr

    multirun = yaml.safe_load((sweep / "multirun.yaml").read_text())
    assert multirun["hydra"]["launcher"]["n_jobs"] == 2
    assert multirun["hydra"]["overrides"]["task"][-2:] == ["model=resnet50,eca", "resume=auto"]
    job_pids = []
    for job, model in (("0", "resnet50"), ("1", "eca")):
        run = sweep / job
        for rel in ("summary.json", "metrics.csv", "checkpoints/last.pt", "checkpoints/best.pt",
                    ".hydra/config.yaml", "train.log"):
            assert (run / rel).is_file(), f"{job}/{rel}"
        summary = json.loads((run / "summary.json").read_text())
        assert summary["model"] == model and summary["epochs"] == 1
        assert "threads=1" in (run / "train.log").read_text()  # trainer.num_threads reached torch
        job_pids.append(pids(run))
    # each job ran in a worker process of its own, not in the defcon-train process
    assert all(len(p) == 1 for p in job_pids) and job_pids[0] != job_pids[1], job_pids
    assert proc.pid not in job_pids[0] | job_pids[1]

    finished = {job: (sweep / job / "summary.json").stat().st_mtime_ns for job in ("0", "1")}
    again = run_module("defcon_exp.cli.train", command, tmp_path, timeout=600,
                       env={**TINY_NET_ENV, "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    for job in ("0", "1"):
        assert f"{sweep / job} already finished (summary.json exists): skipping" in again.stderr
        assert (sweep / job / "summary.json").stat().st_mtime_ns == finished[job]
        assert len(pids(sweep / job)) == 1  # no second training start in its log


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "local_parallel", "local_submitit"])
def test_a_failing_job_does_not_stop_the_sweep(tmp_path: Path, launcher: str) -> None:
    if launcher == "local_parallel":
        pytest.importorskip(JOBLIB, reason="hydra-joblib-launcher is not installed (pip install '.[joblib]')")
    if launcher == "local_submitit":
        pytest.importorskip(SUBMITIT, reason="hydra-submitit-launcher is not installed (pip install '.[slurm]')")
    sweep = tmp_path / "sweep"
    result = run_module("defcon_exp.cli.train", [
        "-m", *TINY_NET, f"hydra/launcher={launcher}", "optim.lr=-1,0.05", f"hydra.sweep.dir={sweep}", PROBE,
    ], tmp_path, timeout=300, env={**TINY_NET_ENV, **TRUST_PROBE, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stderr[-3000:]
    failure = f"job 0 ({sweep / '0'}) failed: optim.lr=-1.0 is invalid: must be > 0"
    if launcher != "local_submitit":  # submitit keeps a job's own output in .submitit/<id>/
        assert f"defcon-train: error: {failure} (the other jobs go on)" in result.stderr  # when it failed
    assert f"defcon-train: error: {failure}\nThe sweep's other jobs ran to the end" in result.stderr  # at the end
    assert f"defcon-report {sweep}" in result.stderr
    assert "Traceback" not in result.stderr
    assert failure in (sweep / "0" / "train.log").read_text()
    assert not (sweep / "0" / "summary.json").exists()
    summary = json.loads((sweep / "1" / "summary.json").read_text())
    assert summary["epochs"] == 1  # the other job ran
    failed = json.loads((sweep / "0" / "job_return.json").read_text())
    assert failed["status"] == "FAILED" and "SweepJobError" in failed["return_value"]
    # what a sweeper (Optuna, Nevergrad...) optimises: search.objective, a VALIDATION metric
    assert json.loads((sweep / "1" / "job_return.json").read_text()) == {
        "status": "COMPLETED", "return_value": summary["val"]["top1"]}


@pytest.mark.slow
def test_submitit_preemption_signal_checkpoints_then_the_requeued_job_resumes(tmp_path: Path) -> None:
    """submitit's SIGUSR2 (sent before a SLURM time limit or at pre-emption): the run writes its
    checkpoint, submitit requeues the same job, and resume=auto continues it. Rehearsed with
    submitit's local executor (the same job pickles, signal handlers and requeue logic)."""
    pytest.importorskip(SUBMITIT, reason="hydra-submitit-launcher is not installed (pip install '.[slurm]')")
    sweep = tmp_path / "sweep"
    args = ["-m", *TINY_NET, "data.train_size=64", "trainer.epochs=3", "hydra/launcher=local_submitit",
            "resume=auto", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, **TINY_NET_ENV, "OMP_NUM_THREADS": "1", "DEFCON_TEST_STEP_SLEEP": "0.3"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "defcon_exp.cli.train", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    run = sweep / "0"
    try:
        deadline = time.monotonic() + 300
        while not (run / "checkpoints" / "last.pt").is_file():  # epoch 1 of 3 done
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the job never wrote its first checkpoint"
            time.sleep(0.05)
        (job_pid,) = pids(run)
        os.kill(job_pid, signal.SIGUSR2)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr[-3000:]
    log_text = (run / "train.log").read_text()
    assert "SIGUSR2 received: stopped" in log_text and "this job is preempted" in log_text
    assert "resumed from epoch" in log_text  # the requeued job continued, not from zero
    assert len(pids(run)) == 2  # two processes: the pre-empted one and the requeued one
    assert json.loads((run / "summary.json").read_text())["epochs"] == 3


def test_requeue_signal_only_when_a_python_handler_owns_it(monkeypatch: pytest.MonkeyPatch) -> None:
    from defcon_exp.engine.preemption import requeue_signal

    monkeypatch.delenv("SUBMITIT_PREEMPT_SIGNAL", raising=False)
    previous = signal.signal(signal.SIGUSR2, signal.SIG_DFL)
    try:
        assert requeue_signal() is None  # outside submitit: SIGUSR2 keeps its default meaning
        signal.signal(signal.SIGUSR2, lambda signum, frame: None)  # what submitit installs
        assert requeue_signal() == signal.SIGUSR2
        monkeypatch.setenv("SUBMITIT_PREEMPT_SIGNAL", "USR1")  # submitit's own setting
        assert requeue_signal() is None  # SIGUSR1 has no Python handler
    finally:
        signal.signal(signal.SIGUSR2, previous)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
def test_sigterm_to_a_parallel_sweep_stops_its_workers_with_checkpoints(tmp_path: Path) -> None:
    """``kill <defcon-train>`` reaches the joblib workers: each job writes its checkpoint and stops
    (no orphan keeps training into the run dir), and the same command with resume=auto finishes."""
    pytest.importorskip(JOBLIB, reason="hydra-joblib-launcher is not installed (pip install '.[joblib]')")
    sweep = tmp_path / "sweep"
    command = ["-m", *TINY_NET, "data.train_size=64", "trainer.epochs=3", "hydra/launcher=local_parallel",
               "hydra.launcher.n_jobs=2", "optim.lr=0.05,0.02", "resume=auto", f"hydra.sweep.dir={sweep}"]
    env = {**os.environ, **TINY_NET_ENV, "OMP_NUM_THREADS": "1", "DEFCON_TEST_STEP_SLEEP": "0.3"}
    env.pop("HYDRA_FULL_ERROR", None)
    proc = subprocess.Popen([sys.executable, "-m", "defcon_exp.cli.train", *command], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 300
        while not all((sweep / job / "checkpoints" / "last.pt").is_file() for job in ("0", "1")):
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the jobs never wrote their first checkpoints"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)  # to the main process only, as `kill` does
        _, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-3000:]
    workers = [pid for job in ("0", "1") for pid in pids(sweep / job)]
    deadline = time.monotonic() + 60
    while any(alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in workers), "a worker outlived the sweep"
    logs = [(sweep / job / "train.log").read_text() for job in ("0", "1")]
    assert all("received SIGTERM: stopping after the current step" in text for text in logs)
    # the first job to stop ends the sweep; joblib then kills the other worker, which may still
    # be writing its checkpoint: that job keeps its previous last.pt (atomic writes)
    assert any("SIGTERM received: stopped" in text for text in logs)
    assert not any((sweep / job / "summary.json").exists() for job in ("0", "1"))
    assert f"run the same command with resume=auto hydra.sweep.dir={sweep}" in stderr

    again = run_module("defcon_exp.cli.train", command, tmp_path, timeout=300,
                       env={**TINY_NET_ENV, "OMP_NUM_THREADS": "1"})
    assert again.returncode == 0, again.stderr[-3000:]
    for job in ("0", "1"):
        assert "resumed from epoch" in (sweep / job / "train.log").read_text()
        assert json.loads((sweep / job / "summary.json").read_text())["epochs"] == 3


@pytest.mark.slow
def test_a_crashing_sweep_job_leaves_its_traceback_in_train_log(tmp_path: Path) -> None:
    """Not a user error (here: a trusted model builder that raises): the traceback goes to the
    job's train.log (a joblib worker's traceback would otherwise be lost), the sweep goes on."""
    sweep = tmp_path / "sweep"
    result = run_module("defcon_exp.cli.train", [
        "-m", *TINY_NET, "model._target_=tiny_net.crashing_model,tiny_net.tiny_cifar_model", f"hydra.sweep.dir={sweep}",
    ], tmp_path, timeout=300, env={**TINY_NET_ENV, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 1, result.stderr[-3000:]
    log_file = sweep / "0" / "train.log"
    assert f"job 0 ({sweep / '0'}) failed: RuntimeError: " in result.stderr
    assert f"(traceback in {log_file})" in result.stderr
    assert "Traceback (most recent call last)" in log_file.read_text()
    assert "a deliberate crash while building the model" in log_file.read_text()
    assert json.loads((sweep / "1" / "summary.json").read_text())["epochs"] == 1
