"""``trainer.early_stopping``: end a run when a monitored metric stops improving.

Lightning's rule: an epoch improves when its value beats the best by more than ``min_delta``
(below it for ``mode=min``, above for ``max``; ``auto`` = ``min`` for a loss, ``max`` for an
accuracy); after ``patience`` epochs without improvement the run stops (its checkpoint first)
with ``summary.json`` marked ``stopped_early``. The counter lives in every checkpoint
(:meth:`EarlyStopping.state_dict`), so a killed and resumed run stops at the same epoch.
Torch-free: the config checks import the schema and the rule from here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Optional

from defcon_exp.engine.hooks import StopRun

__all__ = ["EarlyStopping", "EarlyStoppingConfig", "check_early_stopping"]

_SPLITS, _NAMES = ("val", "train"), ("loss", "top1", "top5")


@dataclass
class EarlyStoppingConfig:
    """``monitor``: ``val|train / loss|top1|top5`` (null = off); see the module docstring."""

    monitor: Optional[str] = None  # noqa: UP045
    """stop when this stops improving: val|train / loss|top1|top5; null = off"""
    patience: int = 10
    """epochs without improvement before stopping"""
    min_delta: float = 0.0
    """smallest change counted as an improvement"""
    mode: str = "auto"
    """auto (min for loss, max for top1/top5) | min | max"""


def resolved_mode(monitor: str, mode: str) -> str:
    """``min`` or ``max`` for ``monitor`` under ``mode`` (``auto`` decides by the metric)."""
    if mode != "auto":
        return mode
    return "min" if monitor.endswith("/loss") else "max"


def check_early_stopping(get: Any, rule: Any) -> None:
    """The value rules of ``trainer.early_stopping`` (``rule(key, ok, text)`` raises)."""
    monitor = get("trainer.early_stopping.monitor")
    if monitor is None:
        return
    choices = [f"{split}/{name}" for split in _SPLITS for name in _NAMES]
    rule("trainer.early_stopping.monitor", monitor in choices,
         f"must be null (off) or one of {', '.join(choices)}")
    rule("trainer.early_stopping.monitor", not monitor.startswith("val/") or get("data.val_size"),
         "a validation metric needs a validation split (e.g. data.val_size=5000); stopping on "
         "the test set would choose the run by its test result")
    rule("trainer.early_stopping.patience", get("trainer.early_stopping.patience") >= 1,
         "must be >= 1 (epochs without improvement before stopping)")
    rule("trainer.early_stopping.min_delta", get("trainer.early_stopping.min_delta") >= 0,
         "must be >= 0")
    rule("trainer.early_stopping.mode", get("trainer.early_stopping.mode") in ("auto", "min", "max"),
         "must be auto (min for a loss, max for top1/top5), min or max")


class EarlyStopping:
    """An epoch hook (:class:`~defcon_exp.engine.hooks.EpochHook`) with a checkpointed state."""

    state_key = "early_stopping"

    def __init__(self, monitor: str, patience: int, min_delta: float = 0.0, mode: str = "auto"):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.mode = resolved_mode(monitor, mode)
        self.best: float | None = None
        self.best_epoch = 0
        self.wait = 0

    def __call__(self, epoch: int, global_step: int,
                 metrics: Mapping[str, Mapping[str, float]], writer: object) -> None:
        split, _, name = self.monitor.partition("/")
        value = float(metrics[split][name if name in metrics[split] else f"{name}_dominant"])
        sign = -1.0 if self.mode == "min" else 1.0
        if self.best is None or sign * (value - self.best) > self.min_delta:
            self.best, self.best_epoch, self.wait = value, epoch, 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            raise StopRun(
                f"early stopping: {self.monitor} did not improve by more than {self.min_delta} "
                f"for {self.patience} epochs (best {self.best:.4f} at epoch {self.best_epoch})",
                status="stopped_early",
            )

    def state_dict(self) -> dict[str, Any]:
        return {"monitor": self.monitor, "mode": self.mode, "best": self.best,
                "best_epoch": self.best_epoch, "wait": self.wait}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("monitor") == self.monitor and state.get("mode") == self.mode:
            self.best, self.best_epoch = state["best"], int(state["best_epoch"])
            self.wait = int(state["wait"])
