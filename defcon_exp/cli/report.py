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

from defcon_exp.cli.args import Tool, tool_main
from defcon_exp.run import tool_commands

# the analysis modules (torch, scipy) load after the arguments parse: --help is instant
__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-report", __doc__, {"out": None, "flops": True},
    positional="multirun dir or run dir", min_positional=1,
)

main = tool_main(TOOL, lambda a: tool_commands.report(a.values, a.positional))

if __name__ == "__main__":
    sys.exit(main())
