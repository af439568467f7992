"""trainer.early_stopping (issue 25.11): Lightning's rule, and the same stop epoch when the run
is interrupted and resumed (the counter and the stop live in the checkpoint)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from engine_fixtures import TinyLoader, tiny_data, tiny_model

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.early_stopping import EarlyStopping
from defcon_exp.engine.fit import Loaders, fit
from defcon_exp.engine.fit_settings import RunIdentity, TrainerConfig
from defcon_exp.engine.hooks import StopRun
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import build_schedulers


def feed(hook: EarlyStopping, values: list[float], split: str = "val") -> int | None:
    """The 1-based epoch the hook stops at, or None."""
    for epoch, value in enumerate(values, start=1):
        try:
            hook(epoch, epoch, {split: {"loss": value, "top1": value}}, None)
        except StopRun as stop:
            assert stop.status == "stopped_early" and "did not improve" in stop.reason
            return epoch
    return None


def test_lightning_rule_by_hand() -> None:
    assert feed(EarlyStopping("val/loss", patience=2), [3, 2, 2.5, 2.1]) == 4  # min for a loss
    assert feed(EarlyStopping("val/loss", patience=2), [3, 2, 2.5, 1.9, 2.0]) is None
    assert feed(EarlyStopping("val/top1", patience=1), [10, 20, 19]) == 3  # max for accuracy
    # an improvement must exceed min_delta
    assert feed(EarlyStopping("val/top1", patience=2, min_delta=1.0), [10, 10.5, 10.9]) == 3
    assert feed(EarlyStopping("val/top1", patience=1, mode="min"), [10, 20]) == 2


def run(run_dir: Path, epochs: int, hook: EarlyStopping, resume: bool = False) -> dict:
    torch.manual_seed(0)
    model = tiny_model()
    images, labels = tiny_data(32)
    val_images, val_labels = tiny_data(16, seed=1)
    loaders = Loaders(TinyLoader(images, labels, 8, seed=3),
                      TinyLoader(val_images, val_labels, 8, shuffle=False),
                      TinyLoader(val_images, val_labels, 8, shuffle=False), num_classes=4)
    optimizer = build_optimizer(model, "sgd", lr=0.2, weight_decay=0.0, momentum=0.9)
    schedule, plateau = build_schedulers(optimizer=optimizer, epochs=8,
                                         steps_per_epoch=len(loaders.train), name="constant")
    state = load_checkpoint(run_dir / "checkpoints" / "last.pt") if resume else None
    settings = TrainerConfig(epochs=epochs, log_every_n_steps=1, progress=False)
    return fit(model, optimizer, schedule, plateau, loaders, torch.device("cpu"), run_dir,
               settings, resume_state=state, identity=RunIdentity(model_name="tiny"),
               handle_signals=False, epoch_hooks=[hook])


def never_improving() -> EarlyStopping:
    """Improvements must beat 100 (the loss never drops that much): stops at 1 + patience."""
    return EarlyStopping("train/loss", patience=3, min_delta=100.0)


@pytest.mark.parametrize("interrupted_after", [2, 4])
def test_a_resumed_run_stops_at_the_same_epoch(tmp_path: Path, interrupted_after: int) -> None:
    reference = run(tmp_path / "reference", 8, never_improving())
    assert (reference["status"], reference["epochs_done"]) == ("stopped_early", 4)

    # interrupted after epoch 2 (its last.pt, as a kill leaves it), then resumed
    part = tmp_path / "part"
    run(part, interrupted_after, never_improving())
    (part / "summary.json").unlink()  # as if killed before the summary
    resumed = run(part, 8, never_improving(), resume=True)
    assert (resumed["status"], resumed["epochs_done"]) == ("stopped_early", 4)
    assert resumed["test"] == reference["test"]
    saved = json.loads((part / "summary.json").read_text())
    assert saved["stop_reason"] == reference["stop_reason"]


def test_the_stop_is_in_the_checkpoint(tmp_path: Path) -> None:
    run(tmp_path, 8, never_improving())
    state = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["epoch"] == 4 and state["stop"]["status"] == "stopped_early"
    assert state["hooks"]["early_stopping"]["wait"] == 3
