"""Welch's t-test and the Student-t p-value (through SciPy) against textbook values, hand
computations, Simpson integration of the t density and SciPy's own ``ttest_ind``."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from defcon_exp.analysis.stats import betainc, mean_std, student_t_two_sided_p, welch_t_test


def _t_two_sided_by_integration(t: float, df: float, steps: int = 200_000) -> float:
    """``1 - 2 * integral_0^|t| pdf`` by Simpson's rule: an independent check."""
    log_norm = math.lgamma((df + 1) / 2) - math.lgamma(df / 2) - 0.5 * math.log(df * math.pi)

    def pdf(x: float) -> float:
        return math.exp(log_norm - (df + 1) / 2 * math.log1p(x * x / df))

    h = abs(t) / steps
    total = pdf(0.0) + pdf(abs(t))
    total += sum((4 if i % 2 else 2) * pdf(i * h) for i in range(1, steps))
    return 1.0 - 2.0 * total * h / 3.0


@pytest.mark.parametrize(
    ("a", "b", "x", "expected"),
    [
        (2.0, 3.0, 0.5, 0.6875),  # 11/16 (polynomial)
        (1.0, 1.0, 0.3, 0.3),  # uniform
        (0.5, 0.5, 0.5, 0.5),  # symmetric arcsine
        (5.0, 0.5, 0.99, None),  # lower tail branch vs 1 - I_{1-x}(b, a)
    ],
)
def test_betainc_known_values(a: float, b: float, x: float, expected: float | None) -> None:
    value = betainc(a, b, x)
    if expected is None:
        expected = 1.0 - betainc(b, a, 1.0 - x)
    assert value == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("t", "df", "p"),
    [
        (2.228138851986, 10, 0.05),  # textbook critical values t_{0.975, df}
        (2.570581835636, 5, 0.05),
        (12.706204736175, 1, 0.05),
        (2.0, 10, 0.0733880347707),
        (3.0, 1, 1 - 2 / math.pi * math.atan(3.0)),  # df = 1: Cauchy
        (1.5, 2, 1 - 1.5 / math.sqrt(1.5**2 + 2)),  # df = 2: closed form
        (0.0, 7, 1.0),
    ],
)
def test_student_t_p_values(t: float, df: float, p: float) -> None:
    assert student_t_two_sided_p(t, df) == pytest.approx(p, abs=1e-9)
    assert student_t_two_sided_p(-t, df) == pytest.approx(p, abs=1e-9)


@pytest.mark.parametrize(("t", "df"), [(1.3, 4.0754716981), (4.95, 4.0754716981), (0.4, 1.3)])
def test_fractional_df_matches_numeric_integration(t: float, df: float) -> None:
    assert student_t_two_sided_p(t, df) == pytest.approx(
        _t_two_sided_by_integration(t, df), abs=1e-7
    )


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


def test_betainc_refuses_values_outside_its_domain() -> None:
    with pytest.raises(ValueError, match="a and b must be positive"):
        betainc(0.0, 1.0, 0.5)
    with pytest.raises(ValueError, match=r"x must be in \[0, 1\], received 1.5"):
        betainc(1.0, 1.0, 1.5)
