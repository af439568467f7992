"""Plots of ``defcon-compare``: per stage, the runs' agreement heatmaps and their per-class
channel-weight maps (matplotlib, Agg backend)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from defcon_exp.analysis.report_plots import agg_pyplot, save_figure

__all__ = ["binned_columns", "distinct_classes", "plot_comparison"]

AGREEMENT_PANELS = (
    ("cka", "linear CKA"),
    ("spearman_per_image", "Spearman rho (mean over images)"),
)
#: above this many classes the class axis shows ticks, not names
MAX_CLASS_NAMES = 20
#: above this many channels a class map averages adjacent channels into one column
MAX_COLUMNS = 512
MAX_CLASS_ROWS = 20  # more classes: the most distinct ones (distinct_classes)


def plot_comparison(
    result: dict[str, Any], target: Path, class_names: list[str] | None = None
) -> list[str] | str:
    """Write ``agreement_stage<S>.png`` and ``class_map_stage<S>.png`` per stage into
    ``target``; the written paths, or a note when matplotlib is missing."""
    plt = agg_pyplot()
    if plt is None:
        return "matplotlib not installed: no PNGs (install the `plot` extra)"
    written = []
    labels = [run["label"] for run in result["runs"]]
    for stage, values in result["stages"].items():
        written.append(_agreement(plt, stage, values["matrices"], labels, target))
        written.append(
            _class_maps(plt, stage, result["class_maps"][stage], labels, class_names, target)
        )
    return written


def _agreement(plt: Any, stage: str, matrices: dict, labels: list[str], target: Path) -> str:
    size = max(3.5, 0.9 * len(labels) + 2.0)
    fig, axes = plt.subplots(1, len(AGREEMENT_PANELS), figsize=(2 * size + 1, size), squeeze=False)
    for ax, (metric, title) in zip(axes[0], AGREEMENT_PANELS, strict=True):
        table = np.array(
            [[np.nan if v is None else v for v in row] for row in matrices[metric]], dtype=float
        )
        low = 0.0 if metric == "cka" else -1.0
        image = ax.imshow(table, vmin=low, vmax=1.0, cmap="viridis")
        ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=8)
        ax.set_yticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlabel("run")
        ax.set_ylabel("run")
        ax.set_title(f"stage {stage}: {title}", fontsize=10)
        for (i, j), value in np.ndenumerate(table):
            text = "n/a" if np.isnan(value) else f"{value:.2f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=8, color="w" if value < 0.5 else "k")
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    return save_figure(plt, fig, target / f"agreement_stage{stage}.png", dpi=100)


def binned_columns(table: np.ndarray, max_columns: int = MAX_COLUMNS) -> tuple[np.ndarray, int]:
    """``[K, C]`` -> ``([K, ceil(C / w)], w)``: the mean of each ``w`` adjacent channels
    (``w = 1`` when ``C <= max_columns``), so 2,048 channels stay visible on a page."""
    width = max(1, -(-table.shape[1] // max_columns))
    if width == 1:
        return table, 1
    padded = np.full((table.shape[0], -(-table.shape[1] // width) * width), np.nan)
    padded[:, : table.shape[1]] = table
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN class row stays NaN
        return np.nanmean(padded.reshape(table.shape[0], -1, width), axis=2), width


def distinct_classes(table: np.ndarray, count: int) -> np.ndarray:
    """Row indices of the ``count`` classes whose ``[classes, C]`` map differs most from the
    mean over classes (RMS over channels; classes without images last), in class order."""
    deviation = np.sqrt(np.nanmean((table - np.nanmean(table, axis=0)) ** 2, axis=1))
    deviation = np.where(np.isnan(deviation), -np.inf, deviation)
    return np.sort(np.argsort(-deviation, kind="stable")[:count])


def _class_maps(
    plt: Any,
    stage: str,
    maps: dict[str, np.ndarray],
    labels: list[str],
    class_names: list[str] | None,
    target: Path,
) -> str:
    """One panel per run on ONE colour scale (the panels are comparable), channels binned
    above :data:`MAX_COLUMNS`; above :data:`MAX_CLASS_ROWS` classes (ImageNet's 1,000) the
    most distinct classes of the first run, the same rows for every run, named."""
    total = maps[labels[0]].shape[0]
    rows = np.arange(total)
    if total > MAX_CLASS_ROWS:
        rows = distinct_classes(maps[labels[0]], MAX_CLASS_ROWS)
    names = [class_names[i] for i in rows] if class_names and len(class_names) == total else None
    shown = {label: maps[label][rows] for label in labels}
    finite = [t[np.isfinite(t)] for t in shown.values()]
    values = np.concatenate(finite) if finite else np.array([])
    low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
    panel = min(6.0, max(2.2, 0.045 * len(rows) + 1.2))
    fig, axes = plt.subplots(len(labels), 1, figsize=(14, panel * len(labels) + 0.8),
                             squeeze=False)
    image = None
    for ax, label in zip(axes[:, 0], labels, strict=True):
        table, width = binned_columns(shown[label])
        channels = shown[label].shape[1]
        image = ax.imshow(table, aspect="auto", interpolation="nearest", cmap="magma",
                          vmin=low, vmax=high,  # the x axis counts channels, not columns
                          extent=(-0.5, table.shape[1] * width - 0.5, len(rows) - 0.5, -0.5))
        ax.set_title(f"{label}: mean channel weight per class, stage {stage}", fontsize=10)
        ax.set_xlabel(f"channel (of {channels})" if width == 1
                      else f"channel (of {channels}; each column = mean of {width} channels)")
        ax.set_ylabel(f"{len(rows)} of {total} classes (most distinct in {labels[0]})"
                      if len(rows) < total else "class", fontsize=8)
        if names and len(names) <= MAX_CLASS_NAMES:
            ax.set_yticks(range(len(names)), names, fontsize=7)
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    colour_axis = fig.add_axes((0.915, 0.1, 0.012, 0.8))
    fig.colorbar(image, cax=colour_axis, label="mean weight (one scale, all panels)")
    return save_figure(plt, fig, target / f"class_map_stage{stage}.png", dpi=110)
