"""Thin console entry points.

Importing this package (which every console script does before torch) asks PyTorch's CPU
allocator to back large tensors with transparent huge pages (``THP_MEM_ALLOC_ENABLE=1``; the
allocator reads it once, at its first allocation). Each fresh feature-map-sized tensor of a
training step otherwise costs more in page faults than in arithmetic on the CPU (see
docs/benchmarks.md). A value already in the environment wins: ``THP_MEM_ALLOC_ENABLE=0``
turns it off.
"""

import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
