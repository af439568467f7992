"""Atomic checkpoints, weights_only RNG round trip, run-dir rules, metrics, optimiser groups."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from defcon_exp.engine.checkpoint import find_checkpoint, load_checkpoint, save_checkpoint
from defcon_exp.engine.metrics import MetricAccumulator
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.seed import capture_rng_state, resolve_device, restore_rng_state
from defcon_exp.engine.writers import MetricsCSV
from defcon_exp.run_dir import (
    hydra_run_dir,
    is_used_run_dir,
    resume_kind,
    unique_run_dir,
)


def test_atomic_save_leaves_no_temp_files_and_loads_weights_only(tmp_path: Path) -> None:
    path = tmp_path / "checkpoints" / "last.pt"
    state = {"model": {"w": torch.ones(3)}, "config": {"a": [1, 2]}, "rng": capture_rng_state()}
    save_checkpoint(state, path)
    save_checkpoint(state, path)  # overwrite in place
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.ones(3)) and loaded["config"] == {"a": [1, 2]}


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(1)
    random.seed(2)
    np.random.seed(3)
    save_checkpoint({"model": {}, "config": {}, "rng": capture_rng_state()}, tmp_path / "c.pt")
    expected = (torch.rand(3), random.random(), np.random.rand())
    torch.manual_seed(99)
    random.seed(99)
    np.random.seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"])
    got = (torch.rand(3), random.random(), np.random.rand())
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]


def test_checkpoint_lookup_errors_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such run dir or checkpoint"):
        find_checkpoint(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match=r"no checkpoints/last\.pt"):
        find_checkpoint(tmp_path)
    (tmp_path / "x.pt").write_bytes(b"")
    torch.save({"weights": 1}, tmp_path / "x.pt")
    with pytest.raises(ValueError, match="not a defcon_exp checkpoint"):
        load_checkpoint(tmp_path / "x.pt")


def test_run_dir_resolvers(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"x")
    assert hydra_run_dir(None, "outputs/new") == "outputs/new"
    assert hydra_run_dir(str(run), "outputs/new") == str(run.resolve())
    assert hydra_run_dir(str(run / "checkpoints" / "last.pt"), "x") == str(run.resolve())
    assert is_used_run_dir(run) and not is_used_run_dir(tmp_path / "fresh")
    first, second = unique_run_dir(tmp_path / "out"), unique_run_dir(tmp_path / "out")
    assert first != second and first.is_dir() and second.is_dir()


def test_resume_kind_is_one_decision() -> None:
    """Every spelling of "no resume" is fresh (``None`` too: Hydra keeps it a string), and the
    resolvers agree with it: only a path moves the run into another dir."""
    for value in (None, "", "null", "None"):
        assert resume_kind(value) == "fresh"
        assert hydra_run_dir(value, "d") == "d"
    assert resume_kind("auto") == "auto" and hydra_run_dir("auto", "d") == "d"
    assert resume_kind("outputs/run") == resume_kind("last.pt") == "path"


def test_metrics_csv_header_once_and_truncation(tmp_path: Path) -> None:
    path = tmp_path / "metrics.csv"
    log = MetricsCSV(path)
    for epoch in (1, 2, 3):
        log.append({"epoch": epoch, "loss": 1.0 / epoch})
    resumed = MetricsCSV(path, resume_epoch=2)
    resumed.append({"epoch": 3, "loss": 0.5})
    assert path.read_text().splitlines() == ["epoch,loss", "1,1", "2,0.5", "3,0.5"]


def test_metric_accumulator_top1_top5_loss() -> None:
    acc = MetricAccumulator(torch.device("cpu"))
    logits = torch.eye(6)[[0, 1, 2, 3]] * 10  # [4, 6]: predicts 0, 1, 2, 3
    acc.update(logits, torch.tensor([0, 1, 5, 4]), torch.tensor(2.0))
    result = acc.compute()
    assert result["top1"] == 50.0 and result["count"] == 4 and result["loss"] == 2.0
    assert result["top5"] == 100.0


def test_an_epoch_metric_is_one_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    from defcon_exp.engine import metrics

    wrong = metrics.EpochMetric(lambda logits, labels, loss, hits: (~hits[:, 0]).sum().double(), 100.0)
    monkeypatch.setitem(metrics.EPOCH_METRICS, "error1", wrong)
    acc = MetricAccumulator(torch.device("cpu"))
    acc.update(torch.eye(6)[[0, 1, 2, 3]] * 10, torch.tensor([0, 1, 5, 4]), torch.tensor(2.0))
    acc.update(torch.eye(6)[[5, 5]] * 10, torch.tensor([5, 0]), torch.tensor(1.0))
    result = acc.compute()
    assert result["error1"] == pytest.approx(100 * 3 / 6) and result["top1"] == pytest.approx(50.0)
    assert result["loss"] == pytest.approx((2.0 * 4 + 1.0 * 2) / 6) and result["count"] == 6
    restored = MetricAccumulator(torch.device("cpu"))
    restored.load_state_dict(acc.state_dict())
    assert restored.compute() == result


def test_optimizers_and_norm_bias_exclusion() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    sgd = build_optimizer(model, "sgd", lr=0.1, weight_decay=1e-4, nesterov=True, exclude_norm_and_bias=True)
    decay, no_decay = sgd.param_groups
    assert decay["weight_decay"] == 1e-4 and [p.ndim for p in decay["params"]] == [4]
    assert no_decay["weight_decay"] == 0.0 and len(no_decay["params"]) == 3
    assert sgd.defaults["nesterov"] and sgd.defaults["momentum"] == 0.9
    assert isinstance(build_optimizer(model, "adamw", lr=1e-3), torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer 'adam'; valid: sgd, adamw"):
        build_optimizer(model, "adam")


def test_resolve_device() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda:0")
