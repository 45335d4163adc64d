r"""Straightforward reference implementations, for checking the fast ones and timing them.

:func:`nc1_dense` evaluates Eq. 4 the obvious way: the :math:`d \times d` within-class covariance
from per-sample outer products, the :math:`d \times d` between-class covariance, and a dense
float64 pseudo-inverse (``scipy.linalg.pinv``). It costs :math:`O(N d^2 + d^3)` time and
:math:`O(d^2)` memory, against :math:`O(N d K)` and :math:`O(d K)` for :func:`ncutils.metrics.nc1`.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

__all__ = ["cdnv_pairwise", "nc1_dense"]


def nc1_dense(features, labels, *, loop: bool = False) -> float:
    r"""NC1 of Eq. 4, :math:`\frac{1}{K} \operatorname{tr}(\Sigma_W \Sigma_B^\dagger)`, with explicit dense matrices.

    :math:`\Sigma_W` and :math:`\Sigma_B` are :math:`d \times d` and :math:`\Sigma_B^\dagger` is a dense
    pseudo-inverse. With ``loop=True`` :math:`\Sigma_W` is accumulated from one outer product per
    sample in a Python loop (the textbook formula, as a baseline for timing); otherwise per class
    with a matrix product.
    """
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    classes = np.unique(y)
    K, (N, d) = len(classes), X.shape
    means = {c: X[y == c].mean(0) for c in classes}
    sigma_w = np.zeros((d, d))
    if loop:
        for i in range(N):
            diff = X[i] - means[y[i]]
            sigma_w += np.outer(diff, diff)
    else:
        for c in classes:
            D = X[y == c] - means[c]
            sigma_w += D.T @ D
    sigma_w /= N
    mu = np.stack([means[c] for c in classes])
    centred = mu - mu.mean(0)
    sigma_b = centred.T @ centred / K
    return float(np.trace(sigma_w @ scipy.linalg.pinv(sigma_b)) / K)


def cdnv_pairwise(features, labels) -> float:
    """CDNV (Appendix A) with an explicit loop over ordered pairs of classes."""
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(labels)
    classes = np.unique(y)
    mus = [X[y == c].mean(0) for c in classes]
    var = [((X[y == c] - m) ** 2).sum(1).mean() for c, m in zip(classes, mus)]
    vals = [(var[i] + var[j]) / (2 * np.sum((mus[i] - mus[j]) ** 2))
            for i in range(len(classes)) for j in range(len(classes)) if i != j]
    return float(np.mean(vals))
