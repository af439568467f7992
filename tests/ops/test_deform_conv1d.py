"""Correctness tests for ``defcon_exp.ops.deform_conv1d`` / ``DeformConv1d``.

Two independent references (``tests/ops/reference.py``): torchvision's ``deform_conv2d`` with
``H = 1`` and a slow loop implementation.  Outputs and gradients with respect to every tensor
argument are compared; max abs error <= 1e-5 in float32 and <= 1e-10 in float64.
"""

from __future__ import annotations

import random
from typing import NamedTuple

import pytest
import torch
import torch.nn.functional as F
from torch.autograd import gradcheck

from defcon_exp.ops import DeformConv1d, deform_conv1d

from .reference import deform_conv1d_loops, deform_conv1d_torchvision

TOL = {torch.float32: 1e-5, torch.float64: 1e-10}
DTYPES = [torch.float32, torch.float64]
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available"),
    ),
]


class Cfg(NamedTuple):
    batch: int
    in_channels: int
    out_channels: int
    length: int
    kernel_size: int
    groups: int = 1
    offset_groups: int = 1
    stride: int = 1
    padding: int = 0
    dilation: int = 1

    @property
    def out_length(self) -> int:
        span = self.dilation * (self.kernel_size - 1) + 1
        return (self.length + 2 * self.padding - span) // self.stride + 1

    @property
    def conv_kwargs(self) -> dict[str, int]:
        return {"stride": self.stride, "padding": self.padding, "dilation": self.dilation}

    def base_positions(self) -> torch.Tensor:
        """Undeformed sampling positions, ``(k, L_out)``: ``p0*stride - padding + n*dilation``."""
        p0 = torch.arange(self.out_length) * self.stride - self.padding
        taps = torch.arange(self.kernel_size) * self.dilation
        return p0[None, :] + taps[:, None]


CONFIGS = {
    "basic": Cfg(2, 4, 6, 11, 3, padding=1),
    "k1": Cfg(1, 3, 2, 7, 1),
    "groups2_og3_stride2": Cfg(3, 6, 4, 16, 5, groups=2, offset_groups=3, stride=2, padding=2),
    "groups4_og2_dil2": Cfg(2, 8, 8, 13, 3, groups=4, offset_groups=2, padding=2, dilation=2),
    "depthwise_og4_stride3": Cfg(2, 4, 4, 9, 3, groups=4, offset_groups=4, stride=3),
    "even_k_big_pad_og2": Cfg(1, 2, 3, 5, 4, offset_groups=2, padding=3, dilation=2),
    "k7_all": Cfg(2, 6, 3, 20, 7, groups=3, offset_groups=6, stride=2, padding=3, dilation=3),
    "tiny_length": Cfg(4, 1, 1, 3, 3, padding=1),
}


def random_cfg(seed: int) -> Cfg:
    rng = random.Random(seed)
    groups = rng.choice([1, 1, 2, 3])
    offset_groups = rng.choice([1, 2, 3])
    in_channels = groups * offset_groups * rng.randint(1, 2)
    out_channels = groups * rng.randint(1, 3)
    kernel_size = rng.randint(1, 6)
    stride, padding, dilation = rng.randint(1, 3), rng.randint(0, 3), rng.randint(1, 3)
    span = dilation * (kernel_size - 1) + 1
    length = max(1, span - 2 * padding) + rng.randint(0, 12)
    return Cfg(
        rng.randint(1, 3),
        in_channels,
        out_channels,
        length,
        kernel_size,
        groups,
        offset_groups,
        stride,
        padding,
        dilation,
    )


