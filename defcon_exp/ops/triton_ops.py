"""The fused Triton kernels as ``torch.library`` custom ops, with their autograd formulas.

Each op's implementation allocates its outputs and launches one kernel of
:mod:`defcon_exp.ops.triton_kernels` (a backward: one zero fill for its atomic adds plus one
kernel); a fake implementation gives ``torch.compile`` the shapes, so a compiled model
keeps each op as one opaque node (no graph break) instead of tracing into the kernel.
(``torch.library.triton_op`` would let inductor see the kernels, but cannot be traced with
Triton's CPU interpreter, which the tests need.) The ATen implementations stay the CPU
path and the reference the tests compare with.

- :func:`defcon_gate`: DEFCON's whole pooled-vector path in one kernel: the offset
  convolution of the (optionally channel-shuffled) pooled vector, the deformable sampling,
  the weighted sum over taps and the sigmoid gate.
- :func:`deform_conv1d_depthwise`: the deformable 1D convolution with one input and one
  output channel per offset group (``groups == offset_groups == C_in == C_out``; any
  stride, padding, dilation; no mask).
- :func:`scale_add_relu_triton`: ``relu(features * weights + identity)``, the block's tail.
  It multiplies by float32 weights in float32 (under autocast the ATen path rounds the
  weights to the features' bf16 first), so the two paths can differ by a bf16 rounding.

All compute in float32 whatever the input dtype; the gate returns float32, the others the
input's dtype.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from defcon_exp.ops.triton_launch import interpreting, launch

__all__ = ["TRITON_IMPLEMENTATIONS", "defcon_gate", "deform_conv1d_depthwise", "scale_add_relu_triton"]

#: values per program of the pooled-vector kernels (rows x channels, powers of two) on a
#: GPU, and in the CPU interpreter (whose cost is per operation, not per value)
GATE_TILE = 1024
INTERPRETER_GATE_TILE = 16384


def _tiles(rows: int, length: int) -> tuple[tuple[int, int], int, int]:
    """``(grid, ROWS, BLOCK)`` for ``rows`` vectors of ``length`` values."""
    tile = INTERPRETER_GATE_TILE if interpreting() else GATE_TILE
    block = min(tile // 4, max(16, 1 << (length - 1).bit_length()))
    rows_per = min(tile // block, 1 << (rows - 1).bit_length())
    return (-(-rows // rows_per), -(-length // block)), rows_per, block


def _pointer(tensor: Tensor, stand_in: Tensor) -> Tensor:
    """``tensor``, or ``stand_in`` where it is empty: an empty CUDA tensor's null pointer is
    refused by Triton's launcher even when the kernel never reads it."""
    return tensor if tensor.numel() else stand_in


def _zeros(n: int, like: Tensor) -> Tensor:
    """A zero-filled float32 buffer for a backward's atomic adds (one fill launch)."""
    return torch.zeros(n, dtype=torch.float32, device=like.device)


# ---- DEFCON's pooled-vector path ---------------------------------------------------------


@torch.library.custom_op("defcon_exp::defcon_gate", mutates_args=())
def _defcon_gate(
    sums: Tensor, offset_weight: Tensor, weight: Tensor, scale: float, shuffle: int, sigmoid: bool
) -> Tensor:
    batch, channels = sums.shape
    kernel_size = weight.shape[-1]
    out = torch.empty(batch, channels, dtype=torch.float32, device=sums.device)
    grid, rows, block = _tiles(batch, channels)
    launch(
        "defcon_gate_forward_kernel",
        grid,
        (sums, _pointer(offset_weight, weight), weight, out, channels, scale, batch),
        K=kernel_size, SHUFFLE=shuffle, SIGMOID=sigmoid, OFFSETS=offset_weight.numel() > 0,
        ROWS=rows, BLOCK=block,
    )
    return out


