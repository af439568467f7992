"""A 'same'-padded 1D convolution of the pooled channel vector: one small matmul on the
CPU, ``F.conv1d`` on CUDA.

``F.conv1d`` on a ``(B, 1, C)`` signal goes through oneDNN on CPU, whose fixed cost per
call dwarfs the k*C multiply-adds. There the k shifted copies of the signal are stacked into
a ``(k, B*C)`` matrix and multiplied by the ``(out, k)`` kernel: one matmul with a long,
contiguous inner dimension. (An unfold into ``(B*C, k)`` windows, the obvious layout, is
about 2x slower forward+backward: BLAS handles the 7-wide operand badly and the
overlapping windows must be copied first.) On a GPU the arithmetic is free and every
kernel launch costs ~5 us of host time: pad + stack + matmul launch 3 kernels forward and
2k + 3 backward (one ``slice_backward`` and one add per tap), ``F.conv1d`` one each way
(:mod:`defcon_exp.ops.kernel_paths`; ``scripts/bench_launches.py`` counts them).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.nn import functional as F

from defcon_exp.ops.kernel_paths import cuda_path

__all__ = ["float32_logits", "pooled_conv1d"]


def float32_logits(logits: Callable[[Tensor], Tensor], pooled: Tensor) -> Tensor:
    """``logits(pooled)`` in float32 with autocast off (``Tensor[B, C] -> Tensor[B, C]``).

    The pooled-vector maths is a few k-tap kernels over ``B x C`` values. Under autocast
    each convolution would cast its signal and kernel to half precision (a kernel each way,
    in forward and backward) and the deformable op, which samples in float32, casts back
    up; one cast of the pooled vector replaces them all and keeps the sampling exact.
    """
    device_type = pooled.device.type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            return logits(pooled.float())
    return logits(pooled)


def pooled_conv1d(signal: Tensor, weight: Tensor, padding_mode: str = "zeros") -> Tensor:
    """``conv1d(signal, weight, padding=k//2)`` for a single input channel.

    Args:
        signal: ``Tensor[B, 1, C]``.
        weight: ``Tensor[out, 1, k]`` with odd ``k``.
        padding_mode: ``"zeros"`` or ``"circular"`` (the channel axis wraps around, as
            ``nn.Conv1d(padding_mode="circular")``; needs ``k // 2 <= C``).

    Returns:
        ``Tensor[B, out, C]`` (on the CPU a transposed view of an ``(out, B, C)`` result).
    """
    out_channels, _, kernel_size = weight.shape
    half = kernel_size // 2
    if padding_mode not in ("zeros", "circular"):
        raise ValueError(
            f"pooled_conv1d: unknown padding_mode {padding_mode!r}; use 'zeros' or 'circular'"
        )
    if cuda_path(signal):
        if padding_mode == "circular":
            return F.conv1d(F.pad(signal, (half, half), mode="circular"), weight.to(signal.dtype))
        return F.conv1d(signal, weight.to(signal.dtype), padding=half)
    batch, _, length = signal.shape
    if padding_mode == "circular":
        flat = signal[:, 0]
        padded = torch.cat([flat[:, length - half :], flat, flat[:, :half]], dim=1)
    else:
        padded = F.pad(signal[:, 0], (half, half))  # (B, C + k - 1)
    taps = torch.stack([padded[:, n : n + length] for n in range(kernel_size)])  # (k, B, C)
    out = weight[:, 0].to(taps.dtype) @ taps.view(kernel_size, batch * length)
    return out.view(out_channels, batch, length).transpose(0, 1)
