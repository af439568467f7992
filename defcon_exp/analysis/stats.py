"""Small statistics without SciPy: mean/std over seeds and Welch's t-test.

The two-sided p-value of Student's t uses SciPy when importable and otherwise the
regularised incomplete beta function ``I_x(a, b)`` evaluated with the Lentz continued
fraction (Numerical Recipes, 3rd ed., section 6.4), which is accurate to ~1e-12 here:
``p = I_{df / (df + t^2)}(df / 2, 1 / 2)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "WelchResult",
    "betainc",
    "mean_std",
    "p_value_method",
    "student_t_two_sided_p",
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


def _beta_continued_fraction(a: float, b: float, x: float, max_iter: int = 500) -> float:
    """Continued fraction for ``I_x(a, b)`` (modified Lentz), converges for x < (a+1)/(a+b+2)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, max_iter + 1):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta function ``I_x(a, b)`` for ``a, b > 0``, ``0 <= x <= 1``."""
    if not (a > 0 and b > 0):
        raise ValueError(f"betainc: a and b must be positive, received a={a}, b={b}")
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"betainc: x must be in [0, 1], received {x}")
    if x in (0.0, 1.0):
        return x
    log_front = (
        math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    )
    front = math.exp(log_front)
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def student_t_two_sided_p(t: float, df: float) -> float:
    """Two-sided p-value ``P(|T| >= |t|)`` of Student's t with ``df`` (real, > 0) degrees."""
    if math.isnan(t) or math.isnan(df) or df <= 0:
        return math.nan
    if math.isinf(t):
        return 0.0
    try:
        from scipy import stats  # optional

        return float(2.0 * stats.t.sf(abs(t), df))
    except ImportError:
        return betainc(df / 2.0, 0.5, df / (df + t * t))


def p_value_method() -> str:
    """How :func:`student_t_two_sided_p` computes p here (for the report's footnote)."""
    try:
        import scipy.stats  # noqa: F401

        return "scipy.stats.t"
    except ImportError:
        return "regularised incomplete beta (continued fraction, no SciPy)"


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
    """Welch's t statistic, Welch-Satterthwaite degrees of freedom and two-sided p.

    ``t = (mean_a - mean_b) / sqrt(s_a^2/n_a + s_b^2/n_b)``,
    ``df = (s_a^2/n_a + s_b^2/n_b)^2 / ((s_a^2/n_a)^2/(n_a-1) + (s_b^2/n_b)^2/(n_b-1))``.
    Undefined (NaN t, df, p) with fewer than 2 values on either side or zero variance on both.
    """
    mean_a, std_a = mean_std(a)
    mean_b, std_b = mean_std(b)
    diff = mean_a - mean_b
    if len(a) < 2 or len(b) < 2:
        return WelchResult(diff, math.nan, math.nan, math.nan)
    va, vb = std_a**2 / len(a), std_b**2 / len(b)
    if va + vb == 0.0:
        return WelchResult(diff, math.nan, math.nan, math.nan)
    t = diff / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    return WelchResult(diff, t, df, student_t_two_sided_p(t, df))
