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

from defcon_exp.cli.args import Parsed, Tool, error, tool_main

__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-compare", __doc__, {"images": 256, "split": "test", "seed": 0, "out": None},
    positional="run dir or checkpoint", min_positional=1, overrides=True,
)


def compare(args: Parsed) -> int:
    """The runs' channel attention on the same images, tables and plots."""
    from defcon_exp.analysis.compare import format_comparison
    from defcon_exp.run.compare_tools import compare_checkpoints
    from defcon_exp.run.job import USER_ERRORS

    try:  # the tool's keys are the function's parameters
        result = compare_checkpoints(args.positional, args.overrides, **args.values)
    except USER_ERRORS as err:
        return error(TOOL.prog, err)
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


main = tool_main(TOOL, compare)

if __name__ == "__main__":
    sys.exit(main())
