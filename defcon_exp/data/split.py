"""Stratified train/validation split of a labelled set, fixed by a seed."""

from __future__ import annotations

import numpy as np

__all__ = ["stratified_split"]


def stratified_split(labels: np.ndarray, val_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out ``val_size`` indices, each class in proportion to its share of ``labels``.

    Per-class counts are ``val_size * n_c / N`` rounded by the largest-remainder rule, so
    they add up to ``val_size`` exactly (a balanced set of 100 classes x 500 images with
    ``val_size=10000`` holds out exactly 100 images of each class).

    Args:
        labels: ``int`` array ``[N]``.
        val_size: ``0 <= val_size < N``.
        seed: which images are held out is a pure function of ``(labels, val_size, seed)``.

    Returns:
        ``(train_indices, val_indices)``: disjoint sorted ``int64`` arrays covering ``[0, N)``.
    """
    labels = np.asarray(labels)
    total = labels.shape[0]
    if not 0 <= val_size < total:
        raise ValueError(f"val_size must be in [0, {total}), received {val_size}")
    if val_size == 0:
        return np.arange(total, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng([seed, 0x5B117])
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (val_size / total)
    take = np.floor(exact).astype(np.int64)
    shortfall = val_size - int(take.sum())
    # largest remainder first; ties broken by class order (stable sort) -> deterministic
    order = np.argsort(-(exact - take), kind="stable")
    take[order[:shortfall]] += 1
    val_parts = []
    for cls, n_take in zip(classes, take, strict=True):
        members = np.flatnonzero(labels == cls)
        val_parts.append(rng.permutation(members)[:n_take])
    val = np.sort(np.concatenate(val_parts)).astype(np.int64)
    keep = np.ones(total, dtype=bool)
    keep[val] = False
    return np.flatnonzero(keep).astype(np.int64), val
