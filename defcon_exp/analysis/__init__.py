"""Analysis of finished (and unfinished) runs: the Table 1 report and attention inspection.

The names below load on first use (PEP 562): ``defcon_exp.config`` imports
``analysis.objectives``, and that must not pull in the report's data and torch imports
(``defcon-train --help`` and config errors answer before torch is imported).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "build_rows": "report",
    "write_report": "report",
    "RunRecord": "runs",
    "find_run_dirs": "runs",
    "load_run": "runs",
    "betainc": "stats",
    "mean_std": "stats",
    "student_t_two_sided_p": "stats",
    "welch_t_test": "stats",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)
