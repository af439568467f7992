"""Models by name: the paper's comparison set, each a CIFAR ResNet-50 with one attention, and
the architectures (``model.arch``): the CIFAR ResNet-50 and the ImageNet ResNet family."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import torch

from defcon_exp.attention.registry import ATTENTIONS
from defcon_exp.models.imagenet_resnet import IMAGENET_DEPTHS, imagenet_resnet
from defcon_exp.models.resnet import CifarResNet, cifar_resnet50, set_kernels
from defcon_exp.safety import ALLOWED_TARGETS, trusted_model_builder, without_code_keys

__all__ = [
    "ARCHS",
    "DEFAULT_ARCH",
    "MODELS",
    "MODEL_NAMES",
    "MODEL_STEMS",
    "create_model",
    "model_from_config",
]

#: ``model.arch`` -> builder: the CIFAR ResNet-50 (default) and the ImageNet ResNets
ARCHS: dict[str, Callable[..., Any]] = {
    "cifar_resnet50": cifar_resnet50,
    **{f"resnet{depth}_imagenet": partial(imagenet_resnet, depth) for depth in IMAGENET_DEPTHS},
}
DEFAULT_ARCH = "cifar_resnet50"

#: model name -> (attention name, default kernel-size spec), derived from the attention
#: registry: the 1D-kernel attentions default to the paper's per-stage sizes (3, 5, 5, 7),
#: which reproduce Table 1's parameter counts.
MODELS: dict[str, tuple[str, Any]] = {
    "resnet50": ("none", "adaptive"),
    **{
        name: (
            name,
            getattr(cls, "default_kernel_size", None)
            or ("paper" if getattr(cls, "uses_kernel_size", False) else "adaptive"),
        )
        for name, cls in sorted(ATTENTIONS.items())
    },
}
#: models whose stem is not ours (``cifar_resnet50``'s ``stem`` argument): an attention class
#: may name its own (``default_stem``), as it may its default kernel size
MODEL_STEMS: dict[str, str] = {
    name: cls.default_stem for name, cls in ATTENTIONS.items() if hasattr(cls, "default_stem")
}
MODEL_NAMES: tuple[str, ...] = tuple(MODELS)


def create_model(
    name: str, num_classes: int = 100, arch: str = DEFAULT_ARCH, **kwargs: Any
) -> torch.nn.Module:
    """``create_model("defcon", num_classes=100)``; ``arch``: a :data:`ARCHS` name
    (``create_model("se", 1000, arch="resnet50_imagenet")``); ``kwargs`` go to its builder."""
    try:
        attention, kernel_size = MODELS[name]
    except KeyError:
        raise ValueError(f"unknown model {name!r}; choose one of {list(MODEL_NAMES)}") from None
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; choose one of {list(ARCHS)}")
    kwargs.setdefault("kernel_size", kernel_size)
    if arch == DEFAULT_ARCH:
        kwargs.setdefault("stem", MODEL_STEMS.get(name, "cifar"))
    kernels = kwargs.pop("kernels", "aten")  # set on the built model, any arch (set_kernels)
    return set_kernels(ARCHS[arch](num_classes=num_classes, attention=attention, **kwargs), kernels)


def model_from_config(
    model_cfg: Mapping[str, Any], num_classes: int, device: torch.device | str | None = None
) -> CifarResNet:
    """The model of a ``model`` config group (plain mapping: ``arch``, ``attention``,
    ``kernel_size``, ``attention_kwargs``...), built by name (``arch``, :data:`ARCHS`): its ``_target_`` is checked against the allow-list
    (:mod:`defcon_exp.safety`), and only a builder the user listed as trusted is imported.
    ``kernels`` is not passed to the builder: :func:`set_kernels` applies it to the model."""
    kwargs = without_code_keys(model_cfg, "model")
    # how to compute, not what: set on the built model (any builder's), not passed to it
    kernels = kwargs.pop("kernels", "aten")
    kwargs.pop("init_from", None)  # applied by the run to a fresh model (models.pretrained)
    arch = kwargs.pop("arch", DEFAULT_ARCH) or DEFAULT_ARCH
    if arch not in ARCHS:
        raise ValueError(f"model.arch={arch!r} is invalid: must be one of {list(ARCHS)}")
    target = model_cfg.get("_target_", ALLOWED_TARGETS["model._target_"])
    if target == ALLOWED_TARGETS["model._target_"]:
        builder = ARCHS[arch]
    elif arch != DEFAULT_ARCH:
        raise ValueError(f"model.arch={arch!r} applies to our builder, not {target}")
    else:
        builder = trusted_model_builder(target)
    return set_kernels(builder(num_classes=num_classes, device=device, **kwargs), kernels)
