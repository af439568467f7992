"""Style-based Recalibration Module (Lee, Kim, Nam, "SRM: A Style-based Recalibration Module
for Convolutional Neural Networks", ICCV 2019, arXiv:1903.10829)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.registry import register_attention

__all__ = ["StyleRecalibration"]


@register_attention("srm")
class StyleRecalibration(ChannelAttention):
    """SRM. ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    Style pooling: per channel the mean and the (unbiased) standard deviation over the map.
    Style integration: a channel-wise fully connected layer ``z_c = w_c0 * mean_c + w_c1 *
    std_c`` -> BatchNorm over the channels -> gate -> ``x * weights``. ``4*C`` parameters
    (``cfc`` ``C x 2``, BatchNorm affine); ``cfc`` starts at zero, as the authors' code.

    The BatchNorm makes the weights of a sample depend on its batch in training mode (and
    needs more than one sample per batch there); in eval mode it uses running statistics.
    """

    def __init__(
        self,
        channels: int,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, gate)
        factory = {"device": device, "dtype": dtype}
        self.cfc = nn.Parameter(torch.zeros(channels, 2, **factory))
        self.bn = nn.BatchNorm1d(channels, **factory)

    def channel_weights(self, x: Tensor) -> Tensor:
        var, mean = torch.var_mean(x, dim=(2, 3), correction=1)
        z = mean * self.cfc[:, 0] + var.sqrt() * self.cfc[:, 1]
        return self.gate(self.bn(z))[:, :, None, None]
