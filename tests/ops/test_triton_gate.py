"""DEFCON's fused pooled-vector kernel (``defcon_gate``) and the depthwise deformable conv
(``deform_conv1d_depthwise``) against the ATen op in float64: forward and every gradient,
at the models' shapes (a parametrised sample of C 256-2048, k 3-7, batch 1-128), offset
groups, the shuffle variant, offsets far outside the signal, non-finite offsets, float32
and bfloat16 inputs. Tolerances: tests/ops/triton_setup.py."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from defcon_exp.attention.channel_shuffle import channel_shuffle, channel_unshuffle
from defcon_exp.engine.launch_counter import LaunchCounter
from defcon_exp.ops import deform_conv1d, triton_ops
from defcon_exp.ops.triton_ops import TRITON_IMPLEMENTATIONS, defcon_gate, deform_conv1d_depthwise

from .triton_setup import DEVICES, RTOL_BF16, assert_near


def gate_reference(sums, offset_weight, weight, scale, shuffle, sigmoid=True):
    """The module's maths with the ATen op, in float64."""
    k = weight.shape[-1]
    pooled = (sums.double() * scale)[:, None, :]
    signal = channel_shuffle(pooled, shuffle) if shuffle > 1 else pooled
    offsets = F.conv1d(signal, offset_weight.double(), padding=k // 2)
    offsets = channel_unshuffle(offsets, shuffle) if shuffle > 1 else offsets
    logits = deform_conv1d(pooled, offsets, weight.double(), padding=k // 2)[:, 0]
    return torch.sigmoid(logits) if sigmoid else logits


def _gate_leaves(batch, channels, k, device, offset_scale=1.0, dtype=torch.float32, seed=0):
    """Sums in quarters and offset weights in eighths (times a power of two): the offsets
    are then exact in float32, bfloat16 and float64 alike, so kernel and reference sample
    at the same positions. (With rounded offsets a position near an integer may floor to
    either neighbour, and the gradients jump there: the op is piecewise linear.)"""
    gen = torch.Generator().manual_seed(seed)
    sums = torch.randint(-32, 33, (batch, channels), generator=gen) / 4
    offset_weight = torch.randint(-8, 9, (k, 1, k), generator=gen) / 8 * offset_scale
    weight = torch.randn(1, 1, k, generator=gen)
    return [t.to(device, dtype).requires_grad_() for t in (sums, offset_weight, weight)]


def _check_gate(leaves, scale, shuffle, sigmoid=True, rtol=None):
    sums, offset_weight, weight = leaves
    out = defcon_gate(sums, offset_weight, weight, scale, shuffle, sigmoid)
    expected = gate_reference(sums, offset_weight, weight, scale, shuffle, sigmoid)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    got = torch.autograd.grad(out, leaves, grad.to(out.device))
    want = torch.autograd.grad(expected, leaves, grad.double().to(out.device))
    assert out.dtype == torch.float32
    assert_near(out, expected)
    for name, g, w in zip(("sums", "offset_weight", "weight"), got, want, strict=True):
        assert g.dtype == w.dtype == sums.dtype, name
        assert_near(g, w, **({} if rtol is None else {"rtol": rtol}))


# batch, channels, k, shuffle groups: the four stages' widths with the paper's kernel sizes
GATE_SHAPES = [
    (1, 256, 3, 1),
    (128, 256, 3, 4),
    (4, 512, 5, 8),
    (2, 1024, 5, 1),
    (2, 2048, 7, 8),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", GATE_SHAPES, ids=str)
def test_gate_matches_aten(device, shape):
    batch, channels, k, shuffle = shape
    _check_gate(_gate_leaves(batch, channels, k, device), 1 / 16, shuffle)


@pytest.mark.parametrize("device", DEVICES)
def test_gate_many_programs_and_logits(device, monkeypatch):
    """Tiles of 4 rows x 16 channels: blocks end inside the vector and the batch, and the
    atomic adds of many programs meet; ``sigmoid=False`` returns the logits."""
    monkeypatch.setattr(triton_ops, "INTERPRETER_GATE_TILE", 64)
    monkeypatch.setattr(triton_ops, "GATE_TILE", 64)
    _check_gate(_gate_leaves(5, 300, 3, device), 0.25, 1, sigmoid=False)
    _check_gate(_gate_leaves(3, 96, 5, device, seed=3), 1.0, 8)


@pytest.mark.parametrize("device", DEVICES)
def test_gate_offsets_far_outside(device):
    """Offsets of hundreds of channels: most taps read the zero padding."""
    _check_gate(_gate_leaves(3, 256, 5, device, offset_scale=256.0), 1.0, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_gate_non_finite_offsets(device):
    """An infinite pooled value makes its neighbours' offsets non-finite: NaN where ATen
    gives NaN, in the output and every gradient."""
    sums, offset_weight, weight = _gate_leaves(2, 256, 3, device)
    with torch.no_grad():
        sums[0, 100] = float("inf")
        sums[1, 7] = float("nan")
    _check_gate([sums, offset_weight, weight], 1.0, 1)


@pytest.mark.parametrize("device", DEVICES)
def test_gate_bfloat16_inputs(device):
    """bf16 sums and weights: computed in float32 (output float32), gradients in bf16."""
    leaves = _gate_leaves(4, 512, 5, device, dtype=torch.bfloat16)
    _check_gate(leaves, 1 / 16, 8, rtol=RTOL_BF16)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(2, 256, 3), (16, 2048, 7)], ids=str)
def test_gate_without_offsets_is_ecas_conv(device, shape):
    """``offset_weight=None``: ECA's zero-padded conv of the pooled vector and its gate."""
    batch, channels, k = shape
    sums, _, weight = _gate_leaves(batch, channels, k, device)
    out = defcon_gate(sums, None, weight, 0.5)
    expected = torch.sigmoid(F.conv1d((sums.double() * 0.5)[:, None], weight.double(), padding=k // 2))
    grad = torch.randn(batch, channels, generator=torch.Generator().manual_seed(1)).to(device)
    got = torch.autograd.grad(out, (sums, weight), grad)
    want = torch.autograd.grad(expected[:, 0], (sums, weight), grad.double())
    assert_near(out, expected[:, 0])
    for g, w in zip(got, want, strict=True):
        assert_near(g, w)


def test_gate_refuses_bad_shapes():
    with pytest.raises(ValueError, match="shuffle_groups=8"):
        defcon_gate(torch.zeros(2, 12), torch.zeros(3, 1, 3), torch.zeros(1, 1, 3), 1.0, 8)
    with pytest.raises(ValueError, match="offset_weight"):
        defcon_gate(torch.zeros(2, 12), torch.zeros(3, 1, 2), torch.zeros(1, 1, 3))


# ---- the depthwise deformable convolution: offset groups, geometry, non-finite offsets ---


def _depthwise_leaves(batch, groups, length, k, out_length, device, dtype=torch.float32):
    gen = torch.Generator().manual_seed(0)
    input = torch.randn(batch, groups, length, generator=gen)
    # sixteenths: exact in every dtype, so kernel and reference floor the same positions
    offset = torch.randint(-64, 65, (batch, groups * k, out_length), generator=gen) / 16
    weight = torch.randn(groups, 1, k, generator=gen)
    return [t.to(device, dtype).requires_grad_() for t in (input, offset, weight)]


def _check_depthwise(leaves, stride=1, padding=0, dilation=1, rtol=None):
    geometry = {"stride": stride, "padding": padding, "dilation": dilation}
    out = deform_conv1d_depthwise(*leaves, **geometry)
    expected = deform_conv1d(*(t.double() for t in leaves), **geometry)
    grad = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    got = torch.autograd.grad(out, leaves, grad.to(out.device, out.dtype))
    want = torch.autograd.grad(expected, leaves, grad.double().to(out.device))
    assert out.dtype == leaves[0].dtype
    tolerance = {} if rtol is None else {"rtol": rtol}
    assert_near(out, expected, **tolerance)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == leaves[0].dtype
        assert_near(g, w, **tolerance)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    "case",
    [  # batch, offset groups (= channels), length, k, stride, padding, dilation
        (2, 1, 256, 3, 1, 1, 1),
        (3, 4, 100, 5, 2, 3, 2),
        (1, 2, 2048, 7, 1, 3, 1),
    ],
    ids=str,
)
def test_depthwise_matches_aten(device, case):
    batch, groups, length, k, stride, padding, dilation = case
    out_length = (length + 2 * padding - dilation * (k - 1) - 1) // stride + 1
    leaves = _depthwise_leaves(batch, groups, length, k, out_length, device)
    _check_depthwise(leaves, stride, padding, dilation)


@pytest.mark.parametrize("device", DEVICES)
def test_depthwise_non_finite_and_far_offsets(device):
    input, offset, weight = _depthwise_leaves(2, 2, 64, 3, 64, device)
    with torch.no_grad():
        offset[0, 0, :6] = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e9, -1e9, 70.0])
        offset[1, 4, 10:13] = torch.tensor([float("nan"), 1e30, -65.5])
    _check_depthwise([input, offset, weight], padding=1)


@pytest.mark.parametrize("device", DEVICES)
def test_depthwise_bfloat16(device):
    leaves = _depthwise_leaves(2, 3, 128, 5, 128, device, dtype=torch.bfloat16)
    _check_depthwise(leaves, padding=2, rtol=RTOL_BF16)


@pytest.mark.parametrize("device", DEVICES)
def test_deform_conv1d_routes_depthwise_to_triton(device):
    """``deform_conv1d(..., kernels="triton")`` runs the kernel for the depthwise case (same
    values as ATen) and the ATen op otherwise (channels mixed by the weight, a mask)."""
    input, offset, weight = _depthwise_leaves(2, 2, 32, 3, 32, device)
    cases = {
        "depthwise": (weight, None, 1),
        "mixing": (torch.randn(2, 2, 3, device=device), None, 0),
        "masked": (weight, torch.rand(offset.shape, device=device), 0),
    }
    for name, (w, mask, launches) in cases.items():
        with LaunchCounter(TRITON_IMPLEMENTATIONS) as counter:
            out = deform_conv1d(input, offset, w, padding=1, mask=mask, kernels="triton")
        assert counter.by_op["triton.deform_depthwise_forward_kernel"] == launches, name
        assert_near(out, deform_conv1d(input, offset, w, padding=1, mask=mask))
