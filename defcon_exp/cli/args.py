"""One argument style for the tools (``defcon-eval``, ``-inspect``, ``-compare``, ``-report``,
``-params``): ``key=value`` arguments checked against the tool's :class:`Tool` spec.

A tool's own keys take their type from their default (an int or a bool default: an int or a
bool value; ``None`` or a str: text). ``--key VALUE``, ``--key=VALUE``, ``--flag`` and
``--no-flag`` are the same keys (dashes for underscores). A misspelt key is one line with the
nearest key; a value of the wrong type is one line naming it and the fix; ``-h``/``--help``
prints the tool's docstring.
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from defcon_exp.run.tool_commands import error

__all__ = ["Parsed", "Tool", "UsageError", "error", "parse", "tool_main"]

HELP_FLAGS = ("-h", "--help")
_BOOLS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


class UsageError(ValueError):
    """A command line the tool cannot take; the message is one line."""


@dataclass(frozen=True)
class Tool:
    """A tool's command line: its ``keys`` and their defaults, the ``required`` keys (key ->
    what to give, for the error), what bare arguments are (``positional``, e.g. ``"run dir"``;
    empty: none taken; an argument naming an existing path is one), at least how many, whether
    other ``key=value`` arguments are config ``overrides``, and its logging."""

    prog: str
    doc: str
    keys: dict[str, Any]
    required: dict[str, str] = field(default_factory=dict)
    positional: str = ""
    min_positional: int = 0
    overrides: bool = False
    log_level: int = logging.WARNING
    log_format: str = "[%(name)s][%(levelname)s] - %(message)s"


class Parsed(NamedTuple):
    """The tool's key values (defaults filled in), its bare arguments and config overrides."""

    values: dict[str, Any]
    positional: list[str]
    overrides: list[str]


def _as_keys(tool: Tool, args: Sequence[str]) -> Iterator[str]:
    """``--out DIR`` / ``--out=DIR`` -> ``out=DIR``, ``--no-flops`` -> ``flops=false``,
    ``--flag`` -> ``flag=true`` for the tool's own keys; other arguments unchanged."""
    rest = iter(args)
    for arg in rest:
        name, sep, value = arg[2:].partition("=")
        key = name.replace("-", "_")
        if not arg.startswith("--") or (key not in tool.keys and not key.startswith("no_")):
            yield arg
        elif sep:
            yield f"{key}={value}"
        elif isinstance(tool.keys.get(key), bool):
            yield f"{key}=true"
        elif isinstance(tool.keys.get(key[3:]), bool):
            yield f"{key[3:]}=false"
        elif key in tool.keys:
            value = next(rest, None)
            if value is None:
                raise UsageError(f"{arg} needs a value: {arg} VALUE (or {key}=VALUE)")
            yield f"{key}={value}"
        else:
            yield arg


def _typed(key: str, value: str, default: Any) -> Any:
    """``value`` as the type of the key's ``default``; UsageError naming it and the fix."""
    if isinstance(default, bool):
        if value.lower() not in _BOOLS:
            raise UsageError(f"{key}={value!r} is not true or false: give {key}=true or {key}=false")
        return _BOOLS[value.lower()]
    if isinstance(default, int):
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"{key}={value!r} is not an integer: give e.g. {key}={default}") from None
    return value


def _unknown(shown: str, key: str, keys: Sequence[str]) -> str:
    """One line for an argument the tool does not take, with the nearest of its ``keys``."""
    near = difflib.get_close_matches(key.lstrip("-").replace("-", "_"), list(keys), n=1, cutoff=0.6)
    hint = f"; did you mean {near[0]}=?" if near else ""
    return f"{shown} is not a key of this tool{hint} (its keys: {', '.join(keys)})"


def _split(tool: Tool, args: Sequence[str]) -> Parsed:
    """Sort ``args`` into the tool's keys, bare arguments and config overrides."""
    values, positional, overrides = dict(tool.keys), [], []
    for arg in _as_keys(tool, args):
        key, sep, value = arg.partition("=")
        near = "." not in key and difflib.get_close_matches(key, list(tool.keys), n=1, cutoff=0.6)
        if tool.positional and not arg.startswith("-") and (not sep or Path(arg).exists()):
            positional.append(arg)
        elif key in tool.keys:
            if not sep:
                raise UsageError(f"{key} needs a value: {key}=<value>")
            values[key] = _typed(key, value, tool.keys[key])
        elif tool.overrides and not arg.startswith("-") and not (near and sep):
            overrides.append(arg)
        else:
            raise UsageError(_unknown(f"{key}=" if sep else arg, key, list(tool.keys)))
    for key, what in tool.required.items():
        if values[key] is None:
            raise UsageError(f"{key}={what} is required")
    if len(positional) < tool.min_positional:
        raise UsageError(f"no {tool.positional} given")
    return Parsed(values, positional, overrides)


def parse(tool: Tool, argv: Sequence[str] | None) -> Parsed | int:
    """The tool's command line (``argv``; None: ``sys.argv``), or the exit code when it stops
    at once: help printed (0; 2 when nothing was given to a tool that needs something) or
    one line on stderr (2)."""
    args = list(sys.argv[1:] if argv is None else argv)
    needs = bool(tool.required or tool.min_positional)
    if any(arg in HELP_FLAGS for arg in args) or (needs and not args):
        print(tool.doc.strip())
        return 0 if args else 2
    try:
        parsed = _split(tool, args)
    except UsageError as err:
        return error(tool.prog, err, 2)
    logging.basicConfig(level=tool.log_level, format=tool.log_format)
    return parsed


def tool_main(tool: Tool, action: Callable[[Parsed], int]) -> Callable[..., int]:
    """The console entry point ``main(argv=None)`` of ``tool``: parse ``argv`` (None:
    ``sys.argv``) and call ``action`` with the result; returns the exit code (0 ok, 1 user
    error, 2 usage). ``action`` imports torch and the analysis modules inside: ``--help`` and
    usage errors answer without them."""

    def main(argv: Sequence[str] | None = None) -> int:
        parsed = parse(tool, argv)
        return parsed if isinstance(parsed, int) else action(parsed)

    return main
