"""A whole run: epochs, evaluation, plateau, epoch hooks, checkpoints, records, summary.

The parts, one job each: :mod:`~defcon_exp.engine.fit_parts` (the run's objects, built from
``fit``'s arguments, and the mid-epoch save), :mod:`~defcon_exp.engine.run_state`
(checkpoint payload, finite check, restore), :mod:`~defcon_exp.engine.records` (CSV,
TensorBoard, summary), :mod:`~defcon_exp.engine.preemption` (SIGTERM/SIGINT stop cleanly
with a checkpoint), and epoch hooks (:mod:`~defcon_exp.engine.hooks`) passed in by the
caller. Resuming skips the interrupted epoch's finished batches (the data order is a pure
function of seed and epoch) and restores the RNG states, so it is exact.
"""

from __future__ import annotations

import logging
import math
import signal
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defcon_exp.engine import distributed
from defcon_exp.engine.fit_parts import FitParts
from defcon_exp.engine.fit_settings import (
    Loaders,
    RunIdentity,
    TrainerConfig,
    epoch_line,
    monitor_value,
)
from defcon_exp.engine.hooks import EpochHook, StopRun
from defcon_exp.engine.keep import apply_keep_policy
from defcon_exp.engine.loop import NonFiniteLossError, StopRequested, evaluate, train_one_epoch
from defcon_exp.engine.metrics import METRIC_NAMES
from defcon_exp.engine.preemption import TrainingInterrupted, stop_on_signals
from defcon_exp.engine.progress import logging_through_bars
from defcon_exp.engine.records import epoch_row, summary_payload
from defcon_exp.engine.schedulers import LRSchedule, Plateau

__all__ = ["TrainingInterrupted", "fit", "stop_on_signals"]

log = logging.getLogger(__name__)


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: LRSchedule,
    plateau: Plateau | None,
    loaders: Loaders,
    device: torch.device,
    run_dir: str | Path,
    trainer: TrainerConfig,
    resume_state: Mapping[str, Any] | None = None,
    *,
    identity: RunIdentity | None = None,
    handle_signals: bool = True,
    forward_model: nn.Module | None = None,
    epoch_hooks: Sequence[EpochHook] = (),
) -> dict[str, Any]:
    """Train ``model`` for ``trainer.epochs`` epochs writing everything under ``run_dir``.

    ``trainer``: the typed ``trainer`` group, its ``precision`` parsed
    (:func:`~defcon_exp.engine.precision.parse_precision`); ``identity``: the run's name,
    config, hparams, seed... (default: a model named ``model``).

    ``forward_model`` (default ``model``) runs every forward pass — e.g. ``model`` wrapped in
    DistributedDataParallel or compiled — while ``model`` stays the raw module whose
    ``state_dict`` goes into checkpoints (plain keys). ``resume_state``: a loaded checkpoint
    to continue (this is the only place its states are restored). ``epoch_hooks`` run after
    each epoch's evaluation; one may end the run with :class:`~defcon_exp.engine.hooks.StopRun`.

    Distributed (``torchrun``): call on every rank; metrics are summed over ranks, the ranks
    agree on NaN and signal stops, and only rank 0 writes and shows bars.

    Returns the summary dict also written to ``run_dir/summary.json``.
    """
    run = _Fit(model, optimizer, schedule, plateau, loaders, device, Path(run_dir), trainer,
               identity or RunIdentity(), forward_model)
    run.store.hooks = [h for h in epoch_hooks if hasattr(h, "state_key")]
    if resume_state is not None:
        run.state = run.store.restore(resume_state, run.state.split)
        run.log_resumed()
    with stop_on_signals(handle_signals) as received, logging_through_bars(run.show):
        # distributed: a tiny collective every log interval, so all ranks stop at the same step
        agreement = distributed.SignalAgreement(received, max(1, trainer.log_every_n_steps))
        run.open(resume_state is not None, agreement)
        try:
            return run.epochs(epoch_hooks)
        finally:
            run.close()


