"""What every module of the zoo (docs/zoo.md) must do in a bottleneck: report its channel
weights, fuse with the block tail when it is a pooled-vector module, keep channels_last
and trace into one graph (float32 and bfloat16 autocast). Each module's own test file
checks it against timm or the paper's equations."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from defcon_exp.attention import ATTENTIONS, ChannelAttention, create_attention
from defcon_exp.models import Bottleneck

#: the zoo, in the order of docs/zoo.md; block-level modules weight each pixel
ZOO = ["gc", "ge", "eca_circular", "fca", "gct", "srm", "simam", "coord"]
BLOCK_LEVEL = {"simam", "coord"}
CHANNELS = 32  # divisible by FcaNet's 16 frequency groups


def _attention(name: str, dtype: torch.dtype = torch.float32) -> nn.Module:
    kwargs = {"kernel_size": 3} if getattr(ATTENTIONS[name], "uses_kernel_size", False) else {}
    module = create_attention(name, CHANNELS, **kwargs, dtype=dtype)
    for param in module.parameters():  # leave the identity-like initialisations
        if not param.any():
            nn.init.normal_(param, std=0.5)
    return module


def _block(name: str, dtype: torch.dtype = torch.float32, fused_tail: bool = True) -> Bottleneck:
    torch.manual_seed(0)
    return Bottleneck(CHANNELS, CHANNELS // 4, 1, _attention(name, dtype), fused_tail, dtype=dtype)


def test_zoo_is_registered_with_a_model_config():
    from defcon_exp.models import MODEL_NAMES

    assert set(ZOO) <= set(ATTENTIONS) and set(ZOO) <= set(MODEL_NAMES)
    for name in ZOO:
        assert isinstance(ATTENTIONS[name].__doc__, str)
        paper = __import__(ATTENTIONS[name].__module__, fromlist=["_"]).__doc__
        assert any(year in paper for year in ("2018", "2019", "2020", "2021")), name


@pytest.mark.parametrize("name", ZOO)
def test_is_a_pooled_vector_module_unless_block_level(name):
    module = _attention(name)
    assert isinstance(module, ChannelAttention) == (name not in BLOCK_LEVEL)
    assert _block(name).fused_tail == (name not in BLOCK_LEVEL)


@pytest.mark.parametrize("name", ZOO)
def test_statistics_are_the_channel_weights(name):
    torch.manual_seed(1)
    module = _attention(name, torch.float64).eval()
    x = torch.randn(3, CHANNELS, 6, 5, dtype=torch.float64)
    weights = module.statistics(x)["weights"]
    assert weights.shape == (3, CHANNELS) and weights.dtype == torch.float32
    assert (weights >= 0).all()
    ratio = module(x) / x  # the per-pixel weight
    if name in BLOCK_LEVEL:  # its spatial mean per channel
        torch.testing.assert_close(weights, ratio.mean(dim=(2, 3)).float())
    else:  # one weight per channel
        torch.testing.assert_close(ratio, ratio[:, :, :1, :1].expand_as(ratio))
        torch.testing.assert_close(weights, ratio[:, :, 0, 0].float())


@pytest.mark.parametrize("name", sorted(set(ZOO) - BLOCK_LEVEL))
def test_fused_tail_equals_unfused_block(name):
    fused = _block(name, torch.float64)
    unfused = _block(name, torch.float64, fused_tail=False)
    unfused.load_state_dict(fused.state_dict())
    assert fused.fused_tail and not unfused.fused_tail
    x = torch.randn(4, CHANNELS, 5, 5, dtype=torch.float64, requires_grad=True)
    out, out_ref = fused(x), unfused(x)
    torch.testing.assert_close(out, out_ref)
    grad = torch.randn_like(out)
    params = [*fused.parameters(), x]
    got = torch.autograd.grad(out, params, grad)
    want = torch.autograd.grad(out_ref, [*unfused.parameters(), x], grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("name", ZOO)
def test_channels_last_equals_contiguous(name):
    block = _block(name, torch.float64)
    twin = _block(name, torch.float64).to(memory_format=torch.channels_last)
    twin.load_state_dict(block.state_dict())
    x = torch.randn(2, CHANNELS, 6, 6, dtype=torch.float64)
    out = block(x)
    out_cl = twin(x.contiguous(memory_format=torch.channels_last))
    assert out_cl.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(out_cl, out, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("name", ZOO)
@pytest.mark.parametrize("precision", [None, torch.bfloat16], ids=["32", "bf16"])
def test_block_traces_without_graph_breaks(name, precision):
    torch._dynamo.reset()
    block = _block(name).to(memory_format=torch.channels_last)
    x = torch.randn(2, CHANNELS, 8, 8).to(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=precision or torch.bfloat16, enabled=precision is not None):
        explanation = torch._dynamo.explain(block)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
    assert explanation.graph_count == 1


@pytest.mark.parametrize("name", ZOO)
def test_bfloat16_autocast_keeps_dtype_and_is_close(name):
    block = _block(name).eval()
    x = torch.randn(2, CHANNELS, 8, 8)
    with torch.no_grad():
        reference = block(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = block(x)
            # the module keeps its input's dtype (the unfused block's float32 identity
            # then makes the block's output float32, as for CBAM)
            assert block.attention(x.bfloat16()).dtype == torch.bfloat16
    error = (low.float() - reference).norm() / reference.norm()
    assert error < 0.02, f"{name}: bf16 autocast {error:.3%} away from float32"
