"""Argument handling shared by the checkpoint tools (``defcon-eval``, ``defcon-inspect``)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

__all__ = ["parse_checkpoint_args"]


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
        else:
            overrides.append(arg)
    if "ckpt" not in own:
        print(f"{prog}: error: ckpt=<checkpoint or run dir> is required", file=sys.stderr)
        return 2
    return own, overrides