class _Fit(FitParts):
    """The procedure of one :func:`fit` call: epochs, evaluation, end-of-epoch bookkeeping,
    the test and the summary (its objects: :class:`~defcon_exp.engine.fit_parts.FitParts`)."""

    def train_epoch(self, epoch: int) -> dict[str, float]:
        """One training epoch (continuing a mid-epoch checkpoint); its metrics."""
        train = self.loaders.train
        if hasattr(train, "set_epoch"):
            train.set_epoch(epoch)
        position = self.state.position if epoch == self.state.epoch else None
        self.state.position = None
        t_epoch = time.perf_counter()
        try:
            metrics, self.state.global_step = train_one_epoch(
                self.ctx, train, len(train), epoch, self.state.global_step,
                on_log=lambda step, values: self.records.step(values, step),
                start_batch=int(position["batches_done"]) if position else 0,
                # saved sums are global: rank 0 carries them, the others start at zero
                resume_metrics=position["metrics"] if position and self.main else None,
                on_checkpoint=self.save_position,
            )
        except StopRequested as stop:
            ckpt = self.save_position(stop.position)
            self.records.flush()
            distributed.barrier()  # no rank exits (and makes torchrun kill rank 0) before the write
            raise self.interrupted(
                self.received.last or signal.SIGTERM, ckpt,
                f"at global step {stop.position.global_step} (epoch {epoch + 1}, "
                f"batch {stop.position.batches_done}/{len(train)})",
            ) from None
        metrics["seconds"] = time.perf_counter() - t_epoch
        # images trained in THIS process: a resumed epoch's earlier batches do not count
        resumed = int(position["metrics"]["count"]) if position else 0
        metrics["images"] = int(metrics["count"]) - resumed
        return metrics

    def evaluate(self, loader: Any) -> dict[str, float]:
        """The raw weights' metrics; with EMA also the averaged weights' as ``ema_<name>``."""
        t = self.trainer

        def metrics_of(model: nn.Module) -> dict[str, float]:
            return evaluate(  # looked up here, at the call: tests replace this module's evaluate
                model, loader, self.device, t.precision, t.channels_last, self.reduce,
                static_shapes=bool(t.compile),  # pad partial batches: no recompiles
            )

        metrics = metrics_of(self.forward_model)
        if self.ema is not None:
            distributed.broadcast_buffers(self.ema.module)  # rank 0's averaged statistics
            averaged = metrics_of(self.ema.module)
            metrics.update({f"ema_{name}": averaged[name] for name in METRIC_NAMES})
        return metrics

    def end_epoch(
        self, epoch: int, metrics: dict[str, dict[str, float]], hooks: Sequence[EpochHook]
    ) -> StopRun | None:
        """Plateau, best, records, hooks and checkpoints after ``epoch`` (0-based)."""
        split = self.state.split
        if not math.isfinite(metrics[split]["loss"]):
            raise NonFiniteLossError(
                f"the {split} loss became NaN/Inf after epoch {epoch + 1}; stopping without saving "
                "this epoch: checkpoints/last.pt (if any) is the last good state. Try a lower "
                "optim.lr, trainer.grad_clip_norm=5 or scheduler.warmup_epochs=1."
            )
        if self.plateau is not None:
            tag, value = monitor_value(self.plateau.monitor, metrics)
            if self.plateau.update(value):
                log.info("plateau on %s: lr scale now %.3g", tag, self.plateau.scale)
        improved = self.state.update_best(epoch + 1, metrics[split], self.select)
        train = metrics["train"]
        self.state.train_images += train["images"]
        self.state.train_seconds += train["seconds"]
        step = self.state.global_step
        row = epoch_row(epoch + 1, step, metrics, train["seconds"], train["images"])
        self.records.epoch(row, metrics, step)
        stop = None
        for hook in hooks:
            try:
                hook(epoch + 1, step, metrics, self.records)
            except StopRun as err:
                stop = err
        self.records.flush()
        self.state.epoch = epoch + 1
        if stop is not None:  # in the checkpoint: a resume after it trains no further epoch
            self.state.stop = {"reason": stop.reason, "status": stop.status}
        if improved:
            self.store.save("best.pt", self.store.payload(self.state, self.wall(), full=False))
        last = self.store.save("last.pt", self.store.payload(self.state, self.wall(), full=True))
        self._log_epoch(epoch, metrics, row["images_per_s"])
        signum = self.received()
        if signum is not None and epoch + 1 < self.trainer.epochs and stop is None:
            raise self.interrupted(signum, last, f"after epoch {epoch + 1}")
        return stop

    def _log_epoch(self, epoch: int, metrics: dict[str, dict[str, float]], rate: float) -> None:
        train, split = metrics["train"], self.state.split
        log.info("%s", epoch_line(epoch + 1, self.trainer.epochs, metrics, split, rate))
        self.ebar.update(1)
        self.ebar.set_postfix(loss=f"{train['loss']:.3f}", lr=f"{train['lr']:.3g}",
                              **{f"{split}_top1": f"{metrics[split]['top1']:.1f}%"})

    def epochs(self, hooks: Sequence[EpochHook]) -> dict[str, Any]:
        """The epoch loop, then the test evaluation and the summary."""
        last_eval: dict[str, dict[str, float]] = {}
        stop = StopRun(**self.state.stop) if self.state.stop else None
        for epoch in range(self.state.epoch, self.trainer.epochs if stop is None else 0):
            metrics = {"train": self.train_epoch(epoch)}
            distributed.broadcast_buffers(self.model)  # every rank evaluates rank 0's weights
            metrics[self.state.split] = self.evaluate(self.eval_loader)
            last_eval = metrics
            stop = self.end_epoch(epoch, metrics, hooks)
            if stop is not None:
                log.info("stopped after epoch %d by a hook: %s", epoch + 1, stop.reason)
                break
        self.ebar.close()
        if not last_eval:  # resumed with only the test left: the last epoch's evaluation again
            # (the checkpoint holds its final weights, so the summary's val block is the same)
            last_eval = {self.state.split: self.evaluate(self.eval_loader)}
        reuse = self.loaders.val is None and "test" in last_eval  # the epochs evaluated test
        test = last_eval["test"] if reuse else self.evaluate(self.loaders.test)
        return self.finish(test, last_eval, stop)

    def finish(
        self, test: Mapping[str, float], last_eval: Mapping[str, Any], stop: StopRun | None
    ) -> dict[str, Any]:
        state = self.state
        seconds = state.train_seconds
        weights: dict[str, Any] = {"weights": self.select}
        if self.ema is not None:  # the headline is the selected weights'; both are kept
            weights["test_raw"] = {name: test[name] for name in (*METRIC_NAMES, "count")}
            weights["test_ema"] = {name: test[f"ema_{name}"] for name in METRIC_NAMES}
            if self.select == "ema":
                test = {**weights["test_ema"], "count": test["count"]}
        summary = summary_payload(
            self.identity.model_name, test, state.best, last_eval, {
                "num_params": self.num_params,
                "epochs": self.trainer.epochs,
                "epochs_done": state.epoch,
                "global_step": state.global_step,
                "wall_time_s": self.wall(),
                "images_per_s": state.train_images / seconds if seconds > 0 else None,
                "run_dir": str(self.run_dir),
                "status": "finished" if stop is None else stop.status,
                **self.identity.summary_extra,
                **({"stop_reason": stop.reason} if stop is not None else {}),
                **weights,
            },
        )
        self.records.finish(summary, self.identity.hparams, state.global_step)
        if self.main:
            slim = self.store.payload(state, self.wall(), full=False)
            store = self.store
            apply_keep_policy(self.trainer.keep_checkpoints, store.ckpt_dir, slim, store.save)
        log.info("test top1 %.2f top5 %.2f loss %.4f (%d images) | summary: %s",
                 *(test[name] for name in ("top1", "top5", "loss", "count")),
                 self.run_dir / "summary.json")
        return summary