def make_offset(cfg: Cfg, kind: str, gen: torch.Generator) -> torch.Tensor:
    """Offsets in float64 of shape ``(B, offset_groups * k, L_out)``."""
    shape = (cfg.batch, cfg.offset_groups * cfg.kernel_size, cfg.out_length)
    if kind == "random":
        return 2.5 * torch.randn(shape, generator=gen, dtype=torch.float64)
    if kind == "zero":
        return torch.zeros(shape, dtype=torch.float64)
    if kind == "negative":
        return -(3 * torch.rand(shape, generator=gen, dtype=torch.float64) + 0.05)
    if kind == "large":  # far outside the signal on either side
        sign = torch.randint(0, 2, shape, generator=gen).to(torch.float64) * 2 - 1
        return sign * (100 + torch.rand(shape, generator=gen, dtype=torch.float64))
    if kind == "integer_positions":
        # Every sampling position lands exactly on an integer; each of -1, 0, L-1 and L is used.
        length = cfg.length
        targets = torch.tensor([-1, 0, length - 1, length, -2, 1, length - 2, length + 1])
        numel = shape[0] * shape[1] * shape[2]
        assert numel >= len(targets)
        chosen = targets[torch.randperm(numel, generator=gen) % len(targets)].reshape(shape)
        base = cfg.base_positions().repeat(cfg.offset_groups, 1)
        return (chosen - base).to(torch.float64)
    if kind == "fractional":  # positions at least 0.2 away from any integer (for gradcheck)
        whole = torch.randint(-3, 4, shape, generator=gen).to(torch.float64)
        frac = 0.2 + 0.6 * torch.rand(shape, generator=gen, dtype=torch.float64)
        return whole + frac
    raise AssertionError(kind)


def make_tensors(
    cfg: Cfg,
    *,
    dtype: torch.dtype,
    device: str = "cpu",
    mask: bool = True,
    bias: bool = True,
    offset_kind: str = "random",
    seed: int = 0,
) -> dict[str, torch.Tensor]:
    """Leaf tensors (``requires_grad``) keyed by the op's argument names."""
    gen = torch.Generator().manual_seed(seed)

    def uniform(*shape: int, low: float = -1.0, high: float = 1.0) -> torch.Tensor:
        return low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)

    in_per_group = cfg.in_channels // cfg.groups
    tensors = {
        "input": uniform(cfg.batch, cfg.in_channels, cfg.length),
        "offset": make_offset(cfg, offset_kind, gen),
        "weight": uniform(cfg.out_channels, in_per_group, cfg.kernel_size),
    }
    if bias:
        tensors["bias"] = uniform(cfg.out_channels)
    if mask:
        tensors["mask"] = uniform(*tensors["offset"].shape, low=0.0, high=1.0)
    return {k: v.to(device=device, dtype=dtype).requires_grad_() for k, v in tensors.items()}


def assert_max_abs(actual: torch.Tensor, expected: torch.Tensor, tol: float, what: str) -> None:
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    torch.testing.assert_close(actual, expected, atol=tol, rtol=0, msg=lambda m: f"{what}: {m}")


def check_against(
    reference,
    cfg: Cfg,
    leaves: dict[str, torch.Tensor],
    tol: float,
    args: dict[str, torch.Tensor] | None = None,
) -> None:
    """Compare ``deform_conv1d`` with ``reference`` on ``args`` (default: the leaves themselves):
    the output and the gradients with respect to every leaf for a random upstream gradient."""
    args = leaves if args is None else args
    out = deform_conv1d(**args, **cfg.conv_kwargs)
    expected = reference(**args, **cfg.conv_kwargs)
    shape = (cfg.batch, cfg.out_channels, cfg.out_length)
    assert out.shape == shape
    assert_max_abs(out, expected, tol, "output")

    gen = torch.Generator().manual_seed(1234)
    grad_out = (2 * torch.rand(shape, generator=gen, dtype=torch.float64) - 1).to(out)
    names = list(leaves)
    # materialize_grads: the loop reference never touches the input when every tap is outside.
    grads = torch.autograd.grad(out, [leaves[n] for n in names], grad_out)
    expected_grads = torch.autograd.grad(
        expected, [leaves[n] for n in names], grad_out, materialize_grads=True
    )
    for name, grad, expected_grad in zip(names, grads, expected_grads, strict=True):
        assert_max_abs(grad, expected_grad, tol, f"grad w.r.t. {name}")


