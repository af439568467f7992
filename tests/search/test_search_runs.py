"""A real search through ``defcon-train -m hydra/sweeper=optuna`` on the synthetic set with the
reliability tests' tiny CNN: pruned trials are recorded PRUNED with their run dirs kept; a
search killed (SIGKILL) mid-trial and re-run continues its study (no trial number runs twice,
the interrupted trial resumes in its own run dir); ``defcon-report`` on the search dir gives the
trials' summary.json numbers, a rerun command and real PNG plots."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="pip install 'defcon_exp[search]'")

HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": os.pathsep.join([str(HERE.parent / "reliability"), os.environ.get("PYTHONPATH", "")])}
TINY = [
    "data=synthetic", "model=resnet50", "model._target_=tiny_net.tiny_cifar_model", "model.kernel_size=3",
    "data.train_size=64", "data.val_size=16", "data.test_size=16", "data.batch_size=16",
    "data.eval_batch_size=16", "data.loader=tensor", "data.num_workers=0", "trainer.epochs=3",
    "trainer.device=cpu", "trainer.progress=false", "trainer.histograms_every_n_epochs=0",
    "trainer.num_threads=1",
]
SPACE = ["optim.lr=tag(log, interval(1e-3, 0.5))", "model.kernel_size=choice(1, 3, 5)"]


def search(sweep: Path, *extra: str, env: dict | None = None, wait: bool = True):
    command = [sys.executable, "-m", "defcon_exp.train", "-m", "hydra/sweeper=optuna", *TINY, *SPACE,
               f"hydra.sweep.dir={sweep}", "hydra.sweeper.sampler.seed=0", *extra]
    full_env = {**os.environ, **ENV, **(env or {})}
    if not wait:
        return subprocess.Popen(command, cwd=sweep.parent, env=full_env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    result = subprocess.run(command, cwd=sweep.parent, env=full_env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def load(sweep: Path):
    return optuna.load_study(study_name="defcon_search", storage=f"sqlite:///{sweep / 'optuna.db'}")


@pytest.mark.slow
def test_pruned_trials_are_recorded_pruned_and_keep_their_run_dirs(tmp_path: Path) -> None:
    # ThresholdPruner(upper=0) on val loss prunes every trial at its first report: deterministic
    sweep = tmp_path / "pruned"
    search(sweep, "search.objective=val/loss_final", "hydra.sweeper.n_trials=2",
           "hydra/sweeper/pruner=none", "hydra.sweeper.pruner._target_=optuna.pruners.ThresholdPruner",
           "+hydra.sweeper.pruner.upper=0.0")
    study = load(sweep)
    assert study.directions == [optuna.study.StudyDirection.MINIMIZE]
    assert [t.state.name for t in study.trials] == ["PRUNED", "PRUNED"]
    for trial in study.trials:
        run = sweep / str(trial.number)
        summary = json.loads((run / "summary.json").read_text())
        assert summary["status"] == "pruned" and "pruned trial" in summary["stop_reason"]
        assert len((run / "metrics.csv").read_text().splitlines()) == 2  # header + epoch 1
        assert (run / "checkpoints" / "last.pt").is_file()
        assert trial.intermediate_values == {1: summary["val"]["loss"]}


@pytest.mark.slow
def test_killed_search_resumes_its_study_and_the_report_matches(tmp_path: Path) -> None:
    sweep = tmp_path / "killed"
    args = ("hydra.sweeper.n_trials=3", "hydra/sweeper/pruner=none")
    proc = search(sweep, *args, env={"DEFCON_TEST_STEP_SLEEP": "0.3"}, wait=False)
    deadline = time.monotonic() + 120
    while not (sweep / "1" / "checkpoints" / "last.pt").is_file():  # trial 1 is mid-run
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()[-3000:]
        time.sleep(0.1)
    # a second sweeper on the same study while the first one is in a trial (stopped there, so
    # that it cannot finish first on a loaded machine): refused in one line
    os.killpg(proc.pid, signal.SIGSTOP)
    second = subprocess.run(
        [sys.executable, "-m", "defcon_exp.train", "-m", "hydra/sweeper=optuna", *TINY, *SPACE,
         f"hydra.sweep.dir={sweep}", "hydra.sweeper.sampler.seed=0", *args],
        cwd=tmp_path, env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert second.returncode == 1 and second.stderr.count("\n") == 1, second.stderr[-3000:]
    assert f"is in use by another sweeper (pid {proc.pid} on " in second.stderr
    assert proc.poll() is None  # the first one is untouched
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (sweep / "1" / "summary.json").exists()
    assert [t.state.name for t in load(sweep).trials] == ["COMPLETE", "RUNNING"]

    search(sweep, *args)  # the same command again
    study = load(sweep)
    assert [t.number for t in study.trials] == [0, 1, 2]
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    starts = {n: (sweep / str(n) / "train.log").read_text().count("run dir:") for n in range(3)}
    assert starts == {0: 1, 1: 2, 2: 1}  # trial 0 not rerun; trial 1 started once, resumed once
    assert "resumed from epoch" in (sweep / "1" / "train.log").read_text()
    epochs = [row["epoch"] for row in csv.DictReader((sweep / "1" / "metrics.csv").open())]
    assert epochs == ["1", "2", "3"]  # continued from its checkpoint, no epoch twice
    assert not any(p.name.isdigit() and int(p.name) > 2 for p in sweep.iterdir())

    from defcon_exp.cli.report import main as report_main

    assert report_main([str(sweep)]) == 0
    rows = list(csv.DictReader((sweep / "search_trials.csv").open()))
    for row, trial in zip(rows, study.trials, strict=True):
        summary = json.loads((sweep / row["trial"] / "summary.json").read_text())
        assert float(row["val/top1_final"]) == summary["val"]["top1"] == trial.values[0]
        assert float(row["test_top1"]) == summary["test"]["top1"]
        assert float(row["param:optim.lr"]) == trial.params["optim.lr"]
    md = (sweep / "search_report.md").read_text()
    best = study.best_trial
    assert f"Trial {best.number}: val/top1_final = {best.value:.6g}" in md
    assert f"optim.lr={best.params['optim.lr']!r}" in md and "hydra.mode=RUN" in md
    assert "search.trial_number" not in md
    import matplotlib.image
    import numpy as np

    # 3 completed trials: too few for importances (said in the report, no empty plot)
    assert "- search_importances.png: not drawn: 3 completed trials, importances need at least" in md
    assert not (sweep / "search_importances.png").exists()
    for name in ("search_history.png",):
        image = matplotlib.image.imread(sweep / name)
        assert image.shape[0] > 100 and image.shape[1] > 100
        colours = np.unique((image[..., :3] * 255).astype(np.uint8).reshape(-1, 3), axis=0)
        assert len(colours) > 10, name


@pytest.mark.slow
def test_multi_objective_search_reports_a_pareto_front(tmp_path: Path) -> None:
    sweep = tmp_path / "pareto"
    search(sweep, "search.objective=[val/top1_final,params]", "hydra.sweeper.n_trials=3",
           "hydra/sweeper/sampler=random", "trainer.epochs=1")
    study = load(sweep)
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    for trial in study.trials:
        summary = json.loads((sweep / str(trial.number) / "summary.json").read_text())
        assert trial.values == [summary["val"]["top1"], summary["num_params"]]
        assert trial.intermediate_values == {}  # multi-objective trials are not pruned
    from defcon_exp.analysis.search_report import write_search_report

    result = write_search_report(sweep)
    assert sorted(result["best"]) == sorted(t.number for t in study.best_trials)
    assert (sweep / "search_pareto.png").stat().st_size > 0
    assert "## Pareto front" in result["report_md"].read_text()
