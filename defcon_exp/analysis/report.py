"""The paper's Table 1 rebuilt from run dirs: one row per model (and scheduler when the runs
differ in scheduler), test top-1 / top-5 as mean ± std over seeds, parameters, forward FLOPs
per image, training images/s, and Welch's t-test of top-1 against ``resnet50`` and ``eca``."""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from defcon_exp.analysis.report_rows import (
    ALPHA,
    BASELINES,
    MIN_SEEDS,
    ReportRow,
    build_rows,
    count_flops,
)
from defcon_exp.analysis.runs import (
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    RunRecord,
    find_run_dirs,
    load_run,
)
from defcon_exp.analysis.stats import WelchResult, p_value_method

__all__ = [
    "BASELINES",
    "MIN_SEEDS",
    "ReportRow",
    "build_rows",
    "config_differences",
    "count_flops",
    "write_report",
]


def _pm(pair: tuple[float, float], digits: int = 2) -> str:
    mean, std = pair
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {'n/a' if math.isnan(std) else f'{std:.{digits}f}'}"


def _speed(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def _test_cell(result: WelchResult | None) -> str:
    if result is None:
        return ""
    if math.isnan(result.p):
        return f"{result.diff:+.2f} (n/a)" if not math.isnan(result.diff) else "n/a"
    mark = " *" if result.significant(ALPHA) else ""
    return f"{result.diff:+.2f} (p={result.p:.3g}){mark}"


def _csv_rows(rows: Sequence[ReportRow]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        record: dict[str, Any] = {
            "model": row.model,
            "data": row.data,
            "scheduler": row.scheduler if row.scheduler is not None else "",
            "n_seeds": row.n_seeds,
            "seeds": " ".join(str(r.seed) for r in row.runs),
            "few_seeds": int(row.few_seeds),
            "n_unfinished": len(row.unfinished),
            "top1_mean": row.top1[0],
            "top1_std": row.top1[1],
            "top5_mean": row.top5[0],
            "top5_std": row.top5[1],
            "params": row.params if row.params is not None else "",
            "flops_per_image": row.flops if row.flops is not None else "",
            "train_images_per_s": row.images_per_s if row.images_per_s is not None else "",
        }
        for base in BASELINES:
            result = row.tests.get(base)
            for name in ("diff", "t", "df", "p"):
                record[f"vs_{base}_{name}"] = getattr(result, name) if result else ""
            significant = result.significant(ALPHA) if result else None
            record[f"vs_{base}_significant"] = "" if significant is None else int(significant)
        out.append({k: ("" if isinstance(v, float) and math.isnan(v) else v) for k, v in record.items()})
    return out


#: the four panels of ``top1_curves.png``: (title, metrics.csv column of each run)
PANELS = (
    ("train loss", "train_loss"),
    ("{split} loss", "{split}_loss"),
    ("train top-1 (%)", "train_top1"),
    ("{split} top-1 (%)", "{split}_top1"),
)
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
LINESTYLES = ("-", "--", "-.", ":")


def curves_figure(rows: Sequence[ReportRow]) -> Any:
    """The 2 x 2 figure of :func:`_plot` (a matplotlib Figure), or None without curves."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    runs = [(row, r) for row in rows for r in row.runs + row.unfinished if r.curves]
    if not runs:
        return None
    split = "val" if any(r.curves.get("val_top1") for _, r in runs) else "test"
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5), sharex=True,
                             layout="constrained")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, column) in zip(axes.flat, PANELS, strict=True):
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
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    axes[0][0].set_ylabel("loss")
    axes[1][0].set_ylabel("top-1 (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right upper", fontsize=8, title="model, seed")
    fig.suptitle(f"{len(runs)} runs: training curves per epoch (metrics.csv)", fontsize=11)
    return fig


def _plot(rows: Sequence[ReportRow], path: Path) -> str:
    """Train and validation (else test) loss and top-1 per epoch, one line per run: colour per
    row, marker and line style per seed (identical curves stay visible); returns a note."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "No plot: matplotlib is not installed (`pip install matplotlib`; it is a "
            "dependency of defcon_exp, so reinstalling the package brings it)."
        )
    fig = curves_figure(rows)
    if fig is None:
        return "No plot: no run has a finished epoch in metrics.csv yet."
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return f"![training curves]({path.name})"


def write_report(
    roots: Iterable[str | os.PathLike], out_dir: str | os.PathLike, flops: bool = True
) -> dict[str, Any]:
    """Find the runs under ``roots``, write ``report.md``, ``report.csv`` and (with
    matplotlib) ``top1_curves.png`` into ``out_dir``; return paths and rows."""
    roots = [Path(r) for r in roots]
    loaded = [load_run(p) for p in find_run_dirs(roots)]  # raises before anything is written
    runs = [r for r in loaded if r.damaged is None]  # a damaged run is skipped, named by the CLI
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, by_scheduler = build_rows(runs, flops=flops)
    records = _csv_rows(rows)
    csv_path = out / "report.csv"
    with csv_path.open("w", newline="") as handle:
        fieldnames = list(records[0]) if records else ["model"]
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(records)
    plot_note = _plot(rows, out / "top1_curves.png") if rows else "No runs, no plot."
    md_path = out / "report.md"
    md_path.write_text(_markdown(roots, runs, rows, by_scheduler, plot_note))
    return {"report_md": md_path, "report_csv": csv_path, "rows": rows, "runs": runs,
            "skipped": [r for r in loaded if r.damaged is not None]}


#: config keys expected to differ between the seeds of one row
NEUTRAL_KEYS = {"seed", "run_dir", "resume", "tags", "trainer.device", "trainer.progress",
                "trainer.log_every_n_steps", "data.num_workers", "data.pin_memory", "data.root"}


def _flat(container: Any, prefix: str = "") -> dict[str, str]:
    if isinstance(container, dict):
        out: dict[str, str] = {}
        for key, value in container.items():
            out.update(_flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: json.dumps(container, default=str)}


def config_differences(runs: Sequence[RunRecord]) -> dict[str, list[str]]:
    """Config keys (dotted) whose values differ among ``runs``, apart from seeds, paths and
    other run-neutral keys: ``{key: sorted distinct values}`` (a missing key counts as ``-``)."""
    flats = [_flat(r.config) for r in runs if r.config]
    keys = set().union(*flats) if flats else set()
    out: dict[str, list[str]] = {}
    for key in sorted(keys - NEUTRAL_KEYS):
        values = {f.get(key, "-") for f in flats}
        if len(values) > 1:
            out[key] = sorted(values)
    return out


def _unfinished_section(runs: Sequence[RunRecord]) -> list[str]:
    """Runs without ``summary.json``: running (lock held), interrupted with a checkpoint (the
    command that resumes it) and failed (stopped before its first checkpoint: the error)."""
    unfinished = [r for r in runs if not r.done]
    if not unfinished:
        return []
    lines = ["", "## Unfinished runs (no summary.json)", ""]
    for run in unfinished:
        what = f"`{run.path}`: {run.model}, {run.data}, seed {run.seed}, {run.epochs_done} epochs"
        if run.state == STATUS_INTERRUPTED:
            lines.append(f"- interrupted (resumable): {what}; resume: `{run.resume_command}`")
        elif run.state == STATUS_RUNNING:
            lines.append(f"- running: {what}")
        else:
            note = f": {run.error}" if run.error else " (see its train.log)"
            lines.append(f"- failed before its first checkpoint: {what}{note}")
    return lines


def _markdown(
    roots: Sequence[Path],
    runs: Sequence[RunRecord],
    rows: Sequence[ReportRow],
    by_scheduler: bool,
    plot_note: str,
) -> str:
    done = sum(r.done for r in runs)
    states = {s: sum(r.state == s for r in runs) for s in (STATUS_RUNNING, STATUS_INTERRUPTED,
                                                           STATUS_FAILED)}
    lines = [
        "# DEFCON runs: Table 1",
        "",
        f"Sources: {', '.join(f'`{r}`' for r in roots)} — {len(runs)} run dirs, {done} finished, "
        f"{states[STATUS_RUNNING]} running, {states[STATUS_INTERRUPTED]} interrupted "
        f"(resumable), {states[STATUS_FAILED]} failed.",
        "",
        "Test top-1 / top-5 (%) are mean ± sample std over seeds (final weights, "
        "`summary.json` `test`). FLOPs: forward pass of one image at the run's evaluation size "
        "(32x32 for CIFAR, `data.eval_crop` for image folders; 2 per multiply-add: the papers' "
        "ImageNet 'GFLOPs' are half) "
        "(`torch.utils.flop_counter`; the deformable 1D op is not counted, a few kFLOPs). "
        "img/s: training throughput, mean over seeds. Δ columns: top-1 difference, Welch's "
        f"t-test two-sided p over seeds (p via {p_value_method()}); `*` = significant at "
        f"p < {ALPHA}. "
        f"`†` = fewer than {MIN_SEEDS} seeds (std and test unreliable or undefined).",
        "",
    ]
    head = ["model", "data", *(["scheduler"] if by_scheduler else []), "seeds", "top-1 (%)", "top-5 (%)",
            "params", "MFLOPs/img", "train img/s", "Δ vs resnet50", "Δ vs eca"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in rows:
        seeds = f"{row.n_seeds}{' †' if row.few_seeds else ''}"
        if row.unfinished:
            seeds += f" (+{len(row.unfinished)} unfinished)"
        cells = [
            row.model,
            row.data,
            *([str(row.scheduler)] if by_scheduler else []),
            seeds,
            _pm(row.top1),
            _pm(row.top5),
            f"{row.params:,}" if row.params is not None else "—",
            f"{row.flops / 1e6:,.1f}" if row.flops is not None else "—",
            _speed(row.images_per_s),
            _test_cell(row.tests.get("resnet50")),
            _test_cell(row.tests.get("eca")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "## Significance (Welch's t-test on test top-1 over seeds)", ""]
    sentences = []
    for row in rows:
        for base, result in row.tests.items():
            if math.isnan(result.p):
                verdict = "cannot be tested (needs ≥ 2 seeds on each side and non-zero variance)"
            else:
                verdict = (
                    f"is {'significant' if result.significant(ALPHA) else 'not significant'} "
                    f"(t = {result.t:.3f}, df = {result.df:.2f}, p = {result.p:.3g})"
                )
            sentences.append(
                f"- {row.label} vs {base}: Δ top-1 {result.diff:+.2f} points {verdict}."
            )
    lines += sentences or ["- No baseline (resnet50 / eca) among the runs, nothing to compare."]
    lines += _unfinished_section(runs)
    differences = [
        f"- {row.label}: runs differ in {key} ({', '.join(values)})"
        for row in rows
        for key, values in config_differences([*row.runs, *row.unfinished]).items()
    ]
    if differences:
        lines += ["", "## Config differences within a row (check these are comparable)", ""]
        lines += differences
    lines += ["", "## Curves", "", plot_note, ""]
    return "\n".join(lines)
