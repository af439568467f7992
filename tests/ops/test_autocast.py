"""The deformable op and the fused block tail under autocast and in half precision (CPU)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from defcon_exp.ops import deform_conv1d, scale_add_relu

HALF = [torch.bfloat16, torch.float16]


def _leaves(dtype: torch.dtype = torch.float32, length: int = 40, mask: bool = False):
    gen = torch.Generator().manual_seed(0)
    leaves = {
        "input": torch.randn(3, 4, length, generator=gen),
        "offset": torch.randn(3, 2 * 3, length, generator=gen) * 2,
        "weight": torch.randn(6, 2, 3, generator=gen),
        "bias": torch.randn(6, generator=gen),
    }
    if mask:
        leaves["mask"] = torch.rand(3, 2 * 3, length, generator=gen)
    return {k: v.to(dtype).requires_grad_() for k, v in leaves.items()}


@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("autocast_dtype", HALF, ids=str)
@pytest.mark.parametrize("input_dtype", [torch.float32, *HALF], ids=str)
def test_op_under_cpu_autocast_is_float32_and_matches(autocast_dtype, input_dtype, mask):
    # CPU autocast supports float16 since torch 2.4 (this suite pins 2.14).
    leaves = _leaves(input_dtype, mask=mask)
    with torch.autocast("cpu", dtype=autocast_dtype):
        out = deform_conv1d(**leaves, padding=1, stride=1)
    assert out.dtype == torch.float32  # an autocast float32 op
    # Reference: the same (possibly half-rounded) values in float32, no autocast.
    reference_leaves = {k: v.detach().float().requires_grad_() for k, v in leaves.items()}
    expected = deform_conv1d(**reference_leaves, padding=1, stride=1)
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-6)
    grad = torch.randn_like(expected)
    grads = torch.autograd.grad(out, list(leaves.values()), grad)
    expected_grads = torch.autograd.grad(expected, list(reference_leaves.values()), grad)
    for name, g, e in zip(leaves, grads, expected_grads, strict=True):
        assert g.dtype == input_dtype, name  # autograd casts back to the leaf's dtype
        tol = 1e-5 if input_dtype == torch.float32 else 2e-2
        torch.testing.assert_close(g.float(), e, rtol=tol, atol=tol * e.abs().max(), msg=name)


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_op_samples_the_right_channel_of_a_long_signal(dtype):
    # Zero offsets: deform_conv1d is conv1d. With 2049+ positions, half-precision positions
    # would round channel indices (bfloat16 above 256, float16 above 2048) onto neighbours.
    length = 2304
    gen = torch.Generator().manual_seed(0)
    signal = torch.randn(2, 1, length, generator=gen).to(dtype)
    weight = torch.randn(1, 1, 3, generator=gen).to(dtype)
    offset = torch.zeros(2, 3, length, dtype=dtype)
    out = deform_conv1d(signal, offset, weight, padding=1)
    assert out.dtype == dtype
    expected = F.conv1d(signal.float(), weight.float(), padding=1)
    torch.testing.assert_close(out.float(), expected, rtol=2e-2, atol=2e-2)


def test_scale_add_relu_with_mixed_autocast_dtypes():
    # Under autocast: half-precision features and residual, float32 attention weights.
    gen = torch.Generator().manual_seed(0)
    features = torch.randn(2, 8, 5, 5, generator=gen).bfloat16().requires_grad_()
    identity = torch.randn(2, 8, 5, 5, generator=gen).requires_grad_()  # float32
    weights = torch.rand(2, 8, 1, 1, generator=gen).requires_grad_()  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = scale_add_relu(features, weights, identity)
    assert out.dtype == torch.bfloat16
    grad = torch.randn(2, 8, 5, 5, generator=gen).bfloat16()
    grads = torch.autograd.grad(out, [features, weights, identity], grad)
    assert [g.dtype for g in grads] == [torch.bfloat16, torch.float32, torch.float32]

    # Reference in float64 on the values the fused op used (identity and weights rounded).
    ref_inputs = [
        t.detach().to(torch.bfloat16).double().requires_grad_()
        for t in (features, weights, identity)
    ]
    ref = torch.relu(ref_inputs[0] * ref_inputs[1] + ref_inputs[2])
    torch.testing.assert_close(out.double(), ref, rtol=1e-2, atol=1e-2)
    ref_grads = torch.autograd.grad(ref, ref_inputs, grad.double())
    for g, e in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(g.double(), e, rtol=2e-2, atol=2e-2)
