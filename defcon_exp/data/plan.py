"""One epoch's order and augmentation parameters, a pure function of ``(seed, epoch)``.

Both loader paths (DataLoader and tensor) draw everything random from
:func:`make_epoch_plan`, so they yield the same batches for the same seed and epoch, and a
resumed run sees exactly the batches it would have seen. The distribution matches
torchvision's ``RandomCrop(32, padding=4)`` (offsets uniform on ``0..8`` in the padded
40 x 40 image), ``RandomHorizontalFlip(0.5)`` and DeVries & Taylor's Cutout (centre uniform
on the 32 x 32 grid, patch clipped at the border).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PAD", "EpochPlan", "eval_shard", "make_epoch_plan", "num_yielded", "train_shard"]

PAD = 4
"""Zero padding of the random crop, in pixels."""


@dataclass(frozen=True)
class EpochPlan:
    """Per-position parameters of one epoch (position ``i`` = the ``i``-th image yielded).

    Attributes:
        order: ``int64 [M]`` image indices in the order they are yielded.
        crop_y, crop_x: ``int64 [M]`` crop offsets in the padded image, in ``[0, 2 * PAD]``
            (``PAD`` = centred, i.e. no shift).
        flip: ``bool [M]`` horizontal flip.
        cut_y, cut_x: ``int64 [M]`` Cutout centres in ``[0, 32)`` (unused when cutout is 0).
        cutout: Cutout patch length (0 = off).
    """

    order: np.ndarray
    crop_y: np.ndarray
    crop_x: np.ndarray
    flip: np.ndarray
    cut_y: np.ndarray
    cut_x: np.ndarray
    cutout: int

    def __len__(self) -> int:
        return int(self.order.shape[0])


def num_yielded(num_images: int, batch_size: int, drop_last: bool) -> int:
    """How many images a training epoch yields: all, minus an incomplete last batch when
    ``drop_last``, minus a last batch of exactly one image (BatchNorm cannot train on it)."""
    remainder = num_images % batch_size
    if drop_last or (remainder == 1 and num_images > 1):
        return num_images - remainder
    return num_images


def make_epoch_plan(
    num_images: int,
    seed: int,
    epoch: int,
    *,
    shuffle: bool,
    augment: bool,
    cutout: int = 0,
    size: int = 32,
    length: int | None = None,
) -> EpochPlan:
    """Draw one epoch's order and augmentation parameters.

    Args:
        num_images: images in the set.
        seed, epoch: non-negative ints; the plan is a pure function of them (and the rest).
        shuffle: random order (else ``0..num_images-1``).
        augment: random crop offsets and flips (else centred crops, no flips).
        cutout: Cutout patch length; 0 = off.
        size: image height = width.
        length: yield only the first ``length`` positions (default all).
    """
    if seed < 0 or epoch < 0:
        raise ValueError(f"seed and epoch must be >= 0, received seed={seed}, epoch={epoch}")
    rng = np.random.default_rng([seed, epoch, 0xDEFC0])
    order = rng.permutation(num_images) if shuffle else np.arange(num_images)
    count = num_images if length is None else length
    order = order[:count].astype(np.int64)
    if augment:
        crop = rng.integers(0, 2 * PAD + 1, size=(2, count), dtype=np.int64)
        flip = rng.random(count) < 0.5
    else:
        crop = np.full((2, count), PAD, dtype=np.int64)
        flip = np.zeros(count, dtype=bool)
    if cutout > 0:
        cut = rng.integers(0, size, size=(2, count), dtype=np.int64)
    else:
        cut = np.zeros((2, count), dtype=np.int64)
    return EpochPlan(order, crop[0], crop[1], flip, cut[0], cut[1], int(cutout))


def train_shard(num_positions: int, batch_size: int, rank: int, world_size: int) -> np.ndarray:
    """The positions of an epoch plan that process ``rank`` of ``world_size`` trains on.

    ``batch_size`` is the global batch: global batch ``j`` is positions
    ``[j * batch_size, (j + 1) * batch_size)`` of the plan (exactly what a single process
    trains on) and rank ``r`` takes its ``r``-th contiguous ``batch_size // world_size``
    positions. A last, smaller batch of ``n`` positions is split the same way into
    ``n // world_size`` per rank; its ``n % world_size`` leftover positions are skipped this
    epoch (the whole batch when ``n < world_size``), so every rank trains on the same number
    of batches of the same size. Returns ``int64 [M_rank]``, in training order.
    """
    if world_size < 1 or not 0 <= rank < world_size or batch_size % world_size:
        raise ValueError(
            f"train_shard: need batch_size % world_size == 0 and 0 <= rank < world_size; "
            f"received batch_size={batch_size}, rank={rank}, world_size={world_size}"
        )
    local = batch_size // world_size
    full = num_positions // batch_size
    starts = np.arange(full, dtype=np.int64) * batch_size + rank * local
    positions = (starts[:, None] + np.arange(local, dtype=np.int64)).ravel()
    tail = (num_positions - full * batch_size) // world_size
    if tail:
        start = full * batch_size + rank * tail
        positions = np.concatenate([positions, np.arange(start, start + tail, dtype=np.int64)])
    return positions


def eval_shard(num_images: int, rank: int, world_size: int) -> tuple[int, int]:
    """``(start, stop)``: the contiguous slice of an evaluation set that ``rank`` evaluates.

    The slices of all ranks cover every image exactly once (sizes differ by at most one; no
    padding, so nothing is counted twice when the metric sums are added up).
    """
    if world_size < 1 or not 0 <= rank < world_size:
        raise ValueError(f"eval_shard: need 0 <= rank < world_size; received {rank}, {world_size}")
    base, extra = divmod(num_images, world_size)
    start = rank * base + min(rank, extra)
    return start, start + base + (1 if rank < extra else 0)
