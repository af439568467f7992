"""GE (extent 0) against timm's ``GatherExcite`` with the same weights copied in."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from defcon_exp.attention import create_attention

timm_layers = pytest.importorskip("timm.layers")
DTYPE = torch.float64


def _randomise(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    for param in module.parameters():
        nn.init.normal_(param, std=0.3)
    return module


def _input(channels: int) -> torch.Tensor:
    return torch.randn(3, channels, 6, 5, dtype=DTYPE, generator=torch.Generator().manual_seed(1))


def _conv1x1(linear: nn.Linear) -> dict[str, torch.Tensor]:
    return {"weight": linear.weight[:, :, None, None], "bias": linear.bias}


def _timm_gather_excite(channels: int, hidden: int | None) -> nn.Module:
    if hidden is None:
        return timm_layers.GatherExcite(channels, extent=0, use_mlp=False, dtype=DTYPE)
    try:
        return timm_layers.GatherExcite(channels, extent=0, rd_channels=hidden, dtype=DTYPE)
    except TypeError:
        # timm 1.0.31 cannot build its own MLP (it passes ``*dd`` positionally to ConvMlp);
        # the forward is timm's, with the ConvMlp it would have built put in by hand.
        ref = timm_layers.GatherExcite(channels, extent=0, use_mlp=False, dtype=DTYPE)
        ref.mlp = timm_layers.ConvMlp(channels, hidden, dtype=DTYPE)
        return ref


@pytest.mark.parametrize("use_mlp", [True, False])
def test_ge_equals_timm_gather_excite_extent_0(use_mlp):
    ours = _randomise(create_attention("ge", 64, use_mlp=use_mlp, dtype=DTYPE))
    ref = _timm_gather_excite(64, ours.hidden if use_mlp else None)
    if use_mlp:
        ref.mlp.fc1.load_state_dict(_conv1x1(ours.mlp[0]))
        ref.mlp.fc2.load_state_dict(_conv1x1(ours.mlp[2]))
    else:
        assert not list(ours.parameters())
    x = _input(64)
    torch.testing.assert_close(ours(x), ref(x))
