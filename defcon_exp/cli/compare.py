"""``defcon-compare RUN_DIR_OR_CKPT RUN_DIR_OR_CKPT ... [images=256] [split=test|val] [seed=0] [out=DIR] [key=value ...]``

Loads each run's best checkpoint (a run dir -> ``checkpoints/best.pt``, else ``last.pt``;
models rebuilt by name from the stored config), runs every model on the same ``images``
images of the first run's ``split`` (a subset chosen by ``seed``) and compares, per stage
and pair of runs, their channel-attention weights: Spearman rank correlation (averaged over
images, and of the mean vectors) and linear CKA. Writes ``compare.json``,
``class_maps.npz``, ``agreement_stage<S>.png`` and ``class_map_stage<S>.png`` into ``out=``
(a folder; default ``<the runs' common parent>/compare/<their names joined by _vs_>``, e.g.
``multirun/t1/compare/0_vs_1`` for two jobs of one sweep) and prints the tables. Runs without channel weights (plain resnet50) are skipped with one
line; runs of different data are refused. Other ``key=value`` arguments override every
stored config (``trainer.device=cpu``, ``data.root=/datasets``). See docs/compare.md.
"""

from __future__ import annotations

import sys

from defcon_exp.cli.args import Tool, tool_main
from defcon_exp.run import tool_commands

__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-compare", __doc__, {"images": 256, "split": "test", "seed": 0, "out": None},
    positional="run dir or checkpoint", min_positional=1, overrides=True,
)

main = tool_main(TOOL, lambda a: tool_commands.compare(a.values, a.positional, a.overrides))

if __name__ == "__main__":
    sys.exit(main())
