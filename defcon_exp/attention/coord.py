"""Coordinate attention (Hou, Zhou, Feng, "Coordinate Attention for Efficient Mobile Network
Design", CVPR 2021, arXiv:2103.02907)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.gate import get_gate
from defcon_exp.attention.registry import register_attention

__all__ = ["CoordinateAttention"]


@register_attention("coord")
class CoordinateAttention(nn.Module):
    """Coordinate attention, a block-level weight per (channel, row) times one per
    (channel, column). ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    Strip pooling: means over the width (``Tensor[B, C, H]``) and over the height
    (``Tensor[B, C, W]``), concatenated along the position axis -> shared 1x1 conv
    (C -> m, bias) -> BatchNorm -> h-swish -> split -> 1x1 convs (m -> C, bias) per axis ->
    gate: ``a_h Tensor[B, C, H, 1]``, ``a_w Tensor[B, C, 1, W]`` -> ``x * a_h * a_w``.
    ``m = max(min_hidden, C // reduction)`` with the authors' reduction 32 and minimum 8;
    ``3*C*m + 3*m + 2*C`` parameters.
    """

    def __init__(
        self,
        channels: int,
        reduction: int = 32,
        min_hidden: int = 8,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if reduction < 1:
            raise ValueError(
                f"CoordinateAttention: reduction must be positive, received {reduction}"
            )
        factory = {"device": device, "dtype": dtype}
        self.channels = channels
        self.hidden = max(min_hidden, channels // reduction)
        self.conv1 = nn.Conv2d(channels, self.hidden, 1, **factory)
        self.bn1 = nn.BatchNorm2d(self.hidden, **factory)
        self.act = nn.Hardswish()
        self.conv_h = nn.Conv2d(self.hidden, channels, 1, **factory)
        self.conv_w = nn.Conv2d(self.hidden, channels, 1, **factory)
        self.gate = get_gate(gate)

    def strip_weights(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(a_h Tensor[B, C, H, 1], a_w Tensor[B, C, 1, W])`` for ``x: Tensor[B, C, H, W]``."""
        height, width = x.shape[2:]
        strips = torch.cat(
            [x.mean(dim=3, keepdim=True), x.mean(dim=2, keepdim=True).transpose(2, 3)], dim=2
        )
        y = self.act(self.bn1(self.conv1(strips)))  # (B, m, H + W, 1)
        y_h, y_w = torch.split(y, [height, width], dim=2)
        return self.gate(self.conv_h(y_h)), self.gate(self.conv_w(y_w.transpose(2, 3)))

    def statistics(self, x: Tensor) -> dict[str, Tensor]:
        """``weights`` ``Tensor[B, C]``: the spatial mean of each channel's weight map
        ``a_h * a_w`` (= mean over rows of ``a_h`` times mean over columns of ``a_w``)."""
        a_h, a_w = self.strip_weights(x)
        return {"weights": (a_h.mean(dim=(2, 3)) * a_w.mean(dim=(2, 3))).float()}

    def forward(self, x: Tensor) -> Tensor:
        a_h, a_w = self.strip_weights(x)
        return x * a_h.to(x.dtype) * a_w.to(x.dtype)
