"""Models by name: the paper's comparison set, each a CIFAR ResNet-50 with one attention."""

from __future__ import annotations

from typing import Any

from defcon_exp.models.resnet import CifarResNet, cifar_resnet50

__all__ = ["MODELS", "MODEL_NAMES", "MODEL_STEMS", "create_model"]

#: model name -> (attention name, default kernel-size spec). The 1D-kernel models default to
#: the paper's per-stage sizes (3, 5, 5, 7), which reproduce Table 1's parameter counts.
MODELS: dict[str, tuple[str, Any]] = {
    "resnet50": ("none", "adaptive"),
    "se": ("se", "adaptive"),
    "eca": ("eca", "paper"),
    "cbam": ("cbam", "adaptive"),
    "defcon": ("defcon", "paper"),
    "defcon_shuffle": ("defcon_shuffle", "paper"),
    # Beyond the paper (its sections 4.2 and 4.3, and DCNv2 modulation).
    "defcon_corr": ("defcon_corr", "paper"),
    "defcon_mix": ("defcon_mix", "paper"),
    "defcon_mod": ("defcon_mod", "paper"),
    # The authors' released code: kernel size 3 in every stage, their stem (docs/released_code.md).
    "defcon_released": ("defcon_released", 3),
}
#: models whose stem is not ours (``cifar_resnet50``'s ``stem`` argument)
MODEL_STEMS: dict[str, str] = {"defcon_released": "released"}
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
