"""The NC metrics on features whose geometry is known (Section 2.3, Appendix A).

Each kind's signature is its configuration's schema (:mod:`ncutils.book.experiments`): ``classes``, ``dim``
and ``per_class`` size the features, ``seed`` seeds them.

``nc_constructed``
    Class means on a simplex ETF, isotropic Gaussian noise of each standard deviation in ``sigmas``:
    measured NC1, CDNV, numerical rank and NC2 beside their closed forms, and on the same features the
    other quantities of the field (trace-ratio NC1, NC2's norm and angle parts, the nearest-class-centre
    accuracy, NC4 against the ideal classifier whose weights are the ETF means); and NC2 of random means.
``nc_surrogates``
    ``population`` random feature sets (random means, scales and anisotropic noise, with a random share of
    the noise in the span of the class means): NC1, CDNV, numerical rank and NC2 of each, to compare the
    orderings (Appendix A).
``nc1_cost``
    Time of Eq. 4 evaluated literally (per-sample outer products, dense pseudo-inverse) against
    :func:`ncutils.metrics.nc1`, and their relative difference, on the same features.
``nc_streaming``
    The streaming :class:`~ncutils.metrics.NCAccumulator` over float32 batches against the one-shot
    functions.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from ncutils import metrics, reference
from ncutils.book.engine.units import kind

__all__ = ["etf_means", "sample"]


def etf_means(k: int, d: int, rng: np.random.Generator, radius: float = 1.0) -> np.ndarray:
    """``k`` class means on a simplex ETF of the given radius, rotated at random into R^d (k x d)."""
    Q, _ = np.linalg.qr(rng.normal(size=(d, k)))
    M = np.sqrt(k / (k - 1)) * (np.eye(k) - 1.0 / k)  # columns: a simplex ETF of unit norm
    return radius * (Q @ M).T


def sample(means: np.ndarray, sigma: float, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples per class: its mean plus isotropic Gaussian noise of standard deviation ``sigma``."""
    y = np.repeat(np.arange(len(means)), n)
    return means[y] + sigma * rng.normal(size=(len(y), means.shape[1])), y


def _all(X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    return {"NC1": metrics.nc1(X, y), "CDNV": metrics.cdnv(X, y), "numerical rank": metrics.numerical_rank(X, y),
            "NC2": metrics.nc2(X, y)}


@kind("nc_constructed")
def run_constructed(ctx, *, classes: int, dim: int, per_class: int, sigmas: list, seed: int) -> dict:
    """NC metrics of ETF means plus isotropic noise, beside their closed-form population values.

    ``classes`` means in R^``dim``, ``per_class`` samples of each at every noise level of ``sigmas`` (numbers).
    """
    rng = np.random.default_rng(seed)
    k, d, n = classes, dim, per_class
    means = etf_means(k, d, rng)
    rows = []
    for sigma in sigmas:
        X, y = sample(means, sigma, n, rng)
        parts = metrics.nc2_parts(X, y)
        rows.append({"sigma": sigma, **_all(X, y), "NC1 theory": sigma**2 * (k - 1) ** 2 / k,
                     "CDNV theory": sigma**2 * d * (k - 1) / (2 * k),
                     "NC1 trace ratio": metrics.nc1_trace_ratio(X, y),
                     "NC2 equinorm": parts["equinorm"], "NC2 equiangularity": parts["equiangularity"],
                     "NC2 max-angle": parts["max_angle"], "NCC accuracy": metrics.ncc_accuracy(X, y),
                     "NC4": metrics.nc4(X, y, means)})
    Xr, yr = sample(rng.normal(size=(k, d)) / np.sqrt(d), 0.1, n, rng)
    return {"etf": rows, "random_means_nc2": metrics.nc2(Xr, yr)}


@kind("nc_surrogates")
def run_surrogates(ctx, *, classes: int, dim: int, per_class: int, population: int, seed: int) -> dict:
    """NC1 and its surrogates (CDNV, numerical rank) over a population of random feature sets.

    ``population`` feature sets of 3 to ``classes`` classes in R^``dim``, ``per_class`` samples of each class.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(population):
        k = int(rng.integers(3, classes + 1))
        d = dim
        means = rng.normal(size=(k, d)) * rng.uniform(0.5, 2.0)
        scales = rng.uniform(0.05, 1.5) * rng.uniform(0.5, 1.5, size=d)  # anisotropic noise
        y = np.repeat(np.arange(k), per_class)
        noise = rng.normal(size=(len(y), d)) * scales
        # an independent share f of the noise variance in the span of the centred class means (the directions
        # Eq. 4 weighs), the rest orthogonal to it: spread and its direction vary independently
        basis, _ = np.linalg.qr((means - means.mean(0)).T)
        basis = basis[:, : k - 1]
        inside = noise @ basis @ basis.T
        f = rng.uniform(0.1, 0.9)
        noise = inside * np.sqrt(f * d / (k - 1)) + (noise - inside) * np.sqrt((1 - f) * d / (d - k + 1))
        X = means[y] + noise
        rows.append(_all(X, y))
    return {"rows": rows}


@kind("nc1_cost")
def run_nc1_cost(ctx, *, classes: int, dim: int, samples: int, seed: int) -> dict:
    """Seconds of the literal Eq. 4 (outer products, dense pinv) and of ncutils' exact NC1, same features.

    ``samples`` features in R^``dim`` (``samples // classes`` of each of ``classes`` classes).
    """
    rng = np.random.default_rng(seed)
    k, d = classes, dim
    X, y = sample(rng.normal(size=(k, d)), 1.0, samples // k, rng)
    t0 = time.perf_counter()
    ref = reference.nc1_dense(X, y, loop=True)
    t_ref = time.perf_counter() - t0
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    metrics.nc1(Xt[::10], yt[::10])  # warm-up on a subset holding every class
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        ours = metrics.nc1(Xt, yt)
        times.append(time.perf_counter() - t0)
    out = {"K": k, "N": len(y), "d": d, "reference s": t_ref, "ncutils s": min(times),
           "speed-up": t_ref / min(times), "relative difference": abs(ours - ref) / ref}
    if torch.cuda.is_available():
        Xg, yg = Xt.cuda().float(), yt.cuda()
        metrics.nc1(Xg, yg)
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        metrics.nc1(Xg, yg)
        torch.cuda.synchronize()
        out["ncutils GPU s"] = time.perf_counter() - t0
    return out


@kind("nc_streaming")
def run_streaming(ctx, *, classes: int, dim: int, per_class: int, sigma: float, batch_size: int, seed: int) -> dict:
    """NC1, CDNV and NC2 streamed over shuffled float32 batches, and computed in one shot.

    ETF means of ``classes`` classes in R^``dim``, ``per_class`` samples of each with noise ``sigma``, streamed
    in batches of ``batch_size``.
    """
    rng = np.random.default_rng(seed)
    X, y = sample(etf_means(classes, dim, rng), sigma, per_class, rng)
    perm = rng.permutation(len(y))
    acc = metrics.NCAccumulator()
    b = batch_size
    for i in range(0, len(y), b):
        acc.update(torch.from_numpy(X[perm[i:i + b]]).float(), torch.from_numpy(y[perm[i:i + b]]))
    streamed = acc.compute()
    one_shot = {"nc1": metrics.nc1(X, y), "cdnv": metrics.cdnv(X, y), "nc2": metrics.nc2(X, y)}
    return {"one_shot": one_shot, "streamed": {k: streamed[k] for k in one_shot}}
