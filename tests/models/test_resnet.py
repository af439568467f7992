import logging

import pytest
import torch

from defcon_exp.attention import Defcon, EfficientChannelAttention
from defcon_exp.models import MODEL_NAMES, Bottleneck, cifar_resnet50, create_model


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_backward_every_model(name):
    torch.manual_seed(0)
    model = create_model(name, num_classes=10)
    images = torch.randn(2, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (2, 10)
    torch.nn.functional.cross_entropy(logits, torch.tensor([1, 7])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing


def test_architecture_is_the_cifar_resnet50():
    model = cifar_resnet50(num_classes=100, attention="eca", kernel_size="paper")
    stem_conv = model.stem[0]
    assert stem_conv.kernel_size == (3, 3) and stem_conv.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in model.modules())
    assert [len(stage) for stage in model.stages] == [3, 4, 6, 3]
    blocks = [m for m in model.modules() if isinstance(m, Bottleneck)]
    assert all(isinstance(b.attention, EfficientChannelAttention) for b in blocks)
    assert [b.attention.kernel_size for b in blocks] == [3] * 3 + [5] * 4 + [5] * 6 + [7] * 3
    assert model.fc.out_features == 100
    # 32x32 -> 4x4 after three stride-2 stages
    features = model.stages(model.stem(torch.randn(1, 3, 32, 32)))
    assert features.shape == (1, 2048, 4, 4)


def test_attention_sits_right_before_the_residual_add():
    torch.manual_seed(0)
    block = Bottleneck(64, 16, 1, torch.nn.Identity()).eval()
    calls = {}

    class Spy(torch.nn.Module):
        def forward(self, x):
            calls["input"] = x
            return torch.zeros_like(x)

    block.attention = Spy()
    x = torch.randn(2, 64, 8, 8)
    out = block(x)
    # With the attention output zeroed, the block is relu(identity).
    torch.testing.assert_close(out, torch.relu(block.downsample(x)))
    torch.testing.assert_close(
        calls["input"],
        block.bn3(
            block.conv3(block.relu(block.bn2(block.conv2(block.relu(block.bn1(block.conv1(x)))))))
        ),
    )


def test_kaiming_init_but_defcon_offsets_stay_zero():
    model = create_model("defcon", num_classes=10)
    defcons = [m for m in model.modules() if isinstance(m, Defcon)]
    assert defcons and all(torch.count_nonzero(d.offset_conv.weight) == 0 for d in defcons)
    conv = model.stages[0][0].conv1
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx((2 / fan_out) ** 0.5, rel=0.1)


def test_kernel_sizes_are_logged(caplog):
    with caplog.at_level(logging.INFO, logger="defcon_exp.models.resnet"):
        create_model("defcon", device="meta")
    assert "kernel size per stage [3, 5, 5, 7]" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"attention": "bam"}, "unknown attention 'bam'"),
        ({"attention": "eca", "kernel_size": 6}, "received 6"),
        ({"attention": "eca", "attention_kwargs": {"kernel_size": 3}}, "model's kernel_size"),
        ({"num_classes": 0}, "num_classes must be positive"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cifar_resnet50(device="meta", **kwargs)


def test_unknown_model_lists_choices():
    with pytest.raises(ValueError, match=r"unknown model 'vit'.*'defcon_shuffle'"):
        create_model("vit")
