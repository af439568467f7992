"""Multi-spectral channel attention (Qin, Zhang, Wu, Li, "FcaNet: Frequency Channel Attention
Networks", ICCV 2021, arXiv:2012.11879)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.registry import register_attention

__all__ = ["FREQUENCY_ORDERS", "FrequencyChannelAttention", "dct_filters"]

#: the 32 (u, v) frequencies of a 7x7 DCT in the authors' three orders (``layer.py`` of
#: cfzd/FcaNet): ``top`` by the accuracy of single-frequency attention (the paper's Fig. 3),
#: ``low`` from low to high frequency, ``bot`` from the least accurate up. ``"top16"`` is the paper's.
# fmt: off
FREQUENCY_ORDERS: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {
    "top": (
        (0, 0, 6, 0, 0, 1, 1, 4, 5, 1, 3, 0, 0, 0, 3, 2, 4, 6, 3, 5, 5, 2, 6, 5, 5, 3, 3, 4, 2, 2, 6, 1),
        (0, 1, 0, 5, 2, 0, 2, 0, 0, 6, 0, 4, 6, 3, 5, 2, 6, 3, 3, 3, 5, 1, 1, 2, 4, 2, 1, 1, 3, 0, 5, 3),
    ),
    "low": (
        (0, 0, 1, 1, 0, 2, 2, 1, 2, 0, 3, 4, 0, 1, 3, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 1, 2, 3, 4),
        (0, 1, 0, 1, 2, 0, 1, 2, 2, 3, 0, 0, 4, 3, 1, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3, 2, 1, 0, 6, 5, 4, 3),
    ),
    "bot": (
        (6, 1, 3, 3, 2, 4, 1, 2, 4, 4, 5, 1, 4, 6, 2, 5, 6, 1, 6, 2, 2, 4, 3, 3, 5, 5, 6, 2, 5, 5, 3, 6),
        (6, 4, 4, 6, 6, 3, 1, 4, 4, 5, 6, 5, 2, 2, 5, 1, 4, 3, 5, 0, 3, 1, 1, 2, 4, 2, 1, 1, 5, 3, 3, 3),
    ),
}
# fmt: on


def _frequencies(selection: str) -> list[tuple[int, int]]:
    order, count = selection[:3], selection[3:]
    if order not in FREQUENCY_ORDERS or not count.isdigit() or not 1 <= int(count) <= 32:
        raise ValueError(
            f"FrequencyChannelAttention: unknown frequencies {selection!r}; use top, low or bot "
            "followed by a count from 1 to 32, e.g. 'top16' (the paper's)"
        )
    us, vs = FREQUENCY_ORDERS[order]
    return list(zip(us[: int(count)], vs[: int(count)], strict=True))


def _dct_basis(position: int, frequency: int, size: int) -> float:
    """Orthonormal DCT-II basis value: ``sqrt((1 or 2) / N) * cos(pi * f * (n + 1/2) / N)``."""
    scale = math.sqrt((1 if frequency == 0 else 2) / size)
    return scale * math.cos(math.pi * frequency * (position + 0.5) / size)


def dct_filters(channels: int, frequencies: list[tuple[int, int]], size: int = 7) -> Tensor:
    """``Tensor[C, size, size]``: channel group ``g`` (``C / len(frequencies)`` channels) holds
    the 2D orthonormal DCT-II basis of frequency ``frequencies[g]``, in a ``size x size``
    grid (frequencies are given for 7x7 and scaled by ``size // 7``, as the authors do)."""
    if channels % len(frequencies):
        raise ValueError(
            f"FrequencyChannelAttention: {channels} channels do not split into "
            f"{len(frequencies)} frequency groups; use a frequency count dividing {channels}"
        )
    filters = torch.empty(channels, size, size, dtype=torch.float64)
    part = channels // len(frequencies)
    scale = max(1, size // 7)
    for group, (u, v) in enumerate(frequencies):
        rows = torch.tensor(
            [_dct_basis(h, u * scale, size) for h in range(size)], dtype=torch.float64
        )
        cols = torch.tensor(
            [_dct_basis(w, v * scale, size) for w in range(size)], dtype=torch.float64
        )
        filters[group * part : (group + 1) * part] = torch.outer(rows, cols)
    return filters


@register_attention("fca")
class FrequencyChannelAttention(ChannelAttention):
    """FcaNet's multi-spectral attention. ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    The map is average-pooled to ``dct_size x dct_size`` (adaptively; 7x7 as the paper's
    last ImageNet stage, from 32x32 ... 4x4 here), the channels are split into
    ``len(frequencies)`` groups and group ``g`` is pooled with the 2D DCT basis of its
    frequency (frequency (0, 0) is GAP up to a factor) -> bias-free MLP (C -> C/r -> ReLU ->
    C) -> gate -> ``x * weights``. ``2*C*(C // reduction)`` parameters; the DCT filters are a
    buffer.
    """

    def __init__(
        self,
        channels: int,
        frequencies: str = "top16",
        dct_size: int = 7,
        reduction: int = 16,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, gate)
        if reduction < 1 or channels // reduction < 1:
            raise ValueError(
                f"FrequencyChannelAttention: reduction must be in 1..{channels}, received {reduction}"
            )
        factory = {"device": device, "dtype": dtype}
        self.frequencies = _frequencies(frequencies)
        self.dct_size = dct_size
        filters = dct_filters(channels, self.frequencies, dct_size)
        self.register_buffer(
            "dct_filters", filters.to(device=device, dtype=dtype or torch.get_default_dtype())
        )
        hidden = channels // reduction
        self.fc1 = nn.Linear(channels, hidden, bias=False, **factory)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(hidden, channels, bias=False, **factory)

    def spectral_pool(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, C]``: each channel's DCT coefficient."""
        if x.shape[-2:] != (self.dct_size, self.dct_size):
            x = F.adaptive_avg_pool2d(x, self.dct_size)
        return torch.einsum("bchw,chw->bc", x, self.dct_filters.to(x.dtype))

    def channel_logits(self, pooled: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(pooled)))

    def channel_weights(self, x: Tensor) -> Tensor:
        return self.gate(self.channel_logits(self.spectral_pool(x)))[:, :, None, None]
