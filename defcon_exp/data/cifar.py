"""CIFAR-100 / CIFAR-10 through ``torchvision.datasets``, with a clear offline failure.

The files are checked with torchvision's own MD5 sums. A valid archive in ``root`` is
extracted without touching the network; a missing one is downloaded when allowed. When
the data cannot be had, :class:`DatasetNotFoundError` says which file is missing, the
absolute folder to put it in and the overrides that point elsewhere — and anything the
failed attempt created (folders, a partial archive) is removed again; files that were
there before are never touched.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import DatasetNotFoundError
from .imageset import ImageSet
from .registry import DatasetSpec, register_dataset
from .transforms import CIFAR10_STATS, CIFAR100_STATS

__all__ = ["CIFAR_NAMES", "DatasetNotFoundError", "cifar_class", "load_cifar"]

_TITLES = {"cifar100": "CIFAR-100", "cifar10": "CIFAR-10"}
CIFAR_NAMES = tuple(_TITLES)


def cifar_class(name: str) -> Any:
    """``data.name`` -> torchvision's dataset class (imported here: torchvision costs a second
    of start-up that a run on other data never needs)."""
    from torchvision.datasets import CIFAR10, CIFAR100

    return {"cifar100": CIFAR100, "cifar10": CIFAR10}[name]


def check_integrity(path: str, md5: str) -> bool:
    """torchvision's MD5 check of one file."""
    from torchvision.datasets.utils import check_integrity as torchvision_check

    return torchvision_check(path, md5)

_DOWNLOAD_TIMEOUT_S = 60.0  # per socket operation; torchvision sets none


def _failing_files(dataset_cls: Any, root: Path) -> list[str]:
    """Names of the extracted files that are missing or fail torchvision's MD5 check."""
    expected = [*dataset_cls.train_list, *dataset_cls.test_list]
    expected.append([dataset_cls.meta["filename"], dataset_cls.meta["md5"]])
    folder = root / dataset_cls.base_folder
    return [name for name, md5 in expected if not check_integrity(str(folder / name), md5)]


@contextmanager
def _undo_on_failure(root: Path, targets: list[Path]) -> Iterator[None]:
    """On an exception, remove those of ``targets`` and of ``root`` and its ancestors that
    did not exist on entry (folders only if empty); then re-raise."""
    created_dirs = []
    folder = root
    while not folder.exists():
        created_dirs.append(folder)
        folder = folder.parent
    new_targets = [target for target in targets if not os.path.lexists(target)]
    try:
        yield
    except BaseException:
        for target in new_targets:
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target, ignore_errors=True)
            elif os.path.lexists(target):
                target.unlink()
        for folder in created_dirs:  # deepest first
            try:
                folder.rmdir()
            except OSError:
                break
        raise


@contextmanager
def _socket_timeout(seconds: float) -> Iterator[None]:
    """Bound each socket operation (torchvision's ``urlopen`` has no timeout)."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(seconds)
    try:
        yield
    finally:
        socket.setdefaulttimeout(previous)


def _missing_message(name: str, root: Path, failing: list[str], download: bool, reason: str) -> str:
    dataset_cls = cifar_class(name)
    archive = root / dataset_cls.filename
    folder = root / dataset_cls.base_folder
    if folder.exists():
        state = (
            f"{folder}{os.sep} is incomplete or corrupted (missing or failing torchvision's "
            f"MD5 check: {', '.join(failing)}) and {archive} does not exist"
        )
    else:
        state = f"{archive} is missing (and so is the extracted folder {folder}{os.sep})"
    if download:
        attempt = f"; downloading it from {dataset_cls.url} failed ({reason})"
        hint = "; add data.download=false to skip the download attempt"
        cleanup = " The failed attempt left nothing behind."
    else:
        attempt = " and data.download=false, so no download was attempted"
        hint = " (or allow the download with data.download=true)"
        cleanup = ""
    return (
        f"{_TITLES[name]} not found: {state}{attempt}. Put {dataset_cls.filename} (or the "
        f"extracted {dataset_cls.base_folder}{os.sep} folder) in {root}{os.sep}, or point to "
        f"the folder that holds it with data.root=/path/to/folder{hint}.{cleanup}"
    )


def _ensure_files(name: str, root: Path, download: bool) -> None:
    """Make the extracted, checksum-valid files exist under ``root`` or raise
    :class:`DatasetNotFoundError`."""
    dataset_cls = cifar_class(name)
    failing = _failing_files(dataset_cls, root)
    if not failing:
        return
    archive = root / dataset_cls.filename
    if archive.is_file() and not check_integrity(str(archive), dataset_cls.tgz_md5):
        raise DatasetNotFoundError(
            f"{_TITLES[name]}: {archive} exists but fails torchvision's MD5 check "
            f"(expected {dataset_cls.tgz_md5}); it is probably truncated. Delete it "
            f"(data.download=true then fetches it again) or replace it with an intact copy, "
            f"or point to another folder with data.root=/path/to/folder."
        )
    if not archive.is_file() and not download:
        raise DatasetNotFoundError(_missing_message(name, root, failing, download, ""))
    folder = root / dataset_cls.base_folder
    try:
        # with a valid archive present, torchvision's download() only extracts it
        with _undo_on_failure(root, [archive, folder]), _socket_timeout(_DOWNLOAD_TIMEOUT_S):
            dataset_cls(str(root), train=True, download=True)
    except Exception as error:
        reason = f"{type(error).__name__}: {error}"
        raise DatasetNotFoundError(
            _missing_message(name, root, failing, download, reason)
        ) from error


def load_cifar(name: str, root: str | os.PathLike, download: bool) -> tuple[ImageSet, ImageSet]:
    """Load CIFAR-100 or CIFAR-10 with ``torchvision.datasets``.

    Args:
        name: ``cifar100`` or ``cifar10``.
        root: folder holding the archive or its extracted folder (``~`` expanded, relative
            to the current directory); the extracted folder itself is accepted too.
        download: download a missing archive (torchvision's URL and MD5 check).

    Returns:
        ``(train, test)``: ``uint8 [50000, 32, 32, 3]`` / ``[10000, 32, 32, 3]`` images with
        their labels and class names.

    Raises:
        DatasetNotFoundError: the files are missing or corrupted and cannot be obtained.
    """
    if name not in CIFAR_NAMES:
        raise ValueError(f"name must be one of {sorted(CIFAR_NAMES)}, received {name!r}")
    dataset_cls = cifar_class(name)
    folder = Path(os.path.expanduser(os.fspath(root))).resolve()
    if folder.name == dataset_cls.base_folder:  # pointed at the extracted folder itself
        folder = folder.parent
    _ensure_files(name, folder, download)
    sets = []
    for train in (True, False):
        dataset = dataset_cls(str(folder), train=train, download=False)
        sets.append(ImageSet(dataset.data, dataset.targets, list(dataset.classes)))
    return sets[0], sets[1]


def _spec(name: str, classes: int, stats: tuple) -> DatasetSpec:
    return register_dataset(
        DatasetSpec(
            name=name,
            load=lambda cfg: load_cifar(name, cfg.root, cfg.download),
            num_classes=classes,
            stats=stats,
            keys=("root", "download"),
        )
    )


CIFAR100_SPEC = _spec("cifar100", 100, CIFAR100_STATS)
CIFAR10_SPEC = _spec("cifar10", 10, CIFAR10_STATS)
