"""Intervals for verdicts: seed replicates, bootstrap, correlations."""

import math

import numpy as np
import pytest
from scipy import stats as st

from ncutils import stats


def test_mean_interval_matches_the_t_interval():
    x = [1.0, 2.0, 4.0, 3.0]
    e = stats.mean_interval(x)
    lo, hi = st.t.interval(0.95, 3, loc=np.mean(x), scale=st.sem(x))
    assert e.value == pytest.approx(2.5) and (e.low, e.high) == pytest.approx((lo, hi)) and e.n == 4
    one = stats.mean_interval([3.0])
    assert one.low == -math.inf and not one.excludes(0)


def test_paired_difference_uses_the_pairs():
    a, b = [10.0, 11.0, 12.0], [9.0, 10.1, 10.9]
    e = stats.paired_difference(a, b)
    assert e.value == pytest.approx(1.0) and e.excludes(0)
    with pytest.raises(ValueError, match="equal lengths"):
        stats.paired_difference([1.0], [1.0, 2.0])


def test_welch_difference_matches_scipys_unequal_variance_interval():
    a, b = [3.1, 2.4, 3.9, 3.3, 2.8], [1.0, 1.9, 0.2, 1.4, 2.6, 0.7, 1.1]
    e = stats.welch_difference(a, b)
    ci = st.ttest_ind(a, b, equal_var=False).confidence_interval(0.95)
    assert e.value == pytest.approx(np.mean(a) - np.mean(b))
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high)) and e.n == 12 and e.excludes(0)
    one = stats.welch_difference([5.0], b)  # a group of one has no spread: no interval
    assert one.low == -math.inf and one.high == math.inf and not one.excludes(0)


def test_bootstrap_covers_the_mean_and_is_deterministic():
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 1.0, 200)
    e1 = stats.bootstrap_interval(np.mean, x, seed=3)
    e2 = stats.bootstrap_interval(np.mean, x, seed=3)
    assert e1 == e2 and e1.low < 5.0 < e1.high and e1.high - e1.low < 0.5


def test_correlation_intervals_separate_signal_from_noise():
    rng = np.random.default_rng(1)
    x = rng.normal(size=30)
    strong = stats.correlation(x, -2 * x + 0.3 * rng.normal(size=30))
    noise = stats.correlation(x, rng.normal(size=30))
    assert strong.value < -0.8 and strong.high < 0 and strong.excludes(0)
    assert noise.low < 0 < noise.high
    pear = stats.correlation(np.exp(x), x, method="pearson", log_x=True)
    assert pear.value == pytest.approx(1.0)


def test_cluster_bootstrap_resamples_whole_groups():
    x = np.repeat([0.0, 1.0, 2.0], 5)
    y = x + np.tile(np.linspace(-0.1, 0.1, 5), 3)
    e = stats.correlation(x, y, groups=np.repeat([0, 1, 2], 5), n_boot=500)
    assert "3 groups" in e.method and e.n == 15


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="finite"):
        stats.mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="spearman"):
        stats.correlation([1, 2], [1, 2], method="kendall")


def test_a_correlation_over_fewer_than_five_points_gets_no_interval():
    e = stats.correlation([1, 2, 3, 4], [1, 3, 2, 4])
    assert e.n == 4 and e.low != e.low and e.high != e.high  # NaN: it cannot decide a verdict
    assert abs(e.value - 0.8) < 1e-12
    assert stats.correlation([1, 2, 3, 4, 5], [1, 3, 2, 4, 5]).low == stats.correlation(
        [1, 2, 3, 4, 5], [1, 3, 2, 4, 5]).low  # five points: a (deterministic) bootstrap interval


def test_proportion_and_accuracy_difference_intervals():
    p = stats.proportion(9, 9)
    assert p.value == 1 and 0.6 < p.low < 0.75 and p.high == 1
    with pytest.raises(ValueError):
        stats.proportion(3, 2)
    d = stats.accuracy_difference(80.0, 75.0, 1000)
    wider = stats.accuracy_difference(80.0, 75.0, 1000, seed_sd=2.0)
    assert d.low > 0 and wider.low < d.low and wider.high > d.high


def test_independent_difference_combines_standard_errors_in_quadrature():
    z = 1.959963984540054
    se_a, se_b = 0.8, 1.5
    e = stats.independent_difference(60.0, z * se_a, 55.5, z * se_b, 600)
    half = z * (se_a ** 2 + se_b ** 2) ** 0.5
    assert e.value == pytest.approx(4.5) and e.n == 600
    assert (e.low, e.high) == pytest.approx((4.5 - half, 4.5 + half))
    with pytest.raises(ValueError, match="non-negative"):
        stats.independent_difference(1.0, -0.1, 0.0, 0.1, 10)
