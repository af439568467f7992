"""The standard loader path: a torch ``DataLoader`` with worker processes and pinned memory,
per-image torchvision transforms.

The random parts (order, crop offsets, flips, Cutout centres) are drawn in the main process
by :func:`~defcon_exp.data.plan.make_epoch_plan` and handed to the workers with each index,
so the batches are a pure function of ``(seed, epoch)``: independent of ``num_workers``,
of worker scheduling and of ``persistent_workers``, and identical to the tensor path's.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, Sampler

from .imageset import ImageSet
from .plan import eval_shard, make_epoch_plan, num_yielded, train_shard
from .policies import ImagePolicies, policy_seeds
from .transforms import transform_image

__all__ = ["PlanLoader", "PlanSampler", "TransformedImages", "WorkerLoader"]

# (index, crop_y, crop_x, flip, cut_y, cut_x[, policy_seed])
SampleKey = tuple


class TransformedImages(Dataset):
    """Images of an :class:`ImageSet` through :func:`transform_image`.

    Indexed by a :data:`SampleKey` (index + augmentation parameters, what
    :class:`PlanSampler` yields). Items are ``(float32 [3, 32, 32], int)``.
    """

    def __init__(
        self,
        images: ImageSet,
        mean: Sequence[float],
        std: Sequence[float],
        cutout: int = 0,
        policies: ImagePolicies | None = None,
    ):
        self.policies = policies
        self.images = images.images
        self.labels = images.labels
        self.mean = torch.tensor(mean, dtype=torch.float32)
        self.std = torch.tensor(std, dtype=torch.float32)
        self.cutout = cutout

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __getitem__(self, key: SampleKey) -> tuple[Tensor, int]:
        index, crop_y, crop_x, flip, cut_y, cut_x, *policy_seed = key
        image = transform_image(
            self.images[index], self.mean, self.std, crop_y, crop_x, flip, self.cutout,
            cut_y, cut_x, self.policies, policy_seed[0] if policy_seed else 0,
        )
        return image, int(self.labels[index])


class PlanSampler(Sampler):
    """Yields one epoch of :data:`SampleKey` s drawn by :func:`make_epoch_plan` for the
    current epoch (set with :meth:`set_epoch`); with ``positions``, only those positions of
    the plan (one process's shard in a distributed run)."""

    def __init__(self, num_images: int, seed: int, *, positions: np.ndarray | None = None,
                 policy_seeds: bool = False, **plan: Any):
        """``plan``: ``shuffle``, ``augment``, ``cutout``, ``length`` of :func:`make_epoch_plan`."""
        self.num_images, self.seed, self.plan = num_images, seed, plan
        self.positions, self.policy_seeds = positions, policy_seeds
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.plan["length"] if self.positions is None else len(self.positions)

    def columns(self) -> tuple[np.ndarray, ...]:
        """This epoch's order, crop_y, crop_x, flip, cut_y, cut_x (and policy seed) columns,
        only this process's positions when sharded."""
        plan = make_epoch_plan(self.num_images, self.seed, self.epoch, **self.plan)
        columns = (plan.order, plan.crop_y, plan.crop_x, plan.flip, plan.cut_y, plan.cut_x)
        if self.policy_seeds:  # drawn apart from the plan: without policies nothing changes
            columns += (policy_seeds(self.seed, self.epoch, self.plan["length"]),)
        if self.positions is not None:
            columns = tuple(column[self.positions] for column in columns)
        return columns

    def __iter__(self) -> Iterator[SampleKey]:
        yield from zip(*(column.tolist() for column in self.columns()), strict=True)


class PlanLoader:
    """What both loader paths share: this process's shard of the epoch plans
    (``self.sampler``), its batch size and sample count, ``len()`` and ``set_epoch``.

    Args:
        count: images in the set.
        batch_size: images per batch.
        seed: with the epoch, fixes order and augmentation.
        train: shuffle + augment (per ``augment``/``cutout``) and drop a last batch of one
            (or every incomplete one with ``drop_last``); otherwise sequential, untouched.
        augment, cutout, drop_last: see :class:`~defcon_exp.data.config.DataConfig`.
        rank, world_size: in a distributed run, ``batch_size`` is the global batch and the
            loader yields process ``rank``'s shard: training batches of ``batch_size //
            world_size`` (:func:`~defcon_exp.data.plan.train_shard`), or a contiguous slice of
            the evaluation set (:func:`~defcon_exp.data.plan.eval_shard`) in batches of
            ``ceil(batch_size / world_size)``. ``num_samples`` counts this process's images.
        policy_seeds: the sample keys end with a per-image seed.
    """

    def __init__(self, count: int, batch_size: int, seed: int, *, train: bool,
                 augment: bool = True, cutout: int = 0, drop_last: bool = False, rank: int = 0,
                 world_size: int = 1, policy_seeds: bool = False):
        length = num_yielded(count, batch_size, drop_last) if train else count
        positions = None
        if world_size > 1:
            if train:
                positions = train_shard(length, batch_size, rank, world_size)
                batch_size //= world_size
            else:
                start, stop = eval_shard(count, rank, world_size)
                positions = np.arange(start, stop, dtype=np.int64)
                batch_size = -(-batch_size // world_size)
        self.batch_size, self.train = batch_size, train
        self.num_samples = length if positions is None else len(positions)
        self.cutout = cutout if train else 0
        self.sampler = PlanSampler(count, seed, shuffle=train, augment=train and augment,
                                   cutout=self.cutout, length=length, positions=positions,
                                   policy_seeds=policy_seeds)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order and augmentation the next iteration yields."""
        if epoch < 0:
            raise ValueError(f"epoch must be >= 0, received {epoch}")
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return -(-self.num_samples // self.batch_size)


class WorkerLoader(PlanLoader):
    """DataLoader-backed loader: iterates ``(float32 [B, 3, 32, 32], int64 [B])`` on the CPU
    (pinned when ``pin_memory``).

    Args:
        images: the set to load.
        mean, std: per-channel normalisation.
        batch_size, seed, plan: ``train``, ``augment``, ``cutout``, ``drop_last``, ``rank``,
            ``world_size`` of :class:`PlanLoader`.
        policies: ``data.auto_augment`` / ``data.random_erasing`` (training only).
        dataset: items to load instead of ``images`` through :class:`TransformedImages`
            (the image-folder path); its training keys end with a per-image seed.
        num_workers, pin_memory: passed to ``DataLoader``; workers are persistent.
    """

    def __init__(self, images: ImageSet, mean: Sequence[float], std: Sequence[float],
                 batch_size: int, seed: int, *, num_workers: int = 0, pin_memory: bool = False,
                 policies: ImagePolicies | None = None, dataset: Dataset | None = None,
                 **plan: Any):
        train = plan["train"]
        policies = policies if train and policies is not None and policies.active else None
        # a given dataset (image files) draws its own training randomness from the seeds
        seeds = policies is not None or (dataset is not None and train)
        super().__init__(len(images), batch_size, seed, policy_seeds=seeds, **plan)
        if dataset is None:
            dataset = TransformedImages(images, mean, std, self.cutout, policies)
        self.dataset = dataset
        self.loader = DataLoader(
            self.dataset,
            batch_size=self.batch_size,
            sampler=self.sampler,
            num_workers=num_workers,
            pin_memory=pin_memory,
            persistent_workers=num_workers > 0,
            drop_last=False,  # the sampler already yields whole batches where needed
            # each iterator draws a base seed; from its own generator, not the global RNG, so
            # a mid-epoch resume (RNG restored, iterator created anew) keeps dropout's stream
            generator=torch.Generator().manual_seed(seed),
        )

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        return iter(self.loader)
