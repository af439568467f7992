"""Image folders: ``data=imagefolder data.root=DIR`` (your own classes) and ``data=imagenet``
(ImageNet-1k prepared in the same layout, 1,000 classes).

Both read ``DIR/train/<class>/*.jpg`` and ``DIR/val/<class>/*.jpg``
(:func:`~defcon_exp.data.fileset.scan_image_folder`); ``val/`` is the set a run is tested
on, and ``data.val_size`` holds a stratified validation split out of ``train/`` as for
CIFAR. Images are normalised with ImageNet's published mean/std (torchvision's and timm's
``IMAGENET_DEFAULT_MEAN/STD``), the usual choice for photographs and the one pretrained
torchvision weights (``model.init_from``) expect.
"""

from __future__ import annotations

from typing import Any

from .config import FOLDER_DEFAULTS
from .fileset import FileSet, ImageFolderError, scan_image_folder
from .loaders import WorkerLoader
from .policies import ImagePolicies
from .registry import DatasetSpec, register_dataset

__all__ = ["IMAGENET_STATS", "folder_loader", "load_folder"]

IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
"""ImageNet-1k training-set per-channel (mean, std) of pixels in [0, 1] (torchvision)."""


IMAGENET_CLASSES = 1000


def folder_setting(cfg: Any, key: str) -> int:
    """``cfg.<key>``, or its :data:`FOLDER_DEFAULTS` value when null."""
    value = getattr(cfg, key)
    return FOLDER_DEFAULTS[key] if value is None else int(value)


def load_folder(cfg: Any, classes: int | None = None) -> tuple[FileSet, FileSet]:
    """``(train, test)`` of ``cfg.root``; ``classes``: the count the set must have."""
    train, test = scan_image_folder(cfg.root)
    if classes is not None and train.num_classes != classes:
        raise ImageFolderError(
            f"data.root={train.root} has {train.num_classes} class folders in train/, but "
            f"data=imagenet needs {classes}: use data=imagefolder for other sets"
        )
    return train, test


def folder_loader(
    cfg: Any, files: FileSet, train: bool, batch_size: int, seed: int, mean, std, **common: Any
) -> WorkerLoader:
    """The loader of ``files``: decoding and transforms in ``cfg.num_workers`` persistent
    workers, plan order/sharding as every set (``common``: rank, world_size, pin_memory,
    drop_last). Imports torchvision's decoders and transforms here: a second of start-up that
    runs on other data never pay."""
    from .folder_images import FolderImages, FolderLoader, folder_transform

    geometry = folder_transform(train, cfg.augment, *(folder_setting(cfg, key) for key in
                                                     ("train_crop", "eval_resize", "eval_crop")))
    policies = ImagePolicies(cfg.auto_augment, cfg.random_erasing) if train else None
    dataset = FolderImages(files, mean, std, geometry, policies)
    return FolderLoader(
        files, dataset, mean, std, batch_size, seed, train=train,
        augment=False,  # the plan's CIFAR crop/flip are not used: RandomResizedCrop is
        num_workers=cfg.num_workers, max_bad_images=folder_setting(cfg, "max_bad_images"),
        **common,
    )


def _folder_spec(name: str, load: Any, num_classes: int | None, **extra: Any) -> DatasetSpec:
    return register_dataset(DatasetSpec(
        name=name, load=load, num_classes=num_classes, stats=IMAGENET_STATS, image_size=224,
        keys=("root", "download", *FOLDER_DEFAULTS),  # download: refused (nothing to fetch)
        make_loader=folder_loader, **extra,
    ))


IMAGEFOLDER_SPEC = _folder_spec("imagefolder", load_folder, None, class_range=(2, 1_000_000))
IMAGENET_SPEC = _folder_spec("imagenet", lambda cfg: load_folder(cfg, IMAGENET_CLASSES),
                             IMAGENET_CLASSES)
