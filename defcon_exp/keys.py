"""Dotted config keys (``trainer.device``), shared by every layer: a nested config flattened to
them (its leaves, or every entry), and the keys that say where or how a run executes rather
than what it computes.

A leaf (no imports from the package): the config rules, the run layer, the report and the code
check of :mod:`defcon_exp.safety` all walk configs key by key, and the report (analysis) may
import neither the schema nor the engine.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

__all__ = ["PLACEMENT_KEYS", "flat_items", "walk_items"]

#: keys that place a run (which dir, which device, where the data lies, how it is loaded and
#: shown) and never change what it computes: two runs differing only in them are the same run.
#: Each comparison adds its own named extra (:data:`defcon_exp.run.plan.RESUME_NEUTRAL`,
#: :data:`defcon_exp.analysis.report.NEUTRAL_KEYS`, :data:`defcon_exp.run.run_label.NOT_COMPARED`).
PLACEMENT_KEYS = frozenset({
    "resume",
    "run_dir",
    "trainer.device",
    "trainer.progress",
    "data.num_workers",
    "data.pin_memory",
    "data.root",
})


def flat_items(node: Any, *, index_lists: bool = False, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """``(dotted key, leaf)`` pairs: ``{"a": {"b": 1}}`` -> ``("a.b", 1)``. Lists are leaves
    (a value compared whole), or with ``index_lists`` walked by index (``optim.betas.0``) for a
    rule on every number. Pairs, not a dict: a key spelt with a dot (``{"a.b": ...}``) next to
    the same path nested cannot hide one of the two values from a check."""
    if isinstance(node, Mapping):
        items: Any = node.items()
    elif index_lists and isinstance(node, (list, tuple)):
        items = enumerate(node)
    else:
        yield prefix[:-1], node
        return
    for key, value in items:
        yield from flat_items(value, index_lists=index_lists, prefix=f"{prefix}{key}.")


def walk_items(node: Any, prefix: str = "") -> Iterator[tuple[str, Any, Any]]:
    """``(dotted key, key, value)`` of every mapping entry at any depth, an entry before what it
    holds, lists walked by index: for the checks of a key wherever it sits (a code key in a list
    of handlers), where :func:`flat_items` gives only the leaves."""
    if isinstance(node, Mapping):
        for key, value in node.items():
            dotted = f"{prefix}{key}"
            yield dotted, key, value
            yield from walk_items(value, f"{dotted}.")
    elif isinstance(node, (list, tuple)):
        for index, value in enumerate(node):
            yield from walk_items(value, f"{prefix}{index}.")
