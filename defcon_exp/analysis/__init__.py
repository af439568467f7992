"""Analysis of finished (and unfinished) runs: the Table 1 report and attention inspection."""

from defcon_exp.analysis.report import build_rows, write_report
from defcon_exp.analysis.runs import RunRecord, find_run_dirs, load_run
from defcon_exp.analysis.stats import betainc, mean_std, student_t_two_sided_p, welch_t_test

__all__ = [
    "RunRecord",
    "betainc",
    "build_rows",
    "find_run_dirs",
    "load_run",
    "mean_std",
    "student_t_two_sided_p",
    "welch_t_test",
    "write_report",
]
