"""Label smoothing and gradient accumulation in ``train_one_epoch`` (issue 14)."""

from __future__ import annotations

import copy

import pytest
import torch
from engine_fixtures import TinyLoader, tiny_data
from torch import nn

from defcon_exp.engine.fit_settings import TrainerConfig
from defcon_exp.engine.loop import StepContext, train_one_epoch
from defcon_exp.engine.optim import build_optimizer
from defcon_exp.engine.precision import grad_scaler
from defcon_exp.engine.schedulers import build_schedulers

CPU = torch.device("cpu")


def bn_free_net() -> nn.Module:
    """float64, no BatchNorm and no dropout: a batch's gradient is the mean of its images'."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(48, 16), nn.Tanh(), nn.Linear(16, 4)).double()


def context(model: nn.Module, batches_per_epoch: int, **options) -> StepContext:
    optimizer = build_optimizer(model, "sgd", lr=0.3, weight_decay=1e-3, momentum=0.9)
    schedule, _ = build_schedulers(
        "cosine", optimizer=optimizer, epochs=3, steps_per_epoch=batches_per_epoch, warmup_epochs=1
    )
    return StepContext(model, optimizer, schedule, None, grad_scaler("32", CPU), CPU,
                       TrainerConfig(**options))


def test_label_smoothing_loss_is_the_closed_form():
    torch.manual_seed(0)
    logits, labels, eps, k = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4, 0]), 0.1, 5
    log_p = logits.log_softmax(1)
    closed = -((1 - eps) * log_p.gather(1, labels[:, None]).squeeze(1) + eps / k * log_p.sum(1)).mean()
    torch.testing.assert_close(nn.CrossEntropyLoss(label_smoothing=eps)(logits, labels), closed)


def test_train_one_epoch_uses_label_smoothing():
    images, labels = tiny_data(16)
    losses = {}
    for eps in (0.0, 0.3):
        model = bn_free_net()
        ctx = context(model, 1, label_smoothing=eps)
        ctx.optimizer.param_groups[0]["lr"] = 0.0
        ctx.schedule.base_lrs = [0.0]
        losses[eps], _ = train_one_epoch(ctx, TinyLoader(images.double(), labels, 16), 1, 0, 0)
    with torch.no_grad():
        logits = bn_free_net()(images.double())
    expected = nn.CrossEntropyLoss(label_smoothing=0.3)(logits, labels).item()
    assert losses[0.3]["loss"] == pytest.approx(expected, rel=1e-6)  # the loop takes float32 logits
    assert losses[0.0]["loss"] != pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(("n_images", "micro", "accumulate"), [(48, 6, 4), (40, 6, 2)])
def test_accumulated_micro_batches_equal_one_big_batch(n_images, micro, accumulate):
    """N micro-batches of size b == one batch of N*b (incl. a short last group), with momentum,
    weight decay and a per-step schedule; the schedule advances once per optimiser step."""
    images, labels = tiny_data(n_images)
    images = images.double()
    big = micro * accumulate
    runs = {}
    for name, batch, acc in (("big", big, 1), ("accumulated", micro, accumulate)):
        model = bn_free_net()
        loader = TinyLoader(images, labels, batch, seed=5)
        steps = -(-len(loader) // acc)
        ctx = context(model, steps, accumulate_grad_batches=acc)
        step = 0
        lrs = []
        for epoch in range(3):
            loader.set_epoch(epoch)
            metrics, step = train_one_epoch(ctx, loader, len(loader), epoch, step)
            lrs.append(metrics["lr"])
        runs[name] = (copy.deepcopy(model.state_dict()), step, lrs, metrics)
    (w_big, step_big, lr_big, m_big), (w_acc, step_acc, lr_acc, m_acc) = runs["big"], runs["accumulated"]
    assert step_acc == step_big == 3 * -(-n_images // big)
    assert lr_acc == lr_big
    for key, value in w_big.items():
        # float64 net, but the loop takes the loss on float32 logits: agreement to ~1e-7
        torch.testing.assert_close(w_acc[key], value, rtol=1e-5, atol=1e-7)
    assert m_acc["count"] == m_big["count"] and m_acc["loss"] == pytest.approx(m_big["loss"], rel=0.2)


def test_accumulation_differs_from_stepping_every_micro_batch():
    """The equality above is not vacuous: stepping each micro-batch gives other weights."""
    images, labels = tiny_data(24)
    out = []
    for acc in (1, 4):
        model = bn_free_net()
        loader = TinyLoader(images.double(), labels, 6)
        ctx = context(model, -(-len(loader) // acc), accumulate_grad_batches=acc)
        train_one_epoch(ctx, loader, len(loader), 0, 0)
        out.append(model[1].weight.detach().clone())
    assert (out[0] - out[1]).abs().max() > 1e-3
