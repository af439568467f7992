"""Deformable 1D convolution (DCNv1, with the optional DCNv2 modulation mask).

The functional :func:`deform_conv1d` holds the logic; :class:`DeformConv1d` is a thin
module around it, the split ``torchvision.ops.deform_conv`` uses.

For output position ``p0`` and tap ``n`` the input is sampled at::

    p0 * stride - padding + n * dilation + offset[b, g * k + n, p0]

linearly interpolated between its two integer neighbours; neighbours outside
``[0, L - 1]`` read zero (as ``torchvision.ops.deform_conv2d`` with ``H = 1`` does).
The sampled values are multiplied by the mask (if any) and reduced by the weight as an
ordinary grouped convolution would.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["DeformConv1d", "deform_conv1d"]


def _check_args(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None,
    mask: Tensor | None,
    stride: int,
    padding: int,
    dilation: int,
) -> tuple[int, int, int]:
    """Validate shapes; return ``(groups, offset_groups, out_length)``."""
    for name, tensor, ndim in (("input", input, 3), ("offset", offset, 3), ("weight", weight, 3)):
        if tensor.dim() != ndim:
            raise ValueError(
                f"deform_conv1d: {name} must be {ndim}-D, received shape {tuple(tensor.shape)}"
            )
    if stride < 1 or dilation < 1 or padding < 0:
        raise ValueError(
            "deform_conv1d: expected stride >= 1, dilation >= 1, padding >= 0; received "
            f"stride={stride}, dilation={dilation}, padding={padding}"
        )
    batch, in_channels, length = input.shape
    out_channels, in_per_group, kernel_size = weight.shape
    if in_per_group == 0 or in_channels % in_per_group != 0:
        raise ValueError(
            f"deform_conv1d: input has {in_channels} channels, which weight's "
            f"{in_per_group} input channels per group do not divide"
        )
    groups = in_channels // in_per_group
    if out_channels % groups != 0:
        raise ValueError(
            f"deform_conv1d: {out_channels} output channels are not divisible by groups={groups}"
        )
    out_length = (length + 2 * padding - dilation * (kernel_size - 1) - 1) // stride + 1
    if out_length <= 0:
        raise ValueError(
            f"deform_conv1d: output length would be {out_length} for input length {length}, "
            f"kernel_size={kernel_size}, stride={stride}, padding={padding}, dilation={dilation}"
        )
    if offset.shape[0] != batch or offset.shape[2] != out_length:
        raise ValueError(
            f"deform_conv1d: offset must have shape (B={batch}, offset_groups*{kernel_size}, "
            f"L_out={out_length}), received {tuple(offset.shape)}"
        )
    if offset.shape[1] % kernel_size != 0 or offset.shape[1] == 0:
        raise ValueError(
            f"deform_conv1d: offset has {offset.shape[1]} channels, expected a positive "
            f"multiple of kernel_size={kernel_size} (offset_groups * kernel_size)"
        )
    offset_groups = offset.shape[1] // kernel_size
    if in_channels % offset_groups != 0:
        raise ValueError(
            f"deform_conv1d: input channels {in_channels} not divisible by "
            f"offset_groups={offset_groups}"
        )
    if mask is not None and mask.shape != offset.shape:
        raise ValueError(
            f"deform_conv1d: mask must have the offset's shape {tuple(offset.shape)}, "
            f"received {tuple(mask.shape)}"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(
            f"deform_conv1d: bias must have shape ({out_channels},), received {tuple(bias.shape)}"
        )
    return groups, offset_groups, out_length


def deform_conv1d(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    bias: Tensor | None = None,
    stride: int = 1,
    padding: int = 0,
    dilation: int = 1,
    mask: Tensor | None = None,
) -> Tensor:
    """Deformable 1D convolution.

    Args:
        input: ``Tensor[B, C_in, L]``.
        offset: ``Tensor[B, offset_groups * k, L_out]``; channel ``g * k + n`` shifts tap ``n``
            of the input channels in offset group ``g``.
        weight: ``Tensor[C_out, C_in / groups, k]``.
        bias: optional ``Tensor[C_out]``.
        stride, padding, dilation: as for :func:`torch.nn.functional.conv1d`.
        mask: optional ``Tensor[B, offset_groups * k, L_out]`` multiplying each sampled tap
            (DCNv2 modulation).

    Returns:
        ``Tensor[B, C_out, L_out]`` with ``L_out = (L + 2*padding - dilation*(k-1) - 1) // stride + 1``.
    """
    groups, offset_groups, out_length = _check_args(
        input, offset, weight, bias, mask, stride, padding, dilation
    )
    batch, in_channels, length = input.shape
    out_channels, _, kernel_size = weight.shape

    # Sampling positions, (B, G, k, L_out).
    base = torch.arange(out_length, device=input.device, dtype=offset.dtype) * stride - padding
    taps = torch.arange(kernel_size, device=input.device, dtype=offset.dtype) * dilation
    positions = offset.reshape(batch, offset_groups, kernel_size, out_length) + (
        base + taps[:, None]
    )
    left = positions.floor()
    frac = (positions - left).to(input.dtype)

    # Zero-padded copy: every out-of-range neighbour is clamped onto a zero column, so the
    # gathers need no validity masks.  Column j of `padded` holds input position j - 1.
    padded = nn.functional.pad(input, (1, 1))
    left_index = (left.clamp(-1, length) + 1).long()
    right_index = (left.clamp(-2, length - 1) + 2).long()

    channels_per_offset_group = in_channels // offset_groups
    padded = padded.view(batch, offset_groups, channels_per_offset_group, length + 2)

    def gather(index: Tensor) -> Tensor:
        index = index.reshape(batch, offset_groups, 1, kernel_size * out_length)
        index = index.expand(-1, -1, channels_per_offset_group, -1)
        return padded.gather(3, index)

    frac = frac.reshape(batch, offset_groups, 1, kernel_size * out_length)
    left_values = gather(left_index)
    sampled = left_values + frac * (gather(right_index) - left_values)
    if mask is not None:
        sampled = sampled * mask.to(input.dtype).reshape(
            batch, offset_groups, 1, kernel_size * out_length
        )

    # im2col layout (B, groups, C_in/groups * k, L_out) against weight (groups, C_out/groups, C_in/groups * k).
    columns = sampled.view(batch, groups, (in_channels // groups) * kernel_size, out_length)
    weight_matrix = weight.reshape(groups, out_channels // groups, -1)
    out = torch.matmul(weight_matrix, columns).view(batch, out_channels, out_length)
    if bias is not None:
        out = out + bias.view(1, -1, 1)
    return out


class DeformConv1d(nn.Module):
    """Deformable 1D convolution layer; offsets (and mask) are passed to ``forward``.

    ``forward(input: Tensor[B, C_in, L], offset: Tensor[B, offset_groups*k, L_out],
    mask: Tensor[B, offset_groups*k, L_out] | None = None) -> Tensor[B, C_out, L_out]``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        dilation: int = 1,
        groups: int = 1,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if in_channels % groups != 0 or out_channels % groups != 0:
            raise ValueError(
                f"DeformConv1d: in_channels={in_channels} and out_channels={out_channels} "
                f"must both be divisible by groups={groups}"
            )
        if kernel_size < 1:
            raise ValueError(f"DeformConv1d: kernel_size must be >= 1, received {kernel_size}")
        factory = {"device": device, "dtype": dtype}
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = kernel_size
        self.stride = stride
        self.padding = padding
        self.dilation = dilation
        self.groups = groups
        self.weight = nn.Parameter(
            torch.empty(out_channels, in_channels // groups, kernel_size, **factory)
        )
        self.bias = nn.Parameter(torch.empty(out_channels, **factory)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The same initialisation as nn.Conv1d.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1] * self.kernel_size
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, input: Tensor, offset: Tensor, mask: Tensor | None = None) -> Tensor:
        return deform_conv1d(
            input,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )

    def __repr__(self) -> str:
        extra = f", stride={self.stride}" if self.stride != 1 else ""
        extra += f", padding={self.padding}" if self.padding else ""
        extra += f", dilation={self.dilation}" if self.dilation != 1 else ""
        extra += f", groups={self.groups}" if self.groups != 1 else ""
        extra += ", bias=False" if self.bias is None else ""
        return (
            f"{type(self).__name__}({self.in_channels}, {self.out_channels}, "
            f"kernel_size={self.kernel_size}{extra})"
        )
