"""Coordinate attention against timm's ``CoordAttn`` with the same weights copied in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from defcon_exp.attention import create_attention

pytest.importorskip("timm.layers.coord_attn")
DTYPE = torch.float64


def _randomise(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for param in module.parameters():
        nn.init.normal_(param, std=0.3)
    return module


@pytest.mark.parametrize("train", [True, False])
def test_coord_equals_timm_coord_attn(train):
    from timm.layers.coord_attn import CoordAttn

    ours = _randomise(create_attention("coord", 64, dtype=DTYPE))
    ours.bn1.running_mean.normal_()
    ours.bn1.running_var.uniform_(0.5, 2)
    ref = CoordAttn(64, rd_channels=ours.hidden, bias=True, dtype=DTYPE)  # the authors' biases
    for part in ("conv1", "bn1", "conv_h", "conv_w"):
        getattr(ref, part).load_state_dict(getattr(ours, part).state_dict())
    assert isinstance(ref.act, nn.Hardswish) and ours.hidden == 8  # max(8, 64 // 32)
    ours.train(train)
    ref.train(train)
    x = torch.randn(3, 64, 7, 5, dtype=DTYPE)  # H != W: the two strips must not swap
    torch.testing.assert_close(ours(x), ref(x))
    torch.testing.assert_close(ours.bn1.running_mean, ref.bn1.running_mean)
