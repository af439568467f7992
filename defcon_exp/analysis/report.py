"""The paper's Table 1 rebuilt from run dirs: one row per model (and scheduler when the runs
differ in scheduler), test top-1 / top-5 as mean ± std over seeds, parameters, forward FLOPs
per image, training images/s, and Welch's t-test of top-1 against ``resnet50`` and ``eca``."""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from defcon_exp.analysis.report_csv import csv_records
from defcon_exp.analysis.report_plots import plot_curves
from defcon_exp.analysis.runs import (
    STATUS_FAILED,
    STATUS_INTERRUPTED,
    STATUS_RUNNING,
    RunRecord,
    find_run_dirs,
    load_run,
)
from defcon_exp.analysis.stats import WelchResult, mean_std, p_value_method, welch_t_test
from defcon_exp.data.registry import DATASETS
from defcon_exp.engine.rates import SPEED_NOTE, format_rate

__all__ = [
    "BASELINES",
    "MIN_SEEDS",
    "ReportRow",
    "build_rows",
    "config_differences",
    "count_flops",
    "write_report",
]

log = logging.getLogger(__name__)

#: rows fewer seeds than this are marked (too few for a meaningful std / t-test)
MIN_SEEDS = 3
#: every model is compared with these (when present)
BASELINES = ("resnet50", "eca")
ALPHA = 0.05
#: classes per dataset when the data config does not say


@dataclass
class ReportRow:
    """One table row: the finished runs of one model (and scheduler) aggregated over seeds."""

    model: str
    scheduler: str | None
    runs: list[RunRecord]
    unfinished: list[RunRecord]
    data: str = "?"
    several_data: bool = False  # the report spans several data sets: the label names it
    top1: tuple[float, float] = (math.nan, math.nan)
    top5: tuple[float, float] = (math.nan, math.nan)
    params: int | None = None
    flops: int | None = None
    images_per_s: float | None = None
    tests: dict[str, WelchResult] = field(default_factory=dict)

    @property
    def n_seeds(self) -> int:
        """Number of finished runs (seeds) in this row."""
        return len(self.runs)

    @property
    def few_seeds(self) -> bool:
        """Fewer than :data:`MIN_SEEDS` finished runs."""
        return self.n_seeds < MIN_SEEDS

    @property
    def top1_values(self) -> list[float]:
        """Test top-1 of every finished run."""
        return [r.test_top1 for r in self.runs if r.test_top1 is not None]

    @property
    def label(self) -> str:
        """``model``, ``model / scheduler``, plus `` (data)`` when the report spans data sets."""
        label = self.model if self.scheduler is None else f"{self.model} / {self.scheduler}"
        return f"{label} ({self.data})" if self.several_data else label


_FLOPS_CACHE: dict[str, tuple[int, int]] = {}


def count_flops(model_cfg: dict[str, Any], num_classes: int) -> tuple[int, int]:
    """``(forward FLOPs per 32x32 image, trainable parameters)`` of the model ``model_cfg``
    builds, counted with ``torch.utils.flop_counter`` on the CPU and cached per config.

    The deformable 1D op is a custom autograd function the counter does not see (a few
    kFLOPs per module), as in ``scripts/bench_models.py``.
    """
    key = json.dumps([model_cfg, num_classes], sort_keys=True, default=str)
    if key not in _FLOPS_CACHE:
        import torch
        from torch.utils.flop_counter import FlopCounterMode

        from defcon_exp.models import count_parameters, model_from_config

        model = model_from_config(model_cfg, num_classes, torch.device("cpu"))
        model.eval()
        params = count_parameters(model)
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.randn(1, 3, 32, 32))
        _FLOPS_CACHE[key] = (int(counter.get_total_flops()), int(params))
    return _FLOPS_CACHE[key]


def _num_classes(config: dict[str, Any]) -> int:
    data = config.get("data") or {}
    if data.get("num_classes"):
        return int(data["num_classes"])
    spec = DATASETS.get(str(data.get("name")))
    return spec.classes_for(data.get("num_classes")) if spec is not None else 100


def build_rows(runs: Sequence[RunRecord], flops: bool = True) -> tuple[list[ReportRow], bool]:
    """Group ``runs`` into rows; returns ``(rows, split_by_scheduler)``.

    Rows are keyed by model, plus scheduler when the runs use more than one. Each row is
    compared with the ``resnet50`` and ``eca`` rows of the same scheduler (Welch, top-1).
    """
    schedulers = {r.scheduler for r in runs}
    by_scheduler = len(schedulers) > 1
    several_data = len({r.data for r in runs}) > 1
    groups: dict[tuple[str, str | None, str], list[RunRecord]] = {}
    for run in runs:
        key = (run.model, run.scheduler if by_scheduler else None, run.data)
        groups.setdefault(key, []).append(run)
    rows: list[ReportRow] = []
    for (model, scheduler, data), members in groups.items():
        done = sorted((r for r in members if r.done), key=lambda r: (r.seed is None, r.seed or 0))
        row = ReportRow(model, scheduler, done, [r for r in members if not r.done], data,
                        several_data)
        row.top1 = mean_std([r.test_top1 for r in done if r.test_top1 is not None])
        row.top5 = mean_std([r.test_top5 for r in done if r.test_top5 is not None])
        speeds = [r.images_per_s for r in done if r.images_per_s is not None]
        row.images_per_s = sum(speeds) / len(speeds) if speeds else None
        params = [r.num_params for r in done if r.num_params is not None]
        row.params = params[0] if params else None
        if flops:
            source = next((r for r in [*done, *row.unfinished] if r.config.get("model")), None)
            if source is not None:
                try:
                    row.flops, built_params = count_flops(
                        source.config["model"], _num_classes(source.config)
                    )
                    row.params = row.params if row.params is not None else built_params
                except Exception as err:  # a stale config must not stop the report
                    log.warning("FLOPs of %s: %s", model, err)
        rows.append(row)
    order = {name: i for i, name in enumerate(BASELINES)}
    rows.sort(key=lambda r: (r.data, str(r.scheduler), order.get(r.model, len(order)), r.model))
    for row in rows:
        for base in BASELINES:
            other = next(
                (o for o in rows
                 if o.model == base and o.scheduler == row.scheduler and o.data == row.data),
                None,
            )
            if other is not None and other is not row:
                row.tests[base] = welch_t_test(row.top1_values, other.top1_values)
    return rows, by_scheduler


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
    runs = [load_run(p) for p in find_run_dirs(roots)]  # raises before anything is written
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rows, by_scheduler = build_rows(runs, flops=flops)
    records = csv_records(rows, BASELINES, ALPHA)
    csv_path = out / "report.csv"
    with csv_path.open("w", newline="") as handle:
        fieldnames = list(records[0]) if records else ["model"]
        writer = csv.DictWriter(handle, fieldnames=fieldnames)
        writer.writeheader()
        writer.writerows(records)
    plot_note = plot_curves(rows, out) if rows else "No runs, no plot."
    md_path = out / "report.md"
    md_path.write_text(_markdown(roots, runs, rows, by_scheduler, plot_note))
    return {"report_md": md_path, "report_csv": csv_path, "rows": rows, "runs": runs}


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
        "`summary.json` `test`). FLOPs: forward pass of one 32x32 image "
        "(`torch.utils.flop_counter`; the deformable 1D op is not counted, a few kFLOPs). "
        f"train img/s: training throughput, mean over seeds; {SPEED_NOTE}. Δ columns: top-1 difference, Welch's "
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
            format_rate(row.images_per_s),
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
