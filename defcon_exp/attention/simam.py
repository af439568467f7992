"""SimAM (Yang, Zhang, Li, Xie, "SimAM: A Simple, Parameter-Free Attention Module for
Convolutional Neural Networks", ICML 2021, PMLR 139:11863-11874; no arXiv version)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.registry import register_attention

__all__ = ["SimAM"]


@register_attention("simam")
class SimAM(nn.Module):
    """SimAM, a per-pixel (block-level) weight without parameters.
    ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    The minimal energy of neuron ``t`` of a channel is
    ``e_t = 4 (var + lambda) / ((t - mu)^2 + 2 var + 2 lambda)`` with the channel's mean
    ``mu`` and variance ``var = sum (x - mu)^2 / (H*W - 1)``; the output is
    ``x * sigmoid(1 / e_t)`` (low energy = distinct neuron = more weight).
    """

    def __init__(
        self,
        channels: int,
        e_lambda: float = 1e-4,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if e_lambda <= 0:
            raise ValueError(f"SimAM: e_lambda must be positive, received {e_lambda}")
        self.channels = channels
        self.e_lambda = e_lambda

    def attention_map(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]``: ``sigmoid(1 / e_t)`` for every pixel (needs ``H*W > 1``)."""
        count = x.shape[2] * x.shape[3] - 1
        centred_square = (x - x.mean(dim=(2, 3), keepdim=True)).square()
        variance = centred_square.sum(dim=(2, 3), keepdim=True) / count
        return torch.sigmoid(centred_square / (4 * (variance + self.e_lambda)) + 0.5)

    def statistics(self, x: Tensor) -> dict[str, Tensor]:
        """``weights`` ``Tensor[B, C]``: the spatial mean of each channel's attention map
        (the weight varies per pixel; this is its channel-level summary)."""
        return {"weights": self.attention_map(x).mean(dim=(2, 3)).float()}

    def forward(self, x: Tensor) -> Tensor:
        return x * self.attention_map(x)

    def extra_repr(self) -> str:
        return f"{self.channels}, e_lambda={self.e_lambda}"
