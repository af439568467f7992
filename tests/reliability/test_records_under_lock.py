"""A run's ``.hydra/`` record is written only by the holder of the run dir's lock, and only at
its start: re-launching a sweep (or a single run) into a dir whose job still runs leaves that
job's record and ``train.log`` alone (before: Hydra rewrote ``.hydra/`` in the job's dir before
our lock refused); a resume (``resume=<run>`` or ``resume=auto``) keeps the record of how the
run was started and appends one entry to ``.hydra/resumes.yaml`` (before: ``resume=auto``
rewrote ``.hydra/overrides.yaml``, ``config.yaml`` and ``hydra.yaml``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import test_kill_resume as kill_resume
import yaml
from test_kill_resume import start, wait_for
from tiny_net import TINY_NET_ARGS

from defcon_exp.run.record import append_resume, write_start_record

QUICK = [*TINY_NET_ARGS, "trainer.epochs=2"]
RECORD = ("config.yaml", "hydra.yaml", "overrides.yaml")


def snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    """Every file below ``folder``: (bytes, mtime_ns)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    full = {**os.environ, **kill_resume.ENV, **env}
    full.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run([sys.executable, "-m", kill_resume.TRAIN, *args], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300)


def assert_refused(result: subprocess.CompletedProcess, run_dir: Path, one_line: bool = True) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    busy = [line for line in lines if "is in use by another process" in line]
    assert busy and all(str(run_dir) in line and line.startswith("defcon-train: error: ")
                        for line in busy), result.stderr
    if one_line:
        assert len(lines) == 1 and result.stdout == "", result.stderr + result.stdout


@pytest.mark.slow
def test_a_running_jobs_record_is_left_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sweep job 0 trains (2 s a step); a re-launch of its sweep (a literal or an interpolated
    hydra.sweep.dir: refused in one line before Hydra starts), and a single run into its dir, each
    exit 1 with the holder named, and the job's .hydra/, train.log and the sweep's multirun.yaml
    are untouched."""
    sweep = tmp_path / "sweep"
    job = sweep / "0"
    command = ["-m", *QUICK, "trainer.epochs=50", "resume=auto"]  # killed at the end
    with monkeypatch.context() as slower:
        slower.setitem(kill_resume.SLOW_ENV, "DEFCON_TEST_STEP_SLEEP", "2.0")
        first = start([*command, f"hydra.sweep.dir={sweep}"], tmp_path)
    try:
        wait_for(first, lambda: (job / ".lock").is_file() and (job / ".lock").read_text() != ""
                 and (job / ".hydra" / "overrides.yaml").is_file() and (job / "train.log").is_file()
                 and "run dir:" in (job / "train.log").read_text())
        record, multirun_yaml = snapshot(job / ".hydra"), (sweep / "multirun.yaml").read_bytes()
        assert sorted(record) == sorted(RECORD)
        literal = run([*command, f"hydra.sweep.dir={sweep}", "seed=5"], tmp_path)
        assert_refused(literal, job)
        assert (sweep / "multirun.yaml").read_bytes() == multirun_yaml
        interpolated = run([*command, "hydra.sweep.dir=${oc.env:SWEEP_DIR}", "seed=5"], tmp_path,
                           SWEEP_DIR=str(sweep))
        assert_refused(interpolated, job)  # resolved as Hydra will: refused before it writes
        assert (sweep / "multirun.yaml").read_bytes() == multirun_yaml
        single = run([*command[1:], "hydra.run.dir=${oc.env:RUN_DIR}"], tmp_path,
                     RUN_DIR=str(job))
        assert_refused(single, job)
        assert snapshot(job / ".hydra") == record
        log = (job / "train.log").read_text()
        assert "in use by another process" not in log and "seed=5" not in log
        assert first.poll() is None  # the first job still trains, its lock held all along
    finally:
        first.kill()
        first.communicate()


@pytest.mark.slow
def test_a_resume_keeps_the_start_record(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = run([*QUICK, "trainer.epochs=1", "seed=3", f"hydra.run.dir={run_dir}"], tmp_path)
    assert started.returncode == 0, started.stderr[-3000:]
    record = snapshot(run_dir / ".hydra")
    assert sorted(record) == sorted(RECORD)
    assert yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())["trainer"]["epochs"] == 1
    resumed = run([f"resume={run_dir}", "trainer.epochs=2"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    (run_dir / "summary.json").unlink()  # as after a kill in the test phase: resume=auto resumes
    auto = run([*QUICK, "trainer.epochs=3", "seed=3", f"hydra.run.dir={run_dir}", "resume=auto"], tmp_path)
    assert auto.returncode == 0, auto.stderr[-3000:]
    skipped = run([*QUICK, "trainer.epochs=3", "seed=3", f"hydra.run.dir={run_dir}", "resume=auto"], tmp_path)
    assert skipped.returncode == 0 and "already finished" in skipped.stderr, skipped.stderr[-3000:]
    now = snapshot(run_dir / ".hydra")
    assert {k: now[k] for k in RECORD} == record  # the start's record: bytes and times
    resumes = yaml.safe_load((run_dir / ".hydra" / "resumes.yaml").read_text())
    assert [r["overrides"] for r in resumes] == [
        [f"resume={run_dir}", "trainer.epochs=2"],
        [*QUICK, "trainer.epochs=3", "seed=3", "resume=auto"],  # Hydra's task overrides
    ]  # the finished run skipped by the last command: no entry
    assert all(r["pid"] > 0 and r["time"] for r in resumes)

    from defcon_exp.cli.report import main as report_main

    assert report_main([str(run_dir)]) == 0  # the reader of .hydra/ and summary.json


def test_the_record_never_writes_through_a_link(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    run_dir, outside = tmp_path / "run", tmp_path / "outside.yaml"
    (run_dir / ".hydra").mkdir(parents=True)
    outside.write_text("kept\n")
    (run_dir / ".hydra" / "config.yaml").symlink_to(outside)
    write_start_record(run_dir, OmegaConf.create({"seed": 1}), OmegaConf.create({"hydra": {}}), ["seed=1"])
    assert outside.read_text() == "kept\n"  # the link was replaced, not followed
    assert not (run_dir / ".hydra" / "config.yaml").is_symlink()
    (run_dir / ".hydra" / "resumes.yaml").symlink_to(outside)
    with pytest.raises(OSError):
        append_resume(run_dir, ["resume=auto"])
    assert outside.read_text() == "kept\n"
