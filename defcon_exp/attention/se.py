"""Squeeze-and-Excitation (Hu, Shen, Sun, "Squeeze-and-Excitation Networks", CVPR 2018)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.registry import register_attention

__all__ = ["SqueezeExcite", "make_divisible"]


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round ``value`` to a multiple of ``divisor`` (at least ``min_value``), never more
    than 10% below ``value`` (the rule timm and the MobileNets use)."""
    min_value = min_value or divisor
    rounded = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


@register_attention("se")
class SqueezeExcite(ChannelAttention):
    """SE: pooled vector -> FC (C -> C/r) -> ReLU -> FC (C/r -> C) -> gate, bias-free.

    ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``. Hidden width is
    ``make_divisible(C / reduction, divisor, min_hidden)``; with the defaults it is C/16 for
    every ResNet-50 stage, which gives the paper's 26,220,196 parameters.
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        divisor: int = 8,
        min_hidden: int = 8,
        bias: bool = False,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, gate)
        if reduction <= 0:
            raise ValueError(f"SqueezeExcite: reduction must be positive, received {reduction}")
        factory = {"device": device, "dtype": dtype}
        hidden = make_divisible(channels / reduction, divisor, min_hidden)
        self.fc1 = nn.Linear(channels, hidden, bias=bias, **factory)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, bias=bias, **factory)

    def channel_logits(self, pooled: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(pooled)))
