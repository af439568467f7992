"""Which implementation an op takes on a tensor's device: the CPU one or the CUDA one.

Some ops here have two implementations: one that is fastest on a CPU (few, large BLAS
calls; cache-sized chunks) and one that launches the fewest kernels on a GPU, where every
kernel launch costs ~5 us of host time whatever its size. :func:`cuda_path` picks per
tensor. :func:`simulate_cuda_paths` makes CPU (or meta) tensors take the CUDA path, so the
CUDA path's kernel launches can be counted on a machine without a GPU
(``scripts/bench_launches.py``) and tested against the CPU path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor

__all__ = ["cuda_path", "simulate_cuda_paths"]

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