# --------------------------------------------------------------------------------------------
# 1. Agreement with torchvision.ops.deform_conv2d (H = 1)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_matches_torchvision(name, mask, bias, dtype, device):
    cfg = CONFIGS[name]
    leaves = make_tensors(cfg, dtype=dtype, device=device, mask=mask, bias=bias)
    check_against(deform_conv1d_torchvision, cfg, leaves, TOL[dtype])


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("seed", range(12))
def test_matches_torchvision_random_shapes(seed, dtype, device):
    cfg = random_cfg(seed)
    leaves = make_tensors(
        cfg, dtype=dtype, device=device, mask=seed % 2 == 0, bias=seed % 3 != 0, seed=seed
    )
    check_against(deform_conv1d_torchvision, cfg, leaves, TOL[dtype])


OFFSET_KIND_CONFIGS = ["basic", "groups2_og3_stride2", "k7_all"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", OFFSET_KIND_CONFIGS)
@pytest.mark.parametrize(
    "offset_kind", ["large", "negative", "integer_positions", "zero", "fractional"]
)
def test_matches_torchvision_offset_kinds(offset_kind, name, dtype, device):
    cfg = CONFIGS[name]
    leaves = make_tensors(cfg, dtype=dtype, device=device, offset_kind=offset_kind)
    check_against(deform_conv1d_torchvision, cfg, leaves, TOL[dtype])


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_large_offsets_read_zero(dtype):
    # Every tap far outside the signal: the output is the bias alone, and input/weight get no
    # gradient.
    cfg = CONFIGS["groups4_og2_dil2"]
    leaves = make_tensors(cfg, dtype=dtype, offset_kind="large")
    out = deform_conv1d(**leaves, **cfg.conv_kwargs)
    expected = leaves["bias"].detach()[None, :, None].expand_as(out)
    assert_max_abs(out, expected, 0.0, "output")
    grad_input, grad_weight, grad_offset = torch.autograd.grad(
        out.sum(), [leaves["input"], leaves["weight"], leaves["offset"]]
    )
    assert not grad_input.any() and not grad_weight.any() and not grad_offset.any()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
def test_batch_size_zero(mask, dtype, device):
    cfg = CONFIGS["groups2_og3_stride2"]._replace(batch=0)
    leaves = make_tensors(cfg, dtype=dtype, device=device, mask=mask)
    out = deform_conv1d(**leaves, **cfg.conv_kwargs)
    assert out.shape == (0, cfg.out_channels, cfg.out_length)
    check_against(deform_conv1d_torchvision, cfg, leaves, TOL[dtype])


def _transposed(t: torch.Tensor) -> torch.Tensor:
    """A non-contiguous view equal to ``t``: stored as (d0, d2, d1), viewed back as (d0, d1, d2)."""
    return t.transpose(1, 2).contiguous().detach().requires_grad_().transpose(1, 2)


def _sliced(t: torch.Tensor) -> torch.Tensor:
    """A non-contiguous view equal to ``t``: every other element of a twice-as-long last dim."""
    wide = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype, device=t.device)
    wide[..., ::2] = t.detach()
    return wide.requires_grad_()[..., ::2]


def _batch_permuted(t: torch.Tensor) -> torch.Tensor:
    """A non-contiguous view equal to ``t``, stored with batch as the middle dimension."""
    return t.transpose(0, 1).contiguous().detach().requires_grad_().transpose(0, 1)


NON_CONTIGUOUS = {"transposed": _transposed, "sliced": _sliced, "batch_permuted": _batch_permuted}


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", list(NON_CONTIGUOUS))
@pytest.mark.parametrize("which", ["input", "offset", "weight", "mask"])
def test_non_contiguous(which, layout, dtype):
    cfg = CONFIGS["groups2_og3_stride2"]
    leaves = make_tensors(cfg, dtype=dtype)
    view = NON_CONTIGUOUS[layout](leaves[which])
    assert not view.is_contiguous()
    torch.testing.assert_close(view, leaves[which], atol=0, rtol=0)
    # The gradient is taken w.r.t. the storage the view was made from.
    leaves[which] = view._base
    args = {**leaves, which: view}
    check_against(deform_conv1d_torchvision, cfg, leaves, TOL[dtype], args=args)


