"""Analysis of finished (and unfinished) runs: the Table 1 report and attention inspection.

The names below load on first use (PEP 562): ``defcon_exp.config`` imports
``analysis.objectives``, and that must not pull in the report's data and torch imports
(``defcon-train --help`` and config errors answer before torch is imported).
"""

from __future__ import annotations

from defcon_exp.plugins import lazy_attributes

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
__getattr__ = lazy_attributes(__name__, _LAZY)
