"""``defcon-report <multirun dir | run dir ...> [--out DIR] [--no-flops]``

Finds every run dir below the given directories (a dir holding summary.json, metrics.csv or
config.yaml) and writes ``report.md`` and ``report.csv`` (and ``top1_curves.png`` when
matplotlib is installed): one row per model (and scheduler when the runs differ in it), test
top-1 / top-5 mean ± std over seeds, params, FLOPs per image, training images/s, and Welch's
t-test of top-1 against resnet50 and eca. Unfinished runs are listed, not fatal.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

# the analysis modules (torch, scipy) load after the arguments parse: --help is instant


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line arguments."""
    parser = argparse.ArgumentParser(
        prog="defcon-report",
        description=__doc__.strip().split("\n\n", 1)[1],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="multirun dir(s) or run dir(s)")
    parser.add_argument(
        "--out", type=Path, default=None, help="output dir (default: the first given dir)"
    )
    parser.add_argument(
        "--no-flops", action="store_true", help="skip building each model to count FLOPs"
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (0 ok, 1 user error)."""
    args = parse_args(argv)
    from defcon_exp.analysis.report import write_report
    from defcon_exp.analysis.search_report import is_search_dir

    logging.basicConfig(level=logging.WARNING, format="[%(name)s][%(levelname)s] - %(message)s")
    out = args.out if args.out is not None else args.dirs[0]
    if all(is_search_dir(d) for d in args.dirs):  # [search] an Optuna search dir
        return _search_report(args.dirs, args.out)
    try:
        result = write_report(args.dirs, out, flops=not args.no_flops)
    except FileNotFoundError as err:
        print(f"defcon-report: error: {err}", file=sys.stderr)
        return 1
    for run in result["skipped"]:  # one line each; the other runs are reported
        print(f"defcon-report: skipped a damaged run: {run.damaged}", file=sys.stderr)
    if not result["runs"]:
        damaged = f" ({len(result['skipped'])} damaged, skipped above)" if result["skipped"] else ""
        print(f"defcon-report: error: no run dirs under {', '.join(map(str, args.dirs))}{damaged}",
              file=sys.stderr)
        return 1
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
            print(f"defcon-report: error: {err} (pip install 'defcon_exp[search]')", file=sys.stderr)
            return 1
        except ValueError as err:  # names the file and what is wrong with it
            print(f"defcon-report: error: {err}", file=sys.stderr)
            return 1
        for line in result["skipped"]:
            print(f"defcon-report: skipped a damaged trial run: {line}", file=sys.stderr)
        print(result["report_md"].read_text())
        print(f"-> {result['report_md']}  {result['report_csv']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
