"""The one rule that picks the 1D kernel size of ECA-style channel attention.

A *kernel-size spec* is one of:

- an odd positive ``int``: the same kernel everywhere;
- ``"adaptive"``: ECA-Net's formula on the channel count,
  ``t = int(abs((log2(C) + b) / gamma))``, ``k = t if t is odd else t + 1`` (gamma=2, b=1),
  which gives (5, 5, 5, 7) for the CIFAR ResNet-50 stages (256, 512, 1024, 2048 channels);
- ``"paper"``: the per-stage sizes (3, 5, 5, 7) of ECA-Net's released ResNet-50 weights and
  of the DEFCON paper's parameter counts (Table 1: ECA 23,705,332, DEFCON 23,705,756).
  ECA's published formula gives (5, 5, 5, 7) instead; the released code passes
  ``k_size=[3, 5, 5, 7]`` explicitly;
- a sequence of odd positive ints, one per stage.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = ["PAPER_KERNEL_SIZES", "KernelSizeSpec", "adaptive_kernel_size", "resolve_kernel_size"]

KernelSizeSpec = int | str | Sequence[int]

PAPER_KERNEL_SIZES: tuple[int, ...] = (3, 5, 5, 7)


def _check_kernel_size(kernel_size: object, what: str) -> int:
    if isinstance(kernel_size, bool) or not isinstance(kernel_size, int):
        raise ValueError(
            f"{what}: kernel size must be an odd positive int, received {kernel_size!r}"
        )
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(
            f"{what}: kernel size must be odd and positive (padding k//2 then keeps the "
            f"channel count), received {kernel_size}; use an odd value such as 3, 5 or 7"
        )
    return kernel_size


def adaptive_kernel_size(channels: int, gamma: float = 2.0, beta: float = 1.0) -> int:
    """ECA-Net's kernel size for ``channels`` channels (always odd, at least 1)."""
    if channels < 1:
        raise ValueError(f"channels must be positive, received {channels}")
    t = int(abs((math.log2(channels) + beta) / gamma))
    return max(1, t if t % 2 else t + 1)


def resolve_kernel_size(
    spec: KernelSizeSpec,
    channels: int,
    stage: int | None = None,
    gamma: float = 2.0,
    beta: float = 1.0,
) -> int:
    """Turn a kernel-size spec into the int for one module.

    Args:
        spec: see the module docstring.
        channels: the module's channel count (used by ``"adaptive"``).
        stage: 0-based stage index, needed by ``"paper"`` and per-stage sequences.
    """
    if isinstance(spec, str):
        if spec == "adaptive":
            return adaptive_kernel_size(channels, gamma, beta)
        if spec == "paper":
            spec = PAPER_KERNEL_SIZES
        else:
            raise ValueError(
                f"kernel_size: unknown rule {spec!r}; expected 'adaptive', 'paper', an odd int "
                "or a list of odd ints, one per stage"
            )
    if isinstance(spec, int):
        return _check_kernel_size(spec, "kernel_size")
    if not isinstance(spec, Sequence):
        raise ValueError(
            f"kernel_size: expected 'adaptive', 'paper', an odd int or a list of odd ints, "
            f"received {spec!r}"
        )
    sizes = list(spec)
    if stage is None:
        raise ValueError(
            f"kernel_size: a per-stage list {sizes} needs the stage index; pass an int or "
            "'adaptive' when the module is not part of a staged model"
        )
    if not 0 <= stage < len(sizes):
        raise ValueError(
            f"kernel_size: stage {stage} has no entry in the per-stage list {sizes} "
            f"({len(sizes)} entries)"
        )
    return _check_kernel_size(sizes[stage], f"kernel_size[{stage}]")