# --------------------------------------------------------------------------------------------
# 2. Agreement with the slow loop reference (float64)
# --------------------------------------------------------------------------------------------

LOOP_CONFIGS = {
    "basic": Cfg(2, 2, 2, 6, 3, padding=1),
    "groups2_og2_stride2_dil2": Cfg(1, 4, 2, 9, 3, groups=2, offset_groups=2, stride=2, dilation=2),
    "og_crosses_groups": Cfg(1, 4, 4, 7, 2, groups=2, offset_groups=4, padding=2),
    "og2_groups1": Cfg(1, 4, 1, 5, 3, offset_groups=2, padding=1),
}


@pytest.mark.parametrize("offset_kind", ["random", "integer_positions", "large"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("name", list(LOOP_CONFIGS))
def test_matches_loop_reference(name, mask, bias, offset_kind):
    cfg = LOOP_CONFIGS[name]
    leaves = make_tensors(
        cfg, dtype=torch.float64, mask=mask, bias=bias, offset_kind=offset_kind, seed=7
    )
    check_against(deform_conv1d_loops, cfg, leaves, TOL[torch.float64])


@pytest.mark.parametrize("name", list(LOOP_CONFIGS))
def test_references_agree(name):
    # If the two references disagreed, a failure above would not say which one to believe.
    cfg = LOOP_CONFIGS[name]
    leaves = make_tensors(cfg, dtype=torch.float64, offset_kind="integer_positions", seed=3)
    out = deform_conv1d_loops(**leaves, **cfg.conv_kwargs)
    expected = deform_conv1d_torchvision(**leaves, **cfg.conv_kwargs)
    assert_max_abs(out, expected, 1e-10, "loops vs torchvision")
    names = list(leaves)
    grads = torch.autograd.grad(out.sum(), [leaves[n] for n in names], materialize_grads=True)
    expected_grads = torch.autograd.grad(expected.sum(), [leaves[n] for n in names])
    for name_, grad, expected_grad in zip(names, grads, expected_grads, strict=True):
        assert_max_abs(grad, expected_grad, 1e-10, f"loops vs torchvision, grad {name_}")


# --------------------------------------------------------------------------------------------
# 3. gradcheck
# --------------------------------------------------------------------------------------------

GRADCHECK_CONFIGS = {
    "basic": Cfg(2, 2, 3, 6, 3, padding=1),
    "groups2_og2_stride2_dil2": Cfg(2, 4, 2, 9, 3, groups=2, offset_groups=2, stride=2, dilation=2),
}


@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("name", list(GRADCHECK_CONFIGS))
def test_gradcheck(name, mask, bias):
    cfg = GRADCHECK_CONFIGS[name]
    # Positions stay >= 0.2 away from integers: the op is only piecewise linear in the offset.
    leaves = make_tensors(cfg, dtype=torch.float64, mask=mask, bias=bias, offset_kind="fractional")
    names = list(leaves)

    def func(*tensors):
        return deform_conv1d(**dict(zip(names, tensors, strict=True)), **cfg.conv_kwargs)

    assert gradcheck(func, tuple(leaves[n] for n in names), eps=1e-6, atol=1e-7)


# --------------------------------------------------------------------------------------------
# 4. The paper's hand-worked example and explicit interpolation values
# --------------------------------------------------------------------------------------------


def test_paper_example_sampled_positions():
    # "if we were on the first position p0=1 of a 1x3 kernel and the offsets were {3, 5, 20},
    # the sampled positions would be {3, 6, 22} instead of {0, 1, 2}".
    length = 30
    x = torch.arange(length, dtype=torch.float64).view(1, 1, length)  # x[i] = i
    weight = torch.eye(3, dtype=torch.float64).view(3, 1, 3)  # out channel n reads tap n alone
    offset = torch.zeros(1, 3, length, dtype=torch.float64)
    offset[0, :, 1] = torch.tensor([3.0, 5.0, 20.0])
    out = deform_conv1d(x, offset, weight, padding=1)
    assert out.shape == (1, 3, length)
    assert out[0, :, 1].tolist() == [3.0, 6.0, 22.0]
    # Without offsets, position 1 reads taps {0, 1, 2}.
    plain = deform_conv1d(x, torch.zeros_like(offset), weight, padding=1)
    assert plain[0, :, 1].tolist() == [0.0, 1.0, 2.0]
    # Every other position is undeformed: tap n of position p reads x[p - 1 + n] (0 outside).
    expected = torch.tensor(
        [[p - 1 + n if 0 <= p - 1 + n < length else 0 for p in range(length)] for n in range(3)],
        dtype=torch.float64,
    )
    expected[:, 1] = torch.tensor([3.0, 6.0, 22.0])
    assert torch.equal(out[0], expected)


# Signal x[i] = i*i + 1 (x[0] = 1, x[2] = 5, x[3] = 10, x[29] = 842), length 30.
@pytest.mark.parametrize(
    ("position", "expected"),
    [
        (2.25, 0.75 * 5 + 0.25 * 10),  # fractional: 0.75 * x[2] + 0.25 * x[3]
        (2.0, 5.0),  # integer: x[2]
        (0.0, 1.0),  # first sample
        (29.0, 842.0),  # last sample, L - 1
        (-0.5, 0.5 * 1),  # half outside at the start: 0.5 * x[0]
        (29.5, 0.5 * 842),  # half outside at the end: 0.5 * x[29]
        (-1.0, 0.0),  # exactly one before the start
        (30.0, 0.0),  # exactly L, one past the end
        (31.75, 0.0),  # beyond the end
        (-2.5, 0.0),  # beyond the start
        (100.0, 0.0),
        (-100.0, 0.0),
    ],
)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_interpolated_values(position, expected, dtype):
    length = 30
    x = (torch.arange(length, dtype=dtype) ** 2 + 1).view(1, 1, length)
    weight = torch.ones(1, 1, 1, dtype=dtype)
    p0 = 4  # output position; with k=1, stride=1, padding=0 its undeformed position is 4
    offset = torch.zeros(1, 1, length, dtype=dtype)
    offset[0, 0, p0] = position - p0
    out = deform_conv1d(x, offset, weight)
    assert out[0, 0, p0].item() == pytest.approx(expected, abs=TOL[dtype])
    # The other positions are undeformed.
    others = torch.ones(length, dtype=torch.bool)
    others[p0] = False
    assert torch.equal(out[0, 0, others], x[0, 0, others])


# --------------------------------------------------------------------------------------------
# 5. Zero offsets = ordinary convolution
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("mask", ["none", "ones"])
@pytest.mark.parametrize("name", list(CONFIGS))
def test_zero_offset_equals_conv1d(name, mask, dtype):
    cfg = CONFIGS[name]
    leaves = make_tensors(cfg, dtype=dtype, mask=False, offset_kind="zero")
    offset = leaves["offset"]
    mask_tensor = torch.ones_like(offset) if mask == "ones" else None
    out = deform_conv1d(**leaves, mask=mask_tensor, **cfg.conv_kwargs)
    expected = F.conv1d(
        leaves["input"], leaves["weight"], leaves["bias"], groups=cfg.groups, **cfg.conv_kwargs
    )
    assert_max_abs(out, expected, TOL[dtype], "output")
    grad_out = torch.rand_like(out)
    others = ["input", "weight", "bias"]
    grads = torch.autograd.grad(out, [leaves[n] for n in others], grad_out)
    expected_grads = torch.autograd.grad(expected, [leaves[n] for n in others], grad_out)
    for name_, grad, expected_grad in zip(others, grads, expected_grads, strict=True):
        assert_max_abs(grad, expected_grad, TOL[dtype], f"grad w.r.t. {name_}")


# --------------------------------------------------------------------------------------------
# 6. dtypes
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16], ids=str)
def test_output_dtype_follows_input(dtype):
    cfg = CONFIGS["groups2_og3_stride2"]
    leaves = make_tensors(cfg, dtype=dtype)
    out = deform_conv1d(**leaves, **cfg.conv_kwargs)
    assert out.dtype == dtype
    assert out.shape == (cfg.batch, cfg.out_channels, cfg.out_length)
    grads = torch.autograd.grad(out.sum(), list(leaves.values()))
    for leaf, grad in zip(leaves.values(), grads, strict=True):
        assert grad.dtype == dtype and grad.shape == leaf.shape


