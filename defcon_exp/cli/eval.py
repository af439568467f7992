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
from collections.abc import Sequence

from defcon_exp.cli.checkpoint_args import parse_checkpoint_args
from defcon_exp.run.checkpoint_tools import evaluate_checkpoint
from defcon_exp.run.job import USER_ERRORS

__all__ = ["evaluate_checkpoint", "main"]
SPECIAL_KEYS = ("ckpt", "out", "split", "weights")


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (0 ok, 1 user error, 2 usage)."""
    parsed = parse_checkpoint_args("defcon-eval", __doc__, argv, SPECIAL_KEYS, logging.INFO)
    if isinstance(parsed, int):
        return parsed
    special, rest = parsed
    try:
        result = evaluate_checkpoint(
            special["ckpt"],
            rest,
            special.get("split", "test"),
            special.get("out"),
            special.get("weights"),
        )
    except USER_ERRORS as err:
        print(f"defcon-eval: error: {err}", file=sys.stderr)
        return 1
    print(
        f"{result['split']}: top1 {result['top1']:.2f}  top5 {result['top5']:.2f}  loss {result['loss']:.4f}"
        f"  ({result['num_images']} images, epoch {result['epoch']}, {result['weights']} weights)"
        f" -> {result['written_to']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
