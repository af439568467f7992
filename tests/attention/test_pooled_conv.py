import pytest
import torch
from torch.nn import functional as F

from defcon_exp.attention.pooled_conv import float32_logits, pooled_conv1d
from defcon_exp.ops.kernel_paths import simulate_cuda_paths


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


@pytest.mark.parametrize(("out_channels", "k", "length"), [(1, 3, 19), (3, 7, 5), (1, 9, 4)])
def test_circular_equals_conv1d_circular_padding(out_channels, k, length):
    torch.manual_seed(k)
    signal = torch.randn(3, 1, length, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(out_channels, 1, k, dtype=torch.float64, requires_grad=True)
    ours = pooled_conv1d(signal, weight, "circular")
    reference = F.conv1d(F.pad(signal, (k // 2, k // 2), mode="circular"), weight)
    torch.testing.assert_close(ours, reference)
    grad = torch.randn_like(reference)
    for a, b in zip(
        torch.autograd.grad(ours, (signal, weight), grad),
        torch.autograd.grad(reference, (signal, weight), grad),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("padding_mode", ["zeros", "circular"])
@pytest.mark.parametrize(("out_channels", "k"), [(1, 3), (7, 7)])
def test_cuda_path_equals_cpu_path(out_channels, k, padding_mode):
    torch.manual_seed(k)
    signal = torch.randn(4, 1, 19, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(out_channels, 1, k, dtype=torch.float64, requires_grad=True)
    grad = torch.randn(4, out_channels, 19, dtype=torch.float64)
    cpu = pooled_conv1d(signal, weight, padding_mode)
    with simulate_cuda_paths():
        cuda = pooled_conv1d(signal, weight, padding_mode)
    torch.testing.assert_close(cuda, cpu)
    for a, b in zip(
        torch.autograd.grad(cuda, (signal, weight), grad),
        torch.autograd.grad(cpu, (signal, weight), grad),
        strict=True,
    ):
        torch.testing.assert_close(a, b)


def test_unknown_padding_mode_is_named():
    with pytest.raises(ValueError, match="unknown padding_mode 'reflect'"):
        pooled_conv1d(torch.randn(1, 1, 8), torch.randn(1, 1, 3), "reflect")


def test_float32_logits_under_autocast():
    pooled = torch.randn(3, 8).bfloat16()
    seen = []

    def logits(p):
        seen.append((p.dtype, torch.is_autocast_enabled("cpu")))
        return p * 2

    assert float32_logits(logits, pooled).dtype == torch.bfloat16  # no autocast: untouched
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = float32_logits(logits, pooled)
    assert out.dtype == torch.float32
    assert seen == [(torch.bfloat16, False), (torch.float32, False)]
