"""Per-image transforms of the DataLoader path (torchvision ``transforms.v2`` functionals)
and each data set's normalisation statistics.

Training: zero-pad 4 px, crop 32 x 32 at the plan's offsets, flip if the plan says so,
scale to ``[0, 1]``, normalise with the data set's mean/std, then (optionally) Cutout —
zeroing a square in normalised space, as DeVries & Taylor's reference code does after
``Normalize``. Evaluation: scale and normalise only. The random parameters come from an
:class:`~defcon_exp.data.plan.EpochPlan`, so this path and the batched tensor path yield
the same images.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import Tensor

from .plan import PAD
from .policies import ImagePolicies, seeded

__all__ = ["CIFAR10_STATS", "CIFAR100_STATS", "cutout_bounds", "transform_image"]

Stats = tuple[tuple[float, float, float], tuple[float, float, float]]

CIFAR100_STATS: Stats = ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762))
"""CIFAR-100 training-set per-channel (mean, std) of pixels scaled to [0, 1]."""

CIFAR10_STATS: Stats = ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
"""CIFAR-10 training-set per-channel (mean, std) of pixels scaled to [0, 1]."""


def cutout_bounds(centre: int | Tensor, length: int, size: int) -> tuple:
    """Cutout's ``[start, stop)`` along one axis: ``centre -/+ length // 2`` clipped to
    ``[0, size]`` (DeVries & Taylor's ``np.clip(y -/+ length // 2, 0, h)``)."""
    half = length // 2
    if isinstance(centre, Tensor):
        return (centre - half).clamp(0, size), (centre + half).clamp(0, size)
    return min(max(centre - half, 0), size), min(max(centre + half, 0), size)


def transform_image(
    image: np.ndarray,
    mean: Tensor,
    std: Tensor,
    crop_y: int = PAD,
    crop_x: int = PAD,
    flip: bool = False,
    cutout: int = 0,
    cut_y: int = 0,
    cut_x: int = 0,
    policies: ImagePolicies | None = None,
    policy_seed: int = 0,
) -> Tensor:
    """One image through pad + crop + flip (+ policy) + normalise (+ erasing) + Cutout.

    Args:
        image: ``uint8`` array ``[H, W, 3]``.
        mean, std: ``float32 [3]``.
        crop_y, crop_x: crop offsets in the image zero-padded by ``PAD`` on each side;
            ``PAD`` (the default) leaves the image where it is.
        flip: mirror left-right after cropping.
        cutout, cut_y, cut_x: Cutout patch length (0 = off) and centre.
        policies, policy_seed: ``data.auto_augment`` / ``data.random_erasing``, drawing
            from ``policy_seed`` (the plan's seed of this image).

    Returns:
        ``float32 [3, H, W]``.
    """
    from torchvision.transforms.v2 import functional as TF  # only runs on this path import it

    chw = torch.from_numpy(image).permute(2, 0, 1)
    height, width = chw.shape[1:]
    if crop_y != PAD or crop_x != PAD:
        chw = TF.pad(chw, [PAD], fill=0)
        chw = TF.crop(chw, crop_y, crop_x, height, width)
    if flip:
        chw = TF.horizontal_flip(chw)
    active = policies is not None and policies.active
    with seeded(policy_seed) if active else contextlib.nullcontext():  # RNG untouched without
        chw = policies.before_normalise(chw) if active else chw
        out = TF.normalize(TF.to_dtype(chw, torch.float32, scale=True), mean, std)
        out = policies.after_normalise(out) if active else out
    if cutout > 0:
        y0, y1 = cutout_bounds(cut_y, cutout, height)
        x0, x1 = cutout_bounds(cut_x, cutout, width)
        out[:, y0:y1, x0:x1] = 0.0
    return out