@pytest.mark.parametrize("mask", [False, True], ids=["nomask", "mask"])
def test_bfloat16_close_to_float32(mask):
    cfg = CONFIGS["groups2_og3_stride2"]
    leaves = make_tensors(cfg, dtype=torch.float32, mask=mask)
    with torch.no_grad():
        # Offsets on a 1/4 grid: the sampling positions (< 32) are then exact in bfloat16.
        leaves["offset"].copy_((leaves["offset"] * 4).round() / 4)
    low = {k: v.detach().to(torch.bfloat16) for k, v in leaves.items()}
    # The float32 run sees the same (bfloat16-rounded) values.
    high = {k: v.float() for k, v in low.items()}
    out = deform_conv1d(**low, **cfg.conv_kwargs)
    expected = deform_conv1d(**high, **cfg.conv_kwargs)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), expected, atol=0.05, rtol=0.02)


# --------------------------------------------------------------------------------------------
# 7. The DeformConv1d module
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("use_mask", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("bias", [False, True], ids=["nobias", "bias"])
def test_module_forward_equals_functional(bias, use_mask):
    cfg = CONFIGS["groups4_og2_dil2"]
    torch.manual_seed(0)
    module = DeformConv1d(
        cfg.in_channels,
        cfg.out_channels,
        cfg.kernel_size,
        groups=cfg.groups,
        bias=bias,
        **cfg.conv_kwargs,
    )
    assert module.weight.shape == (
        cfg.out_channels,
        cfg.in_channels // cfg.groups,
        cfg.kernel_size,
    )
    leaves = make_tensors(cfg, dtype=torch.float32, mask=use_mask, bias=False)
    out = module(leaves["input"], leaves["offset"], leaves.get("mask"))
    expected = deform_conv1d(
        leaves["input"],
        leaves["offset"],
        module.weight,
        module.bias,
        mask=leaves.get("mask"),
        **cfg.conv_kwargs,
    )
    assert torch.equal(out, expected)
    out.sum().backward()
    assert module.weight.grad is not None
    assert (module.bias is None) == (not bias)
    if bias:
        assert module.bias.shape == (cfg.out_channels,) and module.bias.grad is not None


def test_module_without_bias_has_no_bias_parameter():
    module = DeformConv1d(4, 8, 3, bias=False)
    assert module.bias is None
    assert [name for name, _ in module.named_parameters()] == ["weight"]


def test_module_factory_kwargs():
    module = DeformConv1d(4, 6, 3, dtype=torch.float64)
    assert module.weight.dtype == torch.float64 and module.bias.dtype == torch.float64
    out = module(
        torch.randn(2, 4, 10, dtype=torch.float64), torch.randn(2, 3, 8, dtype=torch.float64)
    )
    assert out.dtype == torch.float64

    meta = DeformConv1d(4, 6, 3, padding=1, device="meta")
    assert meta.weight.device.type == "meta" and meta.bias.device.type == "meta"
    out = meta(torch.empty(2, 4, 10, device="meta"), torch.empty(2, 3, 10, device="meta"))
    assert out.shape == (2, 6, 10) and out.device.type == "meta"


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({}, "DeformConv1d(4, 8, kernel_size=3)"),
        (
            {"stride": 2, "padding": 1, "dilation": 2, "groups": 2, "bias": False},
            "DeformConv1d(4, 8, kernel_size=3, stride=2, padding=1, dilation=2, groups=2, bias=False)",
        ),
    ],
)
def test_module_repr(kwargs, expected):
    text = repr(DeformConv1d(4, 8, 3, **kwargs))
    assert text == expected
    assert "\n" not in text and len(text) < 120


