"""DEFCON mixed with ECA by a learned weight (the paper's section 4.3, left undone there)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from defcon_exp.attention.defcon import Defcon
from defcon_exp.attention.pooled_conv import pooled_conv1d
from defcon_exp.attention.registry import register_attention

__all__ = ["DefconMix"]


@register_attention("defcon_mix")
class DefconMix(Defcon):
    """Attention logit = ``a * local + (1 - a) * deformable`` with ``a = sigmoid(mix_logit)``
    a learnable scalar per module (starting at 0.5), where ``local`` is ECA's plain 1D conv
    of the pooled vector and ``deformable`` is DEFCON's. ``forward: Tensor[B, C, H, W] ->
    Tensor[B, C, H, W]``. ``k*k + 2*k + 1`` parameters; :attr:`local_share` reads ``a``.
    """

    def __init__(self, channels: int, **kwargs: Any) -> None:
        """Takes :class:`Defcon`'s arguments (``kernel_size``, ``gamma``, ``beta``,
        ``offset_init``, ``gate``, ``device``, ``dtype``)."""
        super().__init__(channels, **kwargs)
        factory = {"device": self.weight.device, "dtype": self.weight.dtype}
        k = self.kernel_size
        self.local_conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False, **factory)
        self.mix_logit = nn.Parameter(torch.zeros((), **factory))

    @property
    def local_share(self) -> Tensor:
        """The weight ``a`` of the local (ECA) branch, in (0, 1)."""
        return torch.sigmoid(self.mix_logit)

    def channel_logits(self, pooled: Tensor) -> Tensor:
        local = pooled_conv1d(pooled[:, None, :], self.local_conv.weight)[:, 0, :]
        deformable = super().channel_logits(pooled)
        # Under autocast the deformable branch is float32 and the local one half precision.
        dtype = torch.promote_types(deformable.dtype, local.dtype)
        return torch.lerp(deformable.to(dtype), local.to(dtype), self.local_share.to(dtype))
