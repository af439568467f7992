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

import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from defcon_exp.analysis.compare import format_comparison
from defcon_exp.cli.checkpoint_args import misspelt_own_key
from defcon_exp.config import ConfigError
from defcon_exp.run.compare_tools import compare_checkpoints
from defcon_exp.run.job import USER_ERRORS

__all__ = ["main"]
PROG = "defcon-compare"
OWN_KEYS = ("images", "split", "seed", "out")


def _parse(args: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """``(runs, own keys, overrides)``: an existing path is a run, else ``key=value``.

    Raises:
        ConfigError: a misspelt own key (``image=12``: did you mean images=?).
    """
    runs, own, overrides = [], {}, []
    for arg in args:
        key, sep, value = arg.partition("=")
        if Path(arg).exists() or not sep:
            runs.append(arg)
        elif key in OWN_KEYS:
            own[key] = value
        elif misspelt_own_key(key, OWN_KEYS):
            raise ConfigError(str(misspelt_own_key(key, OWN_KEYS)))
        else:
            overrides.append(arg)
    return runs, own, overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (0 ok, 1 user error, 2 usage)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if args else 2
    logging.basicConfig(level=logging.WARNING, format="[%(name)s][%(levelname)s] - %(message)s")
    try:
        runs, own, overrides = _parse(args)
    except ConfigError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    try:
        images, seed = int(own.get("images", 256)), int(own.get("seed", 0))
    except ValueError:
        print(f"{PROG}: error: images={own.get('images')!r} and seed={own.get('seed')!r} "
              "must be integers", file=sys.stderr)
        return 2
    try:
        result = compare_checkpoints(
            runs, overrides, images, own.get("split", "test"), seed, own.get("out")
        )
    except USER_ERRORS as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
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


if __name__ == "__main__":
    sys.exit(main())