def test_module_reset_parameters():
    module = DeformConv1d(4, 8, 3)
    with torch.no_grad():
        module.weight.zero_()
        module.bias.zero_()
    torch.manual_seed(0)
    module.reset_parameters()
    assert module.weight.abs().sum() > 0 and module.bias.abs().sum() > 0
    # nn.Conv1d's initialisation: every value within 1/sqrt(fan_in).
    bound = 1 / (4 * 3) ** 0.5
    assert module.weight.abs().max() <= bound and module.bias.abs().max() <= bound
    torch.manual_seed(0)
    reference = torch.nn.Conv1d(4, 8, 3)
    torch.testing.assert_close(module.weight, reference.weight, atol=0, rtol=0)
    torch.testing.assert_close(module.bias, reference.bias, atol=0, rtol=0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (
            {"in_channels": 4, "out_channels": 6, "kernel_size": 3, "groups": 4},
            "divisible by groups",
        ),
        (
            {"in_channels": 3, "out_channels": 4, "kernel_size": 3, "groups": 2},
            "divisible by groups",
        ),
        ({"in_channels": 4, "out_channels": 4, "kernel_size": 0}, "kernel_size"),
    ],
)
def test_module_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DeformConv1d(**kwargs)


# --------------------------------------------------------------------------------------------
# 8. Bad input
# --------------------------------------------------------------------------------------------


