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

from defcon_exp.cli.args import Tool, tool_main
from defcon_exp.run import tool_commands

__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-inspect", __doc__, {"ckpt": None, "n_images": 256, "out": None, "split": "test"},
    required={"ckpt": "<checkpoint or run dir>"}, overrides=True,
    log_format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
)

main = tool_main(TOOL, lambda a: tool_commands.inspect(a.values, a.overrides))

if __name__ == "__main__":
    sys.exit(main())
