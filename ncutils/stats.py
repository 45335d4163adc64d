"""Uncertainty for the book's verdicts: intervals over the independent units that were replicated.

Every statistic a verdict rests on comes with a 95% interval:

* :func:`mean_interval` -- the mean of seed replicates with a Student-t interval (replicates are
  independent trainings, the cleanest source of uncertainty where units are cheap);
* :func:`paired_difference` -- the mean of ``a - b`` over replicates, with a Student-t interval;
* :func:`welch_difference` -- the difference of two independent groups' means, Welch's t interval;
* :func:`jackknife_interval` -- any statistic of observations grouped in independent units (the seeds of one
  setting, the layers of one network), with a delete-one-unit jackknife t interval: the variance between the
  units that were actually replicated is inside it, however many observations each unit holds;
* :func:`correlation` -- Spearman's, Pearson's or Kendall's correlation (or the weighted Kendall τ) with the
  jackknife interval over independent units, on Fisher's z scale;
* :func:`linear_contrasts` -- ordinary least squares with t intervals of linear combinations of the
  coefficients (e.g. the slope of a fitted parabola at either end of its range).

All functions are deterministic and return an :class:`Estimate`. An interval is only as good as
its independent units: the verdict rules (:mod:`ncutils.book.rules`) pass the column that identifies them, and
their calibration (:mod:`ncutils.book.calibration`) measures how often each interval misleads at the book's
design.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats as _st

__all__ = ["MIN_UNITS", "Estimate", "correlation", "jackknife_interval", "linear_contrasts", "mean_interval",
           "paired_difference", "welch_difference"]


#: The fewest independent units a jackknife interval is given for (fewer: no interval). With fewer units a
#: valid 95% interval of a correlation cannot exclude 0 (an exact test of a perfect Spearman correlation over
#: 4 units has p = 1/24) and the jackknife's own interval is too narrow.
MIN_UNITS = 6


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


def mean_interval(values: Sequence[float], level: float = 0.95, *,
                  bounds: tuple[float, float] | None = None) -> Estimate:
    """Mean of replicates with a Student-t interval (a single value has an unbounded interval); ``bounds``
    clips the interval to the range the quantity can take (a fraction: ``(0, 1)``)."""
    a = _clean(values)
    m = float(a.mean())
    if a.size < 2:
        return Estimate(m, -math.inf, math.inf, 1, "single replicate")
    sd = float(a.std(ddof=1))
    if sd == 0.0:
        return Estimate(m, math.nan, math.nan, int(a.size), "no interval: no spread between the replicates")
    half = float(_st.t.ppf(0.5 + level / 2, a.size - 1) * sd / math.sqrt(a.size))
    lo, hi = m - half, m + half
    if bounds is not None:
        lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
    return Estimate(m, lo, hi, int(a.size), f"mean of {a.size} replicates, t interval")


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
    if se == 0.0:  # replicates that do not vary say nothing about the variance between replicates
        return Estimate(d, math.nan, math.nan, int(x.size + y.size), "no interval: no spread in either group")
    df = (va + vb) ** 2 / (va ** 2 / (x.size - 1) + vb ** 2 / (y.size - 1))
    half = float(_st.t.ppf(0.5 + level / 2, df) * se)
    return Estimate(d, d - half, d + half, int(x.size + y.size),
                    f"difference of means of {x.size} and {y.size} replicates, Welch t interval")


_CORRELATIONS = ("spearman", "pearson", "kendall", "weighted_kendall")


def _ranks(a: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their ranks), as Spearman's ρ needs."""
    _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
    top = np.cumsum(counts)
    return (top - (counts - 1) / 2.0)[inverse]


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else math.nan


def _kendall_b(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's τ-b (ties in either variable reduce the denominator), as :func:`scipy.stats.kendalltau`."""
    sa, sb = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])
    den = math.sqrt(float((sa * sa).sum()) * float((sb * sb).sum()))
    return float((sa * sb).sum()) / den if den > 0 else math.nan


def _weighted_kendall(a: np.ndarray, b: np.ndarray) -> float:
    """The weighted Kendall τ of :func:`scipy.stats.weightedtau` with its defaults (hyperbolic weights 1/(r + 1),
    additive, ranks by each variable in turn and averaged), computed directly (equal to scipy's to rounding,
    a few times faster on the tens of candidates a ranking holds)."""
    s, t = np.sign(a[:, None] - a[None, :]), np.sign(b[:, None] - b[None, :])

    def one(u: np.ndarray, v: np.ndarray) -> float:
        order = np.lexsort((-v, -u))  # decreasing lexicographic rank by (u, v)
        r = np.empty(len(u))
        r[order] = np.arange(len(u))
        w = 1.0 / (r + 1.0)
        W = w[:, None] + w[None, :]
        den = math.sqrt(float((W * s * s).sum()) * float((W * t * t).sum()))
        return float((W * s * t).sum()) / den if den > 0 else math.nan

    return (one(a, b) + one(b, a)) / 2


def _corr(method: str) -> Callable[[np.ndarray, np.ndarray], float]:
    """The correlation ``method`` as a function of two arrays (NaN when either is constant)."""
    fn = {"spearman": lambda a, b: _pearson(_ranks(a), _ranks(b)), "pearson": _pearson, "kendall": _kendall_b,
          "weighted_kendall": _weighted_kendall}[method]

    def stat(a, b):
        a, b = np.asarray(a, float), np.asarray(b, float)
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            return math.nan
        return fn(a, b)

    return stat


