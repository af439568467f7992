"""Shared shape of the pooled-vector channel-attention modules (SE, ECA, DEFCON), and the
statistics protocol every attention module follows.

The statistics protocol
-----------------------
Every attention module (pooled-vector or block-level) has a method ``statistics(x)``: what
the module does on its input ``x: Tensor[B, C, H, W]``, as raw float32 tensors. It is what
``defcon-inspect``, ``defcon-compare`` and the TensorBoard histograms read; they know no
module by name. Keys:

- ``weights`` ``Tensor[B, C]`` (required for a module that scales channels): the
  multiplicative weight of channel ``c`` for sample ``b``, i.e. the module's output channel
  ``c`` is ``weights[b, c] * x[b, c]`` (for SE/ECA/DEFCON the gated weight; for
  ``defcon_released`` ``1 + sigmoid(y)``, its residual gate). When the weight varies over
  positions (CBAM's spatial part, SimAM, coordinate attention) report the channel part if
  the module has one (CBAM), else the spatial mean of the per-position weight, and say
  which in the docstring. Values must be >= 0 (the entropy normalises them to sum 1).
  A module that does not scale channels (e.g. one that only *adds* a context vector, GC)
  leaves ``weights`` out: the tools then show ``-`` for it and ``defcon-compare`` refuses
  the run with one line.
- ``offset``, ``distance``, ``position`` ``Tensor[B, k, C]`` (deformable modules only): the
  learned offset of tap ``n`` at channel ``c``, the sampled channel position, and its
  distance ``|position - c|`` from the channel's own index (see :class:`~.defcon.Defcon`).
- any other key is kept in the raw statistics and ignored by the summaries.

``statistics`` must not change the module (no buffer updates, no randomness in eval mode);
callers run it under ``torch.no_grad()`` and in the model's mode (eval for inspection).
:class:`AttentionStatistics` is the protocol as a type.
"""

from __future__ import annotations

from typing import ClassVar, Protocol, runtime_checkable

from torch import Tensor, nn

from defcon_exp.attention.gate import get_gate
from defcon_exp.ops.spatial_mean import spatial_mean

__all__ = ["STATISTICS_KEYS", "AttentionStatistics", "ChannelAttention"]

#: the keys of ``statistics(x)`` the tools read (see the module docstring)
STATISTICS_KEYS = ("weights", "offset", "distance", "position")


@runtime_checkable
class AttentionStatistics(Protocol):
    """An attention module the analysis tools can read (the module docstring's protocol)."""

    def statistics(self, x: Tensor) -> dict[str, Tensor]:
        """``x: Tensor[B, C, H, W]`` -> ``{"weights": Tensor[B, C], ...}`` (float32)."""
        ...


class ChannelAttention(nn.Module):
    """Global average pool -> per-channel logits -> gate -> scale the feature map.

    Subclasses implement :meth:`channel_logits`. :meth:`channel_weights` is public so a
    block can fuse the scaling with its residual add.
    """

    #: whether the module takes an ECA-style 1D ``kernel_size`` (the model sets it per stage).
    uses_kernel_size: ClassVar[bool] = False
    #: ``"aten"``, ``"triton"`` or ``"auto"`` (:mod:`defcon_exp.ops.kernel_paths`): the model
    #: sets it; modules with fused Triton kernels (DEFCON) read it
    kernels: str = "aten"

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
