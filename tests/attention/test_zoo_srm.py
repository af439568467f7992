"""SRM against the paper's style pooling and integration, BatchNorm worked by hand."""

from __future__ import annotations

import torch
from torch import nn

from defcon_exp.attention import create_attention

DTYPE = torch.float64


def _randomise(module: nn.Module, std: float = 0.3) -> nn.Module:
    torch.manual_seed(0)
    for param in module.parameters():
        nn.init.normal_(param, std=std)
    return module


# --- SRM: style pooling, channel-wise FC, BatchNorm, sigmoid ------------------------------


def test_srm_follows_the_paper_equations_in_train_and_eval_mode():
    module = _randomise(create_attention("srm", 16, dtype=DTYPE))
    x = torch.randn(4, 16, 5, 3, dtype=DTYPE)
    flat = x.flatten(2)
    mean, std = flat.mean(-1), flat.std(-1)  # unbiased, as the authors' code
    z = module.cfc[:, 0] * mean + module.cfc[:, 1] * std
    bn = module.bn
    batch_mean, batch_var = z.mean(0), z.var(0, unbiased=False)
    z_train = (z - batch_mean) / torch.sqrt(batch_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(module(x), x * torch.sigmoid(z_train)[:, :, None, None])
    # running statistics after that one step (momentum 0.1, unbiased variance)
    running_mean = 0.1 * batch_mean
    running_var = 0.9 + 0.1 * z.var(0, unbiased=True)
    torch.testing.assert_close(bn.running_mean, running_mean)
    torch.testing.assert_close(bn.running_var, running_var)
    z_eval = (z - running_mean) / torch.sqrt(running_var + bn.eps) * bn.weight + bn.bias
    torch.testing.assert_close(module.eval()(x), x * torch.sigmoid(z_eval)[:, :, None, None])


def test_srm_channel_wise_fc_starts_at_zero():
    module = create_attention("srm", 8)
    assert torch.count_nonzero(module.cfc) == 0 and module.cfc.shape == (8, 2)
    assert sum(p.numel() for p in module.parameters()) == 4 * 8