@torch.library.custom_op("defcon_exp::defcon_gate_backward", mutates_args=())
def _defcon_gate_backward(
    grad: Tensor, sums: Tensor, offset_weight: Tensor, weight: Tensor, gate: Tensor,
    scale: float, shuffle: int, sigmoid: bool,
) -> Tensor:
    """One float32 buffer: the ``B * C`` gradients of the sums, then ``k * k`` of the offset
    weight (none without offsets) and ``k`` of the weight (a custom op's outputs may not
    alias each other)."""
    batch, channels = sums.shape
    k = weight.shape[-1]
    grads = _zeros(batch * channels + offset_weight.numel() + k, sums)
    grid, rows, block = _tiles(batch, channels)
    launch(
        "defcon_gate_backward_kernel",
        grid,
        (grad.contiguous(), sums, _pointer(offset_weight, weight), weight, gate, grads, channels,
         batch, scale),
        K=k, SHUFFLE=shuffle, SIGMOID=sigmoid, OFFSETS=offset_weight.numel() > 0,
        ROWS=rows, BLOCK=block,
    )
    return grads


@_defcon_gate.register_fake
def _(sums, offset_weight, weight, scale, shuffle, sigmoid):
    return sums.new_empty(sums.shape, dtype=torch.float32)


@_defcon_gate_backward.register_fake
def _(grad, sums, offset_weight, weight, gate, scale, shuffle, sigmoid):
    return sums.new_empty(sums.numel() + offset_weight.numel() + weight.shape[-1], dtype=torch.float32)


def _gate_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    sums, offset_weight, weight, ctx.scale, ctx.shuffle, ctx.sigmoid = inputs
    ctx.save_for_backward(sums, offset_weight, weight, output)


