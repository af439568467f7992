"""A whole run: epochs, validation, plateau, checkpoints, resume, records, summary.

Checkpoint keys (``checkpoints/last.pt``, every epoch): ``version``, ``model``,
``optimizer``, ``schedule``, ``plateau`` (or None), ``scaler``, ``epoch`` (epochs completed),
``global_step``, ``best`` (metric name, value, epoch, metrics), ``config`` (plain data),
``model_name``, ``num_classes``, ``num_params``, ``wall_time_s`` (all segments so far) and
``rng`` (tensors / plain lists) and ``position`` — None at an epoch end, else
``{"batches_done", "metrics"}`` of the interrupted epoch ``epoch`` (0-based: the epoch after
the ``epoch`` completed ones) for a mid-epoch checkpoint. ``checkpoints/best.pt`` holds the same minus
optimiser/scheduler/scaler/RNG state (it is for evaluation, not for resuming).

Pre-emption: while :func:`fit` runs (in the main thread) SIGTERM and SIGINT only set a flag;
the current step finishes, a full mid-epoch checkpoint is written, the resume command is
logged and :class:`TrainingInterrupted` is raised. A second SIGINT aborts at once
(``KeyboardInterrupt``). Under submitit (Hydra's SLURM launcher) its pre-emption/time-limit
signal (SIGUSR2) is handled the same way; the caller then hands it on to submitit's handler
(:func:`requeue_signal`). Resuming skips the epoch's finished batches (the data order is a
pure function of seed and epoch) and restores the RNG states, so it is exact.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from defcon_exp.engine import distributed
from defcon_exp.engine.attention_logging import AttentionHistograms
from defcon_exp.engine.checkpoint import CHECKPOINT_VERSION, load_model_state, save_checkpoint
from defcon_exp.engine.loop import (
    EpochPosition,
    StepContext,
    StopRequested,
    evaluate,
    train_one_epoch,
)
from defcon_exp.engine.precision import grad_scaler
from defcon_exp.engine.progress import epoch_bar, progress_enabled
from defcon_exp.engine.schedulers import LRSchedule, Plateau
from defcon_exp.engine.seed import capture_rng_state, restore_rng_state
from defcon_exp.engine.writers import MetricsCSV, TensorBoardLogger, write_json

log = logging.getLogger(__name__)


@dataclass
class FitSettings:
    """Plain-data trainer settings (``cfg.trainer`` plus run identity)."""

    epochs: int
    precision: str = "32"  # "32" | "bf16" | "16-mixed" (defcon_exp.engine.precision)
    channels_last: bool = False  # input batches in torch.channels_last (convert the model too)
    grad_clip_norm: float | None = None
    log_every_n_steps: int = 50
    progress: bool = True
    checkpoint_every_n_steps: int = 0
    #: TensorBoard attention histograms every n epochs (0 = off) on this many probe images
    histograms_every_n_epochs: int = 0
    histogram_images: int = 64
    handle_signals: bool = True
    model_name: str = "model"
    config: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)


@dataclass
class Loaders:
    """The data bundle's loaders (``val`` may be None) and class count."""

    train: Any
    val: Any | None
    test: Any
    num_classes: int


class TrainingInterrupted(RuntimeError):
    """SIGTERM/SIGINT stopped the run after a clean step; a resumable checkpoint was written."""

    def __init__(self, message: str, signum: int, checkpoint: Path) -> None:
        super().__init__(message)
        self.signum = signum
        self.checkpoint = checkpoint

    @property
    def exit_code(self) -> int:
        """The shell convention for death by signal: 128 + signal number (130, 143)."""
        return 128 + self.signum


def requeue_signal() -> int | None:
    """submitit's pre-emption/time-limit signal (``SIGUSR2``, or ``$SUBMITIT_PREEMPT_SIGNAL``)
    when a Python handler owns it (submitit's, which requeues the job), else None. While
    :func:`fit` runs it stops the run like SIGTERM, so the checkpoint is written before the
    caller calls that handler."""
    signum = getattr(signal, f"SIG{os.environ.get('SUBMITIT_PREEMPT_SIGNAL', 'USR2')}", None)
    if not isinstance(signum, signal.Signals) or not callable(signal.getsignal(signum)):
        return None
    return signum


