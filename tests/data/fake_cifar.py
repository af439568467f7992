"""Tiny CIFAR archives in the exact python-pickle format torchvision reads.

``cifar-100-python.tar.gz`` holds ``cifar-100-python/{train,test,meta}``;
``cifar-10-python.tar.gz`` holds ``cifar-10-batches-py/{data_batch_1..5,test_batch,
batches.meta}`` — the real layouts, with a few random images per class.
"""

from __future__ import annotations

import hashlib
import pickle
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from torchvision.datasets import CIFAR10, CIFAR100


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes(), usedforsecurity=False).hexdigest()


@dataclass
class FakeCifar:
    """Where a fake archive was written and what it contains."""

    name: str  # "cifar100" | "cifar10"
    dataset_cls: type[CIFAR10]
    archive: Path  # the .tar.gz
    tgz_md5: str
    member_md5: dict[str, str]  # file name inside the base folder -> md5
    train_images: np.ndarray  # uint8 [N, 32, 32, 3]
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    classes: list[str]

    def patch_checksums(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Point the torchvision class's expected MD5 sums at this archive's files."""
        cls = self.dataset_cls
        monkeypatch.setattr(cls, "tgz_md5", self.tgz_md5)
        monkeypatch.setattr(cls, "train_list", [[n, self.member_md5[n]] for n, _ in cls.train_list])
        monkeypatch.setattr(cls, "test_list", [[n, self.member_md5[n]] for n, _ in cls.test_list])
        meta = dict(cls.meta)
        meta["md5"] = self.member_md5[meta["filename"]]
        monkeypatch.setattr(cls, "meta", meta)


def _images(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, size=(count, 32, 32, 3), dtype=np.uint8)


def _rows(images: np.ndarray) -> np.ndarray:
    """HWC images -> CIFAR's row layout ``uint8 [N, 3072]`` (1024 R, 1024 G, 1024 B)."""
    return images.transpose(0, 3, 1, 2).reshape(len(images), -1)


def _dump(path: Path, obj: dict) -> None:
    with path.open("wb") as handle:
        pickle.dump(obj, handle, protocol=2)


def _pack(folder: Path, out_dir: Path, filename: str) -> Path:
    archive = out_dir / filename
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name)
    return archive


def make_fake_cifar100(
    out_dir: Path, train_per_class: int = 2, test_per_class: int = 1
) -> FakeCifar:
    """Write ``out_dir/cifar-100-python.tar.gz`` (100 classes); the staging folder used to
    build it is removed again."""
    rng = np.random.default_rng(100)
    classes = [f"fine_{i:02d}" for i in range(100)]
    train_labels = rng.permutation(np.repeat(np.arange(100), train_per_class))
    test_labels = rng.permutation(np.repeat(np.arange(100), test_per_class))
    train_images, test_images = _images(rng, len(train_labels)), _images(rng, len(test_labels))
    stage = out_dir / "stage100"
    folder = stage / "cifar-100-python"
    folder.mkdir(parents=True)
    for split, images, labels in (
        ("train", train_images, train_labels),
        ("test", test_images, test_labels),
    ):
        _dump(
            folder / split,
            {
                "filenames": [f"{split}_{i}.png" for i in range(len(labels))],
                "batch_label": f"{split} batch",
                "fine_labels": labels.tolist(),
                "coarse_labels": (labels // 5).tolist(),
                "data": _rows(images),
            },
        )
    _dump(
        folder / "meta",
        {"fine_label_names": classes, "coarse_label_names": [f"c{i}" for i in range(20)]},
    )
    archive = _pack(folder, out_dir, "cifar-100-python.tar.gz")
    members = {p.name: md5(p) for p in folder.iterdir()}
    _rmtree(stage)
    return FakeCifar(
        "cifar100", CIFAR100, archive, md5(archive), members,
        train_images, train_labels, test_images, test_labels, classes,
    )  # fmt: skip


def make_fake_cifar10(
    out_dir: Path, per_class_per_batch: int = 1, test_per_class: int = 1
) -> FakeCifar:
    """Write ``out_dir/cifar-10-python.tar.gz`` (10 classes, 5 training batches)."""
    rng = np.random.default_rng(10)
    classes = [
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    ]
    stage = out_dir / "stage10"
    folder = stage / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    batches = []
    for batch in range(1, 6):
        labels = rng.permutation(np.repeat(np.arange(10), per_class_per_batch))
        images = _images(rng, len(labels))
        batches.append((images, labels))
        _dump(
            folder / f"data_batch_{batch}",
            {"batch_label": f"training batch {batch} of 5", "labels": labels.tolist(),
             "data": _rows(images), "filenames": [f"b{batch}_{i}.png" for i in range(len(labels))]},
        )  # fmt: skip
    test_labels = rng.permutation(np.repeat(np.arange(10), test_per_class))
    test_images = _images(rng, len(test_labels))
    _dump(
        folder / "test_batch",
        {"batch_label": "testing batch 1 of 1", "labels": test_labels.tolist(),
         "data": _rows(test_images), "filenames": [f"t{i}.png" for i in range(len(test_labels))]},
    )  # fmt: skip
    _dump(
        folder / "batches.meta",
        {"label_names": classes, "num_cases_per_batch": 10, "num_vis": 3072},
    )
    archive = _pack(folder, out_dir, "cifar-10-python.tar.gz")
    members = {p.name: md5(p) for p in folder.iterdir()}
    _rmtree(stage)
    return FakeCifar(
        "cifar10", CIFAR10, archive, md5(archive), members,
        np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches]),
        test_images, test_labels, classes,
    )  # fmt: skip


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path)


def tree(path: Path) -> set[str]:
    """Every file and folder under ``path``, relative, as strings (empty if missing)."""
    if not path.exists():
        return set()
    return {str(p.relative_to(path)) for p in path.rglob("*")}


def copy_archive(cifar: FakeCifar, root: Path) -> Path:
    """Put the archive into ``root`` (created) and return its new path."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / cifar.archive.name
    target.write_bytes(cifar.archive.read_bytes())
    return target
