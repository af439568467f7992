"""Issue 21: run dirs written by the code before the lean-core redesign (main at 33f2057, kept
in ``tests/fixtures/runs_33f2057/``, made as its README says) still resume, evaluate and report
with today's code, through the real commands. Each test works on a copy (the fixtures stay as
they were written)."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from cli_helpers import run_module

from defcon_exp.engine.checkpoint import load_checkpoint

pytestmark = pytest.mark.slow
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "runs_33f2057"
HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
TIMING = {"epoch_time_s", "images_per_s"}


def copy_run(name: str, into: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / name, into / name))


def metric_rows(run_dir: Path) -> list[dict[str, float]]:
    with (run_dir / "metrics.csv").open() as file:
        return [{k: float(v) for k, v in row.items() if k not in TIMING} for row in csv.DictReader(file)]


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


def test_an_interrupted_old_run_resumes_to_the_uninterrupted_result(tmp_path: Path) -> None:
    run = copy_run("interrupted", tmp_path)
    done = run_module("defcon_exp.cli.train", [f"resume={run}"], cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    # The fixtures were made with 2 CPU threads, the tests run torch on 1 (and on other CPUs):
    # float sums may differ in the last bits, so values are compared to 1e-4. A wrong restore
    # (RNG, data position, optimiser, schedule, EMA) changes the batches or the steps and
    # moves them by far more.
    finished = FIXTURES / "finished"
    assert metric_rows(run) == [pytest.approx(row, rel=1e-4, abs=1e-6) for row in metric_rows(finished)]
    got, want = summary(run), summary(finished)
    for key in ("test", "best_val", "val", "test_raw", "test_ema"):
        assert got[key] == pytest.approx(want[key], rel=1e-4), key
    assert (got["epochs_done"], got["global_step"]) == (want["epochs_done"], want["global_step"])
    got_state = load_checkpoint(run / "checkpoints" / "last.pt")
    want_state = load_checkpoint(finished / "checkpoints" / "last.pt")
    for part in ("model", "ema"):
        for name, tensor in want_state[part].items():
            torch.testing.assert_close(got_state[part][name], tensor, rtol=1e-4, atol=1e-6, msg=name)
    # the start record is the old run's own; the resume is appended
    assert (run / ".hydra" / "config.yaml").read_bytes() == (
        FIXTURES / "interrupted" / ".hydra" / "config.yaml").read_bytes()
    assert (run / ".hydra" / "resumes.yaml").is_file()


def test_an_old_finished_run_evaluates_to_its_own_records(tmp_path: Path) -> None:
    """``last.pt`` gives the run's recorded test result, ``best.pt`` (the run dir's default)
    its recorded best validation result: both written by the old code."""
    run = copy_run("finished", tmp_path)
    recorded = summary(run)
    for ckpt, split, want in ((run / "checkpoints" / "last.pt", "test", recorded["test"]),
                              (run, "val", recorded["best_val"])):
        out = tmp_path / f"{split}.json"
        args = [f"ckpt={ckpt}", f"split={split}", f"out={out}"]
        done = run_module("defcon_exp.cli.eval", args, cwd=tmp_path, env=ENV)
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(out.read_text())
        assert (result["top1"], result["top5"]) == (want["top1"], want["top5"]), split
        assert result["loss"] == pytest.approx(want["loss"], rel=1e-5), split
    again = run_module("defcon_exp.cli.train", [f"resume={run}"], cwd=tmp_path, env=ENV)
    assert again.returncode == 0, again.stderr[-3000:]  # finished: nothing to do, nothing lost
    assert summary(run) == recorded


def test_old_run_dirs_are_reported(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    copy_run("finished", runs)
    copy_run("interrupted", runs)
    done = run_module("defcon_exp.cli.report", [str(runs)], cwd=tmp_path, env=ENV)
    assert done.returncode == 0, done.stderr[-3000:]
    with (runs / "report.csv").open() as file:
        rows = list(csv.DictReader(file))
    assert [row["model"] for row in rows] == ["resnet50"]
    assert float(rows[0]["top1_mean"]) == summary(FIXTURES / "finished")["test"]["top1"]
    report = (runs / "report.md").read_text()
    assert "interrupted" in report  # the unfinished run is listed, not fatal
