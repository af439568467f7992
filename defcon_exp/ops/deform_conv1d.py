"""Deformable 1D convolution (DCNv1, with the optional DCNv2 modulation mask).

The functional :func:`deform_conv1d` checks the arguments and calls the custom op
``defcon_exp::deform_conv1d_forward`` (:mod:`defcon_exp.ops.deform_conv1d_op`, which holds
the implementation and its backward); :class:`DeformConv1d` is a thin module around it,
the split ``torchvision.ops.deform_conv`` uses.

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

import torch
from torch import Tensor, nn

from defcon_exp.ops.deform_conv1d_op import deform_conv1d_forward
from defcon_exp.ops.kernel_paths import triton_path
from defcon_exp.ops.triton_ops import deform_conv1d_depthwise

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
    _check_optional(offset, mask, bias, out_channels)
    return groups, offset_groups, out_length


def _check_optional(
    offset: Tensor, mask: Tensor | None, bias: Tensor | None, out_channels: int
) -> None:
    """The mask (if any) has the offset's shape, the bias (if any) one value per output channel."""
    if mask is not None and mask.shape != offset.shape:
        raise ValueError(
            f"deform_conv1d: mask must have the offset's shape {tuple(offset.shape)}, "
            f"received {tuple(mask.shape)}"
        )
    if bias is not None and bias.shape != (out_channels,):
        raise ValueError(
            f"deform_conv1d: bias must have shape ({out_channels},), received {tuple(bias.shape)}"
        )


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
    kernels: str = "aten",
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
        kernels: ``"triton"``/``"auto"`` run the depthwise case (``weight: Tensor[C, 1, k]``,
            ``C`` offset groups, no mask) as one Triton kernel each way on CUDA
            (:mod:`defcon_exp.ops.kernel_paths`, :mod:`defcon_exp.ops.triton_ops`).

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
                kernels,
            )
    groups, offset_groups, _ = _check_args(
        input, offset, weight, bias, mask, stride, padding, dilation
    )
    in_channels, out_channels = input.shape[1], weight.shape[0]
    depthwise = mask is None and groups == offset_groups == in_channels == out_channels
    if depthwise and triton_path(input, kernels):
        out = deform_conv1d_depthwise(input, offset, weight, stride, padding, dilation)
    else:
        out = deform_conv1d_forward(
            input, offset, weight, mask, stride, padding, dilation, groups, offset_groups
        )[0]
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
