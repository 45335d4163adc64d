"""Uncertainty for the book's verdicts: intervals from seed replicates and from bootstrap resampling.

Every statistic a verdict rests on comes with a 95% interval:

* :func:`mean_interval` -- the mean of seed replicates with a Student-t interval (replicates are
  independent trainings, the cleanest source of uncertainty where units are cheap);
* :func:`bootstrap_interval` -- any statistic of paired samples with a percentile bootstrap interval
  (samples, episodes or models are resampled with replacement);
* :func:`correlation` -- Spearman's or Pearson's correlation of paired values, with a bootstrap
  interval over the pairs (or over groups of pairs, e.g. over seeds);
* :func:`paired_difference` -- the mean of ``a - b`` over replicates, with a Student-t interval.

All functions are deterministic given ``seed`` and return an :class:`Estimate`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["MIN_POINTS", "Estimate", "accuracy_difference", "bootstrap_interval", "correlation",
           "independent_difference", "mean_interval", "paired_difference", "proportion", "welch_difference"]


#: The fewest points a correlation needs to be given an interval (and so to decide anything).
MIN_POINTS = 5


@dataclass(frozen=True)
class Estimate:
    """A statistic, its 95% interval ``[low, high]``, how many observations it rests on, and how."""

    value: float
    low: float
    high: float
    n: int
    method: str

    def excludes(self, threshold: float = 0.0) -> bool:
        """Whether the whole interval lies on one side of ``threshold``."""
        return self.low > threshold or self.high < threshold

    def to_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        return f"{self.value:.3g} [{self.low:.3g}, {self.high:.3g}]"


def _clean(x: Sequence[float]) -> np.ndarray:
    a = np.asarray(x, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("no values to estimate from.")
    if not np.isfinite(a).all():
        raise ValueError(f"values must be finite; got {a.tolist()}.")
    return a


def mean_interval(values: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean of replicates with a Student-t interval (a single value has an unbounded interval)."""
    a = _clean(values)
    m = float(a.mean())
    if a.size < 2:
        return Estimate(m, -math.inf, math.inf, 1, "single replicate")
    half = float(_st.t.ppf(0.5 + level / 2, a.size - 1) * a.std(ddof=1) / math.sqrt(a.size))
    return Estimate(m, m - half, m + half, int(a.size), f"mean of {a.size} replicates, t interval")


def paired_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Estimate:
    """Mean of ``a - b`` over paired replicates (same seed), with a Student-t interval."""
    x, y = _clean(a), _clean(b)
    if x.shape != y.shape:
        raise ValueError(f"paired replicates need equal lengths; got {x.size} and {y.size}.")
    e = mean_interval(x - y, level)
    return Estimate(e.value, e.low, e.high, e.n, f"mean paired difference over {e.n} replicates, t interval")


def welch_difference(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> Estimate:
    """Difference of the means of two independent groups of replicates, ``mean(a) - mean(b)``, with Welch's
    t interval (unequal variances, Welch-Satterthwaite degrees of freedom). A group of one replicate has no
    spread to estimate: the interval is unbounded."""
    x, y = _clean(a), _clean(b)
    d = float(x.mean() - y.mean())
    if x.size < 2 or y.size < 2:
        return Estimate(d, -math.inf, math.inf, int(x.size + y.size), "a group of one replicate: no interval")
    va, vb = x.var(ddof=1) / x.size, y.var(ddof=1) / y.size
    se = math.sqrt(va + vb)
    if se == 0.0:
        return Estimate(d, d, d, int(x.size + y.size), "no spread in either group")
    df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    half = float(_st.t.ppf(0.5 + level / 2, df) * se)
    return Estimate(d, d - half, d + half, int(x.size + y.size),
                    f"difference of means of {x.size} and {y.size} replicates, Welch t interval")


def bootstrap_interval(statistic: Callable[..., float], *samples: Sequence, n_boot: int = 2000, level: float = 0.95,
                       seed: int = 0, groups: Sequence | None = None) -> Estimate:
    """``statistic(*samples)`` with a percentile bootstrap interval.

    The samples are paired (equal lengths) and resampled together with replacement; with ``groups``
    whole groups are resampled (a cluster bootstrap, e.g. all the points of one seed together).
    Resamples on which the statistic is undefined (NaN, e.g. a constant resample for a correlation)
    are dropped; the interval is NaN when fewer than half remain.
    """
    arrays = [np.asarray(s) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("the samples are paired and must have equal lengths.")
    if n < 2:
        raise ValueError("a bootstrap needs at least 2 observations.")
    value = float(statistic(*arrays))
    rng = np.random.default_rng(seed)
    if groups is None:
        draws = (rng.integers(0, n, n) for _ in range(n_boot))
    else:
        g = np.asarray(groups)
        members = [np.flatnonzero(g == k) for k in np.unique(g)]
        draws = (np.concatenate([members[i] for i in rng.integers(0, len(members), len(members))])
                 for _ in range(n_boot))
    reps = []
    for idx in draws:
        with np.errstate(all="ignore"):
            v = statistic(*(a[idx] for a in arrays))
        if np.isfinite(v):
            reps.append(v)
    unit = "groups" if groups is not None else "observations"
    method = f"percentile bootstrap over {n if groups is None else len(np.unique(groups))} {unit} ({n_boot} resamples)"
    if len(reps) < n_boot / 2:
        return Estimate(value, math.nan, math.nan, n, method)
    lo, hi = np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2])
    return Estimate(value, float(lo), float(hi), n, method)


