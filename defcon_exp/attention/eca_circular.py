"""ECA with circular padding of the channel axis (the ``CecaModule`` of timm, by Chris Ha):
Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020, arXiv:1910.03151, with the pooled vector wrapped around so that
the first and the last channels are neighbours (channels have no edge)."""

from __future__ import annotations

import torch
from torch import Tensor

from defcon_exp.attention.eca import EfficientChannelAttention
from defcon_exp.attention.kernel_size import KernelSizeSpec
from defcon_exp.attention.pooled_conv import pooled_conv1d
from defcon_exp.attention.registry import register_attention

__all__ = ["CircularEfficientChannelAttention"]


@register_attention("eca_circular")
class CircularEfficientChannelAttention(EfficientChannelAttention):
    """ECA whose bias-free 1D convolution of size k pads the pooled vector circularly:
    ``logit_c = sum_n w_n * pooled_{(c - k//2 + n) mod C}`` -> gate.

    ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``; ``k`` parameters, as ECA.
    ``kernel_size`` is an odd int or ``"adaptive"``; the model sets it per stage (the paper's
    3, 5, 5, 7 by default, as for ``eca``).
    """

    def __init__(
        self,
        channels: int,
        kernel_size: KernelSizeSpec = "adaptive",
        gamma: float = 2.0,
        beta: float = 1.0,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, kernel_size, gamma, beta, gate, device, dtype)
        if self.kernel_size // 2 > channels:
            raise ValueError(
                f"CircularEfficientChannelAttention: kernel size {self.kernel_size} wraps more "
                f"than once around {channels} channels; use a kernel size of at most "
                f"{2 * channels + 1}"
            )

    def channel_logits(self, pooled: Tensor) -> Tensor:
        return pooled_conv1d(pooled[:, None, :], self.conv.weight, "circular")[:, 0, :]
