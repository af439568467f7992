"""Data layer: CIFAR-100 / CIFAR-10 (torchvision), a learnable synthetic set, and two loader
paths (torch DataLoader with workers, or the whole set as one device tensor) behind one
interface.

    bundle = build_data(cfg.data, seed=0, device=torch.device("cuda"))
    for epoch in range(epochs):
        bundle.train.set_epoch(epoch)
        for images, labels in bundle.train:  # float32 [B, 3, 32, 32], int64 [B]
            ...
"""

from .build import DataBundle, Loader, build_data, to_data_config
from .cifar import DatasetNotFoundError, load_cifar
from .config import LOADER_NAMES, DataConfig
from .imageset import ImageSet
from .loaders import WorkerLoader
from .plan import EpochPlan, make_epoch_plan
from .registry import DATASETS, DatasetSpec, dataset_names, get_dataset, register_dataset
from .split import stratified_split
from .synthetic import make_synthetic
from .tensor_loader import TensorLoader, augment_batch
from .transforms import CIFAR10_STATS, CIFAR100_STATS, transform_image

__all__ = [
    "CIFAR10_STATS",
    "CIFAR100_STATS",
    "DATASETS",
    "LOADER_NAMES",
    "DataBundle",
    "DataConfig",
    "DatasetNotFoundError",
    "DatasetSpec",
    "EpochPlan",
    "ImageSet",
    "Loader",
    "TensorLoader",
    "WorkerLoader",
    "augment_batch",
    "build_data",
    "dataset_names",
    "get_dataset",
    "load_cifar",
    "make_epoch_plan",
    "make_synthetic",
    "register_dataset",
    "stratified_split",
    "to_data_config",
    "transform_image",
]
