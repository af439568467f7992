"""Modulated DEFCON: DEFCON with a DCNv2-style learned mask on every tap."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from defcon_exp.attention.defcon import Defcon
from defcon_exp.attention.pooled_conv import pooled_conv1d
from defcon_exp.attention.registry import register_attention
from defcon_exp.ops import deform_conv1d

__all__ = ["DefconModulated"]


@register_attention("defcon_mod")
class DefconModulated(Defcon):
    """DEFCON whose taps are also weighted by an input-dependent mask (Zhu et al.,
    "Deformable ConvNets v2", CVPR 2019). ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    The mask ``Tensor[B, k, C]`` is ``2 * sigmoid(Conv1d(1, k, k)(pooled))`` with the mask conv
    initialised to zero, so every tap starts at weight 1 and the module starts exactly as
    DEFCON (and, with zero offsets, as ECA). ``2*k*k + k`` parameters.
    """

    def __init__(self, channels: int, **kwargs: Any) -> None:
        """Takes :class:`Defcon`'s arguments (``kernel_size``, ``gamma``, ``beta``,
        ``offset_init``, ``gate``, ``device``, ``dtype``)."""
        super().__init__(channels, **kwargs)
        factory = {"device": self.weight.device, "dtype": self.weight.dtype}
        k = self.kernel_size
        self.mask_conv = nn.Conv1d(1, k, k, padding=k // 2, bias=False, **factory)
        nn.init.zeros_(self.mask_conv.weight)

    def modulation(self, signal: Tensor) -> Tensor:
        """``Tensor[B, 1, C]`` -> tap weights ``Tensor[B, k, C]`` in (0, 2)."""
        return 2.0 * torch.sigmoid(pooled_conv1d(signal, self.mask_conv.weight))

    def channel_logits(self, pooled: Tensor) -> Tensor:
        signal = pooled[:, None, :]
        return deform_conv1d(
            signal,
            self.offsets(signal),
            self.weight,
            padding=self.kernel_size // 2,
            mask=self.modulation(signal),
        )[:, 0, :]
