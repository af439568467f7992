"""The curves of ``defcon-report``: ``top1_curves.png`` (top-1 only) and ``loss_curves.png``,
each with a train and a validation (else test) panel, one line per run."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["FIGURES", "agg_pyplot", "curves_figure", "plot_curves", "save_figure"]

#: file -> its two panels: (title, metrics.csv column of each run)
FIGURES = {
    "top1_curves.png": (("train top-1 (%)", "train_top1"), ("{split} top-1 (%)", "{split}_top1")),
    "loss_curves.png": (("train loss", "train_loss"), ("{split} loss", "{split}_loss")),
}
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def agg_pyplot() -> Any:
    """``matplotlib.pyplot`` drawing to files only (the Agg backend); None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(plt: Any, fig: Any, path: Path, **savefig: Any) -> str:
    """Write ``fig`` to ``path`` and close it; the path."""
    fig.savefig(path, **savefig)
    plt.close(fig)
    return str(path)


def curves_figure(rows: Sequence[Any], figure: str = "top1_curves.png") -> Any:
    """The 1 x 2 figure ``figure`` of :data:`FIGURES` (a matplotlib Figure) for report rows
    (:class:`~defcon_exp.analysis.report.ReportRow`), or None without curves. Colour per row,
    marker and line style per seed (identical curves stay visible)."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = [(row, r) for row in rows for r in row.runs + row.unfinished if r.curves]
    if not runs:
        return None
    split = "val" if any(r.curves.get("val_top1") for _, r in runs) else "test"
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True, layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, column) in zip(axes, FIGURES[figure], strict=True):
        column = column.format(split=split)
        for index, row in enumerate(rows):
            members = [r for r in row.runs + row.unfinished if r.curves.get(column)]
            for n, run in enumerate(members):
                epochs, values = zip(*run.curves[column], strict=True)
                ax.plot(epochs, values, color=colours[index % len(colours)],
                        marker=MARKERS[n % len(MARKERS)], linestyle=LINESTYLES[n % len(LINESTYLES)],
                        markersize=4, linewidth=1.2, alpha=0.85,
                        label=f"{row.label}, seed {run.seed}" + ("" if run.done else " (unfinished)"))
        ax.set_title(title.format(split=split), fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.set_xlabel("epoch")
    axes[0].set_ylabel("top-1 (%)" if figure == "top1_curves.png" else "loss")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="model, seed")
    what = "top-1 accuracy" if figure == "top1_curves.png" else "loss"
    fig.suptitle(f"{len(runs)} runs: {what} per epoch (metrics.csv)", fontsize=11)
    return fig


def plot_curves(rows: Sequence[Any], out: Path) -> str:
    """Write :data:`FIGURES` into ``out``; the report's Markdown for them (or why not)."""
    plt = agg_pyplot()
    if plt is None:
        return (
            "No plot: matplotlib is not installed (`pip install matplotlib`; it is a "
            "dependency of defcon_exp, so reinstalling the package brings it)."
        )
    notes = []
    for name in FIGURES:
        fig = curves_figure(rows, name)
        if fig is None:
            return "No plot: no run has a finished epoch in metrics.csv yet."
        save_figure(plt, fig, out / name, dpi=110, bbox_inches="tight")
        notes.append(f"![{name.removesuffix('.png').replace('_', ' ')}]({name})")
    return "\n\n".join(notes)