def _gate_autograd(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
    sums, offset_weight, weight, gate = ctx.saved_tensors
    grads = _defcon_gate_backward(
        grad, sums, offset_weight, weight, gate, ctx.scale, ctx.shuffle, ctx.sigmoid
    )
    k = weight.shape[-1]
    grad_sums = grads[: sums.numel()].view(sums.shape).to(sums.dtype)
    grad_offset = grads[sums.numel() : -k].view(offset_weight.shape).to(offset_weight.dtype)
    return grad_sums, grad_offset, grads[-k:].view(weight.shape).to(weight.dtype), None, None, None


_defcon_gate.register_autograd(_gate_autograd, setup_context=_gate_setup)


def defcon_gate(
    sums: Tensor, offset_weight: Tensor | None, weight: Tensor, scale: float = 1.0,
    shuffle_groups: int = 1, sigmoid: bool = True,
) -> Tensor:
    """DEFCON's channel weights from the pooled vector, in one kernel each way.

    Args:
        sums: ``Tensor[B, C]`` per-channel sums (or means) of the feature map; the pooled
            vector is ``sums * scale`` (``scale = 1 / (H * W)`` folds the mean's division
            into the kernels, forward and backward).
        offset_weight: ``Tensor[k, 1, k]`` (or ``[k, k]``) weight of the bias-free offset conv;
            None: zero offsets, i.e. ECA's 'same'-padded conv of the pooled vector.
        weight: ``Tensor[1, 1, k]`` (or ``[k]``) the deformable kernel.
        shuffle_groups: offsets computed from the vector channel-shuffled with this many
            groups (1 = none; ``C`` must be divisible by it), as :class:`DefconShuffle`.
        sigmoid: apply the sigmoid gate (else return the logits).

    Returns:
        ``Tensor[B, C]`` float32: ``sigmoid(deform_conv1d(pooled, offsets, weight, padding=k//2))``.
    """
    k = weight.shape[-1]
    offsets = offset_weight is not None
    if (offsets and offset_weight.numel() != k * k) or weight.numel() != k or sums.dim() != 2:
        received = None if offset_weight is None else tuple(offset_weight.shape)
        raise ValueError(
            f"defcon_gate: expected sums (B, C), offset_weight (k, 1, k), weight (1, 1, k); "
            f"received {tuple(sums.shape)}, {received}, {tuple(weight.shape)}"
        )
    # no offsets: an empty weight, and the kernels skip the offset convolution
    offset_weight = offset_weight if offsets else weight.new_empty(0, k)
    if sums.shape[1] % shuffle_groups:
        raise ValueError(
            f"defcon_gate: {sums.shape[1]} channels are not divisible by shuffle_groups={shuffle_groups}"
        )
    return _defcon_gate(
        sums.contiguous(), offset_weight.reshape(-1, k).float().contiguous(),
        weight.reshape(k).float().contiguous(), float(scale), int(shuffle_groups), bool(sigmoid),
    )


# ---- the depthwise deformable 1D convolution ---------------------------------------------


@torch.library.custom_op("defcon_exp::deform_conv1d_depthwise", mutates_args=())
def _deform_depthwise(
    input: Tensor, offset: Tensor, weight: Tensor, stride: int, padding: int, dilation: int
) -> Tensor:
    batch, groups, length = input.shape
    out_length = offset.shape[-1]
    out = torch.empty(batch, groups, out_length, dtype=input.dtype, device=input.device)
    grid, rows, block = _tiles(batch * groups, out_length)
    launch(
        "deform_depthwise_forward_kernel",
        grid,
        (input, offset, weight, out, batch * groups, groups, length, out_length, stride,
         padding, dilation),
        K=weight.shape[-1], ROWS=rows, BLOCK=block,
    )
    return out


@torch.library.custom_op("defcon_exp::deform_conv1d_depthwise_backward", mutates_args=())
def _deform_depthwise_backward(
    grad: Tensor, input: Tensor, offset: Tensor, weight: Tensor, stride: int, padding: int,
    dilation: int,
) -> tuple[Tensor, Tensor]:
    """The gradients of the offset, and one float32 buffer: the input's, then the weight's."""
    batch, groups, length = input.shape
    out_length = offset.shape[-1]
    grads = _zeros(input.numel() + weight.numel(), input)
    grad_offset = torch.empty(offset.shape, dtype=offset.dtype, device=offset.device)
    grid, rows, block = _tiles(batch * groups, out_length)
    launch(
        "deform_depthwise_backward_kernel",
        grid,
        (grad.contiguous(), input, offset, weight, grads, grad_offset, batch, groups, length,
         out_length, stride, padding, dilation),
        K=weight.shape[-1], ROWS=rows, BLOCK=block,
    )
    return grads, grad_offset


@_deform_depthwise.register_fake
def _(input, offset, weight, stride, padding, dilation):
    return input.new_empty(input.shape[0], input.shape[1], offset.shape[-1])


@_deform_depthwise_backward.register_fake
def _(grad, input, offset, weight, stride, padding, dilation):
    grads = input.new_empty(input.numel() + weight.numel(), dtype=torch.float32)
    return grads, torch.empty_like(offset)


def _depthwise_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    input, offset, weight, *ctx.geometry = inputs
    ctx.save_for_backward(input, offset, weight)


def _depthwise_autograd(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
    input, offset, weight = ctx.saved_tensors
    grads, grad_offset = _deform_depthwise_backward(grad, input, offset, weight, *ctx.geometry)
    grad_input = grads[: input.numel()].view(input.shape).to(input.dtype)
    grad_weight = grads[input.numel() :].view(weight.shape).to(weight.dtype)
    return grad_input, grad_offset, grad_weight, None, None, None


_deform_depthwise.register_autograd(_depthwise_autograd, setup_context=_depthwise_setup)


def deform_conv1d_depthwise(
    input: Tensor, offset: Tensor, weight: Tensor, stride: int = 1, padding: int = 0,
    dilation: int = 1,
) -> Tensor:
    """:func:`~defcon_exp.ops.deform_conv1d` for ``weight: Tensor[G, 1, k]`` on
    ``input: Tensor[B, G, L]`` with ``offset: Tensor[B, G * k, L_out]`` (one offset group per
    channel), no bias, no mask; the caller has checked the shapes. Returns
    ``Tensor[B, G, L_out]`` in the input's dtype (computed in float32)."""
    return _deform_depthwise(
        input.contiguous(), offset.contiguous(), weight.contiguous(), stride, padding, dilation
    )


# ---- the attention block's tail -------------------------------------------------------------


def _strides(t: Tensor) -> tuple[int, int, int]:
    """``(batch, channel, hw)`` strides of a ``Tensor[B, C, H, W]`` whose H and W merge."""
    return t.stride(0), t.stride(1), t.stride(3)


def mergeable(t: Tensor) -> bool:
    """Whether ``t``'s H and W axes can be walked as one (contiguous or channels_last)."""
    return t.shape[2] == 1 or t.stride(2) == t.shape[3] * t.stride(3)


@torch.library.custom_op("defcon_exp::scale_add_relu", mutates_args=())
def _scale_add_relu(features: Tensor, weights: Tensor, identity: Tensor) -> Tensor:
    batch, channels, height, width = features.shape
    out = torch.empty_like(features)
    hw = height * width
    block_c, block_hw = 32, min(64, max(16, 1 << (hw - 1).bit_length()))
    launch(
        "scale_add_relu_forward_kernel",
        (batch, -(-channels // block_c), -(-hw // block_hw)),
        (features, weights, identity, out, channels, hw, *_strides(features), *_strides(identity)),
        BLOCK_C=block_c, BLOCK_HW=block_hw,
    )
    return out


@torch.library.custom_op("defcon_exp::scale_add_relu_backward", mutates_args=())
def _scale_add_relu_backward(
    grad: Tensor, features: Tensor, weights: Tensor, out: Tensor, identity_dtype: torch.dtype
) -> tuple[Tensor, Tensor, Tensor]:
    batch, channels, height, width = features.shape
    grad_features = torch.empty_like(features)
    grad_identity = torch.empty_like(features, dtype=identity_dtype)
    grad_weights = torch.empty(batch, channels, dtype=torch.float32, device=features.device)
    if not mergeable(grad):
        grad = grad.contiguous(memory_format=torch.channels_last)
    launch(
        "scale_add_relu_backward_kernel",
        (batch, -(-channels // 32)),
        (grad, features, weights, out, grad_features, grad_identity, grad_weights, channels,
         height * width, *_strides(features), *_strides(grad)),
        BLOCK_C=32, BLOCK_HW=64,
    )
    return grad_features, grad_weights.to(weights.dtype).view(weights.shape), grad_identity


@_scale_add_relu.register_fake
def _(features, weights, identity):
    return torch.empty_like(features)


@_scale_add_relu_backward.register_fake
def _(grad, features, weights, out, identity_dtype):
    return (
        torch.empty_like(features),
        torch.empty_like(weights),
        torch.empty_like(features, dtype=identity_dtype),
    )


def _tail_setup(ctx: Any, inputs: tuple[Any, ...], output: Tensor) -> None:
    features, weights, identity = inputs
    ctx.identity_dtype = identity.dtype
    ctx.save_for_backward(features, weights, output)


def _tail_autograd(ctx: Any, grad: Tensor) -> tuple[Tensor | None, ...]:
    features, weights, out = ctx.saved_tensors
    return _scale_add_relu_backward(grad, features, weights, out, ctx.identity_dtype)


_scale_add_relu.register_autograd(_tail_autograd, setup_context=_tail_setup)


def scale_add_relu_triton(features: Tensor, weights: Tensor, identity: Tensor) -> Tensor:
    """:func:`~defcon_exp.ops.scale_add_relu` in one kernel each way: ``features``,
    ``identity``: ``Tensor[B, C, H, W]`` (contiguous or channels_last), ``weights``:
    ``Tensor[B, C, 1, 1]``. Returns ``Tensor[B, C, H, W]`` in ``features``' dtype and layout."""
    if not mergeable(features):
        features = features.contiguous()
    if not mergeable(identity):
        identity = identity.contiguous()
    return _scale_add_relu(features, weights.contiguous(), identity)


#: op -> implementation, for counting launches (the counter runs these under itself)
TRITON_IMPLEMENTATIONS = {
    torch.ops.defcon_exp.defcon_gate.default: _defcon_gate._init_fn,
    torch.ops.defcon_exp.defcon_gate_backward.default: _defcon_gate_backward._init_fn,
    torch.ops.defcon_exp.deform_conv1d_depthwise.default: _deform_depthwise._init_fn,
    torch.ops.defcon_exp.deform_conv1d_depthwise_backward.default: _deform_depthwise_backward._init_fn,
    torch.ops.defcon_exp.scale_add_relu.default: _scale_add_relu._init_fn,
    torch.ops.defcon_exp.scale_add_relu_backward.default: _scale_add_relu_backward._init_fn,
}
