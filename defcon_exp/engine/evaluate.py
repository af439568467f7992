"""One evaluation pass — device-agnostic, model-agnostic; one host sync."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn

from defcon_exp.engine.metrics import MetricAccumulator
from defcon_exp.engine.precision import autocast


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    device: torch.device,
    precision: str = "32",
    channels_last: bool = False,
    all_reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None,
    static_shapes: bool = False,
) -> dict[str, float]:
    """Mean loss and top-1/top-5 accuracy (percent) of ``model`` over ``loader``; one sync.

    ``static_shapes`` (under ``torch.compile``): a batch smaller than the first is padded
    with zero images to the first's size and only its real rows are scored, so the model
    sees one shape and is not recompiled (eval-mode BatchNorm treats rows independently).

    ``precision`` ("32" | "bf16" | "16-mixed") and ``channels_last`` (input batches
    ``Tensor[B, 3, H, W]`` in ``torch.channels_last``) as in training.

    Distributed: each process evaluates its shard and ``all_reduce`` sums the loss/hit/sample
    counts, so every rank gets the metrics of the whole set.
    """
    model.eval()
    criterion = nn.CrossEntropyLoss()
    metrics = MetricAccumulator(device)
    image_format = torch.channels_last if channels_last else torch.preserve_format
    full = 0
    for images, labels in loader:
        images = images.to(device, non_blocking=True, memory_format=image_format)
        labels = labels.to(device, non_blocking=True)
        count = images.shape[0]
        full = full or count
        if static_shapes and count < full:
            padding = images.new_zeros(full - count, *images.shape[1:])
            images = torch.cat([images, padding]).contiguous(memory_format=image_format)
        with autocast(precision, device):
            logits = model(images)[:count].float()  # [B, K]
        metrics.update(logits, labels, criterion(logits, labels))
    return metrics.compute(all_reduce)
