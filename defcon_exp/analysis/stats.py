"""Mean/std over seeds and Welch's unequal-variance t-test, through SciPy.

The test is :func:`scipy.stats.ttest_ind` with ``equal_var=False`` (Welch 1947, "The
generalization of 'Student's' problem when several different population variances are
involved"); this module only fixes the undefined cases (NaN instead of SciPy's warnings) and
the small result type the report prints.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats as scipy_stats

__all__ = [
    "WelchResult",
    "mean_std",
    "p_value_method",
    "welch_t_test",
]


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (``ddof=1``; NaN std for fewer than 2 values)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var)


def p_value_method() -> str:
    """How :func:`welch_t_test` computes p (for the report's footnote)."""
    return "scipy.stats.ttest_ind(equal_var=False)"


@dataclass(frozen=True)
class WelchResult:
    """Welch's unequal-variance t-test of ``mean(a) - mean(b)``."""

    diff: float
    t: float
    df: float
    p: float

    def significant(self, alpha: float = 0.05) -> bool | None:
        """True/False at level ``alpha``; None when the test is undefined (NaN p)."""
        return None if math.isnan(self.p) else self.p < alpha


def welch_t_test(a: Sequence[float], b: Sequence[float]) -> WelchResult:
    """Welch's t statistic, Welch-Satterthwaite degrees of freedom and two-sided p of
    ``mean(a) - mean(b)`` (:func:`scipy.stats.ttest_ind`, ``equal_var=False``).

    Undefined (NaN t, df, p) with fewer than 2 values on either side or zero variance on both.
    """
    diff = mean_std(a)[0] - mean_std(b)[0]
    undefined = WelchResult(diff, math.nan, math.nan, math.nan)
    if len(a) < 2 or len(b) < 2 or (mean_std(a)[1] == 0.0 and mean_std(b)[1] == 0.0):
        return undefined
    with warnings.catch_warnings():  # a constant side alone is fine: its variance is just 0
        warnings.simplefilter("ignore", RuntimeWarning)
        result = scipy_stats.ttest_ind(a, b, equal_var=False)
    return WelchResult(diff, float(result.statistic), float(result.df), float(result.pvalue))
