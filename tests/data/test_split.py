"""Stratified validation split: exact size, class proportions, fixed by seed."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from defcon_exp.data.split import stratified_split


@settings(max_examples=60, deadline=None)
@given(
    counts=st.lists(st.integers(1, 40), min_size=1, max_size=12),
    fraction=st.floats(0.0, 0.95),
    seed=st.integers(0, 2**31),
)
def test_split_properties(counts: list[int], fraction: float, seed: int) -> None:
    labels = np.random.default_rng(seed).permutation(np.repeat(np.arange(len(counts)), counts))
    total = len(labels)
    val_size = min(int(fraction * total), total - 1)
    train, val = stratified_split(labels, val_size, seed)
    assert len(val) == val_size and len(train) + len(val) == total
    assert np.intersect1d(train, val).size == 0
    assert np.array_equal(np.sort(np.concatenate([train, val])), np.arange(total))
    expected = np.asarray(counts) * val_size / total
    held = np.bincount(labels[val], minlength=len(counts))
    assert np.all(np.abs(held - expected) < 1.0)  # largest remainder: within one
    again_train, again_val = stratified_split(labels, val_size, seed)
    assert np.array_equal(val, again_val) and np.array_equal(train, again_train)


def test_paper_split_is_exactly_balanced() -> None:
    labels = np.repeat(np.arange(100), 500)
    train, val = stratified_split(labels, 10_000, seed=0)
    assert len(train) == 40_000
    assert np.all(np.bincount(labels[val]) == 100)
    _, other = stratified_split(labels, 10_000, seed=1)
    assert not np.array_equal(val, other)


@pytest.mark.parametrize("bad", [-1, 10])
def test_rejects_out_of_range(bad: int) -> None:
    with pytest.raises(ValueError, match="val_size"):
        stratified_split(np.zeros(10, dtype=np.int64), bad, seed=0)
