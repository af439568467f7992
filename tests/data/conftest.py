"""Fixtures of the data tests: tiny CIFAR archives, built once per session."""

from __future__ import annotations

import pytest

from .fake_cifar import FakeCifar, make_fake_cifar10, make_fake_cifar100


@pytest.fixture(scope="session")
def archives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, FakeCifar]:
    """``{"cifar100": ..., "cifar10": ...}`` archives in a session-wide folder (read-only:
    copy the archive into a test's own folder before using it)."""
    out = tmp_path_factory.mktemp("fake_cifar")
    return {"cifar100": make_fake_cifar100(out), "cifar10": make_fake_cifar10(out)}


@pytest.fixture(params=["cifar100", "cifar10"])
def fake(request: pytest.FixtureRequest, archives: dict[str, FakeCifar], monkeypatch) -> FakeCifar:
    """One fake archive, with the torchvision class's checksums patched to match it."""
    cifar = archives[request.param]
    cifar.patch_checksums(monkeypatch)
    return cifar
