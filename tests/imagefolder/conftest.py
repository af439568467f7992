"""Image-folder tests: the tiny JPEG folder helper, and the tiny test models of the
reliability and distributed tests importable (here and, via PYTHONPATH, in subprocesses)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
FOLDERS = [HERE, HERE.parent / "reliability", HERE.parent / "distributed", HERE.parent / "cli"]
for folder in FOLDERS:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

@pytest.fixture(scope="session")
def image_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 classes x (8 train + 4 val) JPEGs of 40-48 px (read-only: copy before changing)."""
    from image_folder import make_image_folder

    return make_image_folder(tmp_path_factory.mktemp("images"), classes=3, train_per_class=8)
