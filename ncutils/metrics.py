"""Neural-collapse metrics (paper Section 2.3, Eq. 4, and Appendix A).

Notation follows the paper. For features ``h_i`` (rows of ``features``) with labels
``y_i`` in ``K`` classes, ``n_k`` samples in class ``k`` and ``N = sum_k n_k``:

* class means ``mu_k = (1/n_k) sum_{y_i = k} h_i`` and their mean ``mu_G = (1/K) sum_k mu_k``
  (the mean of the class means, which equals the global mean when classes are balanced);
* within-class covariance ``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T``;
* between-class covariance ``Sigma_B = (1/K) sum_k (mu_k - mu_G)(mu_k - mu_G)^T``.

``NC1 = tr(Sigma_W Sigma_B^dagger) / K`` (Eq. 4). ``Sigma_B = M M^T / K`` with
``M = [mu_1 - mu_G, ..., mu_K - mu_G]`` (``d x K``, rank at most ``K - 1``), so with the thin
SVD ``M = U S V^T`` restricted to the non-zero singular values,

    NC1 = sum_j (u_j^T Sigma_W u_j) / s_j^2 .

:func:`nc1` evaluates this exactly in ``O(N d K)`` time and ``O(d K)`` extra memory; no
``d x d`` matrix is formed and nothing is inverted. Singular values are kept when the
matching eigenvalue of ``Sigma_B`` exceeds ``rtol * lambda_max`` with ``rtol = d * eps``
by default, the cut-off a dense float64 ``pinv`` of the ``d x d`` matrix ``Sigma_B`` uses,
so the two agree to rounding error.

Every function accepts a ``torch.Tensor`` on any device or a ``numpy`` array, accumulates in
float64 on the features' device and processes rows in chunks, so a float32 GPU tensor is never
copied whole to float64 or to the host.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

__all__ = [
    "NCAccumulator",
    "cdnv",
    "check_features",
    "check_labels",
    "class_means",
    "nc1",
    "nc2",
    "nc3",
    "nc_metrics",
    "numerical_rank",
]

ArrayLike = torch.Tensor | np.ndarray
_CHUNK_ELEMENTS = 1 << 18  # features converted to float64 at once (2 MiB) in the streaming passes


# --------------------------------------------------------------------------- input handling
def _to_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, (list, tuple)):
        return torch.as_tensor(np.asarray(x))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array; got {type(x).__name__}.")


def check_features(features: Any) -> torch.Tensor:
    """``features`` as a detached 2-D real tensor (N, d) without NaN or inf; ``ValueError`` otherwise.

    NumPy arrays are wrapped without copying; the device and dtype are kept.
    """
    X = _to_tensor(features, "features")
    if X.ndim != 2:
        raise ValueError(
            f"features must be 2-D with shape (N, d); got shape {tuple(X.shape)}. Pool or flatten "
            "spatial/token dimensions first (ncutils.features does this layer by layer)."
        )
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise ValueError(f"features is empty (shape {tuple(X.shape)}).")
    if not (X.is_floating_point() or X.dtype in (torch.int32, torch.int64, torch.int16, torch.uint8)):
        raise ValueError(f"features must be real-valued; got dtype {X.dtype}.")
    if X.is_floating_point():
        rows = max(1, _CHUNK_ELEMENTS // X.shape[1])  # isfinite copies its input: check in chunks
        bad = sum(int((~torch.isfinite(X[i : i + rows])).sum()) for i in range(0, X.shape[0], rows))
        if bad:
            raise ValueError(
                f"features contain {bad} NaN or inf entries; NC metrics are undefined. Check the model "
                "for overflow (e.g. run in float32 rather than float16) or drop those samples."
            )
    return X


def check_labels(labels: Any, n: int, device: torch.device) -> torch.Tensor:
    """``labels`` as ``n`` integer class labels (int64 on ``device``); ``ValueError`` otherwise."""
    y = _to_tensor(labels, "labels")
    if y.ndim != 1:
        raise ValueError(
            f"labels must be 1-D with shape (N,); got shape {tuple(y.shape)}. Pass class indices, "
            "not one-hot vectors (use labels.argmax(1))."
        )
    if y.is_floating_point() or y.is_complex() or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers; got dtype {y.dtype}. Cast them, e.g. labels.long().")
    if y.shape[0] != n:
        raise ValueError(f"features has {n} rows but labels has {y.shape[0]} entries; they must match.")
    return y.to(device=device, dtype=torch.long)


def _prepare(features: Any, labels: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Validate inputs; return (features, class index per row in 0..K-1, sorted class labels)."""
    X = check_features(features)
    y = check_labels(labels, X.shape[0], X.device)
    classes, inverse = torch.unique(y, return_inverse=True)
    if classes.numel() < 2:
        raise ValueError(
            f"NC metrics need at least 2 classes; labels contain only {classes.tolist()}."
        )
    return X, inverse, classes


