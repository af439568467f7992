"""What ``defcon-compare`` does with several checkpoints: rebuild each run by name
(:func:`~defcon_exp.run.checkpoint_tools.load_stored_run`), run every model on the same
seeded subset of the first run's data split, and compare their channel weights
(:mod:`defcon_exp.analysis.compare`)."""

from __future__ import annotations

import gc
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig

from defcon_exp.analysis.compare import RunWeights, collect_channel_weights, compare_runs
from defcon_exp.analysis.compare_plots import plot_comparison
from defcon_exp.config import ConfigError
from defcon_exp.data.registry import get_dataset
from defcon_exp.engine.checkpoint import run_dir_of_checkpoint
from defcon_exp.engine.writers import write_json
from defcon_exp.run.build import model_name
from defcon_exp.run.checkpoint_tools import load_stored_run

__all__ = [
    "DATA_IDENTITY_KEYS",
    "compare_checkpoints",
    "data_identity",
    "default_output_dir",
    "split_subset",
]

#: the data keys that decide which images (and labels) a split holds
DATA_IDENTITY_KEYS = ("name", "num_classes", "data_seed", "val_size")


def data_identity(data_cfg: DictConfig) -> dict[str, Any]:
    """The data config values that fix a split's images (sizes too for generated sets)."""
    keys = list(DATA_IDENTITY_KEYS)
    if get_dataset(data_cfg.name).synthetic:
        keys += ["train_size", "test_size"]
    return {key: data_cfg.get(key) for key in keys}


def split_subset(loader: Any, images: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``images`` images ``Tensor[n, 3, H, W]`` and labels ``Tensor[n]`` of an evaluation
    ``loader`` chosen without replacement by ``seed`` (all of them if it has fewer), in the
    split's order."""
    if hasattr(loader, "set_epoch"):
        loader.set_epoch(0)
    pairs = [(x.cpu(), y.cpu()) for x, y in loader]
    if not pairs:
        raise ConfigError("the data split is empty: nothing to compare")
    all_images = torch.cat([x for x, _ in pairs])
    all_labels = torch.cat([y for _, y in pairs])
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(all_images.shape[0], generator=generator)[:images].sort().values
    return all_images[chosen], all_labels[chosen]


def _check_arguments(
    ckpts: Sequence[str | Path], images: int, split: str, out: str | Path | None
) -> None:
    if len(ckpts) < 2:
        raise ConfigError(f"{len(ckpts)} run(s) given: defcon-compare needs at least two")
    if images < 2:
        raise ConfigError(f"images={images} is invalid: must be >= 2 (CKA needs several images)")
    if split not in ("test", "val"):
        raise ConfigError(f"split={split!r} is invalid: must be 'test' or 'val'")
    if out is not None and Path(out).exists() and not Path(out).is_dir():
        raise ConfigError(
            f"out={str(out)!r} is invalid: it is an existing file; defcon-compare writes a "
            "folder (compare.json, class_maps.npz, PNGs): give a new or existing folder"
        )


def default_output_dir(run_dirs: Sequence[Path]) -> Path:
    """Where a comparison goes without ``out=``: beside the runs, in
    ``<their common parent>/compare/<run names joined by _vs_>`` (``multirun/t1/compare/
    0_vs_1``); a long name keeps the first two and a hash of all."""
    resolved = [p.resolve() for p in run_dirs]
    parent = Path(os.path.commonpath(resolved))
    if parent in resolved:  # one run given twice (its dir and a checkpoint): beside it
        parent = parent.parent
    name = "_vs_".join(p.name for p in resolved)
    if len(name) > 80:
        digest = hashlib.sha1("\n".join(map(str, resolved)).encode()).hexdigest()[:8]
        name = f"{resolved[0].name}_vs_{resolved[1].name}_and_{len(resolved) - 2}_more_{digest}"
    return parent / "compare" / name


def _unique_label(name: str, path: Path, taken: set[str]) -> str:
    run_name = run_dir_of_checkpoint(path).name
    label = name if run_name == name else f"{name} [{run_name}]"
    base, count = label, 2
    while label in taken:
        label, count = f"{base} #{count}", count + 1
    taken.add(label)
    return label


def compare_checkpoints(
    ckpts: Sequence[str | Path],
    overrides: Sequence[str] = (),
    images: int = 256,
    split: str = "test",
    seed: int = 0,
    out: str | Path | None = None,
) -> dict[str, Any]:
    """Compare the channel weights of ``ckpts`` (checkpoint files or run dirs, best
    checkpoint first) on ``images`` images of ``split`` chosen by ``seed``; writes
    ``compare.json``, ``class_maps.npz`` and PNGs into ``out`` (None: :func:`default_output_dir`)
    and returns the result with ``skipped`` (one line per run without channel weights) and
    ``written`` (paths)."""
    _check_arguments(ckpts, images, split, out)
    reference: dict[str, Any] | None = None
    batch: tuple[torch.Tensor, torch.Tensor] | None = None
    runs: list[RunWeights] = []
    run_dirs: list[Path] = []
    skipped, classes = [], []
    taken: set[str] = set()
    for ckpt in ckpts:
        run = load_stored_run(ckpt, overrides, "defcon-compare")
        identity = data_identity(run.cfg.data)
        if reference is None:
            reference, first = identity, run.path
            loader = run.data.test if split == "test" else run.data.val
            if loader is None:
                raise ConfigError(
                    f"split='val' is invalid: {run.path} has no validation split (data.val_size=0)"
                )
            batch, classes = split_subset(loader, images, seed), list(run.data.classes)
        elif identity != reference:
            diff = ", ".join(
                f"data.{k}={reference[k]!r} in {first} but {identity.get(k)!r}"
                for k in reference
                if reference[k] != identity.get(k)
            )
            raise ConfigError(f"runs use different data: {diff} in {run.path}; compare runs of one data set")
        run_dirs.append(run_dir_of_checkpoint(run.path))
        name = run.state.get("model_name") or model_name(run.cfg.model)
        stages = collect_channel_weights(run.model, batch[0].to(run.device))
        if not stages:
            skipped.append(f"skipped {run.path}: {name} has no attention module with channel weights")
        else:
            info = {"checkpoint": str(run.path.resolve()), "model": name, "epoch": run.state.get("epoch")}
            runs.append(RunWeights(_unique_label(name, run.path, taken), stages, info))
        del run
        gc.collect()
    if len(runs) < 2:
        raise ConfigError(
            f"{len(runs)} run(s) with channel weights: defcon-compare needs at least two "
            f"({'; '.join(skipped)})"
        )
    labels = batch[1].numpy()
    result = compare_runs(runs, labels, len(classes))
    result.update(
        split=split, seed=seed, num_images=int(labels.shape[0]), data=reference, skipped=skipped,
        overrides=list(overrides),
    )
    return _write(result, Path(out) if out is not None else default_output_dir(run_dirs), classes)


def _write(result: dict[str, Any], target: Path, classes: list[str]) -> dict[str, Any]:
    target.mkdir(parents=True, exist_ok=True)
    maps = result.pop("class_maps")
    labels = [run["label"] for run in result["runs"]]
    arrays = {
        f"stage{stage}/run{labels.index(label)}": table
        for stage, per_run in maps.items()
        for label, table in per_run.items()
    }
    np.savez_compressed(target / "class_maps.npz", **arrays)
    plots = plot_comparison({**result, "class_maps": maps}, target, classes)
    result["plots"] = plots
    write_json(target / "compare.json", result)
    written = [str(target / "compare.json"), str(target / "class_maps.npz")]
    result["written"] = written + (plots if isinstance(plots, list) else [])
    return result
