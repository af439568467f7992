"""DEFCON with non-local offsets from channel correlation (the paper's section 4.2: "a C x C
matrix ... we then chose the k highest correlated channels to determine offsets")."""

from __future__ import annotations

import torch
from torch import Tensor

from defcon_exp.attention.defcon import Defcon
from defcon_exp.attention.kernel_size import KernelSizeSpec
from defcon_exp.attention.registry import register_attention
from defcon_exp.ops import deform_conv1d

__all__ = ["DefconCorrelated"]


@register_attention("defcon_corr")
class DefconCorrelated(Defcon):
    """DEFCON whose k taps for channel c sit on the k channels most correlated with c.

    ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``. Design:

    - A running C x C Pearson correlation of the pooled channel means across samples is kept
      as a buffer, updated in training from each batch like BatchNorm's running statistics
      (``momentum``); it starts as a band matrix ``1 - |i - j| / C``, so at first every
      channel's most correlated channels are its neighbours and the module starts as an ECA
      over the same window as DEFCON's (taps ordered by correlation, itself first).
    - For each channel, ``topk`` of its row (itself first, correlation 1) gives the channels
      ``neighbours[c, n]``; tap n of channel c is moved there by an integer offset
      ``neighbours[c, n] - (c - k//2 + n)``.
    - DEFCON's own learned fractional offsets (the zero-initialised ``offset_conv`` on the
      pooled vector) are added on top, so the positions stay refinable and the weights,
      offsets and the rest of the network train end to end; the choice of channels is a
      statistic, not a gradient path.

    Cost per module: O(B*C^2) for the batch correlation in training and O(C^2) for the
    top-k (both skipped in eval, where the stored neighbours are used), O(B*k*C) for the
    sampling. Parameters as DEFCON (``k*k + k``); the correlation buffer holds C*C floats
    (16 MiB at C = 2048), the neighbour table C*k integers.
    """

    def __init__(
        self,
        channels: int,
        kernel_size: KernelSizeSpec = "adaptive",
        gamma: float = 2.0,
        beta: float = 1.0,
        offset_init: str = "zero",
        momentum: float = 0.1,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, kernel_size, gamma, beta, offset_init, gate, device, dtype)
        if not 0.0 < momentum <= 1.0:
            raise ValueError(f"DefconCorrelated: momentum must be in (0, 1], received {momentum}")
        if self.kernel_size > channels:
            raise ValueError(
                f"DefconCorrelated: kernel_size={self.kernel_size} exceeds the {channels} channels"
            )
        self.momentum = momentum
        index = torch.arange(channels, device=device)
        band = 1.0 - (index[:, None] - index[None, :]).abs().float() / channels
        self.register_buffer("running_correlation", band.to(dtype or torch.float32))
        self.register_buffer("neighbours", self._top_channels(self.running_correlation))

    def _top_channels(self, correlation: Tensor) -> Tensor:
        """``Tensor[C, C]`` -> ``Tensor[C, k]`` int64, most correlated first (stable ties)."""
        # A tiny distance penalty breaks ties towards nearer channels deterministically.
        index = torch.arange(self.channels, device=correlation.device)
        tie_break = (index[:, None] - index[None, :]).abs().to(correlation.dtype) * 1e-6
        return torch.topk(correlation - tie_break, self.kernel_size, dim=1).indices

    @torch.no_grad()
    def _update_correlation(self, pooled: Tensor) -> None:
        centred = pooled.float() - pooled.float().mean(0)
        std = centred.square().mean(0).sqrt().clamp_min(1e-6)
        normalised = centred / std
        batch_correlation = normalised.T @ normalised / pooled.shape[0]
        self.running_correlation.lerp_(
            batch_correlation.to(self.running_correlation), self.momentum
        )
        self.neighbours.copy_(self._top_channels(self.running_correlation))

    def nonlocal_offsets(self, dtype: torch.dtype) -> Tensor:
        """``Tensor[1, k, C]``: integer shifts moving tap n of channel c onto ``neighbours[c, n]``."""
        k = self.kernel_size
        index = torch.arange(self.channels, device=self.neighbours.device)
        default = index[:, None] - k // 2 + torch.arange(k, device=index.device)
        return (self.neighbours - default).T[None].to(dtype)

    def sampling_offsets(self, signal: Tensor) -> Tensor:
        return self.offsets(signal) + self.nonlocal_offsets(signal.dtype)

    def channel_logits(self, pooled: Tensor) -> Tensor:
        if self.training and pooled.shape[0] > 1:
            self._update_correlation(pooled)
        signal = pooled[:, None, :]
        # float32 at least: the integer shifts reach +-(C - 1), beyond what bfloat16 (256) and
        # float16 (2048) represent exactly, so half precision would move taps off their channel.
        dtype = torch.promote_types(signal.dtype, torch.float32)
        offsets = self.offsets(signal).to(dtype) + self.nonlocal_offsets(dtype)
        return deform_conv1d(
            signal, offsets, self.weight, padding=self.kernel_size // 2, kernels=self.kernels
        )[:, 0, :]