def correlation(x: Sequence[float], y: Sequence[float], *, method: str = "spearman", n_boot: int = 2000,
                seed: int = 0, groups: Sequence | None = None, log_x: bool = False) -> Estimate:
    """Spearman's or Pearson's correlation of paired ``x`` and ``y`` with a bootstrap interval over the pairs
    (or over ``groups`` of pairs); ``log_x`` correlates with ``log(x)`` (NC1 spans decades)."""
    if method not in ("spearman", "pearson"):
        raise ValueError(f"method must be 'spearman' or 'pearson'; got {method!r}.")
    xs, ys = _clean(x), _clean(y)
    if log_x:
        if (xs <= 0).any():
            raise ValueError("log_x needs positive x values.")
        xs = np.log(xs)
    fn = _st.spearmanr if method == "spearman" else _st.pearsonr

    def stat(a, b):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return math.nan
        return float(fn(a, b).statistic)

    if xs.size < MIN_POINTS:  # described in the text, never a verdict's evidence on its own
        return Estimate(stat(xs, ys) if xs.size > 2 else math.nan, math.nan, math.nan, int(xs.size),
                        f"{method} over {xs.size} points: fewer than {MIN_POINTS}, no interval")
    e = bootstrap_interval(stat, xs, ys, n_boot=n_boot, seed=seed, groups=groups)
    return Estimate(e.value, e.low, e.high, e.n, f"{method} correlation, {e.method}")


def proportion(successes: int, trials: int, level: float = 0.95) -> Estimate:
    """A fraction ``successes / trials`` with Wilson's score interval (sound for small counts and 0 or 1)."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1; got {successes} of {trials}.")
    z = float(_st.norm.ppf(0.5 + level / 2))
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return Estimate(p, max(0.0, centre - half), min(1.0, centre + half), int(trials),
                    f"{successes} of {trials}, Wilson interval")


def accuracy_difference(acc_a: float, acc_b: float, n_test: int, *, seed_sd: float = 0.0,
                        level: float = 0.95) -> Estimate:
    """``acc_a - acc_b`` (in %) of two single runs scored on the same ``n_test`` test samples.

    The interval adds the sampling error of each accuracy (binomial) and, when ``seed_sd`` (the
    standard deviation of one run's accuracy over seeds, measured elsewhere) is given, the seed-to-seed
    spread of both runs: ``sd^2 = p_a(1-p_a)/n + p_b(1-p_b)/n + 2 seed_sd^2``.
    """
    if n_test < 1:
        raise ValueError(f"n_test must be positive; got {n_test}.")
    pa, pb = acc_a / 100.0, acc_b / 100.0
    var = (pa * (1 - pa) + pb * (1 - pb)) / n_test * 1e4 + 2 * seed_sd ** 2
    z = float(_st.norm.ppf(0.5 + level / 2))
    d = acc_a - acc_b
    how = "binomial test-sample error" + (f" and seed sd {seed_sd:.2g}" if seed_sd else "")
    return Estimate(d, d - z * math.sqrt(var), d + z * math.sqrt(var), int(n_test), how)


def independent_difference(mean_a: float, half_a: float, mean_b: float, half_b: float, n: int) -> Estimate:
    """``mean_a - mean_b`` of two independent means given with the half-widths of their intervals (e.g. the
    95% intervals of two few-shot accuracies over ``n`` episodes each): the half-widths add in quadrature,
    as the standard errors of independent means do."""
    if half_a < 0 or half_b < 0:
        raise ValueError(f"half-widths are non-negative; got {half_a} and {half_b}.")
    d, half = mean_a - mean_b, math.hypot(half_a, half_b)
    return Estimate(d, d - half, d + half, int(n), "difference of two independent means, their intervals combined")
