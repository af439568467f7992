"""Drop path (stochastic depth) in the bottlenecks (issue 14)."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import StochasticDepth

from defcon_exp.models import Bottleneck, CifarResNet, count_parameters
from defcon_exp.models.resnet import drop_path_rates

DEPTHS = (1, 1, 1, 1)


def small(rate: float, attention: str = "se", seed: int = 0) -> CifarResNet:
    torch.manual_seed(seed)
    return CifarResNet(DEPTHS, num_classes=5, attention=attention, drop_path_rate=rate)


@pytest.mark.parametrize("attention", ["none", "se", "eca"])
def test_rate_zero_is_the_plain_model(attention):
    plain = small(0.0, attention)
    torch.manual_seed(0)
    reference = CifarResNet(DEPTHS, num_classes=5, attention=attention)  # the option absent
    assert plain.state_dict().keys() == reference.state_dict().keys()
    for key, value in reference.state_dict().items():
        assert torch.equal(plain.state_dict()[key], value), key
    images = torch.randn(4, 3, 32, 32)
    torch.manual_seed(1)
    out = plain.train()(images)
    torch.manual_seed(1)
    assert torch.equal(out, reference.train()(images))


@pytest.mark.parametrize("attention", ["none", "se"])
def test_parameters_unchanged_and_eval_deterministic(attention):
    model = small(0.5, attention)
    assert count_parameters(model) == count_parameters(small(0.0, attention))
    model.eval()
    images = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(images), model(images))
        torch.manual_seed(0)
        plain = small(0.0, attention).eval()
        plain.load_state_dict(model.state_dict())
        assert torch.equal(model(images), plain(images))  # eval = the expectation's scaling


def test_rates_rise_linearly_with_depth():
    model = CifarResNet((3, 4, 6, 3), num_classes=5, drop_path_rate=0.2)
    rates = [b.drop_path.p if isinstance(b.drop_path, StochasticDepth) else 0.0
             for b in model.modules() if isinstance(b, Bottleneck)]
    assert rates == pytest.approx([0.2 * (i + 1) / 16 for i in range(16)])
    assert rates == pytest.approx(drop_path_rates(0.2, 16)) and rates[-1] == pytest.approx(0.2)
    assert all(b.drop_path.mode == "row" for b in model.modules() if isinstance(b, Bottleneck))


@pytest.mark.parametrize("fused", [True, False])
def test_training_drops_whole_residual_branches_per_sample(fused):
    """A dropped sample's block output is relu(identity); a kept one's branch is scaled 1/(1-p)."""
    from defcon_exp.attention import create_attention

    torch.manual_seed(0)
    block = Bottleneck(16, 4, 1, create_attention("se", 16), fused_tail=fused, drop_path_rate=0.5).train()
    x = torch.randn(64, 16, 8, 8)
    torch.manual_seed(5)
    out = block(x)
    torch.manual_seed(5)
    mask = torch.empty(64, 1, 1, 1).bernoulli_(0.5) / 0.5  # StochasticDepth's row mask
    block.drop_path = torch.nn.Identity()
    with torch.no_grad():
        branch = block.attention(block.bn3(block.conv3(block.relu(block.bn2(block.conv2(
            block.relu(block.bn1(block.conv1(x)))))))))
    torch.testing.assert_close(out, torch.relu(branch * mask + x), rtol=1e-5, atol=1e-6)
    assert 0 < (mask == 0).sum() < 64
