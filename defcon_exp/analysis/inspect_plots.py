"""Plots of ``defcon-inspect``'s statistics: one PNG per stage with its histograms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from defcon_exp.analysis.report_plots import agg_pyplot, save_figure

__all__ = ["TITLES", "plot_statistics", "stage_figure"]


TITLES = {  # histogram -> (panel title, x axis label)
    "weight_hist": ("channel weights", "gated channel weight"),
    "offset_hist": ("learned offsets", "offset (channels)"),
    "distance_hist": ("reach per tap", "|sampled channel - own channel|"),
}


def stage_figure(stats: dict[str, Any], stage: str, values: dict[str, Any]) -> Any:
    """One stage's histograms as a matplotlib Figure titled with model, run, epoch and
    stage (None when the stage has no histograms)."""
    import matplotlib.pyplot as plt

    run = Path(str(stats.get("checkpoint", ""))).parent.parent.name or "?"
    hists = [(n, values[n]) for n in TITLES if n in values]
    if not hists:
        return None
    fig, axes = plt.subplots(1, len(hists), figsize=(4 * len(hists), 3.4), squeeze=False)
    for ax, (name, hist) in zip(axes[0], hists, strict=True):
        edges = hist["edges"]
        ax.stairs(hist["counts"], edges)
        title, xlabel = TITLES[name]
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("count (channels x taps x images)" if name != "weight_hist"
                      else "count (channels x images)", fontsize=8)
        if name == "distance_hist" and values.get("kernel_size"):
            half = max(values["kernel_size"]) // 2
            ax.axvline(half, color="grey", linestyle="--", linewidth=0.8, label="k//2")
            ax.legend(fontsize=7)
    fig.suptitle(
        f"{stats.get('model')} (run {run}), epoch {stats.get('epoch')}, stage {stage} "
        f"(C={values.get('channels')}): {stats.get('num_images')} {stats.get('split')} images",
        fontsize=9,
    )
    return fig


def plot_statistics(stats: dict[str, Any], target: Path) -> list[str] | str:
    """One PNG per stage with the histograms; a note when matplotlib is missing."""
    plt = agg_pyplot()
    if plt is None:
        return "matplotlib not installed: no PNGs (pip install matplotlib; it is a dependency of defcon_exp)"
    written = []
    for stage, values in stats["stages"].items():
        fig = stage_figure(stats, stage, values)
        if fig is None:
            continue
        fig.tight_layout()
        written.append(save_figure(plt, fig, target / f"inspect_stage{stage}.png", dpi=100))
    return written