def _chunks(X: torch.Tensor, idx: torch.Tensor) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    rows = max(1, _CHUNK_ELEMENTS // X.shape[1])
    for start in range(0, X.shape[0], rows):
        yield X[start : start + rows].to(torch.float64), idx[start : start + rows]


# --------------------------------------------------------------------------- shared pieces
def _means(X: torch.Tensor, idx: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    counts = torch.bincount(idx, minlength=K).to(torch.float64)
    sums = torch.zeros(K, X.shape[1], dtype=torch.float64, device=X.device)
    for xc, ic in _chunks(X, idx):
        sums.index_add_(0, ic, xc)
    return counts, sums / counts[:, None]


def _between_basis(means: torch.Tensor, rtol: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal basis ``U`` (d x r) and singular values ``s`` (r) of ``M = (means - mu_G)^T``.

    Keeps the directions where the eigenvalue ``s^2 / K`` of ``Sigma_B`` exceeds
    ``rtol * lambda_max``.
    """
    K, d = means.shape
    M = (means - means.mean(0, keepdim=True)).T  # d x K
    U, s, _ = torch.linalg.svd(M, full_matrices=False)
    if s.numel() == 0 or s[0] <= 0:
        raise ValueError(
            "all class means coincide (Sigma_B = 0): between-class separation is zero and NC1 is undefined."
        )
    tol = (d * torch.finfo(torch.float64).eps) if rtol is None else rtol
    keep = s**2 > tol * s[0] ** 2
    return U[:, keep], s[keep]


def _nc1_from_projected(projected_within: torch.Tensor, s: torch.Tensor) -> float:
    """``sum_j (u_j^T Sigma_W u_j) / s_j^2`` given the diagonal ``u_j^T Sigma_W u_j``."""
    return float((projected_within / s**2).sum())


def _cdnv_from(means: torch.Tensor, variances: torch.Tensor) -> float:
    K = means.shape[0]
    centred = means - means.mean(0, keepdim=True)  # shift does not change distances, improves rounding
    dist2 = torch.cdist(centred, centred, compute_mode="donot_use_mm_for_euclid_dist") ** 2
    off = ~torch.eye(K, dtype=torch.bool, device=means.device)
    if (dist2[off] <= 0).any():
        i, j = [int(v) for v in torch.nonzero((dist2 <= 0) & off)[0]]
        raise ValueError(f"classes {i} and {j} (sorted order) have identical means; CDNV is undefined.")
    ratio = (variances[:, None] + variances[None, :]) / (2 * dist2)
    return float(ratio[off].mean())


def _nc2_from(means: torch.Tensor) -> float:
    K = means.shape[0]
    M = means - means.mean(0, keepdim=True)
    G = M @ M.T
    norm = torch.linalg.matrix_norm(G)
    if norm <= 0:
        raise ValueError("all class means coincide (Sigma_B = 0); NC2 is undefined.")
    etf = torch.eye(K, dtype=G.dtype, device=G.device) - 1.0 / K
    etf = etf / (K - 1) ** 0.5
    return float(torch.linalg.matrix_norm(G / norm - etf))


def _nc3_from(means: torch.Tensor, W: torch.Tensor) -> float:
    M = means - means.mean(0, keepdim=True)  # K x d, row k = mu_k - mu_G
    return float(torch.linalg.matrix_norm(W / torch.linalg.matrix_norm(W) - M / torch.linalg.matrix_norm(M)))


def _classifier_rows(classifier_weight: Any, classes: torch.Tensor, d: int, device) -> torch.Tensor:
    W = _to_tensor(classifier_weight, "classifier_weight").to(device=device, dtype=torch.float64)
    K = classes.numel()
    if W.ndim != 2 or W.shape[1] != d:
        raise ValueError(
            f"classifier_weight must have shape (num_outputs, d={d}) like nn.Linear.weight; "
            f"got {tuple(W.shape)}."
        )
    if W.shape[0] == K:
        return W  # row i <-> i-th smallest label
    if W.shape[0] > int(classes.max()):
        return W[classes]  # rows indexed by label value
    raise ValueError(
        f"classifier_weight has {W.shape[0]} rows but the labels have {K} classes with maximum label "
        f"{int(classes.max())}; pass one row per class (sorted by label) or one row per label value."
    )


# --------------------------------------------------------------------------- public one-shot API
def class_means(features: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Class means ``mu_k`` (float64, rows in sorted label order) and the sorted labels."""
    X, idx, classes = _prepare(features, labels)
    return _means(X, idx, classes.numel())[1], classes


def nc1(features: ArrayLike, labels: ArrayLike, *, rtol: float | None = None) -> float:
    """Within-class variability collapse ``NC1 = tr(Sigma_W Sigma_B^dagger) / K`` (Eq. 4).

    Exact (equal to a float64 dense-pseudo-inverse evaluation up to rounding) in ``O(N d K)``
    time and ``O(d K)`` extra memory, using that ``Sigma_B`` has rank at most ``K - 1``.

    Parameters
    ----------
    features : (N, d) tensor or array
        One row per sample, on any device.
    labels : (N,) integer tensor or array
        Class of each row; any integers (need not be contiguous), classes may be imbalanced.
    rtol : float, optional
        Relative cut-off on the eigenvalues of ``Sigma_B`` treated as zero in the
        pseudo-inverse; default ``d * eps`` (what a dense ``pinv`` of ``Sigma_B`` uses).

    Returns
    -------
    float
        ``NC1`` (0 for perfectly collapsed features; invariant to scaling the features).
    """
    X, idx, classes = _prepare(features, labels)
    K = classes.numel()
    counts, means = _means(X, idx, K)
    U, s = _between_basis(means, rtol)
    within = torch.zeros(U.shape[1], dtype=torch.float64, device=X.device)
    for xc, ic in _chunks(X, idx):
        z = (xc - means[ic]) @ U
        within += (z * z).sum(0)
    return _nc1_from_projected(within / X.shape[0], s)


def cdnv(features: ArrayLike, labels: ArrayLike) -> float:
    """Class-distance normalised variance (Galanti et al. 2022; paper Appendix A).

    ``Avg_{i != j} (Var_i + Var_j) / (2 ||mu_i - mu_j||^2)`` with
    ``Var_k = (1/n_k) sum_{y_i = k} ||h_i - mu_k||^2``. Linear in ``d``; 0 under full collapse.
    """
    X, idx, classes = _prepare(features, labels)
    K = classes.numel()
    counts, means = _means(X, idx, K)
    sq = torch.zeros(K, dtype=torch.float64, device=X.device)
    for xc, ic in _chunks(X, idx):
        sq.index_add_(0, ic, ((xc - means[ic]) ** 2).sum(1))
    return _cdnv_from(means, sq / counts)


def numerical_rank(features: ArrayLike, labels: ArrayLike) -> float:
    """Average numerical rank ``(1/K) sum_k ||H_k||_F^2 / ||H_k||_2^2`` (paper Appendix A).

    ``H_k`` holds the (uncentred) features of class ``k``. The spectral norm is computed exactly
    from the smaller Gram matrix of ``H_k`` rather than by power iteration. Ranges from 1 (every
    class collapsed to a single direction) to ``min(n_k, d)``.
    """
    X, idx, classes = _prepare(features, labels)
    ratios = []
    for k in range(classes.numel()):
        Hk = X[idx == k].to(torch.float64)
        G = Hk @ Hk.T if Hk.shape[0] <= Hk.shape[1] else Hk.T @ Hk
        top = torch.linalg.eigvalsh(G)[-1]
        fro2 = torch.trace(G)
        if top <= 0:
            raise ValueError(
                f"class {int(classes[k])} has all-zero features; its numerical rank is undefined."
            )
        ratios.append(fro2 / top)
    return float(torch.stack(ratios).mean())


def nc2(features: ArrayLike, labels: ArrayLike) -> float:
    """Distance of the centred class means from a simplex ETF (Eq. 3).

    ``|| G / ||G||_F - (I_K - 1 1^T / K) / sqrt(K - 1) ||_F`` with ``G = M^T M`` the Gram matrix of
    ``M = [mu_1 - mu_G, ..., mu_K - mu_G]``. 0 exactly when the centred means form a simplex
    ETF (any scale and rotation); positive otherwise, e.g. always when ``K > d + 1``.
    """
    X, idx, classes = _prepare(features, labels)
    return _nc2_from(_means(X, idx, classes.numel())[1])


def nc3(features: ArrayLike, labels: ArrayLike, classifier_weight: ArrayLike) -> float:
    """Self-duality distance ``|| W / ||W||_F - M^T / ||M||_F ||_F`` (paper footnote 1).

    ``W`` is the last-layer classifier weight (``nn.Linear.weight``). Its rows are matched to the
    classes either one row per class in sorted label order (``W.shape[0] == K``) or by label value
    (``W.shape[0] > max(labels)``). 0 when ``w_k = c' (mu_k - mu_G)`` for a common ``c' > 0``.
    """
    X, idx, classes = _prepare(features, labels)
    means = _means(X, idx, classes.numel())[1]
    W = _classifier_rows(classifier_weight, classes, X.shape[1], X.device)
    return _nc3_from(means, W)


def nc_metrics(
    features: ArrayLike, labels: ArrayLike, classifier_weight: ArrayLike | None = None
) -> dict[str, float]:
    """All one-shot metrics at once: ``nc1``, ``cdnv``, ``nc2``, ``numerical_rank`` (and ``nc3``)."""
    out = {
        "nc1": nc1(features, labels),
        "cdnv": cdnv(features, labels),
        "nc2": nc2(features, labels),
        "numerical_rank": numerical_rank(features, labels),
    }
    if classifier_weight is not None:
        out["nc3"] = nc3(features, labels, classifier_weight)
    return out


# --------------------------------------------------------------------------- streaming
class NCAccumulator:
    """Streaming NC metrics over batches, for datasets whose features do not fit in memory.

    Keeps per-class sums, per-class sums of squared norms and the ``d x d`` second moment of the
    features, all in float64 on the features' device and shifted by the first batch's mean so
    that the final subtraction ``Sigma_W = C / N - sum_k n_k mu_k mu_k^T / N`` loses no accuracy.
    Memory is ``O(d^2 + K d)`` whatever the number of samples.

    Examples
    --------
    >>> acc = NCAccumulator()
    >>> for x, y in loader:                           # doctest: +SKIP
    ...     acc.update(model_features(x), y)
    >>> acc.compute()["nc1"]                          # doctest: +SKIP
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._label_to_row: dict[int, int] = {}
        self._shift: torch.Tensor | None = None
        self._counts: torch.Tensor | None = None
        self._sums: torch.Tensor | None = None
        self._sqnorms: torch.Tensor | None = None
        self._second: torch.Tensor | None = None
        self.num_samples = 0

    @property
    def num_classes(self) -> int:
        return len(self._label_to_row)

    def _grow(self, new_labels: list[int]) -> None:
        d, dev = self._shift.shape[0], self._shift.device
        extra = len(new_labels)
        for lab in new_labels:
            self._label_to_row[lab] = len(self._label_to_row)
        z = torch.zeros
        self._counts = torch.cat([self._counts, z(extra, dtype=torch.float64, device=dev)])
        self._sums = torch.cat([self._sums, z(extra, d, dtype=torch.float64, device=dev)])
        self._sqnorms = torch.cat([self._sqnorms, z(extra, dtype=torch.float64, device=dev)])

    def update(self, features: ArrayLike, labels: ArrayLike) -> NCAccumulator:
        """Add a batch: ``features`` (B, d) and integer ``labels`` (B,)."""
        X = check_features(features)
        y = check_labels(labels, X.shape[0], X.device)
        if self._shift is None:
            d, dev = X.shape[1], X.device
            self._shift = X.to(torch.float64).mean(0)
            self._counts = torch.zeros(0, dtype=torch.float64, device=dev)
            self._sums = torch.zeros(0, d, dtype=torch.float64, device=dev)
            self._sqnorms = torch.zeros(0, dtype=torch.float64, device=dev)
            self._second = torch.zeros(d, d, dtype=torch.float64, device=dev)
        elif X.shape[1] != self._shift.shape[0]:
            raise ValueError(
                f"this batch has feature dimension {X.shape[1]} but earlier batches had "
                f"{self._shift.shape[0]}; use one NCAccumulator per layer."
            )
        elif X.device != self._shift.device:
            raise ValueError(f"this batch is on {X.device} but earlier batches were on {self._shift.device}.")
        uniq = torch.unique(y).tolist()
        new = [lab for lab in uniq if lab not in self._label_to_row]
        if new:
            self._grow(new)
        lut = torch.tensor(
            [self._label_to_row[lab] for lab in uniq], dtype=torch.long, device=X.device
        )
        rows = lut[torch.searchsorted(torch.tensor(uniq, device=X.device), y)]
        for xc, rc in _chunks(X, rows):
            xc = xc - self._shift
            self._counts.index_add_(0, rc, torch.ones_like(rc, dtype=torch.float64))
            self._sums.index_add_(0, rc, xc)
            self._sqnorms.index_add_(0, rc, (xc * xc).sum(1))
            self._second.addmm_(xc.T, xc)
        self.num_samples += X.shape[0]
        return self

    def compute(self, classifier_weight: ArrayLike | None = None, *, rtol: float | None = None) -> dict:
        """Return ``nc1``, ``cdnv``, ``nc2`` (and ``nc3`` given the classifier weight).

        Values equal :func:`nc1`, :func:`cdnv`, :func:`nc2`, :func:`nc3` on the concatenated
        batches up to float64 rounding.
        """
        if self.num_classes < 2:
            raise ValueError(
                f"NC metrics need at least 2 classes; {self.num_classes} seen in "
                f"{self.num_samples} samples so far."
            )
        order = sorted(self._label_to_row)  # report in sorted label order like the one-shot API
        perm = torch.tensor([self._label_to_row[lab] for lab in order], device=self._sums.device)
        counts, sums, sqnorms = self._counts[perm], self._sums[perm], self._sqnorms[perm]
        means = sums / counts[:, None]  # shifted means
        N = float(self.num_samples)
        U, s = _between_basis(means, rtol)
        P = means @ U  # K x r
        within = (torch.einsum("dr,de,er->r", U, self._second, U) - (counts[:, None] * P * P).sum(0)) / N
        out = {
            "nc1": _nc1_from_projected(within, s),
            "cdnv": _cdnv_from(means, (sqnorms / counts - (means * means).sum(1)).clamp_min(0)),
            "nc2": _nc2_from(means),
            "num_samples": int(self.num_samples),
            "num_classes": self.num_classes,
        }
        if classifier_weight is not None:
            classes = torch.tensor(order, device=means.device)
            W = _classifier_rows(classifier_weight, classes, means.shape[1], means.device)
            out["nc3"] = _nc3_from(means, W)
        return out
