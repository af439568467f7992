"""The ImageNet ResNets against torchvision: same keys, same outputs, same parameter counts;
torchvision weights load into every attention variant with only the attention missing."""

from __future__ import annotations

import pytest
import torch
import torchvision

from defcon_exp.attention import list_attentions
from defcon_exp.models import MODELS, count_parameters, create_model, load_pretrained
from defcon_exp.models.blocks import ResidualTail

# torchvision.models.resnetN().parameters(), written out (torchvision's docs list 25.6 M etc.)
TORCHVISION_PARAMS = {18: 11_689_512, 34: 21_797_672, 50: 25_557_032, 101: 44_549_160, 152: 60_192_808}


@pytest.mark.parametrize("depth", [18, 34, 50, 101, 152])
def test_plain_network_has_torchvisions_keys_and_parameter_count(depth):
    ours = create_model("resnet50", 1000, arch=f"resnet{depth}_imagenet", device="meta")
    reference = getattr(torchvision.models, f"resnet{depth}")(weights=None)
    assert list(ours.state_dict()) == list(reference.state_dict())
    assert count_parameters(ours) == TORCHVISION_PARAMS[depth]
    assert sum(p.numel() for p in reference.parameters()) == TORCHVISION_PARAMS[depth]


@pytest.fixture(scope="module")
def torchvision_resnet50(tmp_path_factory):
    """``(torchvision resnet50, path of its state dict saved with torch.save)``."""
    torch.manual_seed(0)
    reference = torchvision.models.resnet50(weights=None)
    with torch.no_grad():  # non-trivial BatchNorm statistics, so eval mode tests them too
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.1, 0.1)
    path = tmp_path_factory.mktemp("tv") / "resnet50.pt"
    torch.save(reference.state_dict(), path)
    return reference, path


@pytest.mark.parametrize("train", [False, True])
def test_attention_off_equals_torchvision_resnet50(torchvision_resnet50, train):
    reference, path = torchvision_resnet50
    ours = create_model("resnet50", 1000, arch="resnet50_imagenet")
    report = load_pretrained(ours, path)
    assert report.missing == [] and report.skipped == []
    assert count_parameters(ours) == 25_557_032
    reference.train(train)
    ours.train(train)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(ours(images), reference(images))


@pytest.mark.parametrize("attention", list_attentions())
def test_torchvision_weights_load_with_exactly_the_attention_missing(torchvision_resnet50, attention):
    _, path = torchvision_resnet50
    name = next(name for name, (att, _) in MODELS.items() if att == attention)
    # built on meta and given storage without initialisation: the test is about the keys
    model = create_model(name, 1000, arch="resnet50_imagenet", device="meta").to_empty(device="cpu")
    attention_keys = [
        f"{block_name}.attention.{key}"
        for block_name, block in model.named_modules()
        if isinstance(block, ResidualTail)
        for key in block.attention.state_dict()
    ]
    report = load_pretrained(model, path)
    assert sorted(report.missing) == sorted(attention_keys)
    assert report.skipped == []
    state = torch.load(path, weights_only=True)
    assert all(torch.equal(model.state_dict()[key], state[key]) for key in report.loaded)
    assert len(report.loaded) == len(state)
    if attention_keys:
        assert "attention tensors are not in the file" in report.message()


def test_another_class_count_keeps_its_classifier_and_says_so(torchvision_resnet50):
    _, path = torchvision_resnet50
    model = create_model("eca", 10, arch="resnet50_imagenet")
    report = load_pretrained(model, path)
    assert report.skipped == ["fc.weight", "fc.bias"]
    assert "the classifier (fc.weight, fc.bias) has another size" in report.message()


def test_a_file_of_another_architecture_is_refused_in_one_line(torchvision_resnet50, tmp_path):
    _, path = torchvision_resnet50
    model = create_model("resnet50", 1000, arch="resnet18_imagenet")
    with pytest.raises(ValueError, match=r"does not fit this model: \d+ keys the model does not") as info:
        load_pretrained(model, path)
    assert "\n" not in str(info.value)
    pickled = tmp_path / "code.pt"
    torch.save({"fc.weight": object()}, pickled)
    with pytest.raises(ValueError, match="cannot be loaded with weights_only=True"):
        load_pretrained(model, pickled)


def test_basic_block_attention_sits_before_the_residual_add():
    model = create_model("se", 7, arch="resnet18_imagenet")
    blocks = [m for m in model.modules() if isinstance(m, ResidualTail)]
    assert len(blocks) == 8 and all(b.attention.__class__.__name__ != "Identity" for b in blocks)
    assert model(torch.randn(2, 3, 32, 32)).shape == (2, 7)


@pytest.mark.parametrize(("name", "gmacs"), [("resnet50", 4.1), ("se", 4.1)])
def test_flops_per_image_at_224_are_the_papers(name, gmacs):
    """SE-Net / ECA-Net tables: ResNet-50 and SE-ResNet-50 at 224x224, 4.1 (multiply-add) GFLOPs."""
    from defcon_exp.models.complexity import flops_per_image

    model = create_model(name, 1000, arch="resnet50_imagenet", device="meta")
    assert flops_per_image(model, 224) / 2e9 == pytest.approx(gmacs, abs=0.05)


def test_cifar_resnet50_keeps_its_checkpoint_keys():
    """The shared block code left the CIFAR model's keys as they were: torchvision's block
    keys under ``stages.N`` with the CIFAR stem (``stem.0`` conv, ``stem.1`` BN)."""
    ours = list(create_model("resnet50", 100, device="meta").state_dict())
    renamed = {"conv1": "stem.0", "bn1": "stem.1"}
    expected = []
    for key in torchvision.models.resnet50().state_dict():
        head, _, rest = key.partition(".")
        if head.startswith("layer"):
            expected.append(f"stages.{int(head[5:]) - 1}.{rest}")
        else:
            expected.append(f"{renamed.get(head, head)}.{rest}")
    assert ours == expected
