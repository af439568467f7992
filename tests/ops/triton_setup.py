"""Shared set-up of the Triton kernel tests: the CPU interpreter, devices, tolerances.

Without a GPU the kernels run in Triton's interpreter (``TRITON_INTERPRET=1``), which must
be set before the kernels are first imported (:mod:`defcon_exp.ops.triton_launch` imports
them at the first launch). On a machine with CUDA the same tests also run on the GPU
(``-k cuda``, as ``scripts/gpu_check.sh`` selects them) with the compiled kernels.

Tolerances, stated once: float32 results (forward and every gradient) must be within
``RTOL_F32`` of the largest magnitude of the float64 ATen reference (plus ``ATOL``); the
kernels accumulate in float32 and reduce with atomic adds in another order than ATen's
sums. bfloat16 inputs are compared with the float64 reference computed from the same
(rounded) values, so the kernel's float32 arithmetic gets the float32 tolerance too; the
outputs stored in bfloat16 get ``RTOL_BF16`` (their rounding, 2**-8).
"""

from __future__ import annotations

import os

import pytest
import torch

if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
triton = pytest.importorskip("triton")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
RTOL_F32 = 2e-5
RTOL_BF16 = 8e-3
ATOL = 1e-6


def assert_near(actual: torch.Tensor, expected: torch.Tensor, rtol: float = RTOL_F32) -> None:
    """``|actual - expected| <= rtol * max|expected| + ATOL`` elementwise, NaN where
    ``expected`` is NaN (and only there), same shape."""
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    actual, expected = actual.detach().double().cpu(), expected.detach().double().cpu()
    nan = expected.isnan()
    assert torch.equal(actual.isnan(), nan), "NaN pattern differs from the reference"
    finite = expected[~nan]
    scale = finite.abs().max().item() if finite.numel() else 0.0
    error = (actual[~nan] - finite).abs().max().item() if finite.numel() else 0.0
    assert error <= rtol * scale + ATOL, f"max error {error:.3g} against scale {scale:.3g}"
