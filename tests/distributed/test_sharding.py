"""Data sharding for torchrun (no processes needed: each rank's loader is built here).

The global batch is split across ranks: the union of the ranks' j-th batches is exactly the
single-process j-th batch (same images, same augmentation), every rank has the same number
of batches, and every evaluation image belongs to exactly one rank."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from defcon_exp.data import build_data
from defcon_exp.data.plan import eval_shard, train_shard


def _epoch(loader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(images.clone(), labels.clone()) for images, labels in loader]


@pytest.mark.parametrize(("positions", "batch", "world"), [(48, 8, 2), (50, 8, 2), (43, 12, 4), (9, 8, 4)])
def test_train_shard_covers_each_global_batch(positions: int, batch: int, world: int) -> None:
    shards = [train_shard(positions, batch, rank, world) for rank in range(world)]
    assert len({len(s) for s in shards}) == 1  # same number of positions (and batches) per rank
    local = batch // world
    tail = (positions % batch) // world
    for start in range(0, positions - positions % batch, batch):  # full batches: exact union
        j = start // batch
        union = np.concatenate([s[j * local:(j + 1) * local] for s in shards])
        assert union.tolist() == list(range(start, start + batch))
    if tail:  # the last batch: n // world per rank, the n % world leftovers skipped
        union = np.concatenate([s[-tail:] for s in shards])
        start = positions - positions % batch
        assert union.tolist() == list(range(start, start + tail * world))


def test_train_shard_refuses_a_batch_not_divisible_by_the_world_size() -> None:
    with pytest.raises(ValueError, match="batch_size % world_size"):
        train_shard(48, 6, 0, 4)


@pytest.mark.parametrize(("count", "world"), [(21, 2), (10, 4), (3, 4), (0, 2)])
def test_eval_shards_partition_the_set(count: int, world: int) -> None:
    slices = [eval_shard(count, rank, world) for rank in range(world)]
    covered = [i for start, stop in slices for i in range(start, stop)]
    assert covered == list(range(count))  # each image exactly once, in order, no padding


@pytest.mark.parametrize("loader", ["tensor", "dataloader"])
def test_ranks_batches_union_is_the_single_process_batch(loader: str) -> None:
    # 58 training images, global batch 8: 7 full batches + a last batch of 2 (1 per rank)
    config = {"name": "synthetic", "train_size": 70, "val_size": 12, "test_size": 21,
              "batch_size": 8, "eval_batch_size": 4, "loader": loader, "num_workers": 0, "cutout": 8}
    single = build_data(config, seed=5)
    ranks = [build_data(config, seed=5, rank=r, world_size=2) for r in range(2)]
    for epoch in (0, 3):
        single.train.set_epoch(epoch)
        for bundle in ranks:
            bundle.train.set_epoch(epoch)
        want = _epoch(single.train)
        got = [_epoch(bundle.train) for bundle in ranks]
        assert len(got[0]) == len(got[1]) == len(want) == len(single.train) == len(ranks[0].train)
        for j, (images, labels) in enumerate(want):
            assert torch.equal(torch.cat([got[0][j][0], got[1][j][0]]), images)
            assert torch.equal(torch.cat([got[0][j][1], got[1][j][1]]), labels)
    for split in ("val", "test"):
        want = _epoch(getattr(single, split))
        parts = [_epoch(getattr(bundle, split)) for bundle in ranks]
        images = torch.cat([b[0] for part in parts for b in part])
        assert torch.equal(images, torch.cat([b[0] for b in want]))
        assert sum(getattr(bundle, split).num_samples for bundle in ranks) == getattr(single, split).num_samples
    assert [len(bundle.test) for bundle in ranks] == [6, 5]  # 11 and 10 images in batches of 2


def test_a_global_batch_not_divisible_by_the_processes_is_refused() -> None:
    config = {"name": "synthetic", "train_size": 40, "test_size": 8, "batch_size": 6, "loader": "tensor"}
    with pytest.raises(ValueError, match=r"data.batch_size=6 is invalid: .*divisible by the 4 processes"):
        build_data(config, seed=0, rank=1, world_size=4)
