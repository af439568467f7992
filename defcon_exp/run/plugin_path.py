"""Make the packaged Hydra sweeper plugin visible to Hydra's plugin scan in editable installs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

PLUGIN_PACKAGE = "hydra_plugins.defcon_optuna_sweeper"


def expose_sweeper_plugin() -> None:
    """Hydra finds plugins with ``pkgutil.walk_packages(hydra_plugins.__path__)``. An editable
    install (``pip install -e .``, setuptools' import-hook finder) puts a placeholder instead of
    our folder in that namespace path, which pkgutil cannot list, so ``hydra/sweeper=optuna``
    would be an "Unknown plugin class". Adding the real folder fixes the scan; with a normal
    install the folder is already there and nothing changes."""
    try:
        import hydra_plugins

        spec = importlib.util.find_spec(PLUGIN_PACKAGE)
    except ImportError:
        return
    if spec is None or not spec.submodule_search_locations:
        return
    folder = str(Path(next(iter(spec.submodule_search_locations))).parent)
    if folder not in list(hydra_plugins.__path__):
        hydra_plugins.__path__.append(folder)
