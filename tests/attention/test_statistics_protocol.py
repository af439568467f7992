"""Every registered attention module follows the statistics protocol of
``defcon_exp.attention.base``: ``statistics(x)`` reports the channel weights its forward
pass actually applies (checked against the forward output, not against the method itself)."""

from __future__ import annotations

import pytest
import torch

from defcon_exp.attention import ATTENTIONS, Cbam, ChannelAttention, create_attention
from defcon_exp.attention.base import AttentionStatistics

CHANNELS = 32  # 2 hidden units at reduction 16: one ReLU unit can be dead for every sample


def _module(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    kwargs = {"kernel_size": 3} if getattr(ATTENTIONS[name], "uses_kernel_size", False) else {}
    module = create_attention(name, CHANNELS, **kwargs)
    with torch.no_grad():  # away from the initialisation (DEFCON's offsets start at zero)
        for parameter in module.parameters():
            parameter.copy_(torch.randn_like(parameter) * 0.5)
    return module.eval()


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_statistics_report_the_applied_channel_weights(name: str) -> None:
    module = _module(name)
    assert isinstance(module, AttentionStatistics)
    x = torch.randn(3, CHANNELS, 5, 5)
    with torch.no_grad():
        stats = module.statistics(x)
        out = module(x)
    if "weights" not in stats:  # a module that does not scale channels
        assert not isinstance(module, ChannelAttention | Cbam), name
        return
    weights = stats["weights"]
    assert weights.shape == (3, CHANNELS) and weights.dtype == torch.float32
    assert torch.isfinite(weights).all() and (weights >= 0).all()
    assert weights.std() > 0  # input dependent, not a constant
    if isinstance(module, ChannelAttention):  # output = weights * x, channel by channel
        torch.testing.assert_close(out, weights[:, :, None, None] * x, rtol=1e-5, atol=1e-6)
    if isinstance(module, Cbam):  # output = (weights * x) * spatial gate shared by channels
        ratio = out / (weights[:, :, None, None] * x)
        torch.testing.assert_close(ratio, ratio[:, :1].expand_as(ratio), rtol=1e-4, atol=1e-5)
    if "offset" in stats:
        k = stats["offset"].shape[1]
        for key in ("offset", "distance", "position"):
            assert stats[key].shape == (3, k, CHANNELS), key
        own = torch.arange(CHANNELS, dtype=torch.float32)
        torch.testing.assert_close(stats["distance"], (stats["position"] - own).abs())
