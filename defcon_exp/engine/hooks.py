"""Epoch hooks: what :func:`defcon_exp.engine.fit.fit` calls after each epoch's evaluation.

The engine knows nothing of what a hook does (attention histograms, an Optuna trial's
pruning report...). A hook may raise :class:`StopRun` to end the run cleanly after this
epoch: its checkpoint is written first and the run ends with ``summary.json`` marked
``stopped_early`` and the hook's reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

__all__ = ["EpochHook", "StopRun"]


class StopRun(Exception):
    """Raised by a hook to end the run after the current epoch (e.g. a pruned trial)."""

    def __init__(self, reason: str, status: str = "stopped") -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class EpochHook(Protocol):
    """Called on rank 0 after every epoch's evaluation, before the epoch's checkpoint.

    ``metrics``: ``{"train": {...}, "val" or "test": {...}}`` with ``loss``, ``top1``,
    ``top5`` per split; ``epoch``: epochs completed (1-based); ``global_step``: optimiser
    steps so far. ``writer``: the run's TensorBoard writer (or a no-op stand-in).
    """

    def __call__(self, epoch: int, global_step: int, metrics: Mapping[str, Mapping[str, float]],
                 writer: object) -> None: ...