@contextmanager
def stop_on_signals(enabled: bool = True) -> Iterator[Callable[[], int | None]]:
    """While active, SIGTERM/SIGINT set a flag instead of killing the process.

    Yields a function returning the received signal number (or None). A second SIGINT
    raises ``KeyboardInterrupt`` at once. Only the main thread can own signals; elsewhere
    (or when ``enabled`` is false) this is a no-op that never reports a signal.
    """
    received: list[int] = []
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return

    def handler(signum: int, _frame: Any) -> None:
        if received and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not received:
            log.warning(
                "received %s: stopping after the current step and writing a checkpoint "
                "(Ctrl-C again to abort without one)",
                signal.Signals(signum).name,
            )
        received.append(signum)

    watched = [signal.SIGTERM, signal.SIGINT, requeue_signal()]
    previous = {sig: signal.signal(sig, handler) for sig in watched if sig is not None}
    try:
        yield lambda: received[0] if received else None
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _monitor_value(monitor: str, metrics: Mapping[str, Mapping[str, float]]) -> tuple[str, float]:
    split, _, name = monitor.partition("/")
    if split not in metrics:  # e.g. val/loss without a validation split: fall back to train
        split = "train"
    return f"{split}/{name}", metrics[split][name]


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: LRSchedule,
    plateau: Plateau | None,
    loaders: Loaders,
    device: torch.device,
    run_dir: str | Path,
    settings: FitSettings,
    resume_state: Mapping[str, Any] | None = None,
    *,
    forward_model: nn.Module | None = None,
) -> dict[str, Any]:
    """Train ``model`` for ``settings.epochs`` epochs writing everything under ``run_dir``.

    ``forward_model`` (default ``model``) runs every forward pass, training and evaluation —
    e.g. ``model`` wrapped in DistributedDataParallel — while ``model`` stays the raw module
    whose ``state_dict`` goes into checkpoints (plain keys).

    Distributed (``torchrun``, see :mod:`defcon_exp.engine.distributed`): call on every rank;
    metrics are summed over ranks, the ranks agree on NaN and signal stops, and only rank 0
    writes checkpoints, TensorBoard, ``metrics.csv``, ``summary.json`` and shows bars.

    Returns the summary dict also written to ``run_dir/summary.json``.
    """
    forward_model = model if forward_model is None else forward_model
    main = distributed.is_main()
    reduce = distributed.all_reduce if distributed.is_active() else None
    save = save_checkpoint if main else lambda _state, path: Path(path)
    run_dir = Path(run_dir)
    ckpt_dir = run_dir / "checkpoints"
    if main:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    scaler = grad_scaler(settings.precision, device)
    num_params = count_parameters(model)
    has_val = loaders.val is not None
    select_split = "val" if has_val else "test"
    best: dict[str, Any] = {
        "split": select_split,
        "metric": f"{select_split}/top1",
        "value": None,
        "epoch": None,
        "metrics": {},
    }
    start_epoch, global_step, wall_before = 0, 0, 0.0

    position: dict[str, Any] | None = None
    if resume_state is not None:
        load_model_state(model, resume_state["model"], resume_state.get("path", "checkpoint"))
        optimizer.load_state_dict(resume_state["optimizer"])
        schedule.load_state_dict(resume_state["schedule"])
        if plateau is not None and resume_state.get("plateau") is not None:
            plateau.load_state_dict(resume_state["plateau"])
        if resume_state.get("scaler"):  # empty when saved with another precision than 16-mixed
            scaler.load_state_dict(resume_state["scaler"])
        start_epoch = int(resume_state["epoch"])
        global_step = int(resume_state["global_step"])
        best = dict(resume_state["best"])
        wall_before = float(resume_state.get("wall_time_s", 0.0))
        restore_rng_state(resume_state["rng"])
        position = resume_state.get("position")
        log.info(
            "resumed from epoch %d%s (global step %d) in %s",
            start_epoch,
            f" + {position['batches_done']} batches" if position else "",
            global_step,
            run_dir,
        )

    csv_log: Any = distributed.Discard()
    tb: Any = distributed.Discard()
    if main:
        csv_log = MetricsCSV(
            run_dir / "metrics.csv", resume_epoch=start_epoch if resume_state else None
        )
        # events at the checkpoint's own step are valid; a crash's later events are purged
        tb = TensorBoardLogger(
            run_dir / "tb", purge_step=global_step + 1 if resume_state else None
        )
    show = progress_enabled(settings.progress) and main
    signals = stop_on_signals(settings.handle_signals)
    # distributed: a tiny collective every log interval, so all ranks stop at the same step
    received = distributed.SignalAgreement(signals.__enter__(), max(1, settings.log_every_n_steps))
    ctx = StepContext(
        forward_model,
        optimizer,
        schedule,
        plateau,
        scaler,
        device,
        precision=settings.precision,
        channels_last=settings.channels_last,
        grad_clip_norm=settings.grad_clip_norm,
        log_every_n_steps=max(1, settings.log_every_n_steps),
        progress=show,
        stop_requested=lambda: received.at_step() is not None,
        checkpoint_every_n_steps=max(0, settings.checkpoint_every_n_steps),
        all_reduce=reduce,
    )

    def state(
        epoch_done: int, wall: float, full: bool, where: EpochPosition | None = None
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "version": CHECKPOINT_VERSION,
            "model": model.state_dict(),
            "epoch": epoch_done,
            "global_step": global_step,
            "best": best,
            "config": settings.config,
            "model_name": settings.model_name,
            "num_classes": loaders.num_classes,
            "num_params": num_params,
            "wall_time_s": wall,
        }
        if full:
            payload.update(
                optimizer=optimizer.state_dict(),
                schedule=schedule.state_dict(),
                plateau=plateau.state_dict() if plateau is not None else None,
                scaler=scaler.state_dict(),
                rng=capture_rng_state(),
                position=None
                if where is None
                else {"batches_done": where.batches_done, "metrics": where.metrics},
            )
        return payload

    def save_position(where: EpochPosition) -> Path:
        nonlocal global_step
        global_step = where.global_step
        wall = wall_before + time.perf_counter() - t_start
        where.metrics = distributed.reduce_metric_state(where.metrics)  # the global running sums
        return save(state(where.epoch, wall, True, where), ckpt_dir / "last.pt")

    def interrupted(signum: int, ckpt: Path, where: str) -> TrainingInterrupted:
        name = signal.Signals(signum).name
        message = (
            f"{name} received: stopped {where} and saved {ckpt}; "
            f"resume with: defcon-train resume={run_dir}"
        )
        log.warning("%s", message)
        return TrainingInterrupted(message, signum, ckpt)

    # rank 0 only: an eval-mode forward of the raw model runs no collective
    histograms = AttentionHistograms.create(
        model,
        loaders.val if has_val else loaders.test,
        device,
        settings.histograms_every_n_epochs if main else 0,
        settings.histogram_images,
    )
    t_start = time.perf_counter()
    train_images, train_seconds = 0, 0.0
    last_eval: dict[str, dict[str, float]] = {}
    ebar = epoch_bar(start_epoch, settings.epochs, show)
    try:
        for epoch in range(start_epoch, settings.epochs):
            if hasattr(loaders.train, "set_epoch"):
                loaders.train.set_epoch(epoch)
            t_epoch = time.perf_counter()
            resume_here = position if epoch == start_epoch else None
            try:
                train_metrics, global_step = train_one_epoch(
                    ctx,
                    loaders.train,
                    len(loaders.train),
                    epoch,
                    global_step,
                    on_log=lambda step, values: tb.scalars(values, step),
                    start_batch=int(resume_here["batches_done"]) if resume_here else 0,
                    # saved sums are global: rank 0 carries them, the others start at zero
                    resume_metrics=resume_here["metrics"] if resume_here and main else None,
                    on_checkpoint=save_position,
                )
            except StopRequested as stop:
                ckpt = save_position(stop.position)
                tb.flush()
                # no rank exits (and makes torchrun kill rank 0) before the write is done
                distributed.barrier()
                signum = received.last or signal.SIGTERM
                raise interrupted(
                    signum,
                    ckpt,
                    f"at global step {stop.position.global_step} (epoch {epoch + 1}, "
                    f"batch {stop.position.batches_done}/{len(loaders.train)})",
                ) from None
            epoch_seconds = time.perf_counter() - t_epoch
            train_images += int(train_metrics["count"])
            train_seconds += epoch_seconds
            metrics = {"train": train_metrics}
            distributed.broadcast_buffers(model)  # every rank evaluates rank 0's weights
            split_loader = loaders.val if has_val else loaders.test
            metrics[select_split] = evaluate(
                forward_model,
                split_loader,
                device,
                settings.precision,
                settings.channels_last,
                reduce,
            )
            last_eval = metrics

            if plateau is not None:
                tag, value = _monitor_value(plateau.monitor, metrics)
                if plateau.update(value):
                    log.info("plateau on %s: lr scale now %.3g", tag, plateau.scale)

            improved = best["value"] is None or metrics[select_split]["top1"] > best["value"]
            if improved:
                best = {
                    "split": select_split,
                    "metric": f"{select_split}/top1",
                    "value": metrics[select_split]["top1"],
                    "epoch": epoch + 1,
                    "metrics": dict(metrics[select_split]),
                }

            row = {"epoch": epoch + 1, "global_step": global_step, "lr": train_metrics["lr"]}
            for split, values in metrics.items():
                row.update({f"{split}_{k}": values[k] for k in ("loss", "top1", "top5")})
            row.update(
                epoch_time_s=epoch_seconds,
                images_per_s=train_metrics["count"] / max(epoch_seconds, 1e-9),
            )
            csv_log.append(row)
            tb.scalars(
                {
                    f"{split}/{k}": values[k]
                    for split, values in metrics.items()
                    for k in ("loss", "top1", "top5")
                },
                global_step,
            )
            tb.scalars({"epoch": epoch + 1, "train/lr_epoch_end": train_metrics["lr"]}, global_step)
            if histograms is not None:
                histograms.log(tb, epoch + 1, global_step)
            tb.flush()

            wall = wall_before + time.perf_counter() - t_start
            if improved:
                save(state(epoch + 1, wall, full=False), ckpt_dir / "best.pt")
            last = save(state(epoch + 1, wall, full=True), ckpt_dir / "last.pt")
            log.info(
                "epoch %d/%d  train loss %.4f top1 %.2f | %s loss %.4f top1 %.2f top5 %.2f | lr %.4g | %.1fs (%.0f img/s)",
                epoch + 1,
                settings.epochs,
                train_metrics["loss"],
                train_metrics["top1"],
                select_split,
                metrics[select_split]["loss"],
                metrics[select_split]["top1"],
                metrics[select_split]["top5"],
                train_metrics["lr"],
                epoch_seconds,
                row["images_per_s"],
            )
            ebar.update(1)
            ebar.set_postfix(
                loss=f"{train_metrics['loss']:.3f}",
                acc=f"{metrics[select_split]['top1']:.1f}",
                lr=f"{train_metrics['lr']:.3g}",
            )
            signum = received()
            if signum is not None and epoch + 1 < settings.epochs:
                raise interrupted(signum, last, f"after epoch {epoch + 1}")
        ebar.close()

        if has_val or "test" not in last_eval:
            test_metrics = evaluate(
                forward_model,
                loaders.test,
                device,
                settings.precision,
                settings.channels_last,
                reduce,
            )
        else:
            test_metrics = last_eval["test"]
        wall = wall_before + time.perf_counter() - t_start
        summary = _summary(
            settings,
            test_metrics,
            best,
            num_params,
            wall,
            train_images,
            train_seconds,
            global_step,
            run_dir,
        )
        if main:
            write_json(run_dir / "summary.json", summary)
        hp_metrics = {
            "hparam/test_top1": test_metrics["top1"],
            "hparam/test_top5": test_metrics["top5"],
            "hparam/test_loss": test_metrics["loss"],
        }
        if best["value"] is not None:
            hp_metrics[f"hparam/best_{select_split}_top1"] = best["value"]
        tb.hparams(settings.hparams, hp_metrics, global_step)
        log.info(
            "test top1 %.2f top5 %.2f loss %.4f (%d images) | summary: %s",
            test_metrics["top1"],
            test_metrics["top5"],
            test_metrics["loss"],
            test_metrics["count"],
            run_dir / "summary.json",
        )
        return summary
    finally:
        ebar.close()
        tb.close()
        signals.__exit__(None, None, None)


def _summary(
    settings: FitSettings,
    test: Mapping[str, float],
    best: Mapping[str, Any],
    num_params: int,
    wall: float,
    train_images: int,
    train_seconds: float,
    global_step: int,
    run_dir: Path,
) -> dict:
    payload: dict[str, Any] = {
        "model": settings.model_name,
        "test": {"top1": test["top1"], "top5": test["top5"], "loss": test["loss"]},
    }
    best_block = {
        "epoch": best["epoch"],
        **{k: best["metrics"].get(k) for k in ("top1", "top5", "loss")},
    }
    if best["split"] == "val":
        payload["best_val"] = best_block
    else:
        payload["best_on_test"] = {
            **best_block,
            "note": "no validation split (data.val_size=0): this is the best epoch picked ON THE "
            "TEST SET, an optimistic number; the result is 'test' (final weights)",
        }
    payload.update(
        num_params=num_params,
        epochs=settings.epochs,
        global_step=global_step,
        wall_time_s=wall,
        images_per_s=train_images / train_seconds if train_seconds > 0 else None,
        run_dir=str(run_dir),
    )
    return payload
