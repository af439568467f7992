"""``relu(features * weights + identity)``, the tail of an attention bottleneck, in one op.

Unfused, autograd keeps the product and the sum as separate full-size tensors and makes
three passes forward and four backward over each block's output. Here the forward is one
``addcmul`` plus an in-place ReLU, and the backward one ReLU mask pass, one multiply and
one batched reduction, with nothing but the output and the inputs saved.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

__all__ = ["scale_add_relu"]


class _ScaleAddReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, features: Tensor, weights: Tensor, identity: Tensor) -> Tensor:
        # Under autocast the three may differ (half features, float32 weights or identity):
        # compute in the features' dtype, return each gradient in its input's dtype.
        ctx.input_dtypes = (weights.dtype, identity.dtype)
        weights = weights.to(features.dtype)
        out = torch.addcmul(identity.to(features.dtype), features, weights).relu_()
        ctx.save_for_backward(features, weights, out)
        return out

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:
        features, weights, out = ctx.saved_tensors
        weights_dtype, identity_dtype = ctx.input_dtypes
        grad = torch.ops.aten.threshold_backward(grad_out.to(out.dtype), out, 0)
        grad_features = grad * weights if ctx.needs_input_grad[0] else None
        grad_weights = None
        if ctx.needs_input_grad[1]:
            grad_weights = torch.linalg.vecdot(
                grad.flatten(2), features.flatten(2), dim=-1
            ).view_as(weights).to(weights_dtype)
        return grad_features, grad_weights, grad.to(identity_dtype)


def scale_add_relu(features: Tensor, weights: Tensor, identity: Tensor) -> Tensor:
    """``relu(features * weights + identity)`` with a fused backward.

    Args:
        features: ``Tensor[B, C, H, W]`` (any memory format).
        weights: ``Tensor[B, C, 1, 1]`` channel weights.
        identity: ``Tensor[B, C, H, W]`` the residual branch.

    Returns:
        ``Tensor[B, C, H, W]`` in ``features``' dtype (``weights`` and ``identity`` are cast to
        it, so under autocast half-precision features keep the residual stream in half).
        Gradients come back in each input's own dtype.
    """
    if weights.dim() != 4 or weights.shape[2:] != (1, 1) or weights.shape[:2] != features.shape[:2]:
        raise ValueError(
            f"scale_add_relu: weights must have shape (B, C, 1, 1) = "
            f"{(*features.shape[:2], 1, 1)}, received {tuple(weights.shape)}"
        )
    if identity.shape != features.shape:
        raise ValueError(
            f"scale_add_relu: identity shape {tuple(identity.shape)} differs from features "
            f"{tuple(features.shape)}"
        )
    return _ScaleAddReLU.apply(features, weights, identity)
