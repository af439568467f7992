"""fit(): records, resume exactness (weights + lr curve), plateau, NaN stop — on a tiny model."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch
from engine_fixtures import NaNAfter, TinyLoader, tiny_data, tiny_model
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.fit import Loaders, fit
from defcon_exp.engine.fit_settings import RunIdentity, TrainerConfig
from defcon_exp.engine.loop import NonFiniteLossError
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import build_schedulers

TOTAL_EPOCHS = 6


def make_run(schedule_kwargs: dict, seed: int = 0, val: bool = True):
    torch.manual_seed(seed)
    model = tiny_model()
    images, labels = tiny_data(48)
    val_images, val_labels = tiny_data(16, seed=1)
    loaders = Loaders(TinyLoader(images, labels, 8, seed=3),
                      TinyLoader(val_images, val_labels, 8, shuffle=False) if val else None,
                      TinyLoader(val_images, val_labels, 8, shuffle=False), num_classes=4)
    optimizer = build_optimizer(model, "sgd", lr=0.2, weight_decay=1e-3, momentum=0.9, nesterov=True)
    schedule, plateau = build_schedulers(optimizer=optimizer, epochs=TOTAL_EPOCHS,
                                         steps_per_epoch=len(loaders.train), **schedule_kwargs)
    return model, optimizer, schedule, plateau, loaders


def run_fit(run_dir: Path, schedule_kwargs: dict, epochs: int, resume: bool = False, seed: int = 0,
            val: bool = True) -> tuple[torch.nn.Module, dict]:
    model, optimizer, schedule, plateau, loaders = make_run(schedule_kwargs, seed, val)
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt") if resume else None
    trainer = TrainerConfig(epochs=epochs, log_every_n_steps=1, progress=False)
    identity = RunIdentity(model_name="tiny", config={"note": "test"}, hparams={"lr": 0.2})
    summary = fit(model, optimizer, schedule, plateau, loaders, torch.device("cpu"), run_dir,
                  trainer, resume_state=state, identity=identity)
    return model, summary


def lr_curve(run_dir: Path) -> list[tuple[int, float]]:
    acc = EventAccumulator(str(run_dir / "tb"))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars("trainer/lr")]


SCHEDULES = {
    "warmup_warm_restarts": {"name": "warm_restarts", "warmup_epochs": 1.5, "T_0": 1, "T_mult": 2},
    "plateau": {"name": "plateau", "warmup_epochs": 1, "plateau": {"monitor": "val/top1", "mode": "max",
                                                                      "patience": 0, "factor": 0.5}},
    "cosine": {"name": "cosine"},
}


@pytest.mark.parametrize("kind", sorted(SCHEDULES))
def test_resume_is_exact(tmp_path: Path, kind: str) -> None:
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    straight, _ = run_fit(straight_dir, SCHEDULES[kind], TOTAL_EPOCHS)
    run_fit(resumed_dir, SCHEDULES[kind], TOTAL_EPOCHS // 2)
    # a different init seed proves everything comes from the checkpoint
    resumed, _ = run_fit(resumed_dir, SCHEDULES[kind], TOTAL_EPOCHS, resume=True, seed=123)

    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert lr_curve(straight_dir) == lr_curve(resumed_dir)
    assert len(lr_curve(straight_dir)) == TOTAL_EPOCHS * 6
    if kind == "plateau":
        ckpt = load_checkpoint(resumed_dir / "checkpoints" / "last.pt")
        assert ckpt["plateau"]["num_reductions"] >= 1
    rows = list(csv.DictReader((resumed_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, TOTAL_EPOCHS + 1))
    straight_rows = list(csv.DictReader((straight_dir / "metrics.csv").open()))
    assert [r["train_loss"] for r in rows] == [r["train_loss"] for r in straight_rows]


def test_resume_truncates_rows_written_after_the_checkpoint(tmp_path: Path) -> None:
    run_fit(tmp_path, SCHEDULES["cosine"], 2)
    metrics = tmp_path / "metrics.csv"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join([*lines, lines[-1].replace("2,", "3,", 1)]) + "\n")  # a crash's extra row
    run_fit(tmp_path, SCHEDULES["cosine"], 4, resume=True)
    rows = list(csv.DictReader(metrics.open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert metrics.read_text().count("epoch,") == 1  # header once


def test_outputs_and_summary_without_val_is_best_on_test(tmp_path: Path) -> None:
    _, summary = run_fit(tmp_path, SCHEDULES["cosine"], 2, val=False)
    written = json.loads((tmp_path / "summary.json").read_text())
    assert written["test"] == pytest.approx(summary["test"])
    assert "best_val" not in written and "best_on_test" in written
    assert "TEST SET" in written["best_on_test"]["note"]
    for key in ("num_params", "wall_time_s", "images_per_s", "epochs", "model"):
        assert key in written
    best = load_checkpoint(tmp_path / "checkpoints" / "best.pt")
    assert "optimizer" not in best and best["config"] == {"note": "test"}
    last = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and last["global_step"] == 12
    assert isinstance(last["rng"]["python"]["state"], torch.Tensor)


def test_val_summary_has_best_val(tmp_path: Path) -> None:
    _, summary = run_fit(tmp_path, SCHEDULES["cosine"], 2)
    assert summary["best_val"]["epoch"] in (1, 2)
    assert "best_on_test" not in summary
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    assert {"loss/train", "top1/train", "loss/val", "top1/val", "top5/val", "trainer/lr"} <= tags


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path: Path) -> None:
    model, optimizer, schedule, plateau, loaders = make_run(SCHEDULES["cosine"])
    model = NaNAfter(model, after=8)  # 6 steps per epoch: step 8 (0-based) is in epoch 2
    optimizer = build_optimizer(model, "sgd", lr=0.1)
    schedule, plateau = build_schedulers("cosine", optimizer=optimizer, epochs=3, steps_per_epoch=6)
    settings = TrainerConfig(epochs=3, log_every_n_steps=4, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"global step 8 .*epoch 2"):
        fit(model, optimizer, schedule, plateau, loaders, torch.device("cpu"), tmp_path, settings)
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["epoch"] == 1
