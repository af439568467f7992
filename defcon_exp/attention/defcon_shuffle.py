"""DEFCON-1 with a channel shuffle before offset generation (the paper's section 4.2)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from defcon_exp.attention.channel_shuffle import (
    channel_shuffle,
    channel_unshuffle,
    shuffle_groups,
)
from defcon_exp.attention.defcon import Defcon
from defcon_exp.attention.pooled_conv import pooled_conv1d
from defcon_exp.attention.registry import register_attention

__all__ = ["DefconShuffle"]


@register_attention("defcon_shuffle")
class DefconShuffle(Defcon):
    """DEFCON whose offset convolution sees the pooled vector channel-shuffled with
    ``2 ** ceil(log2 k)`` groups (ShuffleNet style), so the offsets of a channel are computed
    from channels C/groups apart instead of its neighbours. Same parameters as DEFCON.

    ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``; C must be divisible by the groups.
    """

    def __init__(self, channels: int, **kwargs: Any) -> None:
        """Takes :class:`Defcon`'s arguments (``kernel_size``, ``gamma``, ``beta``,
        ``offset_init``, ``gate``, ``device``, ``dtype``)."""
        super().__init__(channels, **kwargs)
        self.shuffle_groups = shuffle_groups(self.kernel_size)
        if channels % self.shuffle_groups:
            raise ValueError(
                f"DefconShuffle: {channels} channels are not divisible by the shuffle groups "
                f"{self.shuffle_groups} (= 2**ceil(log2 k) for k={self.kernel_size})"
            )

    def offsets(self, signal: Tensor) -> Tensor:
        shuffled_offsets = pooled_conv1d(
            channel_shuffle(signal, self.shuffle_groups), self.offset_conv.weight
        )
        # Position j of `shuffled_offsets` belongs to the channel that the shuffle moved to j;
        # the inverse permutation puts every offset back at its own channel before sampling
        # the unshuffled signal.
        return channel_unshuffle(shuffled_offsets, self.shuffle_groups)

    def fused_shuffle_groups(self) -> int | None:
        cls = type(self)
        plain = cls.channel_logits is Defcon.channel_logits
        plain = plain and cls.sampling_offsets is Defcon.sampling_offsets
        return self.shuffle_groups if plain and cls.offsets is DefconShuffle.offsets else None

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, shuffle_groups={self.shuffle_groups}"
