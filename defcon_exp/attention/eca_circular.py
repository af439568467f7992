"""ECA with circular padding of the channel axis (the ``CecaModule`` of timm, by Chris Ha):
Wang, Wu, Zhu, Li, Zuo, Hu, "ECA-Net: Efficient Channel Attention for Deep Convolutional
Neural Networks", CVPR 2020, arXiv:1910.03151, with the pooled vector wrapped around so that
the first and the last channels are neighbours (channels have no edge)."""

from __future__ import annotations

from typing import Any

from defcon_exp.attention.eca import EfficientChannelAttention
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

    padding_mode = "circular"

    def __init__(self, channels: int, *args: Any, **kwargs: Any) -> None:
        """As :class:`EfficientChannelAttention` (``kernel_size``, ``gamma``, ``beta``, ``gate``,
        ``device``, ``dtype``)."""
        super().__init__(channels, *args, **kwargs)
        if self.kernel_size // 2 > channels:
            raise ValueError(
                f"CircularEfficientChannelAttention: kernel size {self.kernel_size} wraps more "
                f"than once around {channels} channels; use a kernel size of at most "
                f"{2 * channels + 1}"
            )
