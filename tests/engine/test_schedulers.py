"""LRSchedule against PyTorch's schedulers, warm-up, plateau, and plain-data state."""

from __future__ import annotations

import itertools
import json

import pytest
import torch
from torch.optim.lr_scheduler import (
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    MultiStepLR,
    ReduceLROnPlateau,
)

from defcon_exp.engine.schedulers import LRSchedule, Plateau, build_schedulers


def torch_lrs(make, epochs: int, base_lr: float = 0.1) -> list[float]:
    """lr at the start of each epoch from a per-epoch PyTorch scheduler."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base_lr)
    sched = make(opt)
    lrs = []
    for _ in range(epochs):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@pytest.mark.parametrize("steps_per_epoch", [1, 7])
def test_warm_restarts_matches_torch(steps_per_epoch: int) -> None:
    expected = torch_lrs(lambda o: CosineAnnealingWarmRestarts(o, T_0=50, T_mult=2, eta_min=1e-4), 400)
    sched = LRSchedule("warm_restarts", [0.1], 400, steps_per_epoch, T_0=50, T_mult=2, eta_min=1e-4)
    got = [sched.lrs_at(e * steps_per_epoch)[0] for e in range(400)]
    assert got == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_warm_restarts_t_mult_1_matches_torch() -> None:
    expected = torch_lrs(lambda o: CosineAnnealingWarmRestarts(o, T_0=7, T_mult=1), 50)
    sched = LRSchedule("warm_restarts", [0.1], 50, 1, T_0=7, T_mult=1)
    assert [sched.lrs_at(e)[0] for e in range(50)] == pytest.approx(expected, rel=1e-9)


def test_step_matches_multisteplr() -> None:
    expected = torch_lrs(lambda o: MultiStepLR(o, milestones=[3, 7, 12], gamma=0.2), 20)
    sched = LRSchedule("step", [0.1], 20, 5, milestones=[3, 7, 12], gamma=0.2)
    assert [sched.lrs_at(e * 5 + 2)[0] for e in range(20)] == pytest.approx(expected, rel=1e-12)


def test_cosine_matches_cosineannealinglr() -> None:
    expected = torch_lrs(lambda o: CosineAnnealingLR(o, T_max=30, eta_min=1e-3), 30)
    sched = LRSchedule("cosine", [0.1], 30, 4, eta_min=1e-3)
    assert [sched.lrs_at(e * 4)[0] for e in range(30)] == pytest.approx(expected, rel=1e-9)


def test_cosine_holds_eta_min_after_t_max() -> None:
    sched = LRSchedule("cosine", [0.1], 10, 1, eta_min=0.01)
    assert sched.lrs_at(10) == sched.lrs_at(15) == pytest.approx([0.01])


def test_step_interval_is_smooth_epoch_interval_is_held() -> None:
    per_step = LRSchedule("cosine", [0.1], 10, 4)
    per_epoch = LRSchedule("cosine", [0.1], 10, 4, interval="epoch")
    assert per_step.lrs_at(6)[0] < per_step.lrs_at(4)[0]  # decays inside epoch 1
    assert per_epoch.lrs_at(6) == per_epoch.lrs_at(4)


def test_linear_warmup_then_schedule() -> None:
    sched = LRSchedule("cosine", [0.2], 12, 10, warmup_epochs=2, warmup_start_factor=0.1)
    assert sched.lrs_at(0)[0] == pytest.approx(0.02)
    assert sched.lrs_at(10)[0] == pytest.approx(0.02 + 0.18 * 0.5)
    lrs = [sched.lrs_at(s)[0] for s in range(20)]
    assert all(b > a for a, b in itertools.pairwise(lrs))
    assert sched.lrs_at(20)[0] == pytest.approx(0.2)  # warm-up ends at the peak, cosine starts
    expected = torch_lrs(lambda o: CosineAnnealingLR(o, T_max=10), 10, base_lr=0.2)
    assert [sched.lrs_at(20 + 10 * e)[0] for e in range(10)] == pytest.approx(expected, rel=1e-9)


def test_zero_warmup_and_milestone_zero_are_safe() -> None:
    sched = LRSchedule("step", [0.1], 5, 2, warmup_epochs=0, milestones=[1], gamma=0.5)
    assert [sched.lrs_at(s)[0] for s in range(6)] == pytest.approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.05])


def test_unknown_schedule_lists_valid_names() -> None:
    with pytest.raises(ValueError, match=r"unknown schedule 'linear'.*warm_restarts"):
        LRSchedule("linear", [0.1], 5, 1)


def test_state_dict_is_plain_data_and_restores() -> None:
    sched = LRSchedule("warm_restarts", [0.1, 0.05], 100, 3, warmup_epochs=1, T_0=5)
    sched.step_count = 17
    state = sched.state_dict()
    json.dumps(state)  # plain data only
    fresh = LRSchedule("constant", [1.0], 1, 1)
    fresh.load_state_dict(state)
    assert fresh.lrs_at(fresh.step_count) == sched.lrs_at(17)


def test_plateau_lowers_lr_on_stall_like_torch() -> None:
    values = [1.0, 0.9, 0.9, 0.9, 0.9, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    reference = ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=2, threshold=1e-4)
    plateau = Plateau(mode="min", factor=0.5, patience=2, threshold=1e-4)
    for value in values:
        reference.step(value)
        plateau.update(value)
        assert plateau.scale == pytest.approx(opt.param_groups[0]["lr"])
    assert plateau.scale < 1.0
    json.dumps(plateau.state_dict())


def test_build_schedulers_with_plateau_applies_scale_and_floor() -> None:
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    schedule, plateau = build_schedulers("plateau", optimizer=opt, epochs=10, steps_per_epoch=2,
                                         plateau={"patience": 0, "factor": 0.1, "min_lr": 0.005})
    assert plateau is not None
    plateau.update(1.0)
    assert plateau.update(1.0)  # no improvement, patience 0 -> reduced
    assert schedule.apply(opt, plateau.scale, plateau.min_lr) == pytest.approx([0.01])
    plateau.update(1.0)
    assert schedule.apply(opt, plateau.scale, plateau.min_lr) == pytest.approx([0.005])
    _, none = build_schedulers("cosine", optimizer=opt, epochs=10, steps_per_epoch=2)
    assert none is None
