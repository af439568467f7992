"""Global context attention (Cao, Xu, Lin, Wei, Hu, "GCNet: Non-local Networks Meet
Squeeze-Excitation Networks and Beyond", ICCV Workshops 2019, arXiv:1904.11492), with the
scaling fusion."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.registry import register_attention
from defcon_exp.attention.se import make_divisible

__all__ = ["GlobalContext"]


@register_attention("gc")
class GlobalContext(ChannelAttention):
    """GC block, scaling fusion. ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    Context modelling: a 1x1 convolution (C -> 1, with bias) gives one logit per pixel;
    their softmax over the ``H*W`` pixels weights the pooled vector
    ``context_c = sum_p softmax(logit)_p * x_{c,p}`` (attention pooling instead of GAP).
    Transform: 1x1 conv (C -> C/r) -> LayerNorm over the C/r values -> ReLU -> 1x1 conv
    (C/r -> C), both with bias -> gate -> ``x * weights``.

    The paper prefers adding the transform to ``x`` (``x + t``, its Table 2d) over scaling by
    ``sigmoid(t)``; the additive form shifts channels instead of weighting them, so it has no
    channel weights to compare and cannot share the fused block tail: only the scaling form
    (timm's default for ``GlobalContext``) is offered. The last convolution starts at zero
    (weights 0.5 everywhere), as in the authors' code. ``2*C*h + 2*C + 3*h + 1`` parameters
    with ``h = make_divisible(C / reduction, 1)``.
    """

    def __init__(
        self,
        channels: int,
        reduction: float = 16,
        gate: str = "sigmoid",
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels, gate)
        if reduction <= 0:
            raise ValueError(f"GlobalContext: reduction must be positive, received {reduction}")
        factory = {"device": device, "dtype": dtype}
        self.hidden = make_divisible(channels / reduction, 1)
        self.conv_attn = nn.Conv2d(channels, 1, 1, **factory)
        self.fc1 = nn.Linear(channels, self.hidden, **factory)
        self.norm = nn.LayerNorm(self.hidden, **factory)
        self.act = nn.ReLU(inplace=True)
        self.fc2 = nn.Linear(self.hidden, channels, **factory)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.kaiming_normal_(self.conv_attn.weight, mode="fan_in", nonlinearity="relu")
        nn.init.zeros_(self.conv_attn.bias)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def context(self, x: Tensor) -> Tensor:
        """``Tensor[B, C, H, W] -> Tensor[B, C]``: the attention-pooled vector."""
        logits = self.conv_attn(x).flatten(1)  # (B, H*W)
        dtype = torch.promote_types(logits.dtype, torch.float32)  # softmax of bf16 logits
        attn = logits.softmax(dim=1, dtype=dtype).view(x.shape[0], *x.shape[2:])
        return torch.einsum("bchw,bhw->bc", x, attn.to(x.dtype))

    def channel_logits(self, pooled: Tensor) -> Tensor:
        return self.fc2(self.act(self.norm(self.fc1(pooled))))

    def channel_weights(self, x: Tensor) -> Tensor:
        return self.gate(self.channel_logits(self.context(x)))[:, :, None, None]
