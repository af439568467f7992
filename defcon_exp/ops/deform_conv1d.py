"""Deformable 1D convolution (DCNv1, with the optional DCNv2 modulation mask).

The functional :func:`deform_conv1d` holds the logic; :class:`DeformConv1d` is a thin
module around it, the split ``torchvision.ops.deform_conv`` uses.

For output position ``p0`` and tap ``n`` the input is sampled at::

    p0 * stride - padding + n * dilation + offset[b, g * k + n, p0]

linearly interpolated between its two integer neighbours; neighbours outside
``[0, L - 1]`` read zero (as ``torchvision.ops.deform_conv2d`` with ``H = 1`` does).
The sampled values are multiplied by the mask (if any) and reduced by the weight as an
ordinary grouped convolution would.

Precision: sampling positions are always computed in (at least) float32 — bfloat16 cannot
even represent the channel index 257, and float16 not 2049. Under ``torch.autocast`` the
whole op runs in float32 (half inputs are cast up, autocast is paused inside) and returns
float32, as autocast's own float32 ops do; outside autocast the output follows the input's
dtype.
"""

from __future__ import annotations

import math
from typing import Any

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


class _DeformConv1dFunction(torch.autograd.Function):
    """Forward and a hand-written backward over flat gathers.

    The input is zero-padded by two on each side, and every sampling position is clamped
    onto ``[-2, L]``: a neighbour outside the signal then reads a zero column, so no
    validity masks are needed in either direction. The right neighbour is gathered from the
    padded input shifted by one with the same index, so one int64 index serves both.
    """

    @staticmethod
    def forward(
        ctx: Any,
        input: Tensor,
        offset: Tensor,
        weight: Tensor,
        mask: Tensor | None,
        stride: int,
        padding: int,
        dilation: int,
        groups: int,
        offset_groups: int,
    ) -> Tensor:
        batch, in_channels, length = input.shape
        out_channels, in_per_group, kernel_size = weight.shape
        out_length = offset.shape[-1]
        taps_by_length = kernel_size * out_length
        per_offset_group = in_channels // offset_groups

        # Positions in float32 at least: integers above 256 (bfloat16) / 2048 (float16) are
        # not representable in half precision, and a rounded position samples the wrong channel.
        position_dtype = torch.promote_types(offset.dtype, torch.float32)
        grid = torch.arange(out_length, device=offset.device, dtype=position_dtype) * stride
        grid = (grid - padding) + dilation * torch.arange(
            kernel_size, device=offset.device, dtype=position_dtype
        ).unsqueeze(1)
        # contiguous(): elementwise results keep a permuted offset's strides, and the views
        # below need the standard layout.
        positions = (
            offset.contiguous().view(batch, offset_groups, 1, kernel_size, out_length) + grid
        )
        left = positions.floor()
        frac = positions.sub_(left).to(input.dtype).view(batch, offset_groups, 1, taps_by_length)
        # A non-finite offset (a diverging run) must not become an index: NaN maps to the
        # zero padding, and its NaN frac still makes the output NaN (the loss check stops).
        index = left.nan_to_num_(nan=-2.0).clamp_(-2, length).add_(2).to(torch.int64)
        index = index.view(batch, offset_groups, 1, taps_by_length).expand(
            -1, -1, per_offset_group, -1
        )

        padded = nn.functional.pad(input, (2, 2)).view(
            batch, offset_groups, per_offset_group, length + 4
        )
        # In place where possible: every full-size temporary costs a pass over memory.
        sampled = padded.gather(3, index)
        slope = padded[..., 1:].gather(3, index).sub_(sampled)
        sampled.addcmul_(frac, slope)
        if mask is not None:
            mask = mask.to(input.dtype).reshape(batch, offset_groups, 1, taps_by_length)
        columns = sampled if mask is None else sampled * mask
        columns = columns.view(batch, groups, in_per_group * kernel_size, out_length)
        out = _grouped_matmul(weight.reshape(groups, out_channels // groups, -1), columns)

        ctx.save_for_backward(weight, mask, index, frac, slope, sampled)
        ctx.geometry = (batch, in_channels, length, offset_groups, groups)
        return out.reshape(batch, out_channels, out_length)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        weight, mask, index, frac, slope, sampled = ctx.saved_tensors
        batch, in_channels, length, offset_groups, groups = ctx.geometry
        out_channels, _, kernel_size = weight.shape
        out_length = grad_out.shape[-1]
        needs_input, needs_offset, needs_weight, needs_mask = ctx.needs_input_grad[:4]

        weight_matrix = weight.reshape(groups, out_channels // groups, -1)
        grad_out = grad_out.reshape(batch, groups, out_channels // groups, out_length)
        grad_input = grad_offset = grad_weight = grad_mask = None
        if needs_weight:
            columns = sampled if mask is None else sampled * mask
            columns = columns.view(batch, groups, in_channels // groups * kernel_size, out_length)
            grad_weight = _grouped_weight_grad(grad_out, columns).reshape(weight.shape)
        if not (needs_input or needs_offset or needs_mask):
            return grad_input, grad_offset, grad_weight, grad_mask, None, None, None, None, None

        grad_sampled = _grouped_matmul_t(weight_matrix, grad_out).reshape(sampled.shape)
        if mask is not None:
            if needs_mask:
                grad_mask = (grad_sampled * sampled).sum(2)
                grad_mask = grad_mask.view(batch, offset_groups * kernel_size, out_length)
            grad_sampled.mul_(mask)
        if needs_offset:
            grad_offset = (grad_sampled * slope).sum(2)
            grad_offset = grad_offset.view(batch, offset_groups * kernel_size, out_length)
        if needs_input:
            grad_right = grad_sampled * frac
            grad_left = grad_sampled.sub_(grad_right)
            padded_grad = grad_sampled.new_zeros(*sampled.shape[:3], length + 4)
            padded_grad.scatter_add_(3, index, grad_left)
            padded_grad[..., 1:].scatter_add_(3, index, grad_right)
            grad_input = padded_grad[..., 2 : length + 2].reshape(batch, in_channels, length)
        return grad_input, grad_offset, grad_weight, grad_mask, None, None, None, None, None


def _grouped_matmul(weight: Tensor, columns: Tensor) -> Tensor:
    """``weight[g, o, j]`` x ``columns[b, g, j, l]`` -> ``Tensor[b, g, o, l]``.

    With one group (every DEFCON module) a 2-D by 3-D ``matmul`` is several times faster
    than the batched broadcast that ``einsum`` falls back to.
    """
    if weight.shape[0] == 1:
        return torch.matmul(weight[0], columns[:, 0]).unsqueeze(1)
    return torch.einsum("goj,bgjl->bgol", weight, columns)


def _grouped_matmul_t(weight: Tensor, grad_out: Tensor) -> Tensor:
    """``weight[g, o, j]`` x ``grad_out[b, g, o, l]`` -> ``Tensor[b, g, j, l]``."""
    if weight.shape[1] == 1:
        return grad_out * weight.view(1, weight.shape[0], -1, 1)
    return torch.einsum("goj,bgol->bgjl", weight, grad_out)


def _grouped_weight_grad(grad_out: Tensor, columns: Tensor) -> Tensor:
    """``grad_out[b, g, o, l]`` x ``columns[b, g, j, l]`` -> ``Tensor[g, o, j]``."""
    if grad_out.shape[2] == 1:
        return (grad_out * columns).sum((0, 3)).unsqueeze(1)
    return torch.einsum("bgol,bgjl->goj", grad_out, columns)


def _float32(tensor: Tensor) -> Tensor:
    """``tensor`` in float32 if it is float16/bfloat16, else unchanged (float64 stays)."""
    return tensor.float() if tensor.dtype in (torch.float16, torch.bfloat16) else tensor


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
        ``Tensor[B, C_out, L_out]`` with ``L_out = (L + 2*padding - dilation*(k-1) - 1) // stride + 1``;
        float32 under ``torch.autocast``, else the input's dtype.
    """
    device_type = input.device.type
    if torch.amp.is_autocast_available(device_type) and torch.is_autocast_enabled(device_type):
        # Like a custom_fwd(cast_inputs=torch.float32) for any device: half inputs go up to
        # float32 (autograd casts their gradients back) and autocast is off inside.
        with torch.autocast(device_type, enabled=False):
            return deform_conv1d(
                _float32(input),
                _float32(offset),
                _float32(weight),
                None if bias is None else _float32(bias),
                stride,
                padding,
                dilation,
                None if mask is None else _float32(mask),
            )
    groups, offset_groups, _ = _check_args(
        input, offset, weight, bias, mask, stride, padding, dilation
    )
    out = _DeformConv1dFunction.apply(
        input, offset, weight, mask, stride, padding, dilation, groups, offset_groups
    )
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
