import pytest
import torch
from torch.nn import functional as F

from defcon_exp.attention.pooled_conv import pooled_conv1d


@pytest.mark.parametrize(("out_channels", "k"), [(1, 1), (1, 3), (5, 5), (7, 7)])
def test_equals_conv1d_same_padding(out_channels, k):
    torch.manual_seed(k)
    signal = torch.randn(4, 1, 19, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(out_channels, 1, k, dtype=torch.float64, requires_grad=True)
    ours = pooled_conv1d(signal, weight)
    reference = F.conv1d(signal, weight, padding=k // 2)
    torch.testing.assert_close(ours, reference)
    grad = torch.randn_like(reference)
    for a, b in zip(
        torch.autograd.grad(ours, (signal, weight), grad),
        torch.autograd.grad(reference, (signal, weight), grad),
        strict=True,
    ):
        torch.testing.assert_close(a, b)
