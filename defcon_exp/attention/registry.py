"""Create attention modules by name: a plain, listable dict."""

from __future__ import annotations

from typing import Any

from torch import nn

from defcon_exp.attention.cbam import Cbam
from defcon_exp.attention.defcon import Defcon
from defcon_exp.attention.defcon_corr import DefconCorrelated
from defcon_exp.attention.defcon_mix import DefconMix
from defcon_exp.attention.defcon_mod import DefconModulated
from defcon_exp.attention.defcon_released import DefconReleased
from defcon_exp.attention.defcon_shuffle import DefconShuffle
from defcon_exp.attention.eca import EfficientChannelAttention
from defcon_exp.attention.se import SqueezeExcite

__all__ = ["ATTENTIONS", "create_attention", "get_attention_class", "list_attentions"]

ATTENTIONS: dict[str, type[nn.Module]] = {
    "se": SqueezeExcite,
    "eca": EfficientChannelAttention,
    "cbam": Cbam,
    "defcon": Defcon,
    "defcon_shuffle": DefconShuffle,
    "defcon_corr": DefconCorrelated,
    "defcon_mix": DefconMix,
    "defcon_mod": DefconModulated,
    # The authors' released code (docs/released_code.md).
    "defcon_released": DefconReleased,
}


def list_attentions() -> list[str]:
    """Names accepted by :func:`create_attention` (``"none"`` included)."""
    return ["none", *ATTENTIONS]


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
