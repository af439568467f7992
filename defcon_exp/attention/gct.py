"""Gated Channel Transformation (Yang, Zhu, Wu, Yang, "Gated Channel Transformation for
Visual Recognition", CVPR 2020, arXiv:1909.11519), the l2 embedding."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from defcon_exp.attention.base import ChannelAttention
from defcon_exp.attention.registry import register_attention

__all__ = ["GatedChannelTransform"]


@register_attention("gct")
class GatedChannelTransform(ChannelAttention):
    """GCT. ``forward: Tensor[B, C, H, W] -> Tensor[B, C, H, W]``.

    Embedding ``s_c = alpha_c * sqrt(sum_{h,w} x_c^2 + eps)``; channel normalisation
    ``n_c = gamma_c * s_c / sqrt(mean_c' s_c'^2 + eps)`` (= ``sqrt(C) * s_c / ||s||_2``);
    gating ``weights = 1 + tanh(n + beta)`` in (0, 2), so the module starts as the identity
    (alpha 1, gamma and beta 0, as the authors' code). ``3*C`` parameters.

    The paper places GCT before every convolution; here it sits where every attention of
    this project sits (before the residual add), to compare modules at the same place.
    The embedding is computed in at least float32 (a sum of squares over the map in bfloat16 loses
    the small channels).
    """

    def __init__(
        self,
        channels: int,
        eps: float = 1e-5,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__(channels)
        factory = {"device": device, "dtype": dtype}
        self.eps = eps
        self.alpha = nn.Parameter(torch.ones(channels, **factory))
        self.gamma = nn.Parameter(torch.zeros(channels, **factory))
        self.beta = nn.Parameter(torch.zeros(channels, **factory))

    def channel_weights(self, x: Tensor) -> Tensor:
        dtype = torch.promote_types(x.dtype, torch.float32)
        sum_squares = torch.linalg.vector_norm(x, dim=(2, 3), dtype=dtype).square()
        embedding = (sum_squares + self.eps).sqrt() * self.alpha.to(dtype)
        norm = (embedding.square().mean(dim=1, keepdim=True) + self.eps).rsqrt()
        weights = 1 + torch.tanh(embedding * norm * self.gamma.to(dtype) + self.beta.to(dtype))
        return weights[:, :, None, None]
