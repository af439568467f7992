"""A 'same'-padded 1D convolution of the pooled channel vector, as unfold + matmul.

``F.conv1d`` on a ``(B, 1, C)`` signal goes through oneDNN on CPU, whose fixed cost per
call (several ms for the backward) dwarfs the k*C multiply-adds; 32 such calls per
ResNet-50 step made ECA and DEFCON ~20% slower to train than the plain network.
"""

from __future__ import annotations

from torch import Tensor
from torch.nn import functional as F

__all__ = ["pooled_conv1d"]


def pooled_conv1d(signal: Tensor, weight: Tensor) -> Tensor:
    """``conv1d(signal, weight, padding=k//2)`` for a single input channel.

    Args:
        signal: ``Tensor[B, 1, C]``.
        weight: ``Tensor[out, 1, k]`` with odd ``k``.

    Returns:
        ``Tensor[B, out, C]``.
    """
    kernel_size = weight.shape[-1]
    half = kernel_size // 2
    windows = F.pad(signal[:, 0], (half, half)).unfold(1, kernel_size, 1)  # (B, C, k)
    return (windows @ weight[:, 0].T.to(windows.dtype)).transpose(1, 2)
