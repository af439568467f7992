"""Registries fill themselves: a package's modules register their entries on import, and
:func:`import_submodules` imports them all, so adding an entry is adding its file (plus its
config yaml), never editing a list. No imports from the package: every layer may use it."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["import_submodules", "lazy_attributes"]


def import_submodules(package: str) -> None:
    """Import every module of ``package`` (not sub-packages' contents), once."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"{package}.{info.name}")


def lazy_attributes(package: str, names: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package`` that imports ``package.<names[name]>`` on first
    use of ``name`` (PEP 562): the package's exports cost nothing until they are used."""

    def getattr_(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{names[name]}"), name)

    return getattr_
