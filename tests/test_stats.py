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


def test_correlation_intervals_separate_signal_from_noise():
    rng = np.random.default_rng(0)
    x = rng.normal(size=30)
    strong = stats.correlation(x, -2 * x + 0.3 * rng.normal(size=30))
    noise = stats.correlation(x, rng.normal(size=30))
    assert strong.high < -0.5 and noise.low < 0 < noise.high
    pear = stats.correlation(np.exp(x), x, method="pearson", log_x=True)
    assert pear.value == pytest.approx(1.0)


@pytest.mark.parametrize("method, reference", [("spearman", "spearmanr"), ("pearson", "pearsonr"),
                                               ("kendall", "kendalltau"), ("weighted_kendall", "weightedtau")])
def test_the_correlations_equal_scipys_with_ties(method, reference):
    import scipy.stats as st

    rng = np.random.default_rng(3)
    for _ in range(5):
        a, b = np.round(rng.normal(size=20)), np.round(rng.normal(size=20) + 0.5 * np.arange(20) / 10)
        ref = getattr(st, reference)(a, b)
        ref = ref[0] if method == "weighted_kendall" else ref.statistic
        assert stats._corr(method)(a, b) == pytest.approx(ref, abs=1e-12)


def test_the_jackknife_resamples_whole_units():
    """Observations of one unit move together: duplicating every observation within its unit leaves the interval
    as it was (a bootstrap or jackknife over observations would narrow it, as if the copies were new evidence)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=8)
    y = x + rng.normal(size=8)
    once = stats.correlation(x, y, units=np.arange(8))
    thrice = stats.correlation(np.repeat(x, 3), np.repeat(y, 3), units=np.repeat(np.arange(8), 3))
    assert thrice.value == pytest.approx(once.value) and thrice.n == once.n == 8
    assert (thrice.low, thrice.high) == pytest.approx((once.low, once.high))
    naive = stats.correlation(np.repeat(x, 3), np.repeat(y, 3))
    assert naive.high - naive.low < once.high - once.low


def test_too_few_units_give_no_interval():
    e = stats.correlation(np.arange(12.0), np.arange(12.0) ** 2, units=np.repeat(np.arange(4), 3))
    assert e.n == 4 and np.isnan(e.low) and "fewer than 6" in e.method


def test_linear_contrasts_match_a_direct_fit():
    rng = np.random.default_rng(2)
    z = np.linspace(-1, 1, 9)
    y = 3 - 2 * z ** 2 + 0.1 * rng.normal(size=9)
    X = np.c_[np.ones(9), z, z ** 2]
    low, high = stats.linear_contrasts(X, y, [[0, 1, -2], [0, 1, 2]])
    assert low.value == pytest.approx(4.0, abs=0.3) and high.value == pytest.approx(-4.0, abs=0.3)
    assert low.low > 0 and high.high < 0 and "6 df" in low.method
    few = stats.linear_contrasts(X[:4], y[:4], [[0, 1, 0]])[0]
    assert np.isnan(few.low)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="method"):
        stats.correlation([1, 2], [1, 2], method="distance")
    with pytest.raises(ValueError, match="finite"):
        stats.mean_interval([1.0, float("nan")])
    with pytest.raises(ValueError, match="units"):
        stats.jackknife_interval(np.mean, [1.0, 2.0, 3.0], units=[0, 1])


def test_mean_interval_stays_within_bounds():
    e = stats.mean_interval([1.0, 1.0, 0.5], bounds=(0.0, 1.0))
    assert e.high == 1.0 and e.low > 0
