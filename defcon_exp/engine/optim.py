"""Optimisers: SGD (momentum, Nesterov) and AdamW, optionally without weight decay on
normalisation weights and biases."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

OPTIMIZER_NAMES: tuple[str, ...] = ("sgd", "adamw")


def param_groups(model: nn.Module, weight_decay: float, exclude_norm_and_bias: bool) -> list[dict]:
    """Split trainable parameters into decayed and non-decayed groups.

    With ``exclude_norm_and_bias`` every parameter with ``ndim <= 1`` (biases, BatchNorm /
    LayerNorm weights, scalar gates) gets ``weight_decay=0``, as timm's
    ``param_groups_weight_decay`` does.
    """
    params = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if not exclude_norm_and_bias:
        return [{"params": [p for _, p in params], "weight_decay": weight_decay}]
    decay = [p for n, p in params if p.ndim > 1 and not n.endswith(".bias")]
    no_decay = [p for n, p in params if p.ndim <= 1 or n.endswith(".bias")]
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return groups


def build_optimizer(
    model: nn.Module,
    name: str = "sgd",
    lr: float = 0.1,
    weight_decay: float = 5e-4,
    momentum: float = 0.9,
    nesterov: bool = False,
    betas: Sequence[float] = (0.9, 0.999),
    eps: float = 1e-8,
    exclude_norm_and_bias: bool = False,
) -> torch.optim.Optimizer:
    """Build ``sgd`` or ``adamw`` over ``model``'s trainable parameters."""
    groups = param_groups(model, weight_decay, exclude_norm_and_bias)
    if name == "sgd":
        return torch.optim.SGD(
            groups, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay
        )
    if name == "adamw":
        return torch.optim.AdamW(
            groups, lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay
        )
    raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZER_NAMES)}")
