"""ShuffleNet's channel shuffle on the last axis, and its inverse."""

from __future__ import annotations

import math

from torch import Tensor

__all__ = ["channel_shuffle", "channel_unshuffle", "shuffle_groups"]


def shuffle_groups(kernel_size: int) -> int:
    """The DEFCON paper's shuffle group count for kernel size k: ``2 ** ceil(log2 k)``."""
    return 2 ** math.ceil(math.log2(kernel_size))


def channel_shuffle(x: Tensor, groups: int) -> Tensor:
    """``Tensor[..., C] -> Tensor[..., C]``: view the axis as (groups, C/groups), transpose.

    Channel ``g * (C/groups) + i`` moves to position ``i * groups + g``, so channels that
    were C/groups apart become neighbours.
    """
    channels = x.shape[-1]
    if channels % groups:
        raise ValueError(
            f"channel_shuffle: {channels} channels are not divisible by groups={groups}"
        )
    return x.unflatten(-1, (groups, channels // groups)).transpose(-1, -2).flatten(-2)


def channel_unshuffle(x: Tensor, groups: int) -> Tensor:
    """The inverse of :func:`channel_shuffle` with the same ``groups``."""
    channels = x.shape[-1]
    if channels % groups:
        raise ValueError(
            f"channel_unshuffle: {channels} channels are not divisible by groups={groups}"
        )
    return x.unflatten(-1, (channels // groups, groups)).transpose(-1, -2).flatten(-2)
