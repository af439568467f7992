"""``defcon-inspect ckpt=<checkpoint or run dir> [n_images=256] [out=DIR] [split=test|val|train] [key=value ...]``

Rebuilds the model from the config stored in the checkpoint (as defcon-eval does), runs
``n_images`` images of the run's own data (stored data config; synthetic runs work offline)
and prints per stage: for DEFCON-family modules mean |offset|, the share of taps reaching
more than half a channel beyond the kernel half-width (|sampled channel - c| > k//2 + 0.5:
most of the tap's interpolation weight lies outside ECA's fixed window), the mean channel distance
sampled; for every attention the channel weight mean / std and the entropy of the
normalised weights. Writes ``inspect.json`` (statistics + histograms) and, with matplotlib,
``inspect_stage<N>.png`` into ``out=`` (default: ``<run dir>/inspect``). Other ``key=value``
arguments override the stored config (``trainer.device=cpu``, ``data.root=/datasets``).
"""

from __future__ import annotations

import sys

from defcon_exp.cli.args import Parsed, Tool, error, tool_main

__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-inspect", __doc__, {"ckpt": None, "n_images": 256, "out": None, "split": "test"},
    required={"ckpt": "<checkpoint or run dir>"}, overrides=True,
    log_format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
)


def inspect(args: Parsed) -> int:
    """Per-stage attention statistics of a checkpoint, table and plots."""
    from defcon_exp.analysis.inspect import format_table, reach_note
    from defcon_exp.run.checkpoint_tools import inspect_checkpoint
    from defcon_exp.run.job import USER_ERRORS

    try:  # the tool's keys are the function's parameters
        stats = inspect_checkpoint(overrides=args.overrides, **args.values)
    except USER_ERRORS as err:
        return error(TOOL.prog, err)
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


main = tool_main(TOOL, inspect)

if __name__ == "__main__":
    sys.exit(main())
