"""Global average pooling whose backward is a broadcast view, not a new feature map.

``x.mean(dim=(2, 3))`` backpropagates by materialising a full ``Tensor[B, C, H, W]`` of
``grad / (H * W)``, which autograd then adds to the gradient the feature map gets from the
scaling. On a CPU a fresh feature-map-sized tensor costs more than the arithmetic (its
pages are faulted in on first touch), and an attention block does this once per step. Here
the backward returns the gradient as a stride-0 ``expand`` of ``Tensor[B, C, 1, 1]``; autograd
accumulates it into the other gradient in place, so no feature-map-sized tensor is created.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["spatial_mean"]


class _SpatialMean(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: Tensor) -> Tensor:
        ctx.input_shape = x.shape
        return x.mean(dim=(2, 3))

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        batch, channels, height, width = ctx.input_shape
        return (grad / (height * width))[:, :, None, None].expand(batch, channels, height, width)


def spatial_mean(x: Tensor) -> Tensor:
    """Mean over the spatial axes: ``Tensor[B, C, H, W] -> Tensor[B, C]`` (any memory format).

    Equal to ``x.mean(dim=(2, 3))`` in value and gradient; the gradient is a broadcast view.
    """
    if x.dim() != 4:
        raise ValueError(f"spatial_mean: expected a Tensor[B, C, H, W], received shape {tuple(x.shape)}")
    return _SpatialMean.apply(x)
