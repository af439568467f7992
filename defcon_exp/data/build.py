"""``build_data``: config -> train / val / test loaders (the data layer's one entry point)."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor

from .config import FOLDER_DEFAULTS, LOADER_NAMES, DataConfig, check_global_batch, check_key
from .loaders import WorkerLoader
from .policies import ImagePolicies, check_policies
from .registry import DatasetSpec, check_set_keys, get_dataset
from .split import stratified_split
from .tensor_loader import TensorLoader

__all__ = ["DataBundle", "Loader", "build_data", "to_data_config"]


class Loader(Protocol):
    """What the engine iterates: ``(float32 [B, 3, 32, 32] normalised, int64 [B])``."""

    num_samples: int
    batch_size: int

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]: ...

    def __len__(self) -> int: ...

    def set_epoch(self, epoch: int) -> None: ...


@dataclass
class DataBundle:
    """The loaders of one run.

    Attributes:
        train: shuffled, augmented training batches.
        val: the held-out training images (``None`` when ``val_size == 0``), not augmented.
        test: the official test set, not augmented.
        num_classes: classes of the data set.
        classes: class names.
        mean, std: the per-channel normalisation applied (pixels scaled to [0, 1]).
    """

    train: Loader
    val: Loader | None
    test: Loader
    num_classes: int
    classes: list[str]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


def to_data_config(cfg: DataConfig | DictConfig | Mapping[str, Any]) -> DataConfig:
    """A :class:`DataConfig` from a dataclass, an OmegaConf node or a plain mapping; an
    unknown key raises ``ValueError`` naming it."""
    if isinstance(cfg, DataConfig):
        return cfg
    if not isinstance(cfg, Mapping):  # a DictConfig is one
        raise ValueError(
            f"data config must be a DataConfig or a mapping, received {type(cfg).__name__}"
        )
    values = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else dict(cfg)
    known = {field.name for field in dataclasses.fields(DataConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"data: unknown key(s) {unknown}; valid keys are {sorted(known)}")
    return DataConfig(**values)


def _check_ints(cfg: DataConfig, keys: tuple[str, ...], low: int) -> None:
    for key in keys:
        value = getattr(cfg, key)
        check_key(cfg, isinstance(value, int) and value >= low, key, f"must be an integer >= {low}")


def _check_num_workers(cfg: DataConfig) -> None:
    """At most 4 worker processes per CPU this process may use: more only compete for them
    (and 100000 would fork until the machine gives out, mid-start)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    check_key(cfg, cfg.num_workers <= 4 * cpus, "num_workers",
              f"must be <= {4 * cpus} (4 x the {cpus} CPUs this process may use: more worker "
              f"processes only compete for them); e.g. data.num_workers={min(cpus, 8)}")


def _check_has_steps(loader: Loader, images: int, cfg: DataConfig, world_size: int) -> None:
    """An epoch of the training ``loader`` (over ``images``) has at least one batch."""
    check_key(cfg, len(loader) >= 1, "batch_size",
              f"with data.drop_last=true the {images} training images make no full batch, so an "
              f"epoch has no step; use data.batch_size<={images // world_size * world_size} or "
              "data.drop_last=false")


def _validate(cfg: DataConfig, seed: int, world_size: int) -> DatasetSpec:
    """Check ``cfg``'s values; the data set's spec."""
    spec = get_dataset(cfg.name)
    check_set_keys(cfg)
    check_key(cfg, cfg.loader in LOADER_NAMES, "loader", f"must be one of {list(LOADER_NAMES)}")
    _check_ints(cfg, ("batch_size", "eval_batch_size"), 1)
    _check_ints(cfg, ("val_size", "data_seed", "num_workers", "cutout"), 0)
    _check_num_workers(cfg)
    check_key(cfg, cfg.cutout <= spec.image_size, "cutout",
              f"the patch length must be <= {spec.image_size} (the image size); 0 = off")
    _validate_kind(cfg, spec)
    if not (isinstance(seed, int) and seed >= 0):
        raise ValueError(f"data.seed={seed!r} is invalid: the run seed must be an integer >= 0")
    if spec.num_classes is not None:
        check_key(cfg, cfg.num_classes in (None, spec.num_classes), "num_classes",
                  f"{cfg.name} has {spec.num_classes} classes (leave it null or set "
                  f"{spec.num_classes})")
    elif cfg.num_classes is not None:
        low, high = spec.class_range
        check_key(cfg, low <= cfg.num_classes <= high, "num_classes",
                  f"the {cfg.name} set has {low} to {high} classes")
    check_policies(cfg)
    if spec.synthetic:
        _check_ints(cfg, ("train_size", "test_size"), 1)
    check_global_batch(cfg, world_size)
    return spec


