"""A 'same'-padded 1D convolution of the pooled channel vector, as one small matmul.

``F.conv1d`` on a ``(B, 1, C)`` signal goes through oneDNN on CPU, whose fixed cost per
call dwarfs the k*C multiply-adds. Here the k shifted copies of the signal are stacked into
a ``(k, B*C)`` matrix and multiplied by the ``(out, k)`` kernel: one matmul with a long,
contiguous inner dimension. (An unfold into ``(B*C, k)`` windows, the obvious layout, is
about 2x slower forward+backward: BLAS handles the 7-wide operand badly and the
overlapping windows must be copied first.)
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn import functional as F

__all__ = ["pooled_conv1d"]


def pooled_conv1d(signal: Tensor, weight: Tensor, padding_mode: str = "zeros") -> Tensor:
    """``conv1d(signal, weight, padding=k//2)`` for a single input channel.

    Args:
        signal: ``Tensor[B, 1, C]``.
        weight: ``Tensor[out, 1, k]`` with odd ``k``.
        padding_mode: ``"zeros"`` or ``"circular"`` (the channel axis wraps around, as
            ``nn.Conv1d(padding_mode="circular")``; needs ``k // 2 <= C``).

    Returns:
        ``Tensor[B, out, C]`` (a transposed view of an ``(out, B, C)`` result).
    """
    out_channels, _, kernel_size = weight.shape
    batch, _, length = signal.shape
    half = kernel_size // 2
    if padding_mode == "circular":
        flat = signal[:, 0]
        padded = torch.cat([flat[:, length - half :], flat, flat[:, :half]], dim=1)
    elif padding_mode == "zeros":
        padded = F.pad(signal[:, 0], (half, half))  # (B, C + k - 1)
    else:
        raise ValueError(
            f"pooled_conv1d: unknown padding_mode {padding_mode!r}; use 'zeros' or 'circular'"
        )
    taps = torch.stack([padded[:, n : n + length] for n in range(kernel_size)])  # (k, B, C)
    out = weight[:, 0].to(taps.dtype) @ taps.view(kernel_size, batch * length)
    return out.view(out_channels, batch, length).transpose(0, 1)
