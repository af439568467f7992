"""Create attention modules by name: a plain, listable dict that fills itself.

Each module's file registers its class with :func:`register_attention`; importing this
registry imports every module of the package, so adding an attention module is its file
(plus ``conf/model/<name>.yaml``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from torch import nn

from defcon_exp.plugins import import_submodules

__all__ = [
    "ATTENTIONS",
    "create_attention",
    "get_attention_class",
    "list_attentions",
    "register_attention",
]

ATTENTIONS: dict[str, type[nn.Module]] = {}
ModuleClass = TypeVar("ModuleClass", bound=type[nn.Module])


def register_attention(name: str) -> Callable[[ModuleClass], ModuleClass]:
    """Class decorator: ``@register_attention("eca")`` makes the class creatable by name."""

    def register(cls: ModuleClass) -> ModuleClass:
        if ATTENTIONS.get(name, cls) is not cls:
            raise ValueError(f"attention name {name!r} is taken by {ATTENTIONS[name].__name__}")
        ATTENTIONS[name] = cls
        return cls

    return register


def list_attentions() -> list[str]:
    """Names accepted by :func:`create_attention` (``"none"`` included)."""
    return ["none", *sorted(ATTENTIONS)]


def get_attention_class(name: str) -> type[nn.Module]:
    try:
        return ATTENTIONS[name]
    except KeyError:
        raise ValueError(f"unknown attention {name!r}; choose one of {list_attentions()}") from None


def create_attention(name: str, channels: int, **cfg: Any) -> nn.Module:
    """``create_attention("defcon", 256, kernel_size=3)``; ``"none"`` gives ``nn.Identity``.

    Usable as timm's ``attn_layer``: ``functools.partial(create_attention, "defcon")``.
    """
    if name == "none":
        return nn.Identity()
    return get_attention_class(name)(channels, **cfg)


import_submodules("defcon_exp.attention")  # every module registers itself
