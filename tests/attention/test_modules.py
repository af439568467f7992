import functools

import pytest
import torch
from torch.nn import functional as F

from defcon_exp.attention import (
    ATTENTIONS,
    Defcon,
    DefconShuffle,
    EfficientChannelAttention,
    SqueezeExcite,
    channel_shuffle,
    channel_unshuffle,
    create_attention,
    list_attentions,
)
from defcon_exp.ops import deform_conv1d


def expected_params(name: str, channels: int, k: int) -> int:
    hidden = max(8, channels // 16)
    r16 = round(channels / 16)  # GC, GE: C/16 rounded, at least 1
    coord = max(8, channels // 32)
    return {
        "gc": 2 * channels * r16 + 2 * channels + 3 * r16 + 1,
        "ge": 2 * channels * r16 + r16 + channels,
        "eca_circular": k,
        "fca": 2 * channels * (channels // 16),
        "gct": 3 * channels,
        "srm": 4 * channels,
        "simam": 0,
        "coord": 3 * channels * coord + 3 * coord + 2 * channels,
        "se": 2 * channels * hidden,
        "eca": k,
        "cbam": 2 * channels * hidden + 2 * 7 * 7 + 2,
        "defcon": k * k + k,
        "defcon_shuffle": k * k + k,
        "defcon_corr": k * k + k,
        "defcon_mix": k * k + 2 * k + 1,
        "defcon_mod": 2 * k * k + k,
        "defcon_released": k * k + k,
    }[name]


# Biases whose gradient is zero up to rounding, kept for timm's parameter counts: GC's spatial
# softmax ignores a constant shift of its logits, and CoordAttention's training-mode BatchNorm
# subtracts the batch mean that conv1's bias adds. Asserting them > 0 passed on rounding noise.
SHIFT_INVARIANT = {("gc", "conv_attn.bias"), ("coord", "conv1.bias")}


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_shape_gradients_and_parameter_count(name):
    torch.manual_seed(0)
    kwargs = {"kernel_size": 5} if getattr(ATTENTIONS[name], "uses_kernel_size", False) else {}
    module = create_attention(name, 64, **kwargs)
    for param in module.parameters():  # DEFCON's offsets, GC's last conv, GCT, SRM
        if not param.any():
            torch.nn.init.normal_(param, std=0.5)
    x = torch.randn(3, 64, 6, 5, requires_grad=True)
    y = module(x)
    assert y.shape == x.shape
    y.square().sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    for pname, param in module.named_parameters():
        assert param.grad is not None, pname
        if (name, pname) in SHIFT_INVARIANT:
            assert param.grad.abs().max() < 1e-5, pname
        else:
            assert param.grad.abs().sum() > 0, pname
    assert sum(p.numel() for p in module.parameters()) == expected_params(name, 64, 5)


@pytest.mark.parametrize("name", sorted(ATTENTIONS))
def test_factory_kwargs_and_channels_first(name):
    module = create_attention(name, 32, device="meta", dtype=torch.float64)
    for param in module.parameters():
        assert param.device.type == "meta" and param.dtype == torch.float64


def test_registry_lists_choices_on_unknown_name():
    names = list_attentions()
    assert names[0] == "none" and names[1:] == sorted(names[1:])  # listable, stable order
    assert {"se", "eca", "cbam", "defcon", "defcon_shuffle", "defcon_released"} <= set(names)
    assert isinstance(create_attention("none", 8), torch.nn.Identity)
    with pytest.raises(ValueError, match=r"unknown attention 'sk'.*'defcon_shuffle'"):
        create_attention("sk", 64)


def test_eca_is_a_1d_conv_of_the_pooled_vector():
    torch.manual_seed(1)
    module = EfficientChannelAttention(32, kernel_size=3)
    x = torch.randn(2, 32, 4, 4)
    pooled = x.mean((2, 3))
    logits = F.conv1d(pooled[:, None], module.conv.weight, padding=1)[:, 0]
    torch.testing.assert_close(module(x), x * torch.sigmoid(logits)[:, :, None, None])


def test_se_hidden_width_and_bias_free():
    module = SqueezeExcite(256)
    assert module.fc1.out_features == 16 and module.fc1.bias is None and module.fc2.bias is None
    assert SqueezeExcite(64, reduction=16, min_hidden=8).fc1.out_features == 8


@pytest.mark.parametrize("cls", [Defcon, DefconShuffle])
def test_defcon_with_zero_offsets_is_the_plain_1d_conv(cls):
    torch.manual_seed(2)
    module = cls(64, kernel_size=5)  # offset conv starts at zero
    assert torch.count_nonzero(module.offset_conv.weight) == 0
    x = torch.randn(4, 64, 3, 3)
    pooled = x.mean((2, 3))
    logits = F.conv1d(pooled[:, None], module.weight, padding=2)[:, 0]
    torch.testing.assert_close(module(x), x * torch.sigmoid(logits)[:, :, None, None])


def test_defcon_samples_at_its_offsets():
    torch.manual_seed(3)
    module = Defcon(16, kernel_size=3, offset_init="kaiming")
    x = torch.randn(2, 16, 2, 2)
    signal = x.mean((2, 3))[:, None]
    offsets = F.conv1d(signal, module.offset_conv.weight, padding=1)
    logits = deform_conv1d(signal, offsets, module.weight, padding=1)[:, 0]
    torch.testing.assert_close(module.channel_logits(x.mean((2, 3))), logits)


def test_defcon_shuffle_offsets_belong_to_their_channel():
    # Offsets are computed on the shuffled vector, then unshuffled: the offset of channel c
    # must be the conv output at the shuffled position of c.
    torch.manual_seed(4)
    module = DefconShuffle(32, kernel_size=3, offset_init="kaiming")
    signal = torch.randn(2, 1, 32)
    groups = module.shuffle_groups
    on_shuffled = F.conv1d(channel_shuffle(signal, groups), module.offset_conv.weight, padding=1)
    position_of = channel_shuffle(torch.arange(32), groups).argsort()
    torch.testing.assert_close(module.offsets(signal), on_shuffled[:, :, position_of])
    torch.testing.assert_close(module.offsets(signal), channel_unshuffle(on_shuffled, groups))
    # And it differs from plain DEFCON's neighbour-based offsets.
    assert not torch.allclose(
        module.offsets(signal), F.conv1d(signal, module.offset_conv.weight, padding=1)
    )


def test_defcon_shuffle_refuses_indivisible_channels():
    with pytest.raises(ValueError, match="36 channels are not divisible by the shuffle groups 8"):
        DefconShuffle(36, kernel_size=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kernel_size": 4}, "odd and positive"),
        ({"offset_init": "ones"}, "unknown offset_init 'ones'"),
        ({"gate": "relu"}, "unknown gate 'relu'"),
    ],
)
def test_defcon_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Defcon(64, **kwargs)


def test_gradcheck_defcon_float64():
    torch.manual_seed(5)
    module = DefconShuffle(16, kernel_size=3, offset_init="kaiming", dtype=torch.float64)
    x = torch.randn(2, 16, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(module, (x,))


def test_timm_resnet_accepts_create_attention_as_attn_layer():
    timm = pytest.importorskip("timm")
    attn_layer = functools.partial(create_attention, "defcon")
    model = timm.create_model("resnet26", block_args={"attn_layer": attn_layer}, num_classes=10)
    defcons = [m for m in model.modules() if isinstance(m, Defcon)]
    assert len(defcons) == 8
    assert model(torch.randn(1, 3, 64, 64)).shape == (1, 10)
