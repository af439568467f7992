"""Learning-rate schedules that are pure functions of the step, and a resumable plateau rule.

PyTorch's ``SequentialLR`` mis-handles a warm-up of length 0 and re-runs ``step()`` side
effects on resume, and ``ReduceLROnPlateau`` cannot live inside it. Here instead:

* :class:`LRSchedule` computes every lr as a pure function of the global iteration
  ``step`` (a fractional epoch ``step / steps_per_epoch``): a linear warm-up followed by
  ``constant``, ``step`` (MultiStepLR), ``cosine`` (CosineAnnealingLR) or
  ``warm_restarts`` (CosineAnnealingWarmRestarts, SGDR). Resuming only needs the step.
* :class:`Plateau` (ReduceLROnPlateau) keeps a multiplicative ``scale`` updated once per
  epoch from a monitored metric; the applied lr is ``schedule_lr * plateau.scale``.

Both keep their whole state in ``state_dict()`` as plain Python data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

SCHEDULE_NAMES: tuple[str, ...] = ("constant", "step", "cosine", "warm_restarts", "plateau")


class _PlainState:
    """``state_dict()``: every attribute as plain data (lists copied); ``load_state_dict``
    sets them back (the settings stored win over the constructor's)."""

    def state_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, list) else v) for k, v in vars(self).items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            setattr(self, key, value)


class LRSchedule(_PlainState):
    """Per-iteration learning rates as a pure function of the global step.

    Args:
        name: one of :data:`SCHEDULE_NAMES` (``plateau`` is ``constant`` here; the
            reduction is applied by :class:`Plateau`).
        base_lrs: the peak lr of each optimiser parameter group.
        epochs: total training epochs (warm-up included).
        steps_per_epoch: optimiser steps per epoch (batches per epoch).
        warmup_epochs: length of the linear warm-up, may be fractional; 0 disables it.
        warmup_start_factor: the warm-up starts at ``base_lr * warmup_start_factor``.
        milestones: epochs (counted after warm-up) where ``step`` multiplies by ``gamma``.
        gamma: decay factor of ``step``.
        T_max: half-period of ``cosine`` in epochs; ``None`` means ``epochs - warmup_epochs``.
        T_0: epochs of the first ``warm_restarts`` cycle.
        T_mult: cycle-length multiplier of ``warm_restarts`` (integer >= 1).
        eta_min: floor of ``cosine`` / ``warm_restarts``.
        interval: ``"step"`` (update every iteration) or ``"epoch"`` (hold the epoch-start
            value for the whole epoch, as PyTorch's per-epoch schedulers do).
    """

    def __init__(
        self,
        name: str,
        base_lrs: Sequence[float],
        epochs: int,
        steps_per_epoch: int,
        warmup_epochs: float = 0.0,
        warmup_start_factor: float = 0.1,
        milestones: Sequence[int] = (),
        gamma: float = 0.1,
        T_max: float | None = None,
        T_0: int = 50,
        T_mult: int = 2,
        eta_min: float = 0.0,
        interval: str = "step",
    ) -> None:
        if name not in SCHEDULE_NAMES:
            raise ValueError(f"unknown schedule {name!r}; valid: {', '.join(SCHEDULE_NAMES)}")
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        if interval not in ("step", "epoch"):
            raise ValueError(f"interval must be 'step' or 'epoch', got {interval!r}")
        if T_0 < 1 or T_mult < 1 or int(T_mult) != T_mult:
            raise ValueError(
                f"need T_0 >= 1 and integer T_mult >= 1, got T_0={T_0}, T_mult={T_mult}"
            )
        self.name = name
        self.base_lrs = [float(lr) for lr in base_lrs]
        self.epochs = int(epochs)
        self.steps_per_epoch = int(steps_per_epoch)
        self.warmup_epochs = float(warmup_epochs)
        self.warmup_start_factor = float(warmup_start_factor)
        self.milestones = sorted(int(m) for m in milestones)
        self.gamma = float(gamma)
        self.T_max = (
            float(T_max) if T_max is not None else max(self.epochs - self.warmup_epochs, 1e-12)
        )
        self.T_0 = int(T_0)
        self.T_mult = int(T_mult)
        self.eta_min = float(eta_min)
        self.interval = interval
        self.step_count = 0  # optimiser steps taken so far

    # ------------------------------------------------------------------ the pure function
    def factor_for(self, base_lr: float, epoch: float) -> float:
        """The lr for one group at fractional ``epoch`` (epochs since the start of training)."""
        if self.warmup_epochs > 0 and epoch < self.warmup_epochs:
            frac = epoch / self.warmup_epochs
            return base_lr * (self.warmup_start_factor + (1.0 - self.warmup_start_factor) * frac)
        t = epoch - self.warmup_epochs
        if self.name in ("constant", "plateau"):
            return base_lr
        if self.name == "step":
            passed = sum(1 for m in self.milestones if t >= m - 1e-9)
            return base_lr * self.gamma**passed
        if self.name == "cosine":  # held at eta_min past T_max (e.g. a resumed, extended run)
            progress = min(t, self.T_max) / self.T_max
            return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * progress)) / 2
        # warm_restarts (SGDR), closed form as torch.optim.lr_scheduler.CosineAnnealingWarmRestarts
        if self.T_mult == 1:
            t_cur, t_i = t % self.T_0, float(self.T_0)
        else:

            def cycle_start(k: int) -> float:
                return self.T_0 * (self.T_mult**k - 1) / (self.T_mult - 1)

            n = max(0, math.floor(math.log(t / self.T_0 * (self.T_mult - 1) + 1, self.T_mult)))
            while n > 0 and t < cycle_start(n):  # guard float error at cycle boundaries
                n -= 1
            while t >= cycle_start(n + 1):
                n += 1
            start = cycle_start(n)
            t_cur, t_i = t - start, float(self.T_0 * self.T_mult**n)
        return self.eta_min + (base_lr - self.eta_min) * (1 + math.cos(math.pi * t_cur / t_i)) / 2

    def lrs_at(self, step: int) -> list[float]:
        """Learning rates of every parameter group at global optimiser ``step``."""
        epoch = step / self.steps_per_epoch
        if self.interval == "epoch":
            epoch = float(math.floor(epoch + 1e-9))
        return [self.factor_for(lr, epoch) for lr in self.base_lrs]

    # ------------------------------------------------------------------ optimiser side
    def apply(
        self, optimizer: torch.optim.Optimizer, scale: float = 1.0, min_lr: float = 0.0
    ) -> list[float]:
        """Write the lrs for the current ``step_count`` (times ``scale``) into ``optimizer``."""
        lrs = self.lrs_at(self.step_count)
        if scale != 1.0:  # a plateau reduction is active: floor it at min_lr, as torch does
            lrs = [max(lr * scale, min_lr) for lr in lrs]
        for group, lr in zip(optimizer.param_groups, lrs, strict=True):
            group["lr"] = lr
        return lrs

    def step(self) -> None:
        """Advance by one optimiser step (call after ``optimizer.step()``)."""
        self.step_count += 1


