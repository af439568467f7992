"""Numerical faults (issue 6, point 6): NaN/Inf losses stop with the step named; clipping."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from engine_fixtures import NaNAfter, TinyLoader, tiny_data, tiny_model

from defcon_exp.engine.checkpoint import load_checkpoint
from defcon_exp.engine.fit import Loaders, fit
from defcon_exp.engine.fit_settings import TrainerConfig
from defcon_exp.engine.loop import NonFiniteLossError, StepContext, train_one_epoch
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.schedulers import build_schedulers


def loaders() -> Loaders:
    images, labels = tiny_data(48)
    val = TinyLoader(*tiny_data(16, seed=1), 8, shuffle=False)
    return Loaders(TinyLoader(images, labels, 8, seed=3), val, val, num_classes=4)


def test_inf_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(tmp_path: Path) -> None:
    torch.manual_seed(0)
    # class 0 gets -Inf logits: a +Inf (not NaN) loss from global step 7 (epoch 2, batch 2)
    inf_row = torch.tensor([float("inf"), 0.0, 0.0, 0.0])
    model = NaNAfter(tiny_model(), after=7, fault=lambda logits: logits - inf_row)
    optimizer = build_optimizer(model, "sgd", lr=0.1)
    schedule, plateau = build_schedulers("constant", optimizer=optimizer, epochs=3, steps_per_epoch=6)
    settings = TrainerConfig(epochs=3, log_every_n_steps=50, progress=False)
    with pytest.raises(NonFiniteLossError, match=r"NaN/Inf at global step 7 \(epoch 2") as info:
        fit(model, optimizer, schedule, plateau, loaders(), torch.device("cpu"), tmp_path, settings)
    assert "\n" not in str(info.value)
    ckpt = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert ckpt["epoch"] == 1 and ckpt["global_step"] == 6
    assert not (tmp_path / "summary.json").exists()


@pytest.mark.parametrize("clip", [None, 1e-3])
def test_grad_clip_norm_bounds_the_update(clip: float | None) -> None:
    torch.manual_seed(0)
    model = tiny_model()
    optimizer = build_optimizer(model, "sgd", lr=1.0, weight_decay=0.0, momentum=0.0)
    schedule, _ = build_schedulers("constant", optimizer=optimizer, epochs=1, steps_per_epoch=1)
    ctx = StepContext(model, optimizer, schedule, None, torch.amp.GradScaler("cpu", enabled=False),
                      torch.device("cpu"), TrainerConfig(grad_clip_norm=clip))
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    images, labels = tiny_data(8)
    train_one_epoch(ctx, [(images, labels * 0)], 1, 0, 0)
    step = torch.cat([p.detach().flatten() for p in model.parameters()]) - before
    if clip is None:
        assert step.norm() > 10 * 1e-3
    else:
        assert step.norm() <= clip * 1.0001
