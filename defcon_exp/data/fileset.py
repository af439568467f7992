"""Image files in torchvision's ``ImageFolder`` layout, listed and checked before a run starts.

``ROOT/train/<class>/<image>`` and ``ROOT/val/<class>/<image>``: the class names are the
sorted folder names of ``train/`` (as ``torchvision.datasets.ImageFolder``), labels their
indices. The checks made here are the cheap ones (one directory walk, no decoding): a
missing root or split folder, a class folder without images, a ``val/`` class unknown to
``train/``, an empty (0-byte) file. A file that is corrupt inside is found when it is
decoded (:mod:`defcon_exp.data.folder_images` says what happens then).

Paths are kept as one fixed-width ``numpy`` bytes array: worker processes share it with the
main process copy-on-write (a Python list of 1.28 M strings would be copied into every
worker as its reference counts are touched).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DatasetNotFoundError

__all__ = ["IMAGE_EXTENSIONS", "FileSet", "ImageFolderError", "scan_image_folder"]

#: extensions ``torchvision.io.decode_image`` reads (case-insensitive)
IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".gif")


class ImageFolderError(DatasetNotFoundError):
    """The folder's layout or one of its files is unusable; ``str(error)`` is one line."""


@dataclass
class FileSet:
    """Labelled image files.

    Attributes:
        root: folder the paths are relative to.
        paths: ``bytes [N]`` (numpy ``S`` array) relative paths, UTF-8.
        labels: ``int64 [N]`` class indices.
        classes: class names (``len(classes) == num_classes``).
    """

    root: str
    paths: np.ndarray
    labels: np.ndarray
    classes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.paths.shape != self.labels.shape:
            raise ValueError(f"paths {self.paths.shape} and labels {self.labels.shape} differ")

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def path(self, index: int) -> str:
        """The absolute path of file ``index``."""
        return os.path.join(self.root, self.paths[index].decode("utf-8"))

    def subset(self, indices: np.ndarray) -> FileSet:
        """The files at ``indices`` (an int array ``[M]``), in that order."""
        return FileSet(self.root, self.paths[indices], self.labels[indices], list(self.classes))


def _class_folders(split: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(split) if entry.is_dir())


def _images_of(folder: Path, relative_to: Path) -> list[str]:
    """Relative paths of the image files under ``folder`` (recursively, sorted); refuses an
    empty file or a class folder without images, naming it."""
    found, others = [], []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            if not name.lower().endswith(IMAGE_EXTENSIONS):
                others.append(name)
                continue
            if os.path.getsize(full) == 0:
                raise ImageFolderError(
                    f"{full} is an empty (0-byte) file: delete or replace it, then start again"
                )
            found.append(os.path.relpath(full, relative_to))
    if not found:
        extra = f" (it holds {len(others)} other files, e.g. {others[0]})" if others else ""
        raise ImageFolderError(
            f"class folder {folder}{os.sep} holds no images{extra}: add "
            f"{'/'.join(IMAGE_EXTENSIONS)} files or remove the folder"
        )
    return found


def _scan_split(root: Path, split: str, classes: list[str] | None) -> FileSet:
    """The files of ``root/split``; ``classes`` None = take the class folders found."""
    folder = root / split
    if not folder.is_dir():
        raise ImageFolderError(
            f"{folder}{os.sep} is missing: data.root={root} must hold train{os.sep} and "
            f"val{os.sep}, each with one folder per class (torchvision ImageFolder layout)"
        )
    found = _class_folders(folder)
    if not found:
        raise ImageFolderError(
            f"{folder}{os.sep} has no class folders: put each class's images in "
            f"{folder}{os.sep}<class name>{os.sep}"
        )
    if classes is None:
        classes = found
    unknown = sorted(set(found) - set(classes))
    if unknown:
        raise ImageFolderError(
            f"{folder}{os.sep} has class folder(s) {unknown[:3]} that train{os.sep} does not "
            f"have: the two splits must use the same class names"
        )
    paths: list[str] = []
    labels: list[int] = []
    for name in found:
        images = _images_of(folder / name, root)
        paths += images
        labels += [classes.index(name)] * len(images)
    encoded = np.array([p.encode("utf-8") for p in paths], dtype=np.bytes_)
    return FileSet(str(root), encoded, np.array(labels, dtype=np.int64), list(classes))


def scan_image_folder(root: str | os.PathLike) -> tuple[FileSet, FileSet]:
    """``(train, val)`` file sets of ``root`` (``~`` expanded, relative to the current
    directory). ``val``'s labels index ``train``'s classes.

    Raises:
        ImageFolderError: one line naming the missing folder, the empty class folder or
            file, or the unknown class.
    """
    folder = Path(os.path.expanduser(os.fspath(root))).resolve()
    if not folder.is_dir():
        raise ImageFolderError(
            f"data.root={folder} does not exist or is not a folder: point data.root at the "
            f"folder holding train{os.sep} and val{os.sep} (one folder per class in each)"
        )
    train = _scan_split(folder, "train", None)
    return train, _scan_split(folder, "val", train.classes)
