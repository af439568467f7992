"""``defcon_released`` against an independent transcription of the released ``dca_layer``."""

from __future__ import annotations

import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from defcon_exp.attention import DefconReleased, create_attention
from defcon_exp.models import Bottleneck, cifar_resnet50, create_model


def released_sampling_vectorised(x: Tensor, offset: Tensor, kernel_weight: Tensor) -> Tensor:
    """The release's ``DeformConv1D.forward`` for ``x: Tensor[B, 1, C]`` and ``offset:
    Tensor[B, k, C]``, written in its own vectorised style (p = p_0 + p_n + offset, the mask
    arithmetic, clamps, gathers, a stride-k convolution) -> ``Tensor[B, 1, C]``."""
    k = kernel_weight.shape[-1]
    batch, _, channels = x.shape
    x = F.pad(x, (k // 2, k // 2))
    last = x.shape[2] - 1
    p_n = torch.arange(-(k - 1) // 2, (k - 1) // 2 + 1, dtype=offset.dtype).view(1, k, 1)
    p_0 = torch.arange(1, channels + 1, dtype=offset.dtype).view(1, 1, channels)
    p = (p_0 + p_n + offset).permute(0, 2, 1)  # (B, C, k)
    q_left = p.detach().floor()
    q_right = q_left + 1
    q_left = q_left.clamp(0, last).long()
    q_right = q_right.clamp(0, last).long()
    mask = (p.lt(1) + p.gt(last - 1)).type_as(p).detach()
    floor_p = p - (p - torch.floor(p))
    p = (p * (1 - mask) + floor_p * mask).clamp(0, last)
    g_left = 1 + (q_left.type_as(p) - p)
    g_right = 1 - (q_right.type_as(p) - p)
    x_left = x.gather(-1, q_left.reshape(batch, 1, -1)).view(batch, channels, k)
    x_right = x.gather(-1, q_right.reshape(batch, 1, -1)).view(batch, channels, k)
    columns = (g_left * x_left + g_right * x_right).reshape(batch, 1, channels * k)
    return F.conv1d(columns, kernel_weight, stride=k)


def released_layer(module: DefconReleased, x: Tensor, shuffle_bug: bool) -> Tensor:
    """The release's ``dca_layer.forward`` (HEAD) with ``module``'s weights and dropout."""
    b, c = x.shape[:2]
    y = F.adaptive_max_pool2d(x, 1)  # (b, c, 1, 1)
    y = module.dropout(y)
    groups = module.shuffle_groups

    def shuffle(t: Tensor, g: int) -> Tensor:
        return t.view(b, g, c // g, 1, 1).transpose(1, 2).contiguous().view(b, -1, 1, 1)

    if groups:
        y = shuffle(y, groups)
    signal = y.view(b, 1, c)
    offset = F.conv1d(signal, module.offset_conv.weight, padding=(module.kernel_size - 1) // 2)
    y_local = released_sampling_vectorised(signal, offset, module.weight).view(b, c, 1, 1)
    if groups:
        # HEAD shuffles ``y`` back (the bug); the fixed path shuffles ``y_local`` back
        y_local = shuffle(y if shuffle_bug else y_local, c // groups)
    return torch.sigmoid(y_local).expand_as(x) * x + x


def make(channels: int = 64, **kwargs) -> DefconReleased:
    torch.manual_seed(0)
    module = DefconReleased(channels, dtype=torch.float64, **kwargs)
    nn.init.normal_(module.offset_conv.weight, std=1.5)  # offsets reaching both edges
    return module


def features(channels: int = 64, seed: int = 1) -> Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(3, channels, 5, 4, dtype=torch.float64, generator=gen)


@pytest.mark.parametrize("k", [3, 5, 7])
def test_eval_forward_equals_the_release(k):
    module = make(kernel_size=k).eval()
    x = features()
    torch.testing.assert_close(module(x), released_layer(module, x, False), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [3, 5])
def test_train_forward_and_gradients_equal_the_release_with_the_same_dropout(k):
    module = make(kernel_size=k, dropout=0.5).train()
    x = features().requires_grad_(True)
    x_ref = x.detach().clone().requires_grad_(True)
    torch.manual_seed(7)
    out = module(x)
    torch.manual_seed(7)
    expected = released_layer(module, x_ref, False)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    grad = torch.randn_like(out)
    params = list(module.parameters())
    mine = torch.autograd.grad(out, [x, *params], grad)
    ref = torch.autograd.grad(expected, [x_ref, *params], grad)
    for a, b in zip(mine, ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_dropout_acts_only_in_train_mode():
    module = make(dropout=0.5)
    x = features()
    module.eval()
    torch.testing.assert_close(module(x), module(x))
    module.train()
    torch.manual_seed(0)
    first = module(x)
    second = module(x)
    assert not torch.allclose(first, second)  # a fresh dropout mask per call
    torch.manual_seed(0)
    torch.testing.assert_close(module(x), first)
    # the dropped-out pooled vector: zeros or max * 2 (1 / (1 - p))
    torch.manual_seed(0)
    pooled = module.pooled(x)
    maxima = x.amax(dim=(2, 3))
    assert torch.all((pooled == 0) | torch.isclose(pooled, 2 * maxima))
    assert (pooled == 0).any() and (pooled != 0).any()


def test_pooling_is_max_and_the_gate_is_residual():
    module = make(kernel_size=3).eval()
    x = features()
    pooled = module.pooled(x)
    torch.testing.assert_close(pooled, x.amax(dim=(2, 3)))
    logits = module.channel_logits(pooled)
    expected = x * torch.sigmoid(logits)[:, :, None, None] + x
    torch.testing.assert_close(module(x), expected)
    torch.testing.assert_close(
        module.channel_weights(x), 1 + torch.sigmoid(logits)[..., None, None]
    )


def test_shuffle_un_shuffles_the_deformable_output():
    module = make(use_shuffle=True, channels_per_group=16).eval()
    assert module.shuffle_groups == 4
    x = features()
    torch.testing.assert_close(module(x), released_layer(module, x, False), rtol=1e-12, atol=1e-12)
    # and it is not the unshuffled module
    plain = make().eval()
    assert not torch.allclose(module(x), plain(x))


def test_shuffle_bug_option_discards_the_deformable_output():
    module = make(use_shuffle=True, shuffle_discards_deformable=True, dropout=0.5).train()
    x = features().requires_grad_(True)
    torch.manual_seed(3)
    out = module(x)
    torch.manual_seed(3)
    expected = released_layer(module, x, True)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)
    # the gate is sigmoid(dropout(maxpool(x))): the deformable branch has no effect
    torch.manual_seed(3)
    gate = torch.sigmoid(F.dropout(x.amax(dim=(2, 3)), 0.5))[:, :, None, None]
    torch.testing.assert_close(out, x * gate + x)
    out.sum().backward()
    assert module.offset_conv.weight.grad is None and module.weight.grad is None


def test_shuffle_arguments_are_checked():
    with pytest.raises(ValueError, match="needs use_shuffle=True"):
        DefconReleased(64, shuffle_discards_deformable=True)
    with pytest.raises(ValueError, match="48 channels cannot be shuffled into 5 groups"):
        DefconReleased(48, use_shuffle=True, groups=5)
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), received 1.5"):
        DefconReleased(64, dropout=1.5)


@pytest.mark.parametrize("k", [3, 5])
def test_statistics(k):
    module = make(kernel_size=k).eval()
    x = features()
    stats = module.statistics(x)
    assert set(stats) == {"weights", "offset", "distance", "position"}
    torch.testing.assert_close(x * stats["weights"][:, :, None, None].double(), module(x))
    offset = module.offsets(module.pooled(x)[:, None, :])
    torch.testing.assert_close(stats["offset"], offset.float())
    # tap n of channel c samples channel c + 1 + n - 2 * (k // 2) + offset (released base)
    c = torch.arange(64, dtype=torch.float64)
    n = torch.arange(k, dtype=torch.float64)[:, None]
    position = c + 1 + n - 2 * (k // 2) + offset
    torch.testing.assert_close(stats["position"], position.float())
    torch.testing.assert_close(stats["distance"], (position - c).abs().float())
    assert all(v.dtype == torch.float32 for v in stats.values())


def test_parameter_counts():
    for k in (3, 5, 7):
        assert sum(p.numel() for p in DefconReleased(64, kernel_size=k).parameters()) == k * k + k
    # ResNet-50 (CIFAR, 100 classes): 23,705,252; + 16 modules x (3*3 + 3) with k = 3.
    assert (
        sum(p.numel() for p in create_model("defcon_released", device="meta").parameters())
        == 23_705_444
    )
    # The release's logged ECA run (logs/seed=*/eca_resnet50.log: 23,705,300) is ECA with
    # k = 3 in every stage (+16 x 3), not the paper's (3, 5, 5, 7) (23,705,332).
    eca3 = cifar_resnet50(100, "eca", kernel_size=3, stem="released", device="meta")
    assert sum(p.numel() for p in eca3.parameters()) == 23_705_300
    eca_paper = cifar_resnet50(100, "eca", kernel_size="paper", device="meta")
    assert sum(p.numel() for p in eca_paper.parameters()) == 23_705_332


def test_released_stem_and_model():
    model = create_model("defcon_released", num_classes=10)
    assert model.stem_name == "released"
    conv, pool = model.stem[0], model.stem[3]
    assert (conv.kernel_size, conv.stride, conv.padding) == ((3, 3), (1, 1), (3, 3))
    assert isinstance(pool, nn.MaxPool2d) and (pool.kernel_size, pool.stride) == (3, 2)
    assert model.stem(torch.randn(1, 3, 32, 32)).shape == (1, 64, 18, 18)
    assert model.stage_kernel_sizes == [3, 3, 3, 3]
    assert all(isinstance(m, DefconReleased) for m in model.modules() if hasattr(m, "offset_conv"))
    with pytest.raises(ValueError, match="unknown stem 'imagenet'; choose one of"):
        cifar_resnet50(10, stem="imagenet")


def test_fused_tail_equals_unfused_block():
    # Block by block on the same input: the released sampling is discontinuous (edge snapping),
    # so float rounding differences between whole networks can flip a sampled position.
    torch.manual_seed(0)
    fused = create_model("defcon_released", num_classes=10, dtype=torch.float64).eval()
    unfused = create_model(
        "defcon_released", num_classes=10, fused_tail=False, dtype=torch.float64
    ).eval()
    unfused.load_state_dict(fused.state_dict())
    x = fused.stem(torch.randn(2, 3, 32, 32, dtype=torch.float64))
    for block, twin in zip(fused.stages.modules(), unfused.stages.modules(), strict=True):
        if isinstance(block, Bottleneck):
            assert block.fused_tail and not twin.fused_tail
            out = block(x.clone())
            torch.testing.assert_close(out, twin(x.clone()), rtol=1e-12, atol=1e-12)
            x = out


def test_registry_and_factory_kwargs():
    module = create_attention("defcon_released", 32, kernel_size=5, device="meta")
    assert isinstance(module, DefconReleased) and module.kernel_size == 5
    assert all(p.device.type == "meta" for p in module.parameters())
