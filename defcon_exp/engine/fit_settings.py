"""What :func:`~defcon_exp.engine.fit.fit` takes: the ``trainer`` group's schema
(:class:`TrainerConfig`, part of :class:`defcon_exp.config.Config`), the run's identity and
the loaders; and the epoch's log line. Torch-free: the schema imports it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

from defcon_exp.engine.early_stopping import EarlyStoppingConfig
from defcon_exp.rates import format_rate
from defcon_exp.regularisation import EMAConfig, MixConfig

__all__ = ["Loaders", "RunIdentity", "TrainerConfig", "epoch_line", "monitor_value"]


@dataclass
class TrainerConfig:
    """Loop settings."""

    epochs: int = 200
    """training epochs"""
    device: str = "auto"
    """auto | cpu | cuda | cuda:N"""
    precision: str = "32"
    """32 | bf16 (autocast) | 16-mixed (float16 + GradScaler)

    Also accepted: 32-true, bf16-mixed, 16."""
    channels_last: bool = False
    """channels_last memory format (faster convolutions on tensor cores)

    Both the model and the input batches."""
    compile: Any = False
    """torch.compile: false | true | default | reduce-overhead | max-autotune"""
    grad_clip_norm: Optional[float] = None  # noqa: UP045
    """clip the global gradient norm (e.g. 5); null = off"""
    log_every_n_steps: int = 50
    """TensorBoard step scalars and bar refresh interval"""
    checkpoint_every_n_steps: int = 0
    """also save last.pt every n steps inside epochs; 0 = epoch ends only"""
    keep_checkpoints: str = "auto"
    """what a finished run keeps: all | last_slim (no optimiser state) | best (best.pt only) | auto
    (all for a run, last_slim for a -m sweep's jobs)

    See conf/trainer/default.yaml."""
    histograms_every_n_epochs: int = 1
    """TensorBoard attention histograms every n epochs; 0 = off"""
    histogram_images: int = 64
    """probe images for the histograms (first of val, else test)"""
    progress: bool = True
    """tqdm bars (only on a terminal)"""
    deterministic: bool = False
    """torch.use_deterministic_algorithms (warn only)"""
    sync_batchnorm: Any = "auto"
    """torchrun: true | false | auto (SyncBatchNorm below 16 images a process)"""
    num_threads: Optional[int] = None  # noqa: UP045
    """torch CPU threads; null = OMP_NUM_THREADS or all cores"""
    label_smoothing: float = 0.0
    """label smoothing of the training loss, in [0, 1); 0 = off

    ``nn.CrossEntropyLoss(label_smoothing=)``."""
    accumulate_grad_batches: int = 1
    """micro-batches per optimiser step (exact, BatchNorm aside)"""
    limit_train_batches: Any = 1.0
    """batches per epoch: an int (5) or a fraction (0.25); 1.0 = all

    int: batches; float in (0, 1]: a fraction (data/limits.py)."""
    limit_val_batches: Any = 1.0
    """batches per validation pass: an int or a fraction; 1.0 = all"""
    limit_test_batches: Any = 1.0
    """batches of the test pass: an int or a fraction; 1.0 = all"""
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    mix: MixConfig = field(default_factory=MixConfig)  # Mixup / CutMix (docs/regularisation.md)
    ema: EMAConfig = field(default_factory=EMAConfig)  # weight EMA (docs/regularisation.md)


@dataclass
class RunIdentity:
    """What names a run in its checkpoints, records and summary (no trainer setting)."""

    model_name: str = "model"
    config: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # the run seed (Mixup/CutMix draws are a function of it and the batch)
    tb_name: str | None = None  # TensorBoard run name: events in tb/<tb_name> (None: tb/)
    summary_extra: dict[str, Any] = field(default_factory=dict)  # the run's facts for summary.json


@dataclass
class Loaders:
    """The data bundle's loaders (``val`` may be None) and class count."""

    train: Any
    val: Any | None
    test: Any
    num_classes: int


def monitor_value(monitor: str, metrics: Mapping[str, Mapping[str, float]]) -> tuple[str, float]:
    """``(tag, value)`` of ``monitor`` (``val/top1``...) in the epoch's ``metrics``."""
    split, _, name = monitor.partition("/")
    if split not in metrics:  # e.g. val/loss without a validation split: fall back to train
        split = "train"
    if name not in metrics[split]:  # train top-1 under Mixup/CutMix is against dominant labels
        name = f"{name}_dominant"
    return f"{split}/{name}", metrics[split][name]


def epoch_line(
    epoch: int, epochs: int, metrics: Mapping[str, Mapping[str, float]], split: str, rate: float
) -> str:
    """The log line of 1-based ``epoch``: train loss/top-1, ``split``'s metrics, lr, speed."""
    train, evaluated = metrics["train"], metrics[split]
    top1 = "top1" if "top1" in train else "top1_dominant"  # Mixup/CutMix: against dominant labels
    ema = f" (ema top1 {evaluated['ema_top1']:.2f})" if "ema_top1" in evaluated else ""
    return (
        f"epoch {epoch}/{epochs}  train loss {train['loss']:.4f} {top1} {train[top1]:.2f} | "
        f"{split} loss {evaluated['loss']:.4f} top1 {evaluated['top1']:.2f} "
        f"top5 {evaluated['top5']:.2f}{ema} | lr {train['lr']:.4g} | "
        f"{train['seconds']:.1f}s ({format_rate(rate)} img/s)"
    )
