"""Argument handling shared by the checkpoint tools (``defcon-eval``, ``defcon-inspect``)."""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Sequence

__all__ = ["misspelt_own_key", "parse_checkpoint_args"]


def misspelt_own_key(key: str, keys: Sequence[str]) -> str | None:
    """``key`` (not one of the tool's own ``keys``, no dot: not a config key) when it is close
    to one of them, as a "did you mean" text; else None (it goes on as a config override)."""
    if "." in key or key in keys:
        return None
    near = difflib.get_close_matches(key, list(keys), n=1, cutoff=0.6)
    if not near:
        return None
    return f"{key}= is not a key of this tool; did you mean {near[0]}=? (its keys: {', '.join(keys)})"


def parse_checkpoint_args(
    prog: str, doc: str, argv: Sequence[str] | None, keys: Sequence[str], log_level: int
) -> tuple[dict[str, str], list[str]] | int:
    """Split ``key=value`` arguments into the tool's own ``keys`` and config overrides.

    Returns ``(own, overrides)``, or an exit code when the tool should stop at once
    (help printed: 0; no arguments or no ``ckpt=``: 2).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(doc.strip())
        return 0 if args else 2
    logging.basicConfig(
        level=log_level, format="[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"
    )
    own: dict[str, str] = {}
    overrides: list[str] = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key in keys:
            own[key] = value
        elif misspelt_own_key(key, keys) and "=" in arg:
            print(f"{prog}: error: {misspelt_own_key(key, keys)}", file=sys.stderr)
            return 2
        else:
            overrides.append(arg)
    if "ckpt" not in own:
        print(f"{prog}: error: ckpt=<checkpoint or run dir> is required", file=sys.stderr)
        return 2
    return own, overrides
