"""Circular ECA against timm's ``CecaModule`` with the same weights copied in."""

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


@pytest.mark.parametrize(("channels", "k"), [(64, 3), (64, 7), (16, 5)])
def test_eca_circular_equals_timm_ceca(channels, k):
    ours = _randomise(create_attention("eca_circular", channels, kernel_size=k, dtype=DTYPE))
    ref = timm_layers.CecaModule(None, kernel_size=k, dtype=DTYPE)  # channels=None: keep k
    ref.conv.load_state_dict(ours.conv.state_dict())
    x = _input(channels)
    torch.testing.assert_close(ours(x), ref(x))
    # and it is not plain ECA: the first and the last channels see each other
    plain = create_attention("eca", channels, kernel_size=k, dtype=DTYPE)
    plain.conv.load_state_dict(ours.conv.state_dict())
    edge = (ours(x) - plain(x)).abs().amax(dim=(0, 2, 3))
    assert (edge[: k // 2] > 0).all() and (edge[-(k // 2) :] > 0).all()
    torch.testing.assert_close(
        edge[k // 2 : channels - k // 2], torch.zeros(channels - k + 1, dtype=DTYPE)
    )


def test_eca_circular_refuses_a_kernel_wrapping_twice():
    with pytest.raises(ValueError, match="wraps more than once around 2 channels"):
        create_attention("eca_circular", 2, kernel_size=7)
