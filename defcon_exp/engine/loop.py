"""One training epoch — device-agnostic, model-agnostic (the evaluation pass:
:mod:`defcon_exp.engine.evaluate`, re-exported here).

Batches are moved with ``non_blocking=True``; losses and hits accumulate on the device and
are read back once per log interval and once per epoch. A non-finite loss is flagged on
the device and raised as :class:`NonFiniteLossError` at the next read-back, before any
checkpoint of the corrupted weights can be written.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from defcon_exp.engine.ema import WeightEMA
from defcon_exp.engine.evaluate import evaluate
from defcon_exp.engine.fit_settings import TrainerConfig
from defcon_exp.engine.metrics import MetricAccumulator
from defcon_exp.engine.mixing import Mixer
from defcon_exp.engine.precision import autocast
from defcon_exp.engine.progress import batch_bar
from defcon_exp.engine.schedulers import LRSchedule, Plateau
from defcon_exp.engine.speedups import memory_format

__all__ = ["EpochPosition", "NonFiniteLossError", "StepContext", "StopRequested", "evaluate",
           "train_one_epoch"]

#: ``on_log(global_step, {"train/loss_step": ..., "train/lr": ...})`` of a log interval
LogFn = Callable[[int, dict[str, float]], None]
#: ``on_checkpoint(position)``: a mid-epoch checkpoint is due
CheckpointFn = Callable[["EpochPosition"], None]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN/Inf; names the global step."""


@dataclass
class EpochPosition:
    """Where a training epoch stands after ``batches_done`` steps (for mid-epoch checkpoints).

    ``metrics`` is :meth:`MetricAccumulator.state_dict` of the epoch's running metrics.
    """

    epoch: int
    batches_done: int
    global_step: int
    metrics: dict[str, Any]


class StopRequested(Exception):
    """Raised by :func:`train_one_epoch` after a finished step when ``ctx.stop_requested()``."""

    def __init__(self, position: EpochPosition) -> None:
        super().__init__(f"stop requested at global step {position.global_step}")
        self.position = position