def _validate_kind(cfg: DataConfig, spec: DatasetSpec) -> None:
    """CIFAR's keys do not silently apply to image folders (the folder keys on other sets:
    :func:`~defcon_exp.data.registry.check_set_keys`)."""
    if not spec.files:
        return
    for key, off, fix in (
        ("loader", "dataloader", "images are decoded by DataLoader workers (trainer=gpu sets "
         "tensor: add data.loader=dataloader)"),
        ("cutout", 0, "CIFAR's Cutout works on 32x32 plans; use data.random_erasing"),
        ("download", False, "nothing can be downloaded for an image folder"),
    ):
        check_key(cfg, getattr(cfg, key) == off, key, f"must be {off!r} for {spec.name}: {fix}")
    for key in FOLDER_DEFAULTS:
        value = getattr(cfg, key)
        low = 0 if key == "max_bad_images" else 1
        check_key(cfg, value is None or (isinstance(value, int) and value >= low), key,
                  f"must be null (default) or an integer >= {low}")
    if cfg.eval_resize is not None and cfg.eval_crop is not None:
        check_key(cfg, cfg.eval_resize >= cfg.eval_crop, "eval_resize",
                  f"must be >= data.eval_crop={cfg.eval_crop} (resize, then centre-crop)")


def _load_sets(cfg: DataConfig, spec: DatasetSpec) -> tuple[Any, Any, Any, Any, tuple, tuple]:
    """``(train_full, train, val, test, mean, std)`` of the configured data set (``val``
    None when ``val_size`` is 0)."""
    train_full, test = spec.load(cfg)
    if spec.files:  # an image folder's class count is its folders'; a requested one must match
        check_key(cfg, cfg.num_classes in (None, train_full.num_classes), "num_classes",
                  f"{train_full.root} has {train_full.num_classes} class folders (leave it null)")
    mean, std = spec.stats if spec.stats is not None else train_full.channel_stats()
    check_key(cfg, cfg.val_size < len(train_full), "val_size",
              f"must be smaller than the {len(train_full)} training images")
    train_idx, val_idx = stratified_split(train_full.labels, cfg.val_size, cfg.data_seed)
    train = train_full.subset(train_idx) if cfg.val_size else train_full
    val = train_full.subset(val_idx) if cfg.val_size else None
    return train_full, train, val, test, mean, std


def build_data(
    cfg: DataConfig | DictConfig | Mapping[str, Any],
    seed: int,
    device: torch.device | str = "cpu",
    *,
    rank: int = 0,
    world_size: int = 1,
) -> DataBundle:
    """Build the train / val / test loaders.

    Args:
        cfg: the ``data`` config group (:class:`DataConfig`, DictConfig or mapping).
        seed: the run seed (>= 0); with the epoch it fixes order and augmentation.
        device: where the ``tensor`` loader keeps the images and makes the batches; the
            ``dataloader`` path yields CPU batches, pinned when this is a CUDA device.
        rank, world_size: a distributed run's process (``torchrun``): ``cfg.batch_size`` is
            the global batch (it must be divisible by ``world_size``) and each loader yields
            this rank's shard of the same per-epoch plan; evaluation sets are split so every
            image is evaluated by exactly one rank.

    Returns:
        A :class:`DataBundle`; each loader yields ``(float32 [B, 3, 32, 32], int64 [B])``.

    Raises:
        ValueError: a config value is invalid (the message names key, value and rule).
        DatasetNotFoundError: CIFAR is not on disk and cannot be downloaded, or an image
            folder is unusable (:class:`~defcon_exp.data.fileset.ImageFolderError`).
    """
    cfg = to_data_config(cfg)
    spec = _validate(cfg, seed, world_size)
    device = torch.device(device)
    train_full, train, val, test, mean, std = _load_sets(cfg, spec)
    shard = {"rank": rank, "world_size": world_size} if world_size > 1 else {}
    pin = cfg.pin_memory and device.type == "cuda"

    def make(images: Any, train_mode: bool, batch_size: int) -> Loader:
        """One loader of ``images`` (``shard``: this process's rank and the world size)."""
        if spec.files:
            return spec.make_loader(cfg, images, train_mode, batch_size, seed, mean, std,
                                    drop_last=cfg.drop_last, pin_memory=pin, **shard)
        common = dict(train=train_mode, augment=cfg.augment, cutout=cfg.cutout,
                      drop_last=cfg.drop_last, **shard)
        if cfg.loader == "tensor":
            return TensorLoader(images, mean, std, batch_size, seed, device, **common)
        policies = ImagePolicies(cfg.auto_augment, cfg.random_erasing)
        return WorkerLoader(images, mean, std, batch_size, seed, num_workers=cfg.num_workers,
                            pin_memory=pin, policies=policies, **common)

    train_loader = make(train, True, cfg.batch_size)
    _check_has_steps(train_loader, len(train), cfg, world_size)
    return DataBundle(
        train=train_loader,
        val=make(val, False, cfg.eval_batch_size) if val is not None else None,
        test=make(test, False, cfg.eval_batch_size),
        num_classes=len(train_full.classes),
        classes=list(train_full.classes),
        mean=tuple(mean),
        std=tuple(std),
    )
