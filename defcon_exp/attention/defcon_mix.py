"""DEFCON mixed with ECA by a learned weight (the paper's section 4.3, left undone there)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.defcon import Defcon
from defcon_exp.attention.kernel_size import KernelSizeSpec

__all__ = ["DefconMix"]


class DefconMix(Defcon):
    """Attention logit = ``a * local + (1 - a) * deformable`` with ``a = sigmoid(mix_logit)``
    a learnable scalar per module (starting at 0.5), where ``local`` is ECA's plain 1D conv
    of the pooled vector and ``deformable`` is DEFCON's. ``forward: Tensor[B, C, H, W] ->
    Tensor[B, C, H, W]``. ``k*k + 2*k + 1`` parameters; :attr:`local_share` reads ``a``.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: KernelSizeSpec = "adaptive",
        gamma: float = 2.0,
        beta: float = 1.0,
        offset_init: str = "zero",
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, kernel_size, gamma, beta, offset_init, gate, device, dtype)
        k = self.kernel_size
        self.local_conv = nn.Conv1d(1, 1, k, padding=k // 2, bias=False, device=device, dtype=dtype)
        self.mix_logit = nn.Parameter(torch.zeros((), device=device, dtype=dtype))

    @property
    def local_share(self) -> Tensor:
        """The weight ``a`` of the local (ECA) branch, in (0, 1)."""
        return torch.sigmoid(self.mix_logit)

    def channel_logits(self, pooled: Tensor) -> Tensor:
        local = self.local_conv(pooled[:, None, :])[:, 0, :]
        deformable = super().channel_logits(pooled)
        return torch.lerp(deformable, local, self.local_share)
