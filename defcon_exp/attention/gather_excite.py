"""Gather-excite with global extent (Hu, Shen, Albanie, Sun, Vedaldi, "Gather-Excite:
Exploiting Feature Context in Convolutional Neural Networks", NeurIPS 2018,
arXiv:1810.12348), as timm's ``GatherExcite(extent=0)``."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.registry import register_attention
from defcon_exp.attention.se import make_divisible

__all__ = ["GatherExcite"]


@register_attention("ge")
class GatherExcite(ChannelAttention):
    """GE, extent 0 (the gather spans the whole map). ``Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    Gather: the parameter-free global average (the paper's GE-θ⁻ gather). Excite: with
    ``use_mlp`` an MLP with biases (C -> C/r -> ReLU -> C), as timm's default, else nothing
    (GE-θ⁻: ``weights = gate(GAP(x))``, no parameters) -> gate -> ``x * weights``.
    ``2*C*h + h + C`` parameters with ``h = make_divisible(C / reduction, 1)``, or 0.

    The paper's parametric global gather (a depthwise convolution as large as the feature
    map, GE-θ/θ⁺) needs the map size at construction, which the attention slot does not
    give; it is not offered.
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        use_mlp: bool = True,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, gate)
        if reduction <= 0:
            raise ValueError(f"GatherExcite: reduction must be positive, received {reduction}")
        factory = {"device": device, "dtype": dtype}
        self.hidden = make_divisible(channels / reduction, 1)
        self.mlp: nn.Module = nn.Identity()
        if use_mlp:
            self.mlp = nn.Sequential(
                nn.Linear(channels, self.hidden, **factory),
                nn.ReLU(inplace=True),
                nn.Linear(self.hidden, channels, **factory),
            )

    def channel_logits(self, pooled: Tensor) -> Tensor:
        return self.mlp(pooled)