class Plateau(_PlainState):
    """Reduce-on-plateau as a multiplicative lr ``scale``, updated once per epoch.

    Same rule as ``torch.optim.lr_scheduler.ReduceLROnPlateau`` (``threshold_mode="rel"``):
    after more than ``patience`` epochs without improvement the scale is multiplied by
    ``factor``, then ``cooldown`` epochs are ignored. ``min_lr`` is an absolute floor that
    the caller applies when writing lrs.
    """

    def __init__(
        self,
        monitor: str = "val/loss",
        mode: str = "min",
        factor: float = 0.1,
        patience: int = 10,
        threshold: float = 1e-4,
        cooldown: int = 0,
        min_lr: float = 0.0,
    ) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"plateau mode must be 'min' or 'max', got {mode!r}")
        if not 0.0 < factor < 1.0:
            raise ValueError(f"plateau factor must be in (0, 1), got {factor}")
        self.monitor = monitor
        self.mode = mode
        self.factor = float(factor)
        self.patience = int(patience)
        self.threshold = float(threshold)
        self.cooldown = int(cooldown)
        self.min_lr = float(min_lr)
        self.scale = 1.0
        self.best: float | None = None
        self.num_bad_epochs = 0
        self.cooldown_counter = 0
        self.num_reductions = 0

    def _improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best * (1.0 - self.threshold)
        return value > self.best * (1.0 + self.threshold)

    def update(self, value: float) -> bool:
        """Feed one epoch's monitored value; returns True when the lr was reduced."""
        if self._improved(value):
            self.best = float(value)
            self.num_bad_epochs = 0
        else:
            self.num_bad_epochs += 1
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.num_bad_epochs = 0
        if self.num_bad_epochs > self.patience:
            self.scale *= self.factor
            self.num_reductions += 1
            self.cooldown_counter = self.cooldown
            self.num_bad_epochs = 0
            return True
        return False


def build_schedulers(
    name: str,
    *,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    steps_per_epoch: int,
    plateau: dict[str, Any] | None = None,
    **schedule_params: Any,
) -> tuple[LRSchedule, Plateau | None]:
    """Build the schedule (and the plateau rule when ``name == "plateau"``) for ``optimizer``.

    ``schedule_params``: the keyword arguments of :class:`LRSchedule` (``warmup_epochs``,
    ``milestones``, ``T_0``...). The peak lrs are read from the optimiser's parameter groups
    (``initial_lr`` if set).
    """
    base_lrs = [group.get("initial_lr", group["lr"]) for group in optimizer.param_groups]
    for group, lr in zip(optimizer.param_groups, base_lrs, strict=True):
        group["initial_lr"] = lr
    schedule = LRSchedule(name, base_lrs, epochs, steps_per_epoch, **schedule_params)
    rule = Plateau(**(plateau or {})) if name == "plateau" else None
    return schedule, rule
