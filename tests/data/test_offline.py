"""Offline behaviour: a missing CIFAR archive that cannot be downloaded fails fast with one
clear message, and the failed attempt leaves nothing behind."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from torchvision.datasets import CIFAR10, CIFAR100

from defcon_exp.data import DataConfig, DatasetNotFoundError, build_data
from defcon_exp.data.cifar import load_cifar

from .fake_cifar import tree


@pytest.fixture
def unreachable_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Point both CIFAR classes at a loopback port nobody listens on: the download fails
    at once, as it does without a network (tests never depend on the real network)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    for cls in (CIFAR100, CIFAR10):
        monkeypatch.setattr(cls, "url", f"http://127.0.0.1:{port}/{cls.filename}")


CASES = [("cifar100", "cifar-100-python.tar.gz", "cifar-100-python"),
         ("cifar10", "cifar-10-python.tar.gz", "cifar-10-batches-py")]  # fmt: skip


@pytest.mark.parametrize(("name", "archive", "folder"), CASES)
def test_failed_download_message_and_nothing_left(
    name: str, archive: str, folder: str, tmp_path: Path, unreachable_urls
) -> None:
    root = tmp_path / "not" / "yet" / "there"
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar(name, root, download=True)
    message = str(info.value)
    assert f"{root / archive} is missing" in message
    assert f"in {root}/" in message  # the exact absolute folder to put it in
    assert folder in message  # ... or the extracted folder
    assert "data.root=/path/to/folder" in message
    assert "data.download=false" in message
    assert "URLError" in message or "Connection" in message  # why the download failed
    assert "\n" not in message and "Traceback" not in message
    assert tree(tmp_path) == set()  # the folders the attempt created are gone again


def test_existing_root_and_user_files_are_kept(tmp_path: Path, unreachable_urls) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    (tmp_path / "other").mkdir()
    before = tree(tmp_path)
    with pytest.raises(DatasetNotFoundError):
        load_cifar("cifar100", tmp_path, download=True)
    assert tree(tmp_path) == before
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_no_download_gives_the_same_message_without_attempt(tmp_path: Path) -> None:
    root = tmp_path / "absent"
    with pytest.raises(DatasetNotFoundError) as info:
        load_cifar("cifar100", root, download=False)
    message = str(info.value)
    assert f"{root / 'cifar-100-python.tar.gz'} is missing" in message
    assert "no download was attempted" in message
    assert "data.root=/path/to/folder" in message
    assert not root.exists()


def test_relative_root_is_reported_absolute(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DatasetNotFoundError) as info:
        build_data(OmegaConf.structured(DataConfig(download=False)), seed=0, device="cpu")
    assert f"in {tmp_path / 'data'}/" in str(info.value)


def test_error_is_a_runtime_error_subclass() -> None:
    assert issubclass(DatasetNotFoundError, RuntimeError)
