"""The paper's Table 1 rebuilt from run dirs: one row per model (and scheduler when the runs
differ in scheduler), test top-1 / top-5 as mean ± std over seeds, parameters, forward FLOPs
per image, training images/s, and Welch's t-test of top-1 against ``resnet50`` and ``eca``."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from defcon_exp.analysis.report_csv import csv_records, write_csv
from defcon_exp.analysis.report_plots import plot_curves
from defcon_exp.analysis.report_rows import ALPHA, BASELINES, MIN_SEEDS, ReportRow, build_rows
from defcon_exp.analysis.runs import (
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    RunRecord,
    find_run_dirs,
    load_run,
)
from defcon_exp.analysis.stats import WelchResult, p_value_method
from defcon_exp.keys import PLACEMENT_KEYS, flat_items
from defcon_exp.rates import SPEED_NOTE, format_rate

__all__ = ["config_differences", "write_report"]


def _pm(pair: tuple[float, float], digits: int = 2) -> str:
    mean, std = pair
    if math.isnan(mean):
        return "—"
    return f"{mean:.{digits}f} ± {'n/a' if math.isnan(std) else f'{std:.{digits}f}'}"


def _test_cell(result: WelchResult | None) -> str:
    if result is None:
        return ""
    if math.isnan(result.p):
        return f"{result.diff:+.2f} (n/a)" if not math.isnan(result.diff) else "n/a"
    mark = " *" if result.significant(ALPHA) else ""
    return f"{result.diff:+.2f} (p={result.p:.3g}){mark}"


def write_report(
    roots: Iterable[str | os.PathLike], out_dir: str | os.PathLike, flops: bool = True
) -> dict[str, Any]:
    """Find the runs under ``roots``, write ``report.md``, ``report.csv`` and (with
    matplotlib) ``top1_curves.png`` and ``loss_curves.png`` into ``out_dir``; return paths and rows."""
    roots = [Path(r) for r in roots]
    loaded = [load_run(p) for p in find_run_dirs(roots)]  # raises before anything is written
    runs = [r for r in loaded if r.damaged is None]  # a damaged run is skipped, named by the CLI
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, by_scheduler = build_rows(runs, flops=flops)
    records = csv_records(rows, BASELINES, ALPHA)
    csv_path = write_csv(out / "report.csv", records, list(records[0]) if records else ["model"])
    plot_note = plot_curves(rows, out) if rows else "No runs, no plot."
    md_path = out / "report.md"
    md_path.write_text(_markdown(roots, runs, rows, by_scheduler, plot_note))
    return {"report_md": md_path, "report_csv": csv_path, "rows": rows, "runs": runs,
            "skipped": [r for r in loaded if r.damaged is not None]}


#: besides the placement keys, config keys expected to differ between the seeds of one row
ROW_NEUTRAL = frozenset({"seed", "tags", "trainer.log_every_n_steps"})
#: config keys whose differences among a row's runs the report does not list
NEUTRAL_KEYS = PLACEMENT_KEYS | ROW_NEUTRAL


def config_differences(runs: Sequence[RunRecord]) -> dict[str, list[str]]:
    """Config keys (dotted) whose values differ among ``runs``, apart from seeds, paths and
    other run-neutral keys: ``{key: sorted distinct values}`` (a missing key counts as ``-``)."""
    flats = [{k: json.dumps(v, default=str) for k, v in flat_items(r.config)}
             for r in runs if r.config]
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


def _header(roots: Sequence[Path], runs: Sequence[RunRecord]) -> list[str]:
    """The title, the sources with their run counts, and what the columns mean."""
    done = sum(r.done for r in runs)
    states = {s: sum(r.state == s for r in runs) for s in (STATUS_RUNNING, STATUS_INTERRUPTED,
                                                           STATUS_FAILED)}
    return [
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
        f"train img/s: training throughput, mean over seeds; {SPEED_NOTE}. Δ columns: top-1 difference, Welch's "
        f"t-test two-sided p over seeds (p via {p_value_method()}); `*` = significant at "
        f"p < {ALPHA}. "
        f"`†` = fewer than {MIN_SEEDS} seeds (std and test unreliable or undefined).",
        "",
    ]


def _table(rows: Sequence[ReportRow], by_scheduler: bool) -> list[str]:
    """Table 1: a row per (model, data[, scheduler])."""
    head = ["model", "data", *(["scheduler"] if by_scheduler else []), "seeds", "top-1 (%)", "top-5 (%)",
            "params", "MFLOPs/img", "train img/s", "Δ vs resnet50", "Δ vs eca"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
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
            format_rate(row.images_per_s),
            _test_cell(row.tests.get("resnet50")),
            _test_cell(row.tests.get("eca")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _significance_section(rows: Sequence[ReportRow]) -> list[str]:
    """A sentence per (row, baseline) Welch test."""
    lines = ["", "## Significance (Welch's t-test on test top-1 over seeds)", ""]
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
    return lines + (sentences or ["- No baseline (resnet50 / eca) among the runs, nothing to compare."])


def _differences_section(rows: Sequence[ReportRow]) -> list[str]:
    """The config keys on which the runs of a row differ (none: no section)."""
    differences = [
        f"- {row.label}: runs differ in {key} ({', '.join(values)})"
        for row in rows
        for key, values in config_differences([*row.runs, *row.unfinished]).items()
    ]
    if not differences:
        return []
    return ["", "## Config differences within a row (check these are comparable)", "", *differences]


def _markdown(
    roots: Sequence[Path],
    runs: Sequence[RunRecord],
    rows: Sequence[ReportRow],
    by_scheduler: bool,
    plot_note: str,
) -> str:
    lines = [*_header(roots, runs), *_table(rows, by_scheduler), *_significance_section(rows)]
    lines += [*_unfinished_section(runs), *_differences_section(rows)]
    return "\n".join([*lines, "", "## Curves", "", plot_note, ""])
