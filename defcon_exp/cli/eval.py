"""``defcon-eval ckpt=<checkpoint or run dir> [split=test|val] [weights=raw|ema] [data=...] [data.key=value ...] [out=file.json]``

Rebuilds the model from the config stored in the checkpoint, evaluates it and prints
top-1 / top-5 / loss; the JSON goes next to the checkpoint (``<name>.eval.json``) or to ``out=``.
Overrides change the stored config (``data.eval_batch_size=1024``, ``trainer.device=cpu``,
``data.root=/datasets``, ``trainer.precision=32``); ``data=<option>`` swaps the whole data
group. The run's ``trainer.precision`` and ``trainer.channels_last`` apply (a checkpoint of the
retired ``trainer.amp`` maps as in training); ``trainer.compile`` does not (one pass would
mostly time the compiler). ``weights``: the raw or the EMA weights (``trainer.ema``); default
the ones the run selected (``trainer.ema.select``, recorded in the checkpoint).
"""

from __future__ import annotations

import logging
import sys

from defcon_exp.cli.args import Tool, tool_main
from defcon_exp.run import tool_commands

__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-eval", __doc__, {"ckpt": None, "split": "test", "weights": None, "out": None},
    required={"ckpt": "<checkpoint or run dir>"}, overrides=True, log_level=logging.INFO,
    log_format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
)

main = tool_main(TOOL, lambda a: tool_commands.evaluate(a.values, a.overrides))

if __name__ == "__main__":
    sys.exit(main())
