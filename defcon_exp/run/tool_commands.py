"""What the tools do once their command line is parsed (:mod:`defcon_exp.cli.args`): call the
run or analysis layer, print the result, and turn a user error into one line on stderr and
an exit code (0 ok, 1 user error, 2 usage).

Each function takes the tool's key values (``values``: the keys are the called function's
parameters) and its bare arguments or config overrides. Torch and the analysis modules load
inside them: ``--help`` and usage errors answer without them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["compare", "error", "evaluate", "inspect", "params", "report"]


def error(prog: str, err: BaseException | str, code: int = 1) -> int:
    """One line ``<prog>: error: <err>`` on stderr; returns ``code``."""
    print(f"{prog}: error: {err}", file=sys.stderr)
    return code



def evaluate(values: dict[str, Any], overrides: Sequence[str]) -> int:
    """Evaluate a checkpoint, print top-1 / top-5 / loss and where it went."""
    from defcon_exp.run.checkpoint_tools import evaluate_checkpoint
    from defcon_exp.run.job import USER_ERRORS

    try:  # the tool's keys are the function's parameters
        result = evaluate_checkpoint(overrides=overrides, **values)
    except USER_ERRORS as err:
        return error("defcon-eval", err)
    print(
        f"{result['split']}: top1 {result['top1']:.2f}  top5 {result['top5']:.2f}  loss {result['loss']:.4f}"
        f"  ({result['num_images']} images, epoch {result['epoch']}, {result['weights']} weights)"
        f" -> {result['written_to']}"
    )
    return 0


def inspect(values: dict[str, Any], overrides: Sequence[str]) -> int:
    """Per-stage attention statistics of a checkpoint, table and plots."""
    from defcon_exp.analysis.inspect import format_table, reach_note
    from defcon_exp.run.checkpoint_tools import inspect_checkpoint
    from defcon_exp.run.job import USER_ERRORS

    try:  # the tool's keys are the function's parameters
        stats = inspect_checkpoint(overrides=overrides, **values)
    except USER_ERRORS as err:
        return error("defcon-inspect", err)
    print(
        f"{stats['model']} ({stats['attention'] or 'no attention'}), epoch {stats['epoch']}, "
        f"{stats['num_images']} {stats['split']} images of {stats['data']}"
    )
    if stats["stages"]:
        print(format_table(stats))
        if any("share_beyond_half_width" in v for v in stats["stages"].values()):
            print(reach_note())
    else:
        print("no attention modules in this model: nothing to inspect")
    plots = stats["plots"]
    for line in [plots] if isinstance(plots, str) else [f"-> {path}" for path in plots]:
        print(line)
    print(f"-> {stats['written_to']}")
    return 0


def compare(values: dict[str, Any], positional: Sequence[str], overrides: Sequence[str]) -> int:
    """The runs' channel attention on the same images, tables and plots."""
    from defcon_exp.analysis.compare import format_comparison
    from defcon_exp.run.compare_tools import compare_checkpoints
    from defcon_exp.run.job import USER_ERRORS

    try:  # the tool's keys are the function's parameters
        result = compare_checkpoints(positional, overrides, **values)
    except USER_ERRORS as err:
        return error("defcon-compare", err)
    for line in result["skipped"]:
        print(line)
    print(f"{result['num_images']} {result['split']} images of {result['data']['name']} "
          f"(seed {result['seed']}), {len(result['runs'])} runs")
    print(format_comparison(result))
    if isinstance(result["plots"], str):
        print(result["plots"])
    for path in result["written"]:
        print(f"-> {path}")
    return 0


def _search_report(dirs: Sequence[Path], out: Path | None) -> int:
    """``defcon-report <search dir>``: trials, best trial, plots, CSV (docs/search.md)."""
    from defcon_exp.analysis.search_report import write_search_report

    for search_dir in dirs:
        try:
            result = write_search_report(search_dir, out)
        except ImportError as err:
            return error("defcon-report", f"{err} (pip install 'defcon_exp[search]')")
        except ValueError as err:  # names the file and what is wrong with it
            return error("defcon-report", err)
        for line in result["skipped"]:
            print(f"defcon-report: skipped a damaged trial run: {line}", file=sys.stderr)
        print(result["report_md"].read_text())
        print(f"-> {result['report_md']}  {result['report_csv']}")
    return 0


def report(values: dict[str, Any], positional: Sequence[str]) -> int:
    """report.md/csv of the runs below the given dirs (or a search's report)."""
    from defcon_exp.analysis.report import write_report
    from defcon_exp.analysis.search_report import is_search_dir

    paths = [Path(d) for d in positional]
    out = Path(values["out"]) if values["out"] is not None else None
    if all(is_search_dir(d) for d in paths):  # [search] an Optuna search dir
        return _search_report(paths, out)
    try:
        result = write_report(paths, out if out is not None else paths[0], flops=values["flops"])
    except FileNotFoundError as err:
        return error("defcon-report", err)
    for run in result["skipped"]:  # one line each; the other runs are reported
        print(f"defcon-report: skipped a damaged run: {run.damaged}", file=sys.stderr)
    if not result["runs"]:
        damaged = f" ({len(result['skipped'])} damaged, skipped above)" if result["skipped"] else ""
        return error("defcon-report", f"no run dirs under {', '.join(map(str, paths))}{damaged}")
    print(result["report_md"].read_text())
    print(f"-> {result['report_md']}  {result['report_csv']}")
    return 0


def params(values: dict[str, Any]) -> int:
    """The Markdown table of parameter counts for ``num_classes`` classes (0 ok, 2 usage)."""
    from defcon_exp.analysis.params import format_table, parameter_rows

    classes = values["num_classes"]
    if classes < 1:
        return error("defcon-params", f"--num-classes must be positive, received {classes}", 2)
    print(format_table(parameter_rows(classes)))
    return 0
