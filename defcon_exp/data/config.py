"""The data layer's structured config (registered in Hydra's ConfigStore by the CLI layer).

Only OmegaConf-compatible field types; the values are checked by
:func:`defcon_exp.data.build_data`, which raises ``ValueError`` naming the key, the value
received and the rule it breaks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

__all__ = ["FOLDER_DEFAULTS", "LOADER_NAMES", "DataConfig", "check_global_batch", "check_key"]

#: the image-folder keys (null on other sets) and their values when left null: train 224,
#: evaluate resize 256 + centre crop 224, stop at the first corrupt image
FOLDER_DEFAULTS: dict[str, int] = {
    "train_crop": 224,
    "eval_resize": 256,
    "eval_crop": 224,
    "max_bad_images": 0,
}

LOADER_NAMES: tuple[str, ...] = ("dataloader", "tensor")
"""Valid values of ``data.loader``: ``dataloader`` = torch ``DataLoader`` with workers and
per-image torchvision transforms; ``tensor`` = the whole set as one uint8 tensor on the
device, augmented in batches (airbench style)."""


def check_key(data: Any, ok: bool, key: str, rule: str) -> None:
    """Unless ``ok``, ``ValueError`` naming ``data.<key>``, its value in ``data`` (a
    :class:`DataConfig` or the config's node) and the ``rule`` it breaks."""
    if not ok:
        raise ValueError(f"data.{key}={getattr(data, key)!r} is invalid: {rule}")


def check_global_batch(data: Any, world_size: int) -> None:
    """``data.batch_size`` is the global batch: ``world_size`` processes must divide it."""
    batch = data.batch_size
    check_key(data, batch % world_size == 0, "batch_size",
              f"it is the global batch and must be divisible by the {world_size} processes "
              f"(each trains on batch_size / {world_size}); use e.g. "
              f"data.batch_size={max(1, batch // world_size) * world_size}")


@dataclass
class DataConfig:
    """Which images, how they are split and augmented, and how they are batched (one help text per field below)."""

    name: str = "cifar100"
    """cifar100 | cifar10 | synthetic | imagefolder | imagenet

    A registered data set (:mod:`defcon_exp.data.registry`): ``cifar100``, ``cifar10``,
    ``synthetic``, ``imagefolder``, ``imagenet``."""
    root: str = "data"
    """folder holding (or receiving) the CIFAR archive, or train/ and val/ of class folders

    Folder holding ``cifar-100-python.tar.gz`` / ``cifar-10-python.tar.gz`` or their extracted
    folders, or (image folders) the folder holding ``train/`` and ``val/`` of class folders;
    ``~`` is expanded, relative paths are taken from the current directory."""
    download: bool = True
    """download a missing CIFAR archive (torchvision URL and checksum)"""
    val_size: int = 0
    """training images held out for validation (stratified); 0 = none; the paper: 10000

    Training images held out (stratified by class, chosen by ``data_seed``) as the validation
    set; 0 = no validation set. The paper's 40,000/10,000 split is ``data.val_size=10000``. The
    official test set always stays the test set."""
    data_seed: int = 0
    """seed of the split and of the synthetic images (not of the run)

    Seed of the data itself (the validation split and the synthetic images), independent of the
    run seed so every run sees the same split."""
    batch_size: int = 128
    """training batch (global under torchrun)"""
    eval_batch_size: int = 512
    """validation/test batch"""
    drop_last: bool = False
    """drop the last incomplete training batch

    Drop the last incomplete training batch (a last training batch of a single image is always
    dropped: BatchNorm cannot train on it)."""
    loader: str = "dataloader"
    """dataloader (workers, per-image transforms) | tensor (whole set on the device)

    ``dataloader`` or ``tensor`` (see :data:`LOADER_NAMES`)."""
    num_workers: int = 2
    """DataLoader worker processes (dataloader only; 0 = main process)"""
    pin_memory: bool = True
    """pin host batches when training on CUDA (dataloader only)"""
    augment: bool = True
    """random crop (4 px padding) + horizontal flip of training images

    Random crop (32, 4 px zero padding) + horizontal flip on training images."""
    cutout: int = 0
    """Cutout patch length in pixels; 0 = off

    Cutout patch length in pixels (DeVries & Taylor 2017; 8 for CIFAR-100, 16 for CIFAR-10 in
    their paper); 0 = off."""
    auto_augment: str = "none"
    """none, randaugment, trivialaugment or autoaugment_cifar10 (dataloader only)

    An augmentation policy after crop + flip (``dataloader`` only; see
    :data:`~defcon_exp.data.policies.AUTO_AUGMENT_NAMES`); ``none`` = off."""
    random_erasing: float = 0.0
    """RandomErasing probability per training image (dataloader only); 0 = off

    Probability of ``RandomErasing`` (torchvision v2 defaults) on each normalised training image
    (``dataloader`` only); 0 = off."""
    num_classes: Optional[int] = None  # noqa: UP045 (OmegaConf needs typing.Optional)
    """classes; null = the data set's own (100 / 10)

    Classes; ``None`` = the data set's own (100 / 10 for CIFAR, 10 for synthetic). For CIFAR a
    value must match the data set."""
    train_size: int = 10_000
    """synthetic training images (before the validation split)"""
    test_size: int = 2_000
    """synthetic test images"""
    train_crop: Optional[int] = None  # noqa: UP045
    """RandomResizedCrop side of training images (null = 224)

    Image folders only: side of the training ``RandomResizedCrop`` (null = 224)."""
    eval_resize: Optional[int] = None  # noqa: UP045
    """evaluation: shorter side resized to this (null = 256)...

    Image folders only: evaluation images are resized so their shorter side is this (null =
    256), then centre-cropped to ``eval_crop`` (null = 224)."""
    eval_crop: Optional[int] = None  # noqa: UP045
    """... then centre-cropped to this (null = 224)"""
    max_bad_images: Optional[int] = None  # noqa: UP045
    """corrupt files tolerated, each replaced by the next and logged (null = 0: stop at the
    first)

    Image folders only: how many distinct unreadable/corrupt files a run tolerates (each
    replaced by the next readable file of the set, logged with its path); null = 0 = stop at the
    first with one line naming it (docs/imagefolder.md, "Corrupt images")."""
