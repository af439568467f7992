"""The Optuna sweeper's refusals and stops through the real command (``defcon-train -m
hydra/sweeper=optuna`` with the tests' tiny synthetic settings): each refusal is one line on
stderr naming the value and the fix, exit 1, no traceback, and nothing is created or modified
(no sweep dir, no study, no file touched by a payload); a search whose trial fails says how
many trials ran and why it stopped, prints the error once, and its report lists the failure."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

optuna = pytest.importorskip("optuna", reason="pip install 'defcon_exp[search]'")

from defcon_exp.run.study_lock import hold_study_lock  # noqa: E402

HERE = Path(__file__).resolve().parent
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE.parent / "reliability"),
                                                    os.environ.get("PYTHONPATH", "")])}
TINY = [
    "data=synthetic", "model=resnet50", "model._target_=tiny_net.tiny_cifar_model", "model.kernel_size=3",
    "data.train_size=64", "data.val_size=16", "data.test_size=16", "data.batch_size=16",
    "data.eval_batch_size=16", "data.loader=tensor", "data.num_workers=0", "trainer.epochs=1",
    "trainer.device=cpu", "trainer.progress=false", "trainer.histograms_every_n_epochs=0",
    "trainer.num_threads=1",
]
SPACE = "optim.lr=tag(log, interval(1e-3, 0.5))"
NO_DRIVER = importlib.util.find_spec("psycopg2") is None and importlib.util.find_spec("psycopg") is None
#: (extra arguments, what the one line must say); {tmp} is the test's folder
REFUSALS = [
    (["hydra.sweeper.storage=notaurl"], "storage='notaurl' is invalid: not a database URL"),
    *([(["hydra.sweeper.storage=postgresql://u@h/db"], "driver is not installed")] if NO_DRIVER else []),
    (["hydra.sweeper.storage=sqlite:////proc/study.db"], "the folder /proc is not writable"),
    (["hydra.sweeper.storage=sqlite:///{tmp}/missing/study.db"], "missing does not exist"),
    (["hydra.sweeper.storage=sqlite:///{tmp}/text.db"], "text.db is not a SQLite database"),
    (["hydra.sweeper.sampler._target_=os.system"], "sampler._target_='os.system' is invalid: choose one of"),
    (["+hydra.sweeper.sampler.bogus=1"], "sampler.bogus=1 is invalid: TPESampler takes no keyword"),
    (["+hydra.sweeper.n_trial=3"], "did you mean hydra.sweeper.n_trials?"),
    (["search.objective=test/top1"], "search.objective='test/top1' is invalid"),
    (["data.val_size=0"], "data.val_size=0 is invalid for a search"),
    (["hydra.sweeper.direction=minimize"], "direction='minimize' is invalid"),
    (["hydra/sweeper/sampler=grid"], "GridSampler is invalid with optim.lr"),
    (["hydra.sweeper._recursive_=true", "+hydra.sweeper.pruner.x._target_=pathlib.Path.touch",
      "+hydra.sweeper.pruner.x._args_=[{tmp}/PWNED]"], "_recursive_=True is invalid"),
    (["+hydra.sweeper.pruner.x._target_=pathlib.Path.touch", "+hydra.sweeper.pruner.x._args_=[{tmp}/PWNED]"],
     "pruner.x._target_='pathlib.Path.touch' is invalid: the sweeper's config never names code"),
    (["search.objective=val/top1_final,val/loss_final"], "invalid as a search parameter"),
    (["scheduler.warmup_epochs=choice(0, 1)"], "scheduler.warmup_epochs=choice(0, 1) can sample 1: "
     "scheduler.warmup_epochs=1.0 is invalid: must be >= 0 and < trainer.epochs=1"),
]


def defcon_train(sweep: Path, *extra: str, space: bool = True) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "defcon_exp.train", "-m", "hydra/sweeper=optuna", *TINY,
               *([SPACE] if space else []), f"hydra.sweep.dir={sweep}", *extra]
    return subprocess.run(command, cwd=sweep.parent, env=ENV, capture_output=True, text=True,
                          timeout=300)


def assert_one_line(result: subprocess.CompletedProcess, says: str) -> None:
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and result.stdout == "", result.stderr + result.stdout
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("defcon-train: error: "), result.stderr
    assert says in result.stderr, result.stderr


@pytest.mark.slow
def test_every_refusal_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    (tmp_path / "text.db").write_text("not a database")
    cases = [(i, [a.format(tmp=tmp_path) for a in args], says) for i, (args, says) in enumerate(REFUSALS)]
    cases.append((len(cases), ["hydra.sweeper.params=null"], "has nothing to search"))
    before = sorted(p.name for p in tmp_path.iterdir())

    def run(case: tuple[int, list[str], str]) -> tuple[subprocess.CompletedProcess, str]:
        number, args, says = case
        return defcon_train(tmp_path / f"sweep{number}", *args, space=says != "has nothing to search"), says

    with ThreadPoolExecutor(max_workers=2) as pool:
        for result, says in pool.map(run, cases):
            assert_one_line(result, says)
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no sweep dir, no PWNED
    assert (tmp_path / "text.db").read_text() == "not a database"


@pytest.mark.slow
def test_a_second_sweeper_on_a_study_is_refused_in_one_line(tmp_path: Path) -> None:
    sweep = tmp_path / "busy"
    lock = sweep / "optuna.db.lock"
    with hold_study_lock(lock, "held by the test"):
        result = defcon_train(sweep)
    assert_one_line(result, f"is in use by another sweeper (pid {os.getpid()} on ")
    assert "wait for it to end or stop it" in result.stderr
    assert sorted(p.name for p in sweep.iterdir()) == ["optuna.db.lock"]  # no study, no trial


@pytest.mark.slow
def test_a_failed_trial_stops_the_search_with_counts_and_one_error(tmp_path: Path) -> None:
    sweep = tmp_path / "failing"
    crashing = [a.replace("tiny_cifar_model", "crashing_model") for a in TINY]
    command = [sys.executable, "-m", "defcon_exp.train", "-m", "hydra/sweeper=optuna", *crashing, SPACE,
               f"hydra.sweep.dir={sweep}", "hydra.sweeper.n_trials=2"]
    result = subprocess.run(command, cwd=tmp_path, env=ENV, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output[-3000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("defcon-train: error: the search stopped after 1 trial of this run "), last
    assert "1 FAIL, n_trials=2): trial 0 failed" in last and "max_failure_rate=0.0 allows none" in last
    assert output.count("trial 0 (") == 1 and "failed: RuntimeError: a deliberate crash" in output
    assert output.count("a deliberate crash") == 1 and "Traceback" not in output  # once
    assert "Traceback (most recent call last)" in (sweep / "0" / "train.log").read_text()
    assert "other jobs go on" not in output and "ran to the end" not in output
    study = optuna.load_study(study_name="defcon_search", storage=f"sqlite:///{sweep / 'optuna.db'}")
    assert [t.state.name for t in study.trials] == ["FAIL"]

    from defcon_exp.cli.report import main as report_main

    assert report_main([str(sweep)]) == 0
    md = (sweep / "search_report.md").read_text()
    assert "## Failed trials" in md
    assert f"- trial 0 (`{sweep / '0'}`): RuntimeError: a deliberate crash while building the model" in md
    assert "- search_history.png: not drawn: no completed trial yet" in md
    assert not (sweep / "search_history.png").exists()