def _args(**overrides):
    """Valid arguments (B=2, C_in=4, L=10, C_out=6, k=3, L_out=8), with ``overrides``."""
    args = {
        "input": torch.randn(2, 4, 10),
        "offset": torch.randn(2, 3, 8),
        "weight": torch.randn(6, 4, 3),
        "bias": None,
        "mask": None,
    }
    args.update(overrides)
    return args


BAD_INPUTS = {
    "input_2d": (_args(input=torch.randn(4, 10)), r"input must be 3-D"),
    "input_4d": (_args(input=torch.randn(2, 4, 1, 10)), r"input must be 3-D"),
    "offset_4d": (_args(offset=torch.randn(2, 3, 1, 8)), r"offset must be 3-D"),
    "weight_4d": (_args(weight=torch.randn(6, 4, 1, 3)), r"weight must be 3-D"),
    "offset_channels_not_multiple_of_k": (
        _args(offset=torch.randn(2, 4, 8)),
        r"offset has 4 channels.*multiple of kernel_size=3",
    ),
    "offset_zero_channels": (_args(offset=torch.randn(2, 0, 8)), r"multiple of kernel_size"),
    "offset_wrong_length": (_args(offset=torch.randn(2, 3, 9)), r"offset must have shape.*L_out=8"),
    "offset_wrong_batch": (_args(offset=torch.randn(3, 3, 8)), r"offset must have shape.*B=2"),
    "offset_groups_not_dividing_channels": (
        _args(offset=torch.randn(2, 9, 8)),
        r"not divisible by offset_groups=3",
    ),
    "mask_shape": (_args(mask=torch.rand(2, 3, 7)), r"mask must have the offset's shape"),
    "mask_channels": (_args(mask=torch.rand(2, 6, 8)), r"mask must have the offset's shape"),
    "in_channels_not_divisible": (
        _args(weight=torch.randn(6, 3, 3)),
        r"input has 4 channels.*3 input channels per group",
    ),
    "out_channels_not_divisible": (
        _args(weight=torch.randn(5, 2, 3)),
        r"5 output channels are not divisible by groups=2",
    ),
    "bias_shape": (_args(bias=torch.randn(5)), r"bias must have shape \(6,\)"),
    "bias_2d": (_args(bias=torch.randn(6, 1)), r"bias must have shape \(6,\)"),
    "output_too_short": (
        _args(input=torch.randn(2, 4, 2), offset=torch.randn(2, 3, 0)),
        r"output length would be 0",
    ),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_raises(case):
    args, match = BAD_INPUTS[case]
    with pytest.raises(ValueError, match=match):
        deform_conv1d(**args)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"stride": 0}, "stride"), ({"dilation": 0}, "dilation"), ({"padding": -1}, "padding")],
)
def test_bad_hyperparameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        deform_conv1d(**_args(), **kwargs)
