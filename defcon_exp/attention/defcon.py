"""DEFCON-1 (Agarwal, Kumar, Paliyam, Qian, "DEFCON 1: Deformable Convolution in 1D for
Channel Attention"): ECA whose 1D kernel samples the pooled channel vector at learned,
input-dependent fractional offsets."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.kernel_size import KernelSizeSpec, resolve_kernel_size
from defcon_exp.attention.pooled_conv import float32_logits, pooled_conv1d
from defcon_exp.attention.registry import register_attention
from defcon_exp.ops import deform_conv1d
from defcon_exp.ops.kernel_paths import triton_path
from defcon_exp.ops.spatial_mean import spatial_mean
from defcon_exp.ops.triton_ops import defcon_gate

__all__ = ["Defcon"]

OFFSET_INITS = ("zero", "kaiming")


@register_attention("defcon")
class Defcon(ChannelAttention):
    """DEFCON channel attention. ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    pooled ``Tensor[B, 1, C]`` -> offsets ``Tensor[B, k, C]`` from a bias-free
    ``Conv1d(1, k, k, padding=k//2)`` (one offset per tap per channel) -> ``deform_conv1d`` of
    the pooled vector with k taps, no bias -> gate -> scale. ``k*k + k`` parameters.

    ``offset_init="zero"`` (default) starts the offsets at zero, so the module starts as ECA
    with the same kernel; ``"kaiming"`` keeps ``nn.Conv1d``'s own initialisation.
    """

    uses_kernel_size = True

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
        super().__init__(channels, gate)
        if offset_init not in OFFSET_INITS:
            raise ValueError(
                f"{type(self).__name__}: unknown offset_init {offset_init!r}; choose one of {OFFSET_INITS}"
            )
        factory = {"device": device, "dtype": dtype}
        k = resolve_kernel_size(kernel_size, channels, gamma=gamma, beta=beta)
        self.kernel_size = k
        self.offset_init = offset_init
        self.offset_conv = nn.Conv1d(1, k, k, padding=k // 2, bias=False, **factory)
        self.weight = nn.Parameter(torch.empty(1, 1, k, **factory))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # The deformable kernel starts as nn.Conv1d's (and so ECA's) initialisation.
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.offset_init == "zero":
            nn.init.zeros_(self.offset_conv.weight)
        else:
            self.offset_conv.reset_parameters()

    def offsets(self, signal: Tensor) -> Tensor:
        """``Tensor[B, 1, C]`` pooled signal -> ``Tensor[B, k, C]``: offset of tap n at channel c."""
        return pooled_conv1d(signal, self.offset_conv.weight)

    def sampling_offsets(self, signal: Tensor) -> Tensor:
        """``Tensor[B, 1, C]`` -> ``Tensor[B, k, C]``: every shift from tap n's base position
        ``c - k//2 + n`` (the learned offsets; subclasses add fixed shifts)."""
        return self.offsets(signal)

    def statistics(self, x: Tensor) -> dict[str, Tensor]:
        """The gated ``weights`` ``Tensor[B, C]``, and per tap ``Tensor[B, k, C]``: the learned
        ``offset``, the sampled ``position`` (channel index) and its ``distance`` from the
        channel's own index, ``|n - k//2 + shift|``."""
        signal = spatial_mean(x)[:, None, :]
        total = self.sampling_offsets(signal)
        k, channels = self.kernel_size, signal.shape[-1]
        taps = torch.arange(k, device=x.device, dtype=total.dtype)[None, :, None] - k // 2
        relative = taps + total  # position - c
        position = relative + torch.arange(channels, device=x.device, dtype=total.dtype)
        return {
            **super().statistics(x),
            "offset": self.offsets(signal).float(),
            "distance": relative.abs().float(),
            "position": position.float(),
        }

    def channel_logits(self, pooled: Tensor) -> Tensor:
        return float32_logits(self._logits, pooled)

    def _logits(self, pooled: Tensor) -> Tensor:
        signal = pooled[:, None, :]
        return deform_conv1d(
            signal,
            self.offsets(signal),
            self.weight,
            padding=self.kernel_size // 2,
            kernels=self.kernels,
        ).squeeze(1)

    def fused_shuffle_groups(self) -> int | None:
        """The shuffle groups the fused Triton kernel computes this module with (1 = no
        shuffle), or None where a subclass changed the maths the kernel fuses."""
        cls = type(self)
        plain = cls.channel_logits is Defcon.channel_logits
        plain = plain and cls.sampling_offsets is Defcon.sampling_offsets
        return 1 if plain and cls.offsets is Defcon.offsets else None

    def channel_weights(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W]`` -> ``Tensor[B, C, 1, 1]``; with ``kernels`` on the Triton
        path (:mod:`defcon_exp.ops.kernel_paths`) pooling is one sum and everything after it
        one kernel each way (:func:`~defcon_exp.ops.triton_ops.defcon_gate`, float32)."""
        shuffle = self.fused_shuffle_groups()
        if shuffle is None or not triton_path(x, self.kernels):
            return super().channel_weights(x)
        sigmoid = self.gate_name == "sigmoid"
        weights = defcon_gate(
            x.sum(dim=(2, 3), dtype=torch.float32),
            self.offset_conv.weight,
            self.weight,
            scale=1.0 / (x.shape[2] * x.shape[3]),
            shuffle_groups=shuffle,
            sigmoid=sigmoid,
        )
        return (weights if sigmoid else self.gate(weights))[:, :, None, None]

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, offset_init={self.offset_init!r}"
