"""The deformable 1D convolution as a ``torch.library`` custom op: forward and backward.

``defcon_exp::deform_conv1d_forward`` and ``defcon_exp::deform_conv1d_backward`` are real
custom ops (``torch.library.custom_op``) with fake implementations for tracing and an
autograd formula connecting them, so ``torch.compile`` sees one opaque op each way
instead of tracing ~20 ATen ops; a fused kernel can replace an implementation later
without touching the callers. :func:`defcon_exp.ops.deform_conv1d` validates the
arguments and calls them.

Implementation: the input is zero-padded by two on each side, and every sampling position
(in padded coordinates) is clamped onto ``[0, L + 2]``: a neighbour outside the signal
then reads a zero column, so no validity masks are needed in either direction. The right
neighbour is gathered from the padded input shifted by one with the same index, so one
int64 index serves both. The base positions (``p0 * stride - padding + n * dilation + 2``)
are computed once per geometry and cached: building them costs five small kernels a call.
On CUDA (:func:`~defcon_exp.ops.kernel_paths.cuda_path`) the weight reduction is one
``bmm`` with a broadcast weight; on the CPU the 2-D by 3-D ``matmul`` is several times
faster (it does not copy the weight per sample).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from defcon_exp.ops.kernel_paths import cuda_path

__all__ = ["deform_conv1d_backward", "deform_conv1d_forward", "sampling_grid"]

_GRIDS: dict[tuple[Any, ...], Tensor] = {}
_MAX_GRIDS = 64


def sampling_grid(
    out_length: int, kernel_size: int, stride: int, padding: int, dilation: int, like: Tensor
) -> Tensor:
    """``Tensor[k, L_out]``: tap ``n``'s base position for output ``p0`` in the input padded
    by two, ``p0 * stride - padding + n * dilation + 2``, in ``like``'s dtype (at least
    float32) and device; cached per geometry."""
    dtype = torch.promote_types(like.dtype, torch.float32)
    key = (out_length, kernel_size, stride, padding, dilation, dtype, like.device)
    grid = _GRIDS.get(key)
    if grid is None:
        taps = torch.arange(kernel_size, dtype=torch.float64)[:, None] * dilation
        grid = torch.arange(out_length, dtype=torch.float64) * stride + (2 - padding) + taps
        grid = grid.to(device=like.device, dtype=dtype)
        if len(_GRIDS) >= _MAX_GRIDS:
            _GRIDS.clear()
        _GRIDS[key] = grid
    return grid


def _forward(
    input: Tensor,
    offset: Tensor,
    weight: Tensor,
    mask: Tensor | None,
    stride: int,
    padding: int,
    dilation: int,
    groups: int,
    offset_groups: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    batch, in_channels, length = input.shape
    out_channels, in_per_group, kernel_size = weight.shape
    out_length = offset.shape[-1]
    taps_by_length = kernel_size * out_length
    per_offset_group = in_channels // offset_groups
    grid = sampling_grid(out_length, kernel_size, stride, padding, dilation, offset)
    # Positions in float32 at least: integers above 256 (bfloat16) / 2048 (float16) are not
    # representable in half precision. contiguous(): the views below need the standard layout.
    positions = offset.contiguous().view(batch, offset_groups, 1, kernel_size, out_length) + grid
    left = positions.floor()
    frac = positions.sub_(left).to(input.dtype).view(batch, offset_groups, 1, taps_by_length)
    # A non-finite offset (a diverging run) must not become an index: NaN maps to the zero
    # padding, and its NaN frac still makes the output NaN (the loss check stops).
    index = left.nan_to_num_(nan=0.0).clamp_(0, length + 2).to(torch.int64)
    index = index.view(batch, offset_groups, 1, taps_by_length)
    expanded = index.expand(-1, -1, per_offset_group, -1)
    padded = F.pad(input, (2, 2)).view(batch, offset_groups, per_offset_group, length + 4)
    # In place where possible: every full-size temporary costs a pass over memory.
    sampled = padded.gather(3, expanded)
    slope = padded[..., 1:].gather(3, expanded).sub_(sampled)
    sampled.addcmul_(frac, slope)
    columns = sampled
    if mask is not None:
        columns = sampled * mask.to(input.dtype).reshape(batch, offset_groups, 1, taps_by_length)
    columns = columns.view(batch, groups, in_per_group * kernel_size, out_length)
    out = _grouped_matmul(weight.reshape(groups, out_channels // groups, -1), columns)
    out = out.reshape(batch, out_channels, out_length).contiguous()
    return out, index, frac.contiguous(), slope, sampled


def _backward(
    grad_out: Tensor,
    weight: Tensor,
    mask: Tensor | None,
    index: Tensor,
    frac: Tensor,
    slope: Tensor,
    sampled: Tensor,
    length: int,
    groups: int,
    needs: list[bool],
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    batch, offset_groups, per_offset_group, taps_by_length = sampled.shape
    out_channels, in_per_group, kernel_size = weight.shape
    out_length = grad_out.shape[-1]
    needs_input, needs_offset, needs_weight, needs_mask = needs
    none = grad_out.new_empty(0)
    grad_input = grad_offset = grad_weight = grad_mask = none
    grad_out = grad_out.reshape(batch, groups, out_channels // groups, out_length)
    if mask is not None:
        mask = mask.to(sampled.dtype).reshape(batch, offset_groups, 1, taps_by_length)
    if needs_weight:
        columns = sampled if mask is None else sampled * mask
        columns = columns.view(batch, groups, in_per_group * kernel_size, out_length)
        grad_weight = _grouped_weight_grad(grad_out, columns).reshape(weight.shape)
    if not (needs_input or needs_offset or needs_mask):
        return grad_input, grad_offset, grad_weight, grad_mask
    weight_matrix = weight.reshape(groups, out_channels // groups, -1)
    grad_sampled = _grouped_matmul_t(weight_matrix, grad_out).reshape(sampled.shape)
    offset_shape = (batch, offset_groups * kernel_size, out_length)
    if mask is not None:
        if needs_mask:
            grad_mask = _sum_dim2(grad_sampled * sampled).view(offset_shape)
        grad_sampled = grad_sampled * mask
    if needs_offset:
        grad_offset = _sum_dim2(grad_sampled * slope).view(offset_shape)
    if needs_input:
        grad_right = grad_sampled * frac
        grad_left = grad_sampled.sub_(grad_right)
        padded_grad = grad_sampled.new_zeros(batch, offset_groups, per_offset_group, length + 4)
        expanded = index.expand(-1, -1, per_offset_group, -1)
        padded_grad.scatter_add_(3, expanded, grad_left)
        padded_grad[..., 1:].scatter_add_(3, expanded, grad_right)
        in_channels = offset_groups * per_offset_group
        grad_input = padded_grad.view(batch, in_channels, length + 4).narrow(2, 2, length)
    return grad_input, grad_offset, grad_weight, grad_mask


def _sum_dim2(t: Tensor) -> Tensor:
    """``t.sum(2, keepdim=True)``; a size-1 dimension is returned as it is (no kernel)."""
    return t if t.shape[2] == 1 else t.sum(2, keepdim=True)


def _grouped_matmul(weight: Tensor, columns: Tensor) -> Tensor:
    """``weight[g, o, j]`` x ``columns[b, g, j, l]`` -> ``Tensor[b, g, o, l]``."""
    if weight.shape[0] == 1:
        if cuda_path(columns):  # one bmm; matmul would copy the transposed columns first
            batch = columns.shape[0]
            return torch.bmm(weight.expand(batch, -1, -1), columns[:, 0]).unsqueeze(1)
        # CPU: a 2-D by 3-D matmul is several times faster than the batched broadcast
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


# ---- registration ---------------------------------------------------------------------

deform_conv1d_forward = torch.library.custom_op(
    "defcon_exp::deform_conv1d_forward", _forward, mutates_args=()
)
deform_conv1d_backward = torch.library.custom_op(
    "defcon_exp::deform_conv1d_backward", _backward, mutates_args=()
)


@deform_conv1d_forward.register_fake
def _forward_fake(input, offset, weight, mask, stride, padding, dilation, groups, offset_groups):
    batch, in_channels, _ = input.shape
    out_channels, _, kernel_size = weight.shape
    out_length = offset.shape[-1]
    taps = (batch, offset_groups, 1, kernel_size * out_length)
    gathered = (batch, offset_groups, in_channels // offset_groups, kernel_size * out_length)
    return (
        input.new_empty(batch, out_channels, out_length),
        input.new_empty(taps, dtype=torch.int64),
        input.new_empty(taps),
        input.new_empty(gathered),
        input.new_empty(gathered),
    )


@deform_conv1d_backward.register_fake
def _backward_fake(grad_out, weight, mask, index, frac, slope, sampled, length, groups, needs):
    batch, offset_groups, per_offset_group, _ = sampled.shape
    out_length = grad_out.shape[-1]
    kernel_size = weight.shape[-1]
    none = grad_out.new_empty(0)
    grad_input = grad_out.new_empty(batch, offset_groups * per_offset_group, length + 4)
    offset_like = grad_out.new_empty(batch, offset_groups * kernel_size, out_length)
    return (
        grad_input.narrow(2, 2, length) if needs[0] else none,
        offset_like if needs[1] else none,
        torch.empty_like(weight) if needs[2] else none,
        torch.empty_like(offset_like) if needs[3] and mask is not None else none,
    )


def _setup_context(ctx: Any, inputs: tuple[Any, ...], output: tuple[Tensor, ...]) -> None:
    input, _, weight, mask, _, _, _, groups, _ = inputs
    _, index, frac, slope, sampled = output
    ctx.mark_non_differentiable(index, frac, slope, sampled)
    ctx.set_materialize_grads(False)  # no zero gradients made for those four
    ctx.save_for_backward(weight, mask, index, frac, slope, sampled)
    ctx.length, ctx.groups = input.shape[-1], groups


def _autograd_backward(ctx: Any, grad_out: Tensor | None, *_: Any) -> tuple[Tensor | None, ...]:
    if grad_out is None:  # grads are not materialised: the output got no gradient
        return (None,) * 9
    weight, mask, index, frac, slope, sampled = ctx.saved_tensors
    needs = [bool(n) for n in ctx.needs_input_grad[:4]]
    grads = deform_conv1d_backward(
        grad_out, weight, mask, index, frac, slope, sampled, ctx.length, ctx.groups, needs
    )
    return (*(g if n else None for g, n in zip(grads, needs, strict=True)), *(None,) * 5)


deform_conv1d_forward.register_autograd(_autograd_backward, setup_context=_setup_context)

#: the Python implementations, for counting the kernels they launch
PYTHON_IMPLEMENTATIONS = {
    torch.ops.defcon_exp.deform_conv1d_forward.default: _forward,
    torch.ops.defcon_exp.deform_conv1d_backward.default: _backward,
}
