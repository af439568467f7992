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

from defcon_exp.cli.args import Parsed, Tool, error, tool_main

__all__ = ["TOOL", "main"]
TOOL = Tool(
    "defcon-eval", __doc__, {"ckpt": None, "split": "test", "weights": None, "out": None},
    required={"ckpt": "<checkpoint or run dir>"}, overrides=True, log_level=logging.INFO,
    log_format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s",
)


def evaluate(args: Parsed) -> int:
    """Evaluate a checkpoint, print top-1 / top-5 / loss and where it went."""
    from defcon_exp.run.checkpoint_tools import evaluate_checkpoint
    from defcon_exp.run.job import USER_ERRORS

    try:  # the tool's keys are the function's parameters
        result = evaluate_checkpoint(overrides=args.overrides, **args.values)
    except USER_ERRORS as err:
        return error(TOOL.prog, err)
    print(
        f"{result['split']}: top1 {result['top1']:.2f}  top5 {result['top5']:.2f}  loss {result['loss']:.4f}"
        f"  ({result['num_images']} images, epoch {result['epoch']}, {result['weights']} weights)"
        f" -> {result['written_to']}"
    )
    return 0


main = tool_main(TOOL, evaluate)

if __name__ == "__main__":
    sys.exit(main())
