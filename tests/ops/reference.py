"""Two independent references for ``defcon_exp.ops.deform_conv1d``.

* :func:`deform_conv1d_torchvision` runs ``torchvision.ops.deform_conv2d`` with ``H = 1``.
* :func:`deform_conv1d_loops` is a slow, obviously-correct implementation written as explicit
  Python loops over batch, output channel, output position, input channel and tap.  It is built
  from scalar tensor operations, so autograd differentiates it too (small shapes only).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor
from torchvision.ops import deform_conv2d


def deform_conv1d_torchvision(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """``deform_conv1d`` through ``torchvision.ops.deform_conv2d`` with ``H = 1``.

    torchvision's offset holds, per offset group and per tap (row-major over ``kh x kw``), the
    pair ``(dy, dx)``.  With ``kh = 1`` the tap index is ``g * k + n``, so channel
    ``2 * (g * k + n)`` is ``dy`` (zero here) and ``2 * (g * k + n) + 1`` is our offset.
    """
    batch, channels, out_length = offset.shape
    offset_2d = torch.stack([torch.zeros_like(offset), offset], dim=2)
    offset_2d = offset_2d.reshape(batch, 2 * channels, 1, out_length)
    mask_2d = None if mask is None else mask.unsqueeze(2)
    out = deform_conv2d(
        input.unsqueeze(2),
        offset_2d,
        weight.unsqueeze(2),
        bias,
        stride=(1, stride),
        padding=(0, padding),
        dilation=(1, dilation),
        mask=mask_2d,
    )
    return out.squeeze(2)


def _sample(row: Tensor, position: Tensor) -> Tensor:
    """Linear interpolation of the 1-D tensor ``row`` at ``position``; zero outside ``[0, L-1]``."""
    length = row.shape[0]
    left = math.floor(position.item())
    frac = position - left  # differentiable in the position (the floor is a constant)
    value = position.new_zeros(()).to(row.dtype)
    if 0 <= left <= length - 1:
        value = value + (1 - frac) * row[left]
    if 0 <= left + 1 <= length - 1:
        value = value + frac * row[left + 1]
    return value


def deform_conv1d_loops(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Slow loop reference; same signature and semantics as ``deform_conv1d``."""
    batch, in_channels, length = input.shape
    out_channels, in_per_group, kernel_size = weight.shape
    groups = in_channels // in_per_group
    out_per_group = out_channels // groups
    offset_groups = offset.shape[1] // kernel_size
    channels_per_offset_group = in_channels // offset_groups
    out_length = (length + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1

    rows = []
    for b in range(batch):
        channels = []
        for o in range(out_channels):
            group = o // out_per_group
            positions = []
            for p0 in range(out_length):
                total = input.new_zeros(())
                for ci in range(in_per_group):
                    c = group * in_per_group + ci  # absolute input channel
                    g = c // channels_per_offset_group  # its offset group
                    for n in range(kernel_size):
                        position = (
                            p0 * stride
                            - padding
                            + n * dilation
                            + offset[b, g * kernel_size + n, p0]
                        )
                        value = _sample(input[b, c], position)
                        if mask is not None:
                            value = value * mask[b, g * kernel_size + n, p0]
                        total = total + weight[o, ci, n] * value
                if bias is not None:
                    total = total + bias[o]
                positions.append(total)
            channels.append(torch.stack(positions) if positions else input.new_zeros(0))
        rows.append(torch.stack(channels))
    if not rows:
        return input.new_zeros(0, out_channels, out_length)
    return torch.stack(rows)
