"""An in-memory image set: uint8 HWC images and int64 labels, the layout torchvision's CIFAR
classes expose as ``.data`` / ``.targets``."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["ImageSet"]


@dataclass
class ImageSet:
    """Images and labels held in memory.

    Attributes:
        images: ``uint8`` array ``[N, 32, 32, 3]`` (HWC, RGB).
        labels: ``int64`` array ``[N]`` with values in ``[0, num_classes)``.
        classes: class names, ``len(classes) == num_classes``.
    """

    images: np.ndarray
    labels: np.ndarray
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.images = np.ascontiguousarray(self.images, dtype=np.uint8)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.images.ndim != 4 or self.images.shape[3] != 3:
            raise ValueError(f"images must be [N, H, W, 3] uint8, received {self.images.shape}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"labels must be [N] with N = {self.images.shape[0]}, received {self.labels.shape}"
            )

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, indices: np.ndarray) -> ImageSet:
        """The images at ``indices`` (an int array ``[M]``), in that order."""
        return ImageSet(self.images[indices], self.labels[indices], list(self.classes))

    def channel_stats(self) -> tuple[tuple[float, float, float], tuple[float, float, float]]:
        """Per-channel mean and std of the images scaled to ``[0, 1]``."""
        pixels = self.images.reshape(-1, 3).astype(np.float64) / 255.0
        mean = pixels.mean(axis=0)
        std = pixels.std(axis=0)
        return (
            (float(mean[0]), float(mean[1]), float(mean[2])),
            (float(std[0]), float(std[1]), float(std[2])),
        )
