"""Welch's t-test (through SciPy) against a hand computation, Simpson integration of the t
density and SciPy's own ``ttest_ind``."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from defcon_exp.analysis.stats import mean_std, welch_t_test


def _t_two_sided_by_integration(t: float, df: float, steps: int = 200_000) -> float:
    """``1 - 2 * integral_0^|t| pdf`` by Simpson's rule: an independent check."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    h = abs(t) / steps
    total = pdf(0.0) + pdf(abs(t))
    total += sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, steps))
    return 1.0 - 2.0 * total * h / 3.0


def test_welch_matches_hand_computation() -> None:
    # a: mean 12, s^2 = 4; b: mean 26, s^2 = 80/3. s_a^2/n_a = 4/3, s_b^2/n_b = 20/3, sum = 8
    result = welch_t_test([10.0, 12.0, 14.0], [20.0, 24.0, 28.0, 32.0])
    assert result.diff == pytest.approx(-14.0)
    assert result.t == pytest.approx(-14.0 / math.sqrt(8.0))
    # df = 8^2 / ((4/3)^2 / 2 + (20/3)^2 / 3) = 64 * 27 / 424
    assert result.df == pytest.approx(64 * 27 / 424)
    assert result.p == pytest.approx(_t_two_sided_by_integration(result.t, result.df), abs=1e-7)
    assert result.significant() is True


def test_welch_undefined_cases() -> None:
    assert math.isnan(welch_t_test([1.0], [2.0, 3.0]).p)  # one seed
    assert welch_t_test([1.0], [2.0, 3.0]).significant() is None
    assert math.isnan(welch_t_test([1.0, 1.0], [2.0, 2.0]).t)  # zero variance on both sides


def test_mean_std_is_sample_std() -> None:
    assert mean_std([1.0, 2.0, 3.0, 4.0]) == pytest.approx((2.5, math.sqrt(5 / 3)))
    mean, std = mean_std([7.0])
    assert mean == 7.0 and math.isnan(std)


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ([10.0, 12.0, 14.0], [20.0, 24.0, 28.0, 32.0]),  # the hand case above
        ([93.1, 93.4, 92.9], [93.8, 94.2, 93.5]),  # three seeds each, top-1 like
        ([1.0, 2.0], [1.5, 1.5, 1.5, 1.5, 1.6]),  # very unequal variances and sizes
        ([5.0, 5.0, 5.0], [4.0, 6.0, 7.0]),  # one constant side: still defined
    ],
)
@pytest.mark.filterwarnings("ignore:Precision loss:RuntimeWarning")  # SciPy on the constant side
def test_welch_equals_scipy_ttest_ind(a: list[float], b: list[float]) -> None:
    result = welch_t_test(a, b)
    want = stats.ttest_ind(a, b, equal_var=False)
    assert result.t == pytest.approx(float(want.statistic), rel=1e-12)
    assert result.df == pytest.approx(float(want.df), rel=1e-12)
    assert result.p == pytest.approx(float(want.pvalue), rel=1e-12)
    assert result.diff == pytest.approx(sum(a) / len(a) - sum(b) / len(b))
    # the Welch-Satterthwaite df by hand, independent of SciPy
    va = stats.tvar(a) / len(a)
    vb = stats.tvar(b) / len(b)
    assert result.df == pytest.approx((va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1)))
