"""Data layer: CIFAR-100 / CIFAR-10 (torchvision), a learnable synthetic set, and two loader
paths (torch DataLoader with workers, or the whole set as one device tensor) behind one
interface.

    bundle = build_data(cfg.data, seed=0, device=torch.device("cuda"))
    for epoch in range(epochs):
        bundle.train.set_epoch(epoch)
        for images, labels in bundle.train:  # float32 [B, 3, 32, 32], int64 [B]
            ...

The names load on first use (PEP 562): ``defcon_exp.config`` imports the torch-free
``data.config`` schema without pulling in torch and torchvision.
"""

from __future__ import annotations

from defcon_exp.plugins import lazy_attributes

_LAZY = {
    "DataBundle": "build",
    "Loader": "build",
    "build_data": "build",
    "to_data_config": "build",
    "DatasetNotFoundError": "errors",
    "load_cifar": "cifar",
    "LOADER_NAMES": "config",
    "DataConfig": "config",
    "FileSet": "fileset",
    "ImageFolderError": "fileset",
    "scan_image_folder": "fileset",
    "CorruptImageError": "folder_images",
    "IMAGENET_STATS": "imagefolder",
    "ImageSet": "imageset",
    "WorkerLoader": "loaders",
    "EpochPlan": "plan",
    "make_epoch_plan": "plan",
    "DATASETS": "registry",
    "DatasetSpec": "registry",
    "dataset_names": "registry",
    "get_dataset": "registry",
    "register_dataset": "registry",
    "stratified_split": "split",
    "make_synthetic": "synthetic",
    "TensorLoader": "tensor_loader",
    "augment_batch": "tensor_loader",
    "CIFAR10_STATS": "transforms",
    "CIFAR100_STATS": "transforms",
    "transform_image": "transforms",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_attributes(__name__, _LAZY)
