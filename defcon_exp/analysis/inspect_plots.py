"""Plots of ``defcon-inspect``'s statistics: one PNG per stage with its histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["plot_statistics"]


def plot_statistics(stats: dict[str, Any], target: Path) -> list[str] | str:
    """One PNG per stage with the histograms; a note when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib not installed: no PNGs (pip install matplotlib; it is a dependency of defcon_exp)"
    written = []
    titles = {
        "weight_hist": "channel weight",
        "offset_hist": "learned offset",
        "distance_hist": "|sampled channel - c|",
    }
    for stage, values in stats["stages"].items():
        hists = [(n, values[n]) for n in titles if n in values]
        if not hists:
            continue
        fig, axes = plt.subplots(1, len(hists), figsize=(4 * len(hists), 3), squeeze=False)
        for ax, (name, hist) in zip(axes[0], hists, strict=True):
            edges = hist["edges"]
            ax.stairs(hist["counts"], edges)
            ax.set_title(f"stage {stage}: {titles[name]}", fontsize=9)
        fig.tight_layout()
        path = target / f"inspect_stage{stage}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(str(path))
    return written
