"""GCT against the paper's equations 1-3, computed by hand."""

from __future__ import annotations

import math

import torch
from torch import nn

from defcon_exp.attention import create_attention

DTYPE = torch.float64


def _randomise(module: nn.Module, std: float = 0.3) -> nn.Module:
    torch.manual_seed(0)
    for param in module.parameters():
        nn.init.normal_(param, std=std)
    return module


# --- GCT: l2 embedding, channel normalisation, 1 + tanh gate ------------------------------


def test_gct_follows_the_paper_equations():
    module = _randomise(create_attention("gct", 32, dtype=DTYPE))
    x = torch.randn(3, 32, 5, 6, dtype=DTYPE)
    eps = module.eps
    # Eq. 1: s_c = alpha_c ||x_c||_2 (eps inside the root, as the code)
    s = module.alpha * torch.sqrt((x**2).flatten(2).sum(-1) + eps)
    # Eq. 2: s_hat_c = sqrt(C) s_c / ||s||_2 (the code's eps: mean(s^2) + eps)
    s_hat = math.sqrt(32) * s / torch.sqrt((s**2).sum(1, keepdim=True) + 32 * eps)
    # Eq. 3: x_hat = x (1 + tanh(gamma s_hat + beta))
    expected = x * (1 + torch.tanh(module.gamma * s_hat + module.beta))[:, :, None, None]
    torch.testing.assert_close(module(x), expected)


def test_gct_starts_as_the_identity_and_embeds_in_float32():
    module = create_attention("gct", 16)
    x = torch.randn(2, 16, 4, 4)
    torch.testing.assert_close(module(x), x)
    assert module.channel_weights(x.bfloat16()).dtype == torch.float32