def jackknife_interval(statistic: Callable[..., float], *samples: Sequence, units: Sequence | None = None,
                       level: float = 0.95, fisher: bool = False, min_units: int = MIN_UNITS) -> Estimate:
    r"""``statistic(*samples)`` with a delete-one-unit jackknife t interval.

    The samples are paired observations (equal lengths); ``units`` names the independent unit each observation
    belongs to (default: every observation is its own). The statistic is recomputed without each unit in turn;
    the spread of those :math:`G` values :math:`\hat\theta_{(-g)}`, with mean :math:`\bar\theta`, gives the
    standard error and interval

    .. math::

        \mathrm{se} = \sqrt{\frac{G - 1}{G} \sum_g \bigl(\hat\theta_{(-g)} - \bar\theta\bigr)^2},
        \qquad \hat\theta \pm t_{G-1} \, \mathrm{se},

    so the variance between units (e.g. between settings whose seeds
    are averaged) is inside it and observations that share a unit are not counted as independent. ``fisher``
    computes it on Fisher's z scale (``atanh``) and maps back, as for correlations. With fewer than
    ``min_units`` units, or a statistic undefined on a deletion, the interval is NaN (undecided).
    """
    arrays = [np.asarray(s) for s in samples]
    n = len(arrays[0])
    if any(len(a) != n for a in arrays):
        raise ValueError("the samples are paired and must have equal lengths.")
    g = np.arange(n) if units is None else np.asarray(units)
    if len(g) != n:
        raise ValueError(f"units names the unit of each of the {n} observations; got {len(g)}.")
    labels = list(dict.fromkeys(g.tolist()))
    G = len(labels)
    with np.errstate(all="ignore"):
        value = float(statistic(*arrays))
    method = f"delete-one-unit jackknife over {G} independent units, t with {G - 1} df" + (
        ", Fisher z" if fisher else "")
    if G < min_units or not math.isfinite(value):
        why = f"{G} independent units, fewer than {min_units}" if G < min_units else "undefined statistic"
        return Estimate(value, math.nan, math.nan, G, f"no interval: {why}")

    def z(v: float) -> float:
        return math.atanh(min(max(v, -0.999), 0.999)) if fisher else v

    reps = []
    for lab in labels:
        keep = g != lab
        with np.errstate(all="ignore"):
            v = float(statistic(*(a[keep] for a in arrays)))
        if not math.isfinite(v):
            return Estimate(value, math.nan, math.nan, G, "no interval: the statistic is undefined without a unit")
        reps.append(z(v))
    r = np.asarray(reps)
    se = math.sqrt((G - 1) / G * float(((r - r.mean()) ** 2).sum()))
    if se == 0.0:  # no unit moves the statistic: a sign of units that do not vary, not of certainty
        return Estimate(value, math.nan, math.nan, G, "no interval: no spread between the units")
    half = float(_st.t.ppf(0.5 + level / 2, G - 1)) * se
    centre = z(value)
    lo, hi = centre - half, centre + half
    if fisher:
        lo, hi = math.tanh(lo), math.tanh(hi)
    return Estimate(value, lo, hi, G, method)


def correlation(x: Sequence[float], y: Sequence[float], *, method: str = "spearman",
                units: Sequence | None = None, log_x: bool = False, min_units: int = MIN_UNITS) -> Estimate:
    """Correlation of paired ``x`` and ``y`` (``method``: Spearman, Pearson, Kendall, or the weighted Kendall τ of
    :func:`scipy.stats.weightedtau`) over every observation, with the jackknife interval over the independent
    ``units`` on Fisher's z scale (:func:`jackknife_interval`); ``log_x`` correlates with ``log(x)``."""
    if method not in _CORRELATIONS:
        raise ValueError(f"method must be one of {_CORRELATIONS}; got {method!r}.")
    xs, ys = _clean(x), _clean(y)
    if xs.shape != ys.shape:
        raise ValueError(f"x and y are paired; got {xs.size} and {ys.size} values.")
    if log_x:
        if (xs <= 0).any():
            raise ValueError("log_x needs positive x values.")
        xs = np.log(xs)
    e = jackknife_interval(_corr(method), xs, ys, units=units, fisher=True, min_units=min_units)
    return Estimate(e.value, e.low, e.high, e.n, f"{method.replace('_', ' ')} correlation, {e.method}")


def linear_contrasts(X: np.ndarray, y: Sequence[float], contrasts: np.ndarray, level: float = 0.95
                     ) -> list[Estimate]:
    """Ordinary least squares of ``y`` on the design ``X`` (n x p, with its intercept column), and for each row
    ``c`` of ``contrasts`` the estimate ``c . beta`` with a t interval on ``n - p`` degrees of freedom (the
    residual spread is the replication error). Fewer than ``p + 2`` observations: NaN intervals."""
    X, ys, C = np.asarray(X, float), _clean(y), np.atleast_2d(np.asarray(contrasts, float))
    n, p = X.shape
    beta, *_ = np.linalg.lstsq(X, ys, rcond=None)
    values = C @ beta
    if n < p + 2:
        return [Estimate(float(v), math.nan, math.nan, n, f"least squares over {n} points: too few for an interval")
                for v in values]
    resid = ys - X @ beta
    s2 = float(resid @ resid) / (n - p)
    cov = s2 * np.linalg.pinv(X.T @ X)
    q = float(_st.t.ppf(0.5 + level / 2, n - p))
    out = []
    for c, v in zip(C, values):
        half = q * math.sqrt(max(float(c @ cov @ c), 0.0))
        out.append(Estimate(float(v), float(v) - half, float(v) + half, n,
                            f"least squares over {n} points, t with {n - p} df"))
    return out
