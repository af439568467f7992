"""Which implementation an op takes on a tensor's device: the CPU one or the CUDA one.

Some ops here have two implementations: one that is fastest on a CPU (few, large BLAS
calls; cache-sized chunks) and one that launches the fewest kernels on a GPU, where every
kernel launch costs ~5 us of host time whatever its size. :func:`cuda_path` picks per
tensor. :func:`simulate_cuda_paths` makes CPU (or meta) tensors take the CUDA path, so the
CUDA path's kernel launches can be counted on a machine without a GPU
(``scripts/bench_launches.py``) and tested against the CPU path.

The ``kernels`` setting (``model.kernels``; :data:`KERNELS`) picks, on the CUDA path,
between the ATen ops and the fused Triton kernels (:mod:`defcon_exp.ops.triton_ops`):
``"aten"`` (the default until a GPU measurement settles it) never uses Triton;
``"triton"`` uses it for CUDA tensors; ``"auto"`` uses it for CUDA tensors when Triton
imports, else ATen. CPU tensors always take ATen, unless Triton's CPU interpreter is on
(``TRITON_INTERPRET=1``: the tests), and so do CUDA-path counts on ``meta`` under
:func:`simulate_cuda_paths` with ``"triton"``/``"auto"`` (their launches are counted).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor

from defcon_exp.ops.triton_launch import interpreting, triton_available

__all__ = ["KERNELS", "check_kernels", "cuda_path", "simulate_cuda_paths", "triton_path"]

#: the values of the ``kernels`` setting (``model.kernels``)
KERNELS = ("aten", "triton", "auto")

_simulated = 0


def cuda_path(tensor: Tensor) -> bool:
    """True when ops should take their CUDA implementation for ``tensor``."""
    return tensor.device.type == "cuda" or _simulated > 0


@contextlib.contextmanager
def simulate_cuda_paths() -> Iterator[None]:
    """Inside, every tensor takes the CUDA implementation (same values, CUDA's kernels)."""
    global _simulated
    _simulated += 1
    try:
        yield
    finally:
        _simulated -= 1


def check_kernels(kernels: str) -> None:
    """Refuse an unknown ``kernels`` value, or ``"triton"`` where Triton does not import."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels={kernels!r} is not one of {KERNELS}")
    if kernels == "triton" and not triton_available():
        raise ValueError("kernels='triton' needs Triton (pip install triton); use 'aten' or 'auto'")


def triton_path(tensor: Tensor, kernels: str) -> bool:
    """True when ops on ``tensor`` should run the Triton kernels (see the module docstring)."""
    if kernels == "aten" or not triton_available():
        return False
    device = tensor.device.type
    return device == "cuda" or interpreting() or (_simulated > 0 and device == "meta")
