"""CIFAR-100 / CIFAR-10 through the real torchvision classes, on tiny generated archives
(checksums patched to the archives', never skipped)."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from defcon_exp.data import DatasetNotFoundError, build_data
from defcon_exp.data.cifar import load_cifar

from .fake_cifar import FakeCifar, copy_archive, tree


def _assert_matches(fake: FakeCifar, root: Path) -> None:
    train, test = load_cifar(fake.name, root, download=False)
    np.testing.assert_array_equal(train.images, fake.train_images)
    np.testing.assert_array_equal(train.labels, fake.train_labels)
    np.testing.assert_array_equal(test.images, fake.test_images)
    np.testing.assert_array_equal(test.labels, fake.test_labels)
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (32, 32, 3)
    assert train.labels.dtype == np.int64
    assert train.classes == fake.classes


@pytest.fixture
def http_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A loopback HTTP server serving ``tmp_path/served``: ``(base_url, folder)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", folder
    finally:
        server.shutdown()
        server.server_close()


def test_archive_in_root_is_extracted_and_loaded(fake: FakeCifar, tmp_path: Path) -> None:
    root = tmp_path / "root"
    copy_archive(fake, root)
    _assert_matches(fake, root)  # download=False: a local archive needs no network
    assert (root / fake.dataset_cls.base_folder).is_dir()
    assert (root / fake.archive.name).is_file()  # the user's archive is kept


def test_extracted_folder_alone_is_enough(fake: FakeCifar, tmp_path: Path) -> None:
    root = tmp_path / "root"
    copy_archive(fake, root)
    load_cifar(fake.name, root, download=False)
    (root / fake.archive.name).unlink()
    _assert_matches(fake, root)


def test_root_may_name_the_extracted_folder_itself(fake: FakeCifar, tmp_path: Path) -> None:
    copy_archive(fake, tmp_path)
    load_cifar(fake.name, tmp_path, download=False)
    _assert_matches(fake, tmp_path / fake.dataset_cls.base_folder)


def test_download_goes_through_torchvision_and_checks_md5(
    fake: FakeCifar, tmp_path: Path, http_server, monkeypatch
) -> None:
    base_url, served = http_server
    copy_archive(fake, served)
    monkeypatch.setattr(fake.dataset_cls, "url", f"{base_url}/{fake.archive.name}")
    root = tmp_path / "fresh" / "data"
    train, test = load_cifar(fake.name, root, download=True)
    np.testing.assert_array_equal(train.images, fake.train_images)
    np.testing.assert_array_equal(test.labels, fake.test_labels)
    assert (root / fake.archive.name).is_file()
    _assert_matches(fake, root)  # and from now on without the network


def test_downloaded_archive_with_wrong_md5_is_rejected_and_removed(
    fake: FakeCifar, tmp_path: Path, http_server, monkeypatch
) -> None:
    base_url, served = http_server
    copy_archive(fake, served)
    monkeypatch.setattr(fake.dataset_cls, "url", f"{base_url}/{fake.archive.name}")
    monkeypatch.setattr(fake.dataset_cls, "tgz_md5", "0" * 32)
    root = tmp_path / "fresh" / "data"
    with pytest.raises(DatasetNotFoundError, match="failed"):
        load_cifar(fake.name, root, download=True)
    assert not (tmp_path / "fresh").exists()


def test_corrupted_extracted_file_fails_the_checksum(fake: FakeCifar, tmp_path: Path) -> None:
    root = tmp_path / "root"
    copy_archive(fake, root)
    load_cifar(fake.name, root, download=False)
    (root / fake.archive.name).unlink()
    victim = root / fake.dataset_cls.base_folder / fake.dataset_cls.test_list[0][0]
    victim.write_bytes(victim.read_bytes()[:-10])
    with pytest.raises(DatasetNotFoundError, match=fake.dataset_cls.test_list[0][0]):
        load_cifar(fake.name, root, download=False)
    assert victim.exists()  # a user's file is reported, never deleted


def test_truncated_archive_is_reported_not_overwritten(fake: FakeCifar, tmp_path: Path) -> None:
    root = tmp_path / "root"
    archive = copy_archive(fake, root)
    archive.write_bytes(archive.read_bytes()[:100])
    with pytest.raises(DatasetNotFoundError, match="MD5") as info:
        load_cifar(fake.name, root, download=True)
    assert str(archive) in str(info.value)
    assert archive.stat().st_size == 100
    assert tree(root) == {archive.name}


def test_root_expands_user(fake: FakeCifar, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    copy_archive(fake, tmp_path / "datasets")
    _assert_matches(fake, Path("~/datasets").expanduser())
    train, _ = load_cifar(fake.name, "~/datasets", download=False)
    assert len(train) == len(fake.train_labels)


def test_build_data_loads_cifar(fake: FakeCifar, tmp_path: Path) -> None:
    copy_archive(fake, tmp_path)
    bundle = build_data(
        {"name": fake.name, "root": str(tmp_path), "batch_size": 16, "num_workers": 0},
        seed=0,
        device="cpu",
    )
    assert bundle.num_classes == len(fake.classes)
    assert bundle.classes == fake.classes
    images, labels = next(iter(bundle.train))
    assert images.shape == (16, 3, 32, 32) and labels.shape == (16,)
    assert bundle.test.num_samples == len(fake.test_labels)
    assert bundle.val is None


def test_cifar100_stratified_validation_split(archives, monkeypatch, tmp_path: Path) -> None:
    fake = archives["cifar100"]
    fake.patch_checksums(monkeypatch)
    copy_archive(fake, tmp_path)
    bundle = build_data(
        {"name": "cifar100", "root": str(tmp_path), "val_size": 100, "loader": "tensor"},
        seed=0,
        device="cpu",
    )
    assert bundle.train.num_samples == 100 and bundle.val.num_samples == 100
    val_labels = np.concatenate([labels.numpy() for _, labels in bundle.val])
    assert np.array_equal(np.bincount(val_labels, minlength=100), np.ones(100))
