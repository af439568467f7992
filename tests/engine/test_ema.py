"""Weight EMA (issue 14): the average itself, and fit() with EMA + Mixup/CutMix +
accumulation: val/ema_* records, checkpoints, exact resume, the selected weights."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from engine_fixtures import TinyLoader, tiny_data, tiny_model
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from torch import nn

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.ema import WeightEMA, ema_weights
from defcon_exp.engine.fit import Loaders, fit
from defcon_exp.engine.fit_settings import RunIdentity, TrainerConfig
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import build_schedulers
from defcon_exp.regularisation import EMAConfig, MixConfig


def test_ema_equals_the_hand_computed_average_of_weights_and_bn_buffers():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    ema = WeightEMA(model, decay=0.8)
    snapshots = []
    for _ in range(4):
        with torch.no_grad():
            model[0].weight.add_(torch.randn(4, 3))
        model.train()(torch.randn(5, 3))  # moves the BN running statistics
        snapshots.append({k: v.clone() for k, v in model.state_dict().items()})
        ema.update()
    for key in ("0.weight", "0.bias", "1.weight", "1.running_mean", "1.running_var"):
        expected = snapshots[0][key].double()  # the first update copies
        for snap in snapshots[1:]:
            expected = 0.8 * expected + 0.2 * snap[key].double()
        torch.testing.assert_close(ema.module.state_dict()[key].double(), expected, rtol=1e-6, atol=1e-7)
    assert int(ema.state_dict()["n_averaged"]) == 4
    assert set(ema_weights(ema.state_dict())) == set(model.state_dict())


EPOCHS = 4


def run_fit(run_dir: Path, epochs: int, resume: bool = False, select: str = "raw") -> dict:
    torch.manual_seed(0)
    model = tiny_model()
    images, labels = tiny_data(48)
    val_images, val_labels = tiny_data(16, seed=1)
    loaders = Loaders(TinyLoader(images, labels, 6, seed=3),
                      TinyLoader(val_images, val_labels, 8, shuffle=False),
                      TinyLoader(val_images, val_labels, 8, shuffle=False), num_classes=4)
    optimizer = build_optimizer(model, "sgd", lr=0.2, weight_decay=1e-3, momentum=0.9)
    schedule, _ = build_schedulers("cosine", optimizer=optimizer, epochs=EPOCHS, steps_per_epoch=4)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt") if resume else None
    trainer = TrainerConfig(
        epochs=epochs, log_every_n_steps=1, progress=False,
        label_smoothing=0.1, accumulate_grad_batches=2,
        mix=MixConfig(mixup_alpha=0.4, cutmix_alpha=1.0, prob=0.9),
        ema=EMAConfig(enabled=True, decay=0.7, select=select),
    )
    return fit(model, optimizer, schedule, None, loaders, torch.device("cpu"), run_dir, trainer,
               resume_state=state, identity=RunIdentity(model_name="tiny", seed=5))


def csv_rows(run_dir: Path) -> list[dict[str, str]]:
    drop = {"epoch_time_s", "images_per_s"}
    with (run_dir / "metrics.csv").open() as handle:
        return [{k: v for k, v in r.items() if k not in drop} for r in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def straight(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("straight")
    run_fit(run_dir, EPOCHS)
    return run_dir


def test_ema_is_recorded_beside_the_raw_weights(straight):
    rows = csv_rows(straight)
    assert {"val_ema_top1", "val_ema_loss", "val_top1", "train_top1_dominant"} <= set(rows[0])
    assert "train_top1" not in rows[0]  # under mixing train top-1 is named for what it is
    assert any(r["val_ema_loss"] != r["val_loss"] for r in rows)
    acc = EventAccumulator(str(straight / "tb"))
    acc.Reload()
    assert {"top1/val_ema", "top1/val", "top1/train_dominant"} <= set(acc.Tags()["scalars"])
    last = load_checkpoint(straight / "checkpoints" / "last.pt")
    assert last["weights"] == "raw" and int(last["ema"]["n_averaged"]) == last["global_step"] == 16
    summary = json.loads((straight / "summary.json").read_text())
    assert summary["weights"] == "raw" and summary["test"] == {
        k: summary["test_raw"][k] for k in ("loss", "top1", "top5")
    }


def test_resume_with_ema_mixing_and_accumulation_is_exact(straight, tmp_path):
    run_fit(tmp_path, 2)
    run_fit(tmp_path, EPOCHS, resume=True)
    got = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    want = load_checkpoint(straight / "checkpoints" / "last.pt")
    for part in ("model", "ema"):
        for key, value in want[part].items():
            assert torch.equal(got[part][key], value), (part, key)
    assert csv_rows(tmp_path) == csv_rows(straight)


def test_select_ema_picks_best_and_headline_from_the_ema(tmp_path):
    summary = run_fit(tmp_path, EPOCHS, select="ema")
    assert summary["weights"] == "ema"
    assert summary["test"] == summary["test_ema"]
    rows = csv_rows(tmp_path)
    best = max(range(len(rows)), key=lambda i: (float(rows[i]["val_ema_top1"]), -i))
    assert summary["best_val"]["epoch"] == best + 1
    assert summary["best_val"]["top1"] == pytest.approx(float(rows[best]["val_ema_top1"]), abs=1e-4)
    best_pt = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert best_pt["weights"] == "ema" and "ema" in best_pt
