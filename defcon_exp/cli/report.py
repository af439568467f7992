"""``defcon-report <multirun dir | run dir ...> [--out DIR] [--no-flops]``

Finds every run dir below the given directories (a dir holding summary.json, metrics.csv or
config.yaml) and writes ``report.md`` and ``report.csv`` (and ``top1_curves.png`` when
matplotlib is installed): one row per model (and scheduler when the runs differ in it), test
top-1 / top-5 mean ± std over seeds, params, FLOPs per image, training images/s, and Welch's
t-test of top-1 against resnet50 and eca. Unfinished runs are listed, not fatal.

  --out DIR    (out=DIR) output dir (default: the first given dir)
  --no-flops   (flops=false) skip building each model to count FLOPs
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from defcon_exp.cli.args import Parsed, Tool, error, tool_main

# the analysis modules (torch, scipy) load after the arguments parse: --help is instant

__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-report", __doc__, {"out": None, "flops": True},
    positional="multirun dir or run dir", min_positional=1,
)


def report(args: Parsed) -> int:
    """report.md/csv of the runs below the given dirs (or a search's report)."""
    from defcon_exp.analysis.report import write_report
    from defcon_exp.analysis.search_report import is_search_dir

    paths = [Path(d) for d in args.positional]
    out = Path(args.values["out"]) if args.values["out"] is not None else None
    if all(is_search_dir(d) for d in paths):  # [search] an Optuna search dir
        return _search_report(paths, out)
    try:
        result = write_report(paths, out if out is not None else paths[0], flops=args.values["flops"])
    except FileNotFoundError as err:
        return error(TOOL.prog, err)
    for run in result["skipped"]:  # one line each; the other runs are reported
        print(f"defcon-report: skipped a damaged run: {run.damaged}", file=sys.stderr)
    if not result["runs"]:
        damaged = f" ({len(result['skipped'])} damaged, skipped above)" if result["skipped"] else ""
        return error(TOOL.prog, f"no run dirs under {', '.join(map(str, paths))}{damaged}")
    print(result["report_md"].read_text())
    print(f"-> {result['report_md']}  {result['report_csv']}")
    return 0


def _search_report(dirs: Sequence[Path], out: Path | None) -> int:
    """``defcon-report <search dir>``: trials, best trial, plots, CSV (docs/search.md)."""
    from defcon_exp.analysis.search_report import write_search_report

    for search_dir in dirs:
        try:
            result = write_search_report(search_dir, out)
        except ImportError as err:
            return error(TOOL.prog, f"{err} (pip install 'defcon_exp[search]')")
        except ValueError as err:  # names the file and what is wrong with it
            return error(TOOL.prog, err)
        for line in result["skipped"]:
            print(f"defcon-report: skipped a damaged trial run: {line}", file=sys.stderr)
        print(result["report_md"].read_text())
        print(f"-> {result['report_md']}  {result['report_csv']}")
    return 0


main = tool_main(TOOL, report)

if __name__ == "__main__":
    sys.exit(main())
