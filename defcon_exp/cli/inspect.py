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

import logging
import sys
from collections.abc import Sequence
from typing import Any

from defcon_exp.analysis.inspect import REACH_TOLERANCE
from defcon_exp.cli.checkpoint_args import parse_checkpoint_args
from defcon_exp.run.checkpoint_tools import inspect_checkpoint, resolve_checkpoint
from defcon_exp.run.job import USER_ERRORS

__all__ = ["format_table", "inspect_checkpoint", "main", "resolve_checkpoint"]
SPECIAL_KEYS = ("ckpt", "out", "n_images", "split")


def format_table(stats: dict[str, Any]) -> str:
    """The per-stage statistics as a fixed-width text table."""
    columns = [
        ("stage", None, "{}"),
        ("C", "channels", "{}"),
        ("k", "kernel_size", "{}"),
        ("|offset|", "offset_abs_mean", "{:.4f}"),
        (f"beyond k//2+{REACH_TOLERANCE:g}", "share_beyond_half_width", "{:.2%}"),
        ("outside C", "share_outside_channels", "{:.2%}"),
        ("|distance|", "channel_distance_mean", "{:.3f}"),
        ("w mean", "weight_mean", "{:.4f}"),
        ("w std", "weight_std", "{:.4f}"),
        ("entropy", "entropy_mean", "{:.4f}"),
        ("H/logC", "entropy_normalised", "{:.6f}"),
    ]
    rows = [[c[0] for c in columns]]
    for stage, values in stats["stages"].items():
        row = []
        for _title, key, fmt in columns:
            value = stage if key is None else values.get(key)
            if isinstance(value, list):
                value = ",".join(map(str, value))
            row.append("-" if value is None else fmt.format(value))
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(columns))]
    return "\n".join("  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) for r in rows)


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code (0 ok, 1 user error, 2 usage)."""
    parsed = parse_checkpoint_args("defcon-inspect", __doc__, argv, SPECIAL_KEYS, logging.WARNING)
    if isinstance(parsed, int):
        return parsed
    special, rest = parsed
    try:
        n_images = int(special.get("n_images", 256))
    except ValueError:
        print(f"defcon-inspect: error: n_images={special['n_images']!r} is not an integer",
              file=sys.stderr)
        return 2
    try:
        stats = inspect_checkpoint(
            special["ckpt"], rest, n_images, special.get("out"), special.get("split", "test")
        )
    except USER_ERRORS as err:
        print(f"defcon-inspect: error: {err}", file=sys.stderr)
        return 1
    print(
        f"{stats['model']} ({stats['attention'] or 'no attention'}), epoch {stats['epoch']}, "
        f"{stats['num_images']} {stats['split']} images of {stats['data']}"
    )
    if stats["stages"]:
        print(format_table(stats))
        if any("share_beyond_half_width" in v for v in stats["stages"].values()):
            print(
                f"beyond k//2+{REACH_TOLERANCE:g}: taps sampling more than {REACH_TOLERANCE:g} "
                "channel outside the kernel window (most interpolation weight on a channel "
                f"ECA's window does not see); outside C: more than {REACH_TOLERANCE:g} channel "
                "into the zero padding"
            )
    else:
        print("no attention modules in this model: nothing to inspect")
    if isinstance(stats["plots"], str):
        print(stats["plots"])
    else:
        for path in stats["plots"]:
            print(f"-> {path}")
    print(f"-> {stats['written_to']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
