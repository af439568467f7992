"""GC against timm's ``GlobalContext`` (scaling fusion) with the same weights copied in."""

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


def test_gc_equals_timm_global_context_with_scale_fusion():
    ours = _randomise(create_attention("gc", 64, dtype=DTYPE))
    ref = timm_layers.GlobalContext(
        64, fuse_add=False, fuse_scale=True, rd_channels=ours.hidden, dtype=DTYPE
    )
    ref.conv_attn.load_state_dict(ours.conv_attn.state_dict())
    ref.mlp_scale.fc1.load_state_dict(_conv1x1(ours.fc1))
    ref.mlp_scale.norm.load_state_dict(ours.norm.state_dict())
    ref.mlp_scale.norm.eps = ours.norm.eps  # timm's LayerNorm2d: 1e-6; GCNet's nn.LayerNorm: 1e-5
    ref.mlp_scale.fc2.load_state_dict(_conv1x1(ours.fc2))
    x = _input(64)
    torch.testing.assert_close(ours(x), ref(x))
    assert ours.hidden == 4  # C / 16, the paper's ratio


def test_gc_starts_with_weights_one_half():
    module = create_attention("gc", 32)
    weights = module.statistics(torch.randn(2, 32, 4, 4))["weights"]
    torch.testing.assert_close(weights, torch.full_like(weights, 0.5))
