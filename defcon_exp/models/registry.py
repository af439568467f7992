"""Models by name: the paper's comparison set, each a CIFAR ResNet-50 with one attention."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from defcon_exp.attention.registry import ATTENTIONS
from defcon_exp.models.resnet import CifarResNet, cifar_resnet50, set_kernels
from defcon_exp.safety import ALLOWED_TARGETS, trusted_model_builder, without_code_keys

__all__ = ["MODELS", "MODEL_NAMES", "MODEL_STEMS", "create_model", "model_from_config"]

#: model name -> (attention name, default kernel-size spec), derived from the attention
#: registry: the 1D-kernel attentions default to the paper's per-stage sizes (3, 5, 5, 7),
#: which reproduce Table 1's parameter counts.
MODELS: dict[str, tuple[str, Any]] = {
    "resnet50": ("none", "adaptive"),
    **{
        name: (name, getattr(cls, "default_kernel_size", None) or ("paper" if getattr(cls, "uses_kernel_size", False) else "adaptive"))
        for name, cls in sorted(ATTENTIONS.items())
    },
}
#: models whose stem is not ours (``cifar_resnet50``'s ``stem`` argument): an attention class
#: may name its own (``default_stem``), as it may its default kernel size
MODEL_STEMS: dict[str, str] = {
    name: cls.default_stem for name, cls in ATTENTIONS.items() if hasattr(cls, "default_stem")
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def create_model(name: str, num_classes: int = 100, **kwargs: Any) -> CifarResNet:
    """``create_model("defcon", num_classes=100)``; ``kwargs`` go to :func:`cifar_resnet50`."""
    try:
        attention, kernel_size = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}") from None
    kwargs.setdefault("kernel_size", kernel_size)
    kwargs.setdefault("stem", MODEL_STEMS.get(name, "cifar"))
    return cifar_resnet50(num_classes, attention, **kwargs)


def model_from_config(
    model_cfg: Mapping[str, Any], num_classes: int, device: torch.device | str | None = None
) -> CifarResNet:
    """The model of a ``model`` config group (plain mapping: ``attention``, ``kernel_size``,
    ``attention_kwargs``...), built by name: its ``_target_`` is checked against the allow-list
    (:mod:`defcon_exp.safety`), and only a builder the user listed as trusted is imported.
    ``kernels`` is not passed to the builder: :func:`set_kernels` applies it to the model."""
    kwargs = without_code_keys(model_cfg, "model")
    # how to compute, not what: set on the built model (any builder's), not passed to it
    kernels = kwargs.pop("kernels", "aten")
    target = model_cfg.get("_target_", ALLOWED_TARGETS["model._target_"])
    builder = cifar_resnet50 if target == ALLOWED_TARGETS["model._target_"] else trusted_model_builder(target)
    return set_kernels(builder(num_classes=num_classes, device=device, **kwargs), kernels)
