"""defcon-report on hand-made run dirs: a data column, running / interrupted (with the command
that resumes it) / failed (with its error) told apart, and the four-panel curves figure."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from defcon_exp.analysis.report import build_rows, write_report
from defcon_exp.analysis.report_plots import curves_figure
from defcon_exp.analysis.runs import load_run
from defcon_exp.run.lock import hold_run_dir


def make_run(path: Path, model: str, data: str, seed: int, *, epochs: int = 2,
             top1: float | None = None) -> Path:
    path.mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"seed": seed, "model": {"attention": model},
                                     "data": {"name": data}, "scheduler": {"name": "cosine"}}),
                   path / "config.yaml")
    with (path / "metrics.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["epoch", "train_loss", "train_top1", "val_loss", "val_top1"])
        for epoch in range(1, epochs + 1):
            writer.writerow([epoch, 2.0 / epoch, 20 * epoch, 2.2 / epoch, 18 * epoch + seed])
    if top1 is not None:
        (path / "summary.json").write_text(json.dumps(
            {"model": model, "test": {"top1": top1, "top5": top1 + 5, "loss": 1.0},
             "num_params": 10, "images_per_s": 5.0}))
    return path


def test_data_column_and_rows_per_data_set(tmp_path: Path) -> None:
    make_run(tmp_path / "a", "eca", "synthetic", 0, top1=80.0)
    make_run(tmp_path / "b", "eca", "cifar100", 0, top1=40.0)
    result = write_report([tmp_path], tmp_path / "out", flops=False)
    assert sorted((r.model, r.data, r.top1[0]) for r in result["rows"]) == [
        ("eca", "cifar100", 40.0), ("eca", "synthetic", 80.0)]
    text = result["report_md"].read_text()
    assert "| model | data | seeds |" in text
    assert "| eca | cifar100 | 1 † | 40.00 ± n/a |" in text
    rows = list(csv.DictReader((tmp_path / "out" / "report.csv").open()))
    assert sorted(r["data"] for r in rows) == ["cifar100", "synthetic"]
    assert sorted(r.label for r in result["rows"]) == ["eca (cifar100)", "eca (synthetic)"]


def test_running_interrupted_and_failed_runs_are_told_apart(tmp_path: Path) -> None:
    make_run(tmp_path / "done", "eca", "synthetic", 0, top1=80.0)
    interrupted = make_run(tmp_path / "interrupted", "eca", "synthetic", 1)
    (interrupted / "checkpoints").mkdir()
    (interrupted / "checkpoints" / "last.pt").write_bytes(b"a checkpoint")
    failed = tmp_path / "failed"
    (failed / ".hydra").mkdir(parents=True)
    OmegaConf.save(OmegaConf.create({"seed": 2, "model": {"attention": "eca"},
                                     "data": {"name": "cifar100"}}), failed / ".hydra" / "config.yaml")
    (failed / "train.log").write_text(
        "[2026-12-01 07:04:11,805][defcon_exp.train][INFO] - run dir: x\n"
        "[2026-12-01 07:04:12,001][defcon_exp.train][ERROR] - CIFAR-100 not found in data\n")
    running = make_run(tmp_path / "running", "eca", "synthetic", 3)
    (running / "checkpoints").mkdir()
    (running / "checkpoints" / "last.pt").write_bytes(b"a checkpoint")
    with hold_run_dir(running):  # a live process holds the lock
        states = {p.name: load_run(p).state for p in tmp_path.iterdir()}
        text = write_report([tmp_path], tmp_path / "out", flops=False)["report_md"].read_text()
    assert states == {"done": "done", "interrupted": "interrupted", "failed": "failed",
                      "running": "running"}
    assert "1 finished, 1 running, 1 interrupted (resumable), 1 failed" in text
    resume = f"defcon-train resume={interrupted.resolve()}"
    assert f"- interrupted (resumable): `{interrupted.resolve()}`" in text and f"`{resume}`" in text
    assert f"- failed before its first checkpoint: `{failed.resolve()}`: eca, cifar100, seed 2" in text
    assert "CIFAR-100 not found in data" in text
    assert f"- running: `{running.resolve()}`" in text
    assert load_run(running).state == "interrupted"  # the lock is gone with its holder


def test_curves_figure_has_titled_train_and_val_panels_and_a_seed_legend(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    runs = [load_run(make_run(tmp_path / str(s), "eca", "synthetic", s, top1=80.0)) for s in (0, 1)]
    runs.append(load_run(make_run(tmp_path / "r", "resnet50", "synthetic", 0, top1=70.0)))
    rows, _ = build_rows(runs, flops=False)
    fig = curves_figure(rows)
    axes = fig.get_axes()
    assert [ax.get_title() for ax in axes] == ["train top-1 (%)", "val top-1 (%)"]  # top-1 only
    losses = curves_figure(rows, "loss_curves.png").get_axes()
    assert [ax.get_title() for ax in losses] == ["train loss", "val loss"]
    assert losses[0].get_ylabel() == "loss"
    eca_lines = [line for line in axes[1].get_lines() if line.get_label().startswith("eca")]
    assert [line.get_label() for line in eca_lines] == ["eca, seed 0", "eca, seed 1"]
    assert eca_lines[0].get_marker() != eca_lines[1].get_marker()  # identical curves stay visible
    assert eca_lines[0].get_linestyle() != eca_lines[1].get_linestyle()
    assert list(eca_lines[1].get_ydata()) == [19.0, 37.0]  # val top-1 of seed 1
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "resnet50, seed 0", "eca, seed 0", "eca, seed 1"]
    assert axes[1].get_xlabel() == "epoch" and axes[0].get_ylabel() == "top-1 (%)"
