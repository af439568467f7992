"""Shared shape of the pooled-vector channel-attention modules (SE, ECA, DEFCON)."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from defcon_exp.attention.gate import get_gate
from defcon_exp.ops.spatial_mean import spatial_mean

__all__ = ["ChannelAttention"]


class ChannelAttention(nn.Module):
    """Global average pool -> per-channel logits -> gate -> scale the feature map.

    Subclasses implement :meth:`channel_logits`. :meth:`channel_weights` is public so a
    block can fuse the scaling with its residual add.
    """

    #: whether the module takes an ECA-style 1D ``kernel_size`` (the model sets it per stage).
    uses_kernel_size: ClassVar[bool] = False

    def __init__(self, channels: int, gate: str = "sigmoid") -> None:
        super().__init__()
        if channels < 1:
            raise ValueError(
                f"{type(self).__name__}: channels must be positive, received {channels}"
            )
        self.channels = channels
        self.gate_name = gate
        self.gate = get_gate(gate)

    def channel_logits(self, pooled: Tensor) -> Tensor:
        """``Tensor[B, C]`` pooled channel means -> ``Tensor[B, C]`` attention logits."""
        raise NotImplementedError

    def channel_weights(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]`` -> gated weights ``Tensor[B, C, 1, 1]``."""
        pooled = spatial_mean(x)
        return self.gate(self.channel_logits(pooled))[:, :, None, None]

    def statistics(self, x: Tensor) -> dict[str, Tensor]:
        """What this module does on input ``x: Tensor[B, C, H, W]``, as raw float tensors for
        ``defcon-inspect``, ``defcon-compare`` and the TensorBoard histograms: ``weights``
        ``Tensor[B, C]`` (the gated channel weights). Deformable modules add ``offset``,
        ``distance`` and ``position`` (``Tensor[B, k, C]``)."""
        return {"weights": self.channel_weights(x)[:, :, 0, 0].float()}

    def forward(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, C, H, W]`` in ``x``'s dtype and memory format
        (under autocast the weights may be float32 while ``x`` is half precision)."""
        return x * self.channel_weights(x).to(x.dtype)
