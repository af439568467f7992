"""Plain-data inputs of :func:`~defcon_exp.engine.fit.fit` and the epoch's log line."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from defcon_exp.engine.ema import EMASettings
from defcon_exp.engine.mixing import MixSettings
from defcon_exp.rates import format_rate

__all__ = ["FitSettings", "Loaders", "epoch_line", "monitor_value"]


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
    keep_checkpoints: str = "all"  # what a finished run keeps (defcon_exp.engine.keep)
    tb_name: str | None = None  # TensorBoard run name: events in tb/<tb_name> (None: tb/)
    handle_signals: bool = True
    static_shapes: bool = False  # pad partial evaluation batches (torch.compile: no recompiles)
    model_name: str = "model"
    config: dict[str, Any] = field(default_factory=dict)
    hparams: dict[str, Any] = field(default_factory=dict)
    seed: int = 0  # the run seed (Mixup/CutMix draws are a function of it and the batch)
    label_smoothing: float = 0.0
    accumulate_grad_batches: int = 1
    mix: MixSettings = field(default_factory=MixSettings)
    ema: EMASettings = field(default_factory=EMASettings)
    summary_extra: dict[str, Any] = field(default_factory=dict)  # the run's facts for summary.json

    @classmethod
    def from_trainer(cls, trainer: Any, precision: str, **identity: Any) -> FitSettings:
        """From the ``trainer`` config group and the parsed ``precision``."""
        same = ("epochs", "channels_last", "grad_clip_norm", "log_every_n_steps", "progress",
                "checkpoint_every_n_steps")  # trainer.<name> is the setting as it is
        return cls(
            **{name: getattr(trainer, name) for name in same},
            precision=precision,
            static_shapes=bool(trainer.compile),
            label_smoothing=float(trainer.get("label_smoothing", 0.0)),
            accumulate_grad_batches=int(trainer.get("accumulate_grad_batches", 1)),
            mix=MixSettings(**dict(trainer.get("mix") or {})),
            ema=EMASettings(**dict(trainer.get("ema") or {})),
            keep_checkpoints=trainer.get("keep_checkpoints", "all"),
            **identity,
        )


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
