"""Plots of ``defcon-compare``: per stage, the runs' agreement heatmaps and their per-class
channel-weight maps (matplotlib, Agg backend)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_comparison"]

AGREEMENT_PANELS = (
    ("cka", "linear CKA"),
    ("spearman_per_image", "Spearman rho (mean over images)"),
)
#: above this many classes the class axis shows ticks, not names
MAX_CLASS_NAMES = 20


def plot_comparison(
    result: dict[str, Any], target: Path, class_names: list[str] | None = None
) -> list[str] | str:
    """Write ``agreement_stage<S>.png`` and ``class_map_stage<S>.png`` per stage into
    ``target``; the written paths, or a note when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
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
    path = target / f"agreement_stage{stage}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)


def _class_maps(
    plt: Any,
    stage: str,
    maps: dict[str, np.ndarray],
    labels: list[str],
    class_names: list[str] | None,
    target: Path,
) -> str:
    fig, axes = plt.subplots(len(labels), 1, figsize=(10, 2.4 * len(labels) + 0.6), squeeze=False)
    for ax, label in zip(axes[:, 0], labels, strict=True):
        table = maps[label]
        image = ax.imshow(table, aspect="auto", interpolation="nearest", cmap="magma")
        ax.set_title(f"{label}: mean channel weight per class, stage {stage}", fontsize=10)
        ax.set_xlabel(f"channel (of {table.shape[1]})")
        ax.set_ylabel("class")
        if class_names and len(class_names) == table.shape[0] <= MAX_CLASS_NAMES:
            ax.set_yticks(range(len(class_names)), class_names, fontsize=7)
        fig.colorbar(image, ax=ax, fraction=0.025, pad=0.01, label="weight")
    fig.tight_layout()
    path = target / f"class_map_stage{stage}.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return str(path)
