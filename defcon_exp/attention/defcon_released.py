"""DEFCON-1 as the authors released it (Agarwal, Kumar, Paliyam, Qian, "DEFCON 1: Deformable
Convolution in 1D for Channel Attention"; code: ``vatsalag99/Deformable-Channel-Attention``,
``dca_models/dca_module.py``), which differs from the paper: max pooling, dropout on the
pooled vector, the released deformable sampling rules and a residual gate."""

from __future__ import annotations

import contextlib
import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.channel_shuffle import channel_shuffle, channel_unshuffle
from defcon_exp.attention.kernel_size import KernelSizeSpec, resolve_kernel_size
from defcon_exp.attention.registry import register_attention
from defcon_exp.ops.deform_conv1d_released import (
    deform_conv1d_released,
    released_base_positions,
)

__all__ = ["DefconReleased"]


@register_attention("defcon_released")
class DefconReleased(ChannelAttention):
    """The released DEFCON module. ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    ``x`` -> global max pool ``Tensor[B, C]`` -> ``Dropout(dropout)`` -> (optional channel
    shuffle) -> offsets ``Tensor[B, k, C]`` from a bias-free ``Conv1d(1, k, k)`` -> deformable
    convolution with the released sampling rules
    (:func:`~defcon_exp.ops.deform_conv1d_released`), no bias -> (un-shuffle) -> ``y`` ->
    ``x * sigmoid(y) + x``. The effective channel weight is ``1 + sigmoid(y)`` (what
    :meth:`channel_weights` returns, so the fused block tail stays exact). ``k*k + k``
    parameters, both convolutions with ``nn.Conv1d``'s initialisation as in the release.

    Args:
        channels: channels of the feature map.
        kernel_size: the 1D kernel size (the release used 3 in every stage).
        dropout: dropout probability on the pooled vector (release default 0.25).
        use_shuffle: shuffle the pooled vector into ``groups`` groups before the offset and
            deformable convolutions and un-shuffle the result (the evident intent of the
            release; with ``shuffle_discards_deformable`` the release's actual behaviour).
        channels_per_group: shuffle group size, ``groups = channels // channels_per_group``
            (release default 32), unless ``groups`` is given.
        groups: number of shuffle groups (the release's ``n_groups``), overrides the above.
        shuffle_discards_deformable: reproduce the release's HEAD bug: with
            ``use_shuffle=True`` its forward overwrites the deformable output with the
            un-shuffled *pooled input*, so the gate is ``sigmoid(dropout(maxpool(x)))`` and
            the offset and deformable convolutions never reach the output (they get no
            gradient). Only for reproducing the released code; requires ``use_shuffle``.
    """

    uses_kernel_size = True
    #: the released code's model: kernel size 3 in every stage, their stem
    default_kernel_size = 3
    default_stem = "released"

    def __init__(
        self,
        channels: int,
        kernel_size: KernelSizeSpec = 3,
        dropout: float = 0.25,
        use_shuffle: bool = False,
        channels_per_group: int = 32,
        groups: int | None = None,
        shuffle_discards_deformable: bool = False,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, gate)
        name = type(self).__name__
        if not 0 <= dropout < 1:
            raise ValueError(f"{name}: dropout must be in [0, 1), received {dropout}")
        if shuffle_discards_deformable and not use_shuffle:
            raise ValueError(f"{name}: shuffle_discards_deformable=True needs use_shuffle=True")
        self.shuffle_groups = 0
        if use_shuffle:
            self.shuffle_groups = groups if groups is not None else channels // channels_per_group
            if self.shuffle_groups < 1 or channels % self.shuffle_groups:
                raise ValueError(
                    f"{name}: {channels} channels cannot be shuffled into "
                    f"{self.shuffle_groups} groups (groups={groups}, "
                    f"channels_per_group={channels_per_group}); pick a divisor of {channels}"
                )
        factory = {"device": device, "dtype": dtype}
        k = resolve_kernel_size(kernel_size, channels)
        self.kernel_size = k
        self.shuffle_discards_deformable = shuffle_discards_deformable
        self.dropout = nn.Dropout(dropout)
        self.offset_conv = nn.Conv1d(1, k, k, padding=(k - 1) // 2, bias=False, **factory)
        self.weight = nn.Parameter(torch.empty(1, 1, k, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # As the release: both convolutions keep nn.Conv1d's default initialisation.
        self.offset_conv.reset_parameters()
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def pooled(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]`` -> max-pooled, dropped-out ``Tensor[B, C]`` (float32 at
        least: the released sampling is discontinuous at its edge zones, and offsets rounded
        to half precision flip sampled positions; under bf16 autocast logits were ~30% off)."""
        pooled = F.adaptive_max_pool2d(x, 1).flatten(1)
        if pooled.dtype in (torch.float16, torch.bfloat16):
            pooled = pooled.float()
        return self.dropout(pooled)

    def _signal(self, pooled: Tensor) -> Tensor:
        """``Tensor[B, C]`` -> the (shuffled) ``Tensor[B, 1, C]`` the convolutions see."""
        signal = pooled[:, None, :]
        return channel_shuffle(signal, self.shuffle_groups) if self.shuffle_groups else signal

    def offsets(self, signal: Tensor) -> Tensor:
        """``Tensor[B, 1, C]`` -> ``Tensor[B, k, C]``: offset of tap n at position c (in the
        signal's dtype: autocast is paused, see :meth:`pooled`)."""
        with _autocast_off(signal.device.type):
            return self.offset_conv(signal)

    def channel_logits(self, pooled: Tensor) -> Tensor:
        """``Tensor[B, C]`` pooled (after dropout) -> ``Tensor[B, C]`` logits ``y``."""
        if self.shuffle_discards_deformable:
            return pooled  # the release's un-shuffle of the shuffled pooled input
        signal = self._signal(pooled)
        with _autocast_off(signal.device.type):
            logits = deform_conv1d_released(signal, self.offsets(signal), self.weight)
        if self.shuffle_groups:
            logits = channel_unshuffle(logits, self.shuffle_groups)
        return logits[:, 0, :]

    def channel_weights(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]`` -> ``1 + sigmoid(y)`` as ``Tensor[B, C, 1, 1]``."""
        return 1 + self.gate(self.channel_logits(self.pooled(x)))[:, :, None, None]

    def forward(self, x: Tensor) -> Tensor:
        """``x * sigmoid(y) + x``, in the release's order of operations."""
        attn = self.gate(self.channel_logits(self.pooled(x)))[:, :, None, None]
        return attn.to(x.dtype) * x + x

    def statistics(self, x: Tensor) -> dict[str, Tensor]:
        """``weights`` ``Tensor[B, C]`` (``1 + sigmoid(y)``) and, as for :class:`Defcon`,
        ``offset``, ``distance``, ``position`` ``Tensor[B, k, C]`` in channel coordinates
        with the release's base positions: tap ``n`` of position ``c`` samples channel
        ``c + 1 + n - 2 * (k // 2) + offset`` before edge snapping and clamping, and
        ``distance = |position - c|``. With shuffling, the C axis of these three is the
        shuffled order the convolutions see; with ``shuffle_discards_deformable`` they
        describe the discarded deformable branch. One dropout draw serves all four."""
        pooled = self.pooled(x)
        signal = self._signal(pooled)
        offset = self.offsets(signal)
        k = self.kernel_size
        base = released_base_positions(k, signal.shape[-1], offset.device, offset.dtype)
        position = offset + base - k // 2  # padded -> channel coordinates
        channels = torch.arange(signal.shape[-1], device=offset.device, dtype=offset.dtype)
        weights = 1 + self.gate(self.channel_logits(pooled))
        return {
            "weights": weights.float(),
            "offset": offset.float(),
            "distance": (position - channels).abs().float(),
            "position": position.float(),
        }

    def extra_repr(self) -> str:
        extra = f", shuffle_groups={self.shuffle_groups}" if self.shuffle_groups else ""
        extra += ", shuffle_discards_deformable=True" if self.shuffle_discards_deformable else ""
        return f"{self.channels}, kernel_size={self.kernel_size}, dropout={self.dropout.p}{extra}"


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager[None]:
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()