@dataclass
class StepContext:
    """Everything one optimisation step needs besides the batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    plateau: Plateau | None
    scaler: torch.amp.GradScaler
    device: torch.device
    #: ``trainer.precision`` (parsed: :mod:`defcon_exp.engine.precision`; the scaler must
    #: match), ``channels_last`` (the model should be converted too), ``grad_clip_norm``,
    #: ``log_every_n_steps``, ``checkpoint_every_n_steps`` (0 = only at epoch ends),
    #: ``label_smoothing`` and ``accumulate_grad_batches`` (the schedule counts optimiser steps)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    progress: bool = False
    #: polled after every step; True -> finish cleanly with :class:`StopRequested`
    stop_requested: Callable[[], bool] | None = None
    #: distributed runs: ``all_reduce(tensor, "sum"|"min")`` over all processes (None = single
    #: process); makes epoch metrics global and the NaN check agree on every rank
    all_reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None
    #: Mixup/CutMix of training batches (:mod:`defcon_exp.engine.mixing`); None = off
    mixer: Mixer | None = None
    #: weight EMA updated after every optimiser step (:mod:`defcon_exp.engine.ema`)
    ema: WeightEMA | None = None


def train_one_epoch(
    ctx: StepContext,
    loader: Iterable,
    num_batches: int,
    epoch: int,
    global_step: int,
    on_log: LogFn | None = None,
    start_batch: int = 0,
    resume_metrics: dict[str, Any] | None = None,
    on_checkpoint: CheckpointFn | None = None,
) -> tuple[dict[str, float], int]:
    """Train over ``loader`` (batches ``(images: Tensor[B,3,H,W], labels: Tensor[B])``).

    One optimiser step (one global step) per ``trainer.accumulate_grad_batches`` batches (the
    epoch's last group may be shorter); the lr is set from ``ctx.schedule`` (times the plateau
    scale) before every step. ``on_log(global_step, {"train/loss_step", "train/lr"})`` is
    called every ``log_every_n_steps`` steps (one host sync each).

    Mid-epoch resume: ``start_batch`` batches of the epoch were already trained (the loader's
    order is a pure function of seed and epoch, so they are skipped, not re-drawn) and
    ``resume_metrics`` holds their running metrics. ``on_checkpoint(position)`` is called
    every ``trainer.checkpoint_every_n_steps`` global steps (not on the epoch's last batch), after
    the NaN check, so a checkpoint never holds weights trained on a non-finite loss.

    Returns:
        The epoch's ``{"loss", "top1", "top5", "count"}`` and the new global step; with
        ``ctx.mixer``, ``top1_dominant`` / ``top5_dominant`` instead of ``top1`` / ``top5``
        (hits against each mixed image's dominant label).

    Raises:
        NonFiniteLossError: naming the first step whose loss was NaN/Inf.
        StopRequested: ``ctx.stop_requested()`` became true; carries the :class:`EpochPosition`.
    """
    ctx.model.train()
    run = _EpochRun(ctx, epoch, global_step)
    if resume_metrics is not None:
        run.metrics.load_state_dict(resume_metrics)
    batches = itertools.islice(loader, start_batch, None) if start_batch > 0 else loader
    bar = batch_bar(batches, num_batches - start_batch, f"epoch {epoch + 1}", ctx.progress)
    for batch_idx, (images, labels) in enumerate(bar, start=start_batch):
        last_batch = batch_idx + 1 == num_batches
        if not run.train_batch(images, labels, batch_idx, last_batch):
            continue  # the accumulation group is still open
        if run.global_step % max(1, ctx.trainer.log_every_n_steps) == 0 or last_batch:
            run.read_back(batch_idx, bar, on_log)
        run.pause_if_due(batch_idx, last_batch, on_checkpoint)
    return run.finish(num_batches)


class _EpochRun:
    """The running state of one :func:`train_one_epoch` call.

    It stays on the device between log intervals — the epoch's metric sums (``Tensor[M]``,
    :class:`MetricAccumulator`), the interval's loss sum (float64 ``Tensor[]``), the global
    step (int64 ``Tensor[]``) and the first step with a non-finite loss (int64 ``Tensor[]``,
    -1: none) — so a batch costs no host sync.
    """

    def __init__(self, ctx: StepContext, epoch: int, global_step: int) -> None:
        self.ctx, self.epoch, self.global_step = ctx, epoch, global_step
        self.criterion = nn.CrossEntropyLoss(label_smoothing=ctx.trainer.label_smoothing)
        self.metrics = MetricAccumulator(ctx.device)
        self.interval_loss = torch.zeros((), dtype=torch.float64, device=ctx.device)
        self.interval_count = 0  # batches summed into interval_loss
        self.step_on_device = torch.full((), global_step, dtype=torch.int64, device=ctx.device)
        self.first_bad_step = torch.full((), -1, dtype=torch.int64, device=ctx.device)
        self.lrs = _apply_lr(ctx, global_step)
        self.group_images = 0  # images in the open accumulation group
        self.image_format = memory_format(ctx.trainer.channels_last)

    def train_batch(self, images: Tensor, labels: Tensor, batch_idx: int, last_batch: bool) -> bool:
        """Forward and backward of ``images`` ``Tensor[B, 3, H, W]`` with ``labels``
        ``Tensor[B]``, opening a group first (lr, zeroed gradients); True if the batch closed
        its group with an optimiser step."""
        ctx = self.ctx
        images = images.to(ctx.device, non_blocking=True, memory_format=self.image_format)
        labels = labels.to(ctx.device, non_blocking=True)
        closes = last_batch or (batch_idx + 1) % ctx.trainer.accumulate_grad_batches == 0
        if self.group_images == 0:
            self.lrs = _apply_lr(ctx, self.global_step)
            ctx.optimizer.zero_grad(set_to_none=True)
        loss, logits, hit_labels = _forward_backward(
            ctx, self.criterion, images, labels, self.epoch, batch_idx, closes
        )
        self.group_images += labels.shape[0]
        first_bad = (~torch.isfinite(loss.detach())) & (self.first_bad_step < 0)
        self.first_bad_step = torch.where(first_bad, self.step_on_device, self.first_bad_step)
        self.metrics.update(logits.detach().float(), hit_labels, loss.detach())
        self.interval_loss += loss.detach().double()
        self.interval_count += 1
        if closes:
            self._close_group()
        return closes

    def _close_group(self) -> None:
        """The optimiser step on the open group's gradients: one global step more."""
        _optimizer_step(self.ctx, self.group_images)
        self.group_images = 0
        self.step_on_device += 1
        self.global_step += 1
        self.ctx.schedule.step_count = self.global_step

    def read_back(self, batch_idx: int, bar: Any, on_log: LogFn | None) -> None:
        """The log interval's one host sync — the agreed first bad step, the interval's loss
        sum and the running metric sums as one ``Tensor[2 + M]`` — then the NaN check, the
        bar's postfix and ``on_log``."""
        agreed_bad = self._agreed_bad_step().double().view(1)
        read = torch.cat([agreed_bad, self.interval_loss.view(1), self.metrics.sums])  # [2 + M]
        bad, loss_sum, _, top1_sum, _ = read.tolist()
        _raise_if_nonfinite(int(bad), self.epoch, batch_idx)
        step_loss, lr = loss_sum / self.interval_count, self.lrs[0]
        self.interval_loss.zero_()
        self.interval_count = 0
        if self.ctx.progress:
            top1 = 100.0 * top1_sum / max(self.metrics.count, 1)
            bar.set_postfix(loss=f"{step_loss:.3f}", train_top1=f"{top1:.1f}%", lr=f"{lr:.3g}")
        if on_log is not None:
            on_log(self.global_step, {"train/loss_step": step_loss, "train/lr": lr})

    def pause_if_due(self, batch_idx: int, last: bool, on_checkpoint: CheckpointFn | None) -> None:
        """After a step (``last``: on the epoch's last batch): raise :class:`StopRequested` if a
        stop was requested, or call ``on_checkpoint`` at a periodic step — after a NaN check."""
        stop = self.ctx.stop_requested is not None and self.ctx.stop_requested()
        every = self.ctx.trainer.checkpoint_every_n_steps
        periodic = on_checkpoint is not None and every > 0 and self.global_step % every == 0
        # on the last batch the epoch finishes normally; fit() stops after its checkpoint
        if last or not (stop or periodic):
            return
        _raise_if_nonfinite(int(self._agreed_bad_step().item()), self.epoch, batch_idx)
        running = self.metrics.state_dict()
        position = EpochPosition(self.epoch, batch_idx + 1, self.global_step, running)
        if stop:
            raise StopRequested(position)
        assert on_checkpoint is not None
        on_checkpoint(position)

    def finish(self, num_batches: int) -> tuple[dict[str, float], int]:
        """Step on a group the loader left open, check the tail, read out the epoch's metrics
        (one sync); :func:`train_one_epoch`'s return value."""
        if self.group_images:  # the loader yielded fewer batches than len(): step on the open group
            self._close_group()
        if self.interval_count:  # ... and check the tail too
            _raise_if_nonfinite(int(self._agreed_bad_step().item()), self.epoch, num_batches - 1)
        result = self.metrics.compute(self.ctx.all_reduce)
        result["lr"] = self.lrs[0]
        if self.ctx.mixer is not None:
            result = {f"{k}_dominant" if k in ("top1", "top5") else k: v for k, v in result.items()}
        return result, self.global_step

    def _agreed_bad_step(self) -> Tensor:
        """The first step with a non-finite loss on ANY process (int64 ``Tensor[]``, -1: none),
        so that all ranks raise at the same check; ``first_bad_step`` in a single process."""
        if self.ctx.all_reduce is None:
            return self.first_bad_step
        none = torch.iinfo(torch.int64).max
        none_as_max = torch.where(self.first_bad_step < 0, none, self.first_bad_step)
        earliest = self.ctx.all_reduce(none_as_max, "min")
        return torch.where(earliest == none, -1, earliest)


def _apply_lr(ctx: StepContext, global_step: int) -> list[float]:
    """Set the lr of optimiser step ``global_step`` (schedule x plateau scale); the lrs."""
    scale = ctx.plateau.scale if ctx.plateau is not None else 1.0
    min_lr = ctx.plateau.min_lr if ctx.plateau is not None else 0.0
    ctx.schedule.step_count = global_step
    return ctx.schedule.apply(ctx.optimizer, scale, min_lr)


def _forward_backward(
    ctx: StepContext, criterion: nn.Module, images: Tensor, labels: Tensor, epoch: int,
    batch_idx: int, closes: bool,
) -> tuple[Tensor, Tensor, Tensor]:
    """Forward and backward of one (micro-)batch; ``(mean loss, logits [B, K], the labels
    its hits count against [B])``. Accumulating, the gradient is of the loss SUM (divided
    by the group's images at the step), so unequal micro-batches still weigh per image."""
    hit_labels = labels
    mixed = None
    if ctx.mixer is not None:
        mixed = ctx.mixer(images, labels, epoch, batch_idx)
        images, hit_labels = mixed.images, mixed.dominant
    # DDP: all-reduce the gradients only on the group's last micro-batch
    no_sync = getattr(ctx.model, "no_sync", None)
    sync = contextlib.nullcontext() if closes or no_sync is None else no_sync()
    with sync:
        with autocast(ctx.trainer.precision, ctx.device):
            logits = ctx.model(images)  # [B, K]
            loss = (mixed.loss(criterion, logits.float()) if mixed is not None
                    else criterion(logits.float(), labels))
        backward = loss if ctx.trainer.accumulate_grad_batches == 1 else loss * labels.shape[0]
        ctx.scaler.scale(backward).backward()
    return loss, logits, hit_labels


def _optimizer_step(ctx: StepContext, group_images: int) -> None:
    """Clip (optionally) and step; then fold the new weights into the EMA."""
    optimizer = ctx.optimizer
    if ctx.trainer.accumulate_grad_batches > 1:
        grads = [p.grad for group in optimizer.param_groups for p in group["params"]
                 if p.grad is not None]
        if grads:
            torch._foreach_div_(grads, float(group_images))
    if ctx.trainer.grad_clip_norm is not None:
        ctx.scaler.unscale_(optimizer)
        nn.utils.clip_grad_norm_(ctx.model.parameters(), ctx.trainer.grad_clip_norm)
    ctx.scaler.step(optimizer)
    ctx.scaler.update()
    if ctx.ema is not None:
        ctx.ema.update()


def _raise_if_nonfinite(bad: int, epoch: int, batch_idx: int) -> None:
    if bad >= 0:
        raise NonFiniteLossError(
            f"training loss became NaN/Inf at global step {bad} (epoch {epoch + 1}, detected by "
            f"batch {batch_idx + 1}); stopping without saving. checkpoints/last.pt (if any) is the "
            f"last good state (end of epoch {epoch}, or a later trainer.checkpoint_every_n_steps "
            "checkpoint). Try a lower optim.lr, trainer.grad_clip_norm=5 or "
            "scheduler.warmup_epochs=1."
        )
