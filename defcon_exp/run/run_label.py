"""A run's name in TensorBoard's run selector: what a user compares (the model and the
sweep's overrides), e.g. ``eca_seed=1`` for job ``seed=1`` of ``-m model=se,eca seed=0,1``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from defcon_exp.keys import PLACEMENT_KEYS

__all__ = ["run_label", "sweep_keys"]

#: overrides left out of a run's name: where or how it executes (the placement keys, and its
#: CPU threads), and ``model`` (the name's first part already)
NOT_COMPARED = PLACEMENT_KEYS | {"model", "trainer.num_threads"}
MAX_LENGTH = 120
#: a single run's name: its folder path already makes it unique
SINGLE_RUN_LENGTH = 40


def _key(override: str) -> str:
    return override.lstrip("+~").partition("=")[0]


def sweep_keys(sweep_dir: str | Path) -> set[str] | None:
    """Keys a ``-m`` sweep varies (a comma list or a sweep function in the command line Hydra
    saved as ``<sweep dir>/multirun.yaml``), or None when that record is missing."""
    path = Path(sweep_dir) / "multirun.yaml"
    try:
        task = OmegaConf.load(path).hydra.overrides.task
    except Exception:
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides([str(t) for t in task])
    except Exception:
        return None
    return {o.get_key_element() for o in parsed if o.is_sweep_override()}


def run_label(model_name: str, overrides: Sequence[str], hydra_cfg: Any = None) -> str:
    """``<model>_<key=value>_...``: the model name and the overrides that tell this run from
    its siblings (in a sweep: only the keys the sweep varies), safe as a folder name."""
    keys = None
    if hydra_cfg is not None and str(hydra_cfg.mode).endswith("MULTIRUN"):
        keys = sweep_keys(hydra_cfg.sweep.dir)
    shown = [
        o for o in overrides
        if not _key(o).startswith(("hydra.", "hydra/", "search.")) and _key(o) not in NOT_COMPARED
        and (keys is None or _key(o) in keys)
    ]
    if keys is None:  # a single run: short keys, and only what fits the run selector
        return _short_label(model_name, shown)
    label = "_".join([model_name, *shown])
    label = re.sub(r"[^\w.,=+\-]+", "-", label)
    return label if len(label) <= MAX_LENGTH else label[: MAX_LENGTH - 3] + "..."


def _short_label(model_name: str, overrides: Sequence[str]) -> str:
    """``eca_lr=0.05_epochs=100_+2`` for ``model=eca optim.lr=0.05 trainer.epochs=100 ...``:
    each override by its last key part, as many as fit :data:`SINGLE_RUN_LENGTH` characters,
    then how many more (the run's config.yaml has them all)."""
    parts = [model_name]
    for done, override in enumerate(overrides):
        key, _, value = override.lstrip("+~").partition("=")
        part = re.sub(r"[^\w.,=+\-]+", "-", f"{key.rpartition('.')[2]}={value}")
        if len("_".join([*parts, part])) > SINGLE_RUN_LENGTH:
            parts.append(f"+{len(overrides) - done}")
            break
        parts.append(part)
    return "_".join(parts)
