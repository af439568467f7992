"""``defcon-report`` on damaged inputs: a run whose summary.json is not a run summary is skipped
with one line naming the file (the other runs are reported); a search dir's optuna.db is read,
never written (an empty or corrupt file is one line, untouched); the search report skips plots
that cannot mean anything and says why, and lists failed trials with their error line."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from defcon_exp.cli.report import main as report_main

DAMAGED = {
    "list": "[1, 2]",
    "test_is_text": json.dumps({"test": "x"}),
    "deep": "[" * 100_000 + "]" * 100_000,
    "not_json": "{\"test\": {\"top1\": ",
    "binary": b"\xff\xfe\x00garbage",
}


def make_run(path: Path, summary: str | bytes | dict) -> Path:
    path.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"seed": 0, "model": {"attention": "eca"}, "data": {"name": "synthetic"},
                                     "scheduler": {"name": "cosine"}}), path / "config.yaml")
    if isinstance(summary, dict):
        summary = json.dumps(summary)
    if isinstance(summary, str):
        summary = summary.encode()
    (path / "summary.json").write_bytes(summary)
    return path


def test_a_damaged_run_is_skipped_with_one_line_naming_it(tmp_path: Path, capsys) -> None:
    make_run(tmp_path / "good", {"model": "eca", "test": {"top1": 71.5, "top5": 90.0}, "num_params": "x"})
    for name, text in DAMAGED.items():
        make_run(tmp_path / name, text)
    assert report_main([str(tmp_path), "--no-flops"]) == 0
    err = capsys.readouterr().err.splitlines()
    skipped = [line for line in err if line.startswith("defcon-report: skipped a damaged run: ")]
    assert len(skipped) == len(DAMAGED), err
    for name in DAMAGED:
        assert sum(f"{(tmp_path / name).resolve()}/summary.json" in line for line in skipped) == 1
    md = (tmp_path / "report.md").read_text()
    assert "1 run dirs, 1 finished" in md and "| eca | synthetic | 1 † | 71.50 ± n/a |" in md


optuna = pytest.importorskip("optuna", reason="pip install 'defcon_exp[search]'")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize(("content", "says"), [
    (b"", "optuna.db is an empty file, not an Optuna study; nothing was written"),
    (b"SQLite format 3\x00" + b"\x00" * 84 + b"garbage" * 100, "optuna.db is a damaged SQLite database"),
    (b"PK\x03\x04 a zip", "optuna.db is not a SQLite database"),
])
def test_a_study_file_that_is_not_a_study_is_one_line_and_untouched(tmp_path: Path, capsys, content, says) -> None:
    (tmp_path / "optuna.db").write_bytes(content)
    assert report_main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("defcon-report: error: ") and says in err, err
    assert (tmp_path / "optuna.db").read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["optuna.db"]


def make_study(search_dir: Path, values: list[float | None], constant: bool = True) -> None:
    """A stored study like the sweeper's: trial i has lr = i / 10 (and k = 3 throughout);
    value None is a FAIL trial with its error line."""
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.trial import TrialState, create_trial

    search_dir.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=f"sqlite:///{search_dir / 'optuna.db'}", study_name="s",
                                direction="maximize")
    study.set_user_attr("objectives", ["val/top1_final"])
    dists = {"optim.lr": FloatDistribution(0.0, 10.0), "model.kernel_size": CategoricalDistribution([3, 5])}
    for i, value in enumerate(values):
        params = {"optim.lr": i / 10, "model.kernel_size": 3 if constant else (3, 5)[i % 2]}
        failed = value is None
        study.add_trial(create_trial(
            params=params, distributions=dists, value=None if failed else value,
            state=TrialState.FAIL if failed else TrialState.COMPLETE,
            user_attrs={"error": f"ValueError: trial {i} broke"} if failed else {}))


def test_search_plots_from_too_little_are_skipped_with_the_reason(tmp_path: Path) -> None:
    from defcon_exp.analysis.search_report import MIN_IMPORTANCE_TRIALS, write_search_report

    make_study(tmp_path / "two", [10.0, 20.0, None])
    (tmp_path / "two" / "1").mkdir()
    (tmp_path / "two" / "1" / "summary.json").write_text("[1, 2]")  # a damaged trial run
    before = digest(tmp_path / "two" / "optuna.db")
    result = write_search_report(tmp_path / "two")
    assert digest(tmp_path / "two" / "optuna.db") == before  # read, never written
    assert result["plots"]["search_importances.png"] == (
        f"not drawn: 2 completed trials, importances need at least {MIN_IMPORTANCE_TRIALS} "
        "(with fewer every parameter looks alike)")
    assert result["plots"]["search_history.png"].endswith("search_history.png")
    assert len(result["skipped"]) == 1 and "1/summary.json is not a run summary" in result["skipped"][0]
    md = result["report_md"].read_text()
    assert f"## Failed trials\n\n- trial 2 (`{tmp_path / 'two' / '2'}`): ValueError: trial 2 broke" in md

    make_study(tmp_path / "none", [None])
    plots = write_search_report(tmp_path / "none")["plots"]
    assert plots["search_history.png"] == "not drawn: no completed trial yet"

    make_study(tmp_path / "many", [float(i % 4) for i in range(MIN_IMPORTANCE_TRIALS)])
    result = write_search_report(tmp_path / "many")
    assert Path(result["plots"]["search_importances.png"]).is_file()
    assert ("Never varied among the completed trials, so left out of the importances: "
            "model.kernel_size.") in result["report_md"].read_text()
    make_study(tmp_path / "varied", [float(i % 4) for i in range(MIN_IMPORTANCE_TRIALS)], constant=False)
    result = write_search_report(tmp_path / "varied")
    assert Path(result["plots"]["search_importances.png"]).is_file()
    assert "Never varied" not in result["report_md"].read_text()
