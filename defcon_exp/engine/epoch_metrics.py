"""The epoch metrics, one line each (no torch import: the config rules read the names)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import torch

__all__ = ["EPOCH_METRICS", "METRIC_NAMES", "EpochMetric", "metric_keys"]


class EpochMetric(NamedTuple):
    """One epoch metric: ``batch_sum(logits[B, K], labels[B], loss[], topk_hits[B, k])`` gives
    the batch's sum (a float64 scalar), read out as ``scale * sum / samples``."""

    batch_sum: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]
    scale: float


#: the epoch metrics, one line each: CSV columns, TensorBoard tags, the summary and the
#: accumulator's sums are all named and ordered from this table
EPOCH_METRICS: dict[str, EpochMetric] = {
    "loss": EpochMetric(lambda logits, labels, loss, hits: loss.detach().double() * labels.shape[0], 1.0),
    "top1": EpochMetric(lambda logits, labels, loss, hits: hits[:, 0].sum().double(), 100.0),
    "top5": EpochMetric(lambda logits, labels, loss, hits: hits.any(dim=1).sum().double(), 100.0),
}
METRIC_NAMES: tuple[str, ...] = tuple(EPOCH_METRICS)


def metric_keys(values: dict[str, float] | object) -> list[str]:
    """The metric entries of one split's dict, in its order: ``METRIC_NAMES``, their
    ``ema_`` twins (weight EMA) and ``_dominant`` variants (train top-k under Mixup/CutMix)."""
    return [
        key
        for key in values  # type: ignore[attr-defined]
        if key.removeprefix("ema_").removesuffix("_dominant") in METRIC_NAMES
    ]
