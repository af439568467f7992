import importlib

import pytest
import torch

from defcon_exp.models import create_model
from defcon_exp.ops import scale_add_relu


def unfused(features, weights, identity):
    return torch.relu(features * weights + identity)


@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_unfused_values_and_gradients(channels_last):
    torch.manual_seed(0)
    features = torch.randn(3, 8, 5, 4, dtype=torch.float64)
    identity = torch.randn(3, 8, 5, 4, dtype=torch.float64)
    if channels_last:
        features = features.to(memory_format=torch.channels_last)
        identity = identity.to(memory_format=torch.channels_last)
    weights = torch.rand(3, 8, 1, 1, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (features, weights, identity)]
    grad = torch.randn(3, 8, 5, 4, dtype=torch.float64)
    fused_out = scale_add_relu(*inputs)
    reference_out = unfused(*inputs)
    torch.testing.assert_close(fused_out, reference_out, rtol=0, atol=1e-15)
    fused_grads = torch.autograd.grad(fused_out, inputs, grad)
    reference_grads = torch.autograd.grad(reference_out, inputs, grad)
    for fused_grad, reference_grad in zip(fused_grads, reference_grads, strict=True):
        torch.testing.assert_close(fused_grad, reference_grad, rtol=0, atol=1e-13)


def test_gradcheck():
    torch.manual_seed(1)
    inputs = (
        torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True),
        torch.rand(2, 4, 1, 1, dtype=torch.float64, requires_grad=True),
        torch.randn(2, 4, 3, 3, dtype=torch.float64, requires_grad=True),
    )
    assert torch.autograd.gradcheck(scale_add_relu, inputs)


def test_bad_shapes():
    x = torch.zeros(2, 4, 3, 3)
    with pytest.raises(ValueError, match=r"weights must have shape \(B, C, 1, 1\)"):
        scale_add_relu(x, torch.zeros(2, 4), x)
    with pytest.raises(ValueError, match="identity shape"):
        scale_add_relu(x, torch.zeros(2, 4, 1, 1), torch.zeros(2, 4, 3, 2))


@pytest.mark.parametrize("name", ["se", "eca", "defcon", "defcon_shuffle"])
def test_fused_model_equals_unfused_model(name):
    torch.manual_seed(2)
    fused = create_model(name, num_classes=10, dtype=torch.float64)
    plain = create_model(name, num_classes=10, fused_tail=False, dtype=torch.float64)
    plain.load_state_dict(fused.state_dict())
    assert fused.stages[0][0].fused_tail and not plain.stages[0][0].fused_tail
    # eval(): with batch statistics over 2 tiny images BatchNorm amplifies rounding noise.
    fused.eval()
    plain.eval()
    images = torch.randn(2, 3, 16, 16, dtype=torch.float64)
    fused_out, plain_out = fused(images), plain(images)
    torch.testing.assert_close(fused_out, plain_out, rtol=1e-10, atol=1e-10)
    fused_out.square().sum().backward()
    plain_out.square().sum().backward()
    for (pname, fused_param), plain_param in zip(
        fused.named_parameters(), plain.parameters(), strict=True
    ):
        torch.testing.assert_close(
            fused_param.grad, plain_param.grad, rtol=1e-8, atol=1e-10, msg=pname
        )


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("batch", [0, 1, 5, 7])
def test_spatial_dot_equals_the_full_reduction(channels_last, batch):
    module = importlib.import_module("defcon_exp.ops.scale_add_relu")
    a = torch.randn(batch, 6, 5, 4, dtype=torch.float64)
    b = torch.randn(batch, 6, 5, 4, dtype=torch.float64)
    if channels_last:
        a, b = (t.to(memory_format=torch.channels_last) for t in (a, b))
    torch.testing.assert_close(module.spatial_dot(a, b), (a * b).sum(dim=(2, 3)), rtol=0, atol=1e-13)


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("needs", [(True, True, True), (True, False, True), (False, True, False)])
def test_chunked_cpu_backward_equals_unfused(monkeypatch, channels_last, needs):
    """The CPU backward in batch chunks (forced here: 2 samples per chunk, 7 samples) gives the
    autograd reference's gradients for every combination of inputs needing them."""
    module = importlib.import_module("defcon_exp.ops.scale_add_relu")
    monkeypatch.setattr(module, "CHUNK_BYTES", 2 * 6 * 5 * 4 * 8)
    torch.manual_seed(3)
    features = torch.randn(7, 6, 5, 4, dtype=torch.float64)
    identity = torch.randn(7, 6, 5, 4, dtype=torch.float64)
    if channels_last:
        features, identity = (t.to(memory_format=torch.channels_last) for t in (features, identity))
    weights = torch.rand(7, 6, 1, 1, dtype=torch.float64)
    inputs = [t.requires_grad_(need) for t, need in zip((features, weights, identity), needs, strict=True)]
    wanted = [t for t in inputs if t.requires_grad]
    grad = torch.randn(7, 6, 5, 4, dtype=torch.float64)[:, :, :, [3, 1, 0, 2]]  # non-contiguous
    ours = torch.autograd.grad(scale_add_relu(*inputs), wanted, grad)
    reference = torch.autograd.grad(unfused(*inputs), wanted, grad)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-13)
    if channels_last and needs[0]:
        assert ours[0].is_contiguous(memory_format=torch.channels_last)
