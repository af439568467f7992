"""Efficient Channel Attention (Wang et al., "ECA-Net: Efficient Channel Attention for
Deep Convolutional Neural Networks", CVPR 2020)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.kernel_size import KernelSizeSpec, resolve_kernel_size
from defcon_exp.attention.pooled_conv import float32_logits, pooled_conv1d
from defcon_exp.attention.registry import register_attention
from defcon_exp.ops.kernel_paths import triton_path
from defcon_exp.ops.triton_ops import defcon_gate

__all__ = ["EfficientChannelAttention"]


@register_attention("eca")
class EfficientChannelAttention(ChannelAttention):
    """ECA: a bias-free 1D convolution of size k over the pooled channel vector -> gate.

    ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``; ``k`` parameters.
    ``kernel_size`` is an odd int or ``"adaptive"`` (ECA's rule with ``gamma``, ``beta``).
    """

    uses_kernel_size = True
    padding_mode = "zeros"  # of the channel axis (pooled_conv1d)

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
        super().__init__(channels, gate)
        self.kernel_size = resolve_kernel_size(kernel_size, channels, gamma=gamma, beta=beta)
        self.conv = nn.Conv1d(
            1,
            1,
            self.kernel_size,
            padding=self.kernel_size // 2,
            bias=False,
            device=device,
            dtype=dtype,
        )

    def channel_logits(self, pooled: Tensor) -> Tensor:
        return float32_logits(self._logits, pooled)

    def channel_weights(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]`` -> ``Tensor[B, C, 1, 1]``; with ``kernels`` on the Triton
        path (:mod:`defcon_exp.ops.kernel_paths`) pooling is one sum and the zero-padded conv
        and gate one kernel each way (DEFCON's kernel with zero offsets, float32)."""
        plain = type(self).channel_logits is EfficientChannelAttention.channel_logits
        if not plain or self.padding_mode != "zeros" or not triton_path(x, self.kernels):
            return super().channel_weights(x)
        sigmoid = self.gate_name == "sigmoid"
        weights = defcon_gate(
            x.sum(dim=(2, 3), dtype=torch.float32),
            None,
            self.conv.weight,
            scale=1.0 / (x.shape[2] * x.shape[3]),
            sigmoid=sigmoid,
        )
        return (weights if sigmoid else self.gate(weights))[:, :, None, None]

    def _logits(self, pooled: Tensor) -> Tensor:
        # squeeze, not [:, 0, :]: a select's backward launches a kernel, a view's does not
        return pooled_conv1d(pooled[:, None, :], self.conv.weight, self.padding_mode).squeeze(1)
