"""spatial_mean equals x.mean(dim=(2, 3)) in value and gradient, and its gradient is a view."""

import pytest
import torch

from defcon_exp.ops import scale_add_relu, spatial_mean


@pytest.mark.parametrize("channels_last", [False, True])
def test_matches_mean_values_and_gradients(channels_last: bool) -> None:
    torch.manual_seed(0)
    x = torch.randn(3, 5, 4, 7, dtype=torch.float64)
    if channels_last:
        x = x.to(memory_format=torch.channels_last)
    x.requires_grad_()
    grad = torch.randn(3, 5, dtype=torch.float64)
    ours, reference = spatial_mean(x), x.mean(dim=(2, 3))
    torch.testing.assert_close(ours, reference, rtol=0, atol=0)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (reference_grad,) = torch.autograd.grad(reference, x, grad)
    torch.testing.assert_close(ours_grad, reference_grad, rtol=0, atol=1e-15)


def test_gradcheck() -> None:
    x = torch.randn(2, 3, 3, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(spatial_mean, (x,))


def test_gradient_is_a_broadcast_view_not_a_feature_map() -> None:
    x = torch.randn(2, 4, 8, 8, requires_grad=True)
    (grad,) = torch.autograd.grad(spatial_mean(x), x, torch.ones(2, 4))
    assert grad.stride()[2:] == (0, 0)
    assert grad.untyped_storage().nbytes() == 2 * 4 * 4  # B*C floats, not B*C*H*W


def test_attention_tail_gradient_equals_the_unfused_reference() -> None:
    """Pool -> weights -> fused tail: the feature map gets two gradients (scaling and pooling);
    accumulating the view into the other must give the autograd reference exactly."""
    torch.manual_seed(1)
    features = torch.randn(2, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    identity = torch.randn(2, 6, 5, 5, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(2, 6, 5, 5, dtype=torch.float64)

    def tail(pool):
        weights = torch.sigmoid(pool(features) * 3.0)[:, :, None, None]
        return scale_add_relu(features, weights, identity)

    ours = torch.autograd.grad(tail(spatial_mean), (features, identity), grad)
    reference = torch.autograd.grad(tail(lambda x: x.mean(dim=(2, 3))), (features, identity), grad)
    for a, b in zip(ours, reference, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-14)


def test_rejects_non_4d_input() -> None:
    with pytest.raises(ValueError, match=r"Tensor\[B, C, H, W\].*\(2, 3\)"):
        spatial_mean(torch.zeros(2, 3))
