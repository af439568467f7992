"""Convolutional Block Attention Module (Woo et al., "CBAM: Convolutional Block Attention
Module", ECCV 2018): channel attention, then spatial attention."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.gate import get_gate
from defcon_exp.attention.registry import register_attention
from defcon_exp.attention.se import make_divisible
from defcon_exp.ops.spatial_mean import spatial_mean

__all__ = ["Cbam"]


@register_attention("cbam")
class Cbam(nn.Module):
    """CBAM. ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    Channel: a shared bias-free MLP (C -> C/r -> C) on the average- and the max-pooled
    vectors, summed, gated. Spatial: channel-wise mean and max (2 maps) -> k x k conv ->
    BatchNorm -> gate, as the authors' code does.
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        divisor: int = 8,
        min_hidden: int = 8,
        mlp_bias: bool = False,
        spatial_kernel_size: int = 7,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if spatial_kernel_size < 1 or spatial_kernel_size % 2 == 0:
            raise ValueError(
                f"Cbam: spatial_kernel_size must be odd and positive, received {spatial_kernel_size}"
            )
        factory = {"device": device, "dtype": dtype}
        hidden = make_divisible(channels / reduction, divisor, min_hidden)
        self.channels = channels
        self.gate = get_gate(gate)
        self.mlp = nn.Sequential(
            nn.Linear(channels, hidden, bias=mlp_bias, **factory),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, channels, bias=mlp_bias, **factory),
        )
        self.spatial_conv = nn.Conv2d(
            2, 1, spatial_kernel_size, padding=spatial_kernel_size // 2, bias=False, **factory
        )
        self.spatial_norm = nn.BatchNorm2d(1, **factory)

    def statistics(self, x: Tensor) -> dict[str, Tensor]:
        """``weights`` ``Tensor[B, C]``: the gated channel part, ``gate(mlp(avg) + mlp(max))``
        (the spatial part then varies per pixel)."""
        logits = self.mlp(spatial_mean(x)) + self.mlp(x.amax(dim=(2, 3)))
        return {"weights": self.gate(logits).float()}

    def forward(self, x: Tensor) -> Tensor:
        channel_logits = self.mlp(spatial_mean(x)) + self.mlp(x.amax(dim=(2, 3)))
        x = x * self.gate(channel_logits)[:, :, None, None]
        spatial = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * self.gate(self.spatial_norm(self.spatial_conv(spatial)))
