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
    "build_data": "build",
    "DatasetNotFoundError": "errors",
    "DataConfig": "config",
    "ImageFolderError": "fileset",
    "CorruptImageError": "folder_images",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_attributes(__name__, _LAZY)
