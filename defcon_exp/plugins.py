"""Registries fill themselves: a package's modules register their entries on import, and
:func:`import_submodules` imports them all, so adding an entry is adding its file (plus its
config yaml), never editing a list. No imports from the package: every layer may use it."""

from __future__ import annotations

import importlib
import pkgutil

__all__ = ["import_submodules"]


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (not sub-packages' contents), once."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")
