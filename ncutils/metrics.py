r"""Neural-collapse metrics (paper Section 2.3, Eq. 4, and Appendix A).

Notation follows the paper. For features :math:`h_i` (rows of ``features``) with labels
:math:`y_i` in :math:`K` classes, :math:`n_k` samples in class :math:`k` and :math:`N = \sum_k n_k`:

* class means :math:`\mu_k = \frac{1}{n_k} \sum_{y_i = k} h_i` and their mean
  :math:`\mu_G = \frac{1}{K} \sum_k \mu_k` (the mean of the class means, which equals the global
  mean when classes are balanced);
* within-class covariance :math:`\Sigma_W = \frac{1}{N} \sum_i (h_i - \mu_{y_i})(h_i - \mu_{y_i})^\top`;
* between-class covariance :math:`\Sigma_B = \frac{1}{K} \sum_k (\mu_k - \mu_G)(\mu_k - \mu_G)^\top`.

.. math::

    \mathrm{NC}_1 = \frac{1}{K} \operatorname{tr}\bigl(\Sigma_W \Sigma_B^\dagger\bigr) \qquad \text{(Eq. 4)}.

:math:`\Sigma_B = M M^\top / K` with :math:`M = [\mu_1 - \mu_G, \dots, \mu_K - \mu_G]`
(:math:`d \times K`, rank at most :math:`K - 1`), so with the thin SVD :math:`M = U S V^\top`
restricted to the non-zero singular values :math:`s_j` (left singular vectors :math:`u_j`),

.. math::

    \mathrm{NC}_1 = \sum_j \frac{u_j^\top \Sigma_W u_j}{s_j^2}.

:func:`nc1` evaluates this exactly in :math:`O(N d K)` time and :math:`O(d K)` extra memory; no
:math:`d \times d` matrix is formed and nothing is inverted. Singular values are kept when the
matching eigenvalue of :math:`\Sigma_B` exceeds ``rtol`` :math:`\cdot \lambda_{\max}` with
``rtol`` :math:`= d \varepsilon` by default, the cut-off a dense float64 ``pinv`` of the
:math:`d \times d` matrix :math:`\Sigma_B` uses, so the two agree to rounding error.

Besides NC1 the module has the trace-ratio NC1
:math:`\operatorname{tr}(\Sigma_W) / \operatorname{tr}(\Sigma_B)` (Tirer et al. 2023), the CDNV, NC2 (distance from a
simplex ETF, and Papyan et al.'s equinorm / equiangularity / max-angle parts for the class means
and the classifier rows), NC3 (self-duality), NC4 (agreement of the classifier with the
nearest-class-centre rule), the nearest-class-centre accuracy, per-class and pairwise quantities,
and a streaming accumulator.

``global_mean="class_means"`` (default, Eq. 4) centres the class means at their mean :math:`\mu_G`;
``global_mean="samples"`` centres them at the mean of all samples instead (as Papyan et al.'s
and tding1's code do), which differs when the classes are imbalanced.

Every function accepts a ``torch.Tensor`` on any device or a ``numpy`` array, accumulates in
float64 on the features' device and processes rows in chunks, so a float32 GPU tensor is never
copied whole to float64 or to the host. Float64 features whose magnitude would make squares
overflow or underflow (above ``2**100`` or below ``2**-100`` in absolute value) are rescaled by
a power of two first, which is exact; every metric here is invariant to that scale.

References
----------
V. Papyan, X. Y. Han, D. L. Donoho. Prevalence of neural collapse during the terminal phase of
deep learning training. PNAS 2020.
T. Galanti, A. Gyorgy, M. Hutter. On the role of neural collapse in transfer learning. ICLR 2022.
T. Tirer, H. Huang, J. Niles-Weed. Perturbation analysis of neural collapse. ICML 2023.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any, Literal

import numpy as np
import torch

__all__ = [
    "NCAccumulator",
    "cdnv",
    "check_features",
    "check_labels",
    "class_means",
    "nc1",
    "nc1_trace_ratio",
    "nc2",
    "nc2_parts",
    "nc2_weight_parts",
    "nc3",
    "nc4",
    "nc_per_class",
    "ncc_accuracy",
    "numerical_rank",
]

ArrayLike = torch.Tensor | np.ndarray
_CHUNK_ELEMENTS = 1 << 18  # features converted to float64 at once (2 MiB) in the streaming passes
GlobalMean = Literal["class_means", "samples"]
_GLOBAL_MEANS = ("class_means", "samples")
_SAFE_EXPONENT = 100  # float64 features beyond 2**100 or below 2**-100 in magnitude are rescaled (exactly)
_ACCUMULATOR_MAX = 1e150  # larger features would overflow the accumulator's float64 scatter


# --------------------------------------------------------------------------- input handling
def _to_tensor(x: Any, name: str) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach()
    if isinstance(x, np.ndarray):
        return torch.from_numpy(x)
    if isinstance(x, (list, tuple)):
        return torch.as_tensor(np.asarray(x))
    raise TypeError(f"{name} must be a torch.Tensor or a numpy array; got {type(x).__name__}.")


def check_features(features: Any, *, name: str = "NC metrics") -> torch.Tensor:
    """``features`` as a detached 2-D real tensor (N, d) without NaN or inf; ``ValueError`` otherwise.

    NumPy arrays are wrapped without copying; the device and dtype are kept. ``name`` is what the
    caller computes (e.g. ``"LogME"``); the NaN/inf error message names it.
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
                f"features contain {bad} NaN or inf entries, so {name} cannot be computed. Check the model "
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


def _safe_scale(X: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Rescale float64 ``X`` by a power of two (exact) when squares of its entries would over/underflow."""
    if X.dtype != torch.float64:
        return X, 1.0  # float32/16 and integer features squared stay far inside the float64 range
    rows = max(1, _CHUNK_ELEMENTS // X.shape[1])
    amax = max(float(X[i : i + rows].abs().max()) for i in range(0, X.shape[0], rows))
    if amax == 0.0 or 2.0**-_SAFE_EXPONENT <= amax <= 2.0**_SAFE_EXPONENT:
        return X, 1.0
    e = math.frexp(amax)[1]  # amax * 2**-e lies in [0.5, 1)
    a, b = -(e // 2), -(e - e // 2)  # two steps: 2**-e itself may not be representable
    return X * 2.0**a * 2.0**b, 2.0**a * 2.0**b


def _prepare(
    features: Any, labels: Any, *, scale: bool = True
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, float]:
    """Validate inputs; return (features, class index per row in 0..K-1, sorted class labels, scale).

    With ``scale=True`` float64 features of extreme magnitude are multiplied by the returned power
    of two (see :func:`_safe_scale`); otherwise the scale is 1.
    """
    X = check_features(features)
    y = check_labels(labels, X.shape[0], X.device)
    classes, inverse = torch.unique(y, return_inverse=True)
    if classes.numel() < 2:
        raise ValueError(
            f"NC metrics need at least 2 classes; labels contain only {classes.tolist()}."
        )
    factor = 1.0
    if scale:
        X, factor = _safe_scale(X)
    return X, inverse, classes, factor


def _check_global_mean(global_mean: str) -> str:
    if global_mean not in _GLOBAL_MEANS:
        raise ValueError(
            f"global_mean must be 'class_means' (the mean of the class means, the paper's Eq. 4) or 'samples' "
            f"(the mean of all samples); got {global_mean!r}."
        )
    return global_mean


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


def _centre(means: torch.Tensor, counts: torch.Tensor, global_mean: str) -> torch.Tensor:
    """The global mean ``mu_G``: mean of the class means, or the sample mean ``sum_k n_k mu_k / N``."""
    if _check_global_mean(global_mean) == "class_means":
        return means.mean(0)
    return (counts[:, None] * means).sum(0) / counts.sum()


def _within_sq(X: torch.Tensor, idx: torch.Tensor, means: torch.Tensor) -> torch.Tensor:
    """Per-class sums ``sum_{y_i = k} ||h_i - mu_k||^2`` (two-pass, so no cancellation)."""
    sq = torch.zeros(means.shape[0], dtype=torch.float64, device=X.device)
    for xc, ic in _chunks(X, idx):
        sq.index_add_(0, ic, ((xc - means[ic]) ** 2).sum(1))
    return sq


def _between_basis(
    means: torch.Tensor, rtol: float | None, centre: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Orthonormal basis ``U`` (d x r) and singular values ``s`` (r) of ``M = (means - mu_G)^T``.

    ``mu_G`` is ``centre`` (default: the mean of the class means). Keeps the directions where the
    eigenvalue ``s^2 / K`` of ``Sigma_B`` exceeds ``rtol * lambda_max``.
    """
    K, d = means.shape
    if centre is None:
        centre = means.mean(0)
    M = (means - centre).T  # d x K
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


def _trace_ratio_from(within_sq_total: float, n: float, means: torch.Tensor, centre: torch.Tensor) -> float:
    tr_b = float(((means - centre) ** 2).sum()) / means.shape[0]
    if tr_b <= 0:
        raise ValueError("all class means coincide (tr Sigma_B = 0); the trace-ratio NC1 is undefined.")
    return within_sq_total / n / tr_b


def _pairwise_dist2(means: torch.Tensor) -> torch.Tensor:
    centred = means - means.mean(0, keepdim=True)  # shift does not change distances, improves rounding
    return torch.cdist(centred, centred, compute_mode="donot_use_mm_for_euclid_dist") ** 2


def _cdnv_matrix(means: torch.Tensor, variances: torch.Tensor) -> torch.Tensor:
    """``(Var_i + Var_j) / (2 ||mu_i - mu_j||^2)`` for ``i != j``, NaN on the diagonal."""
    K = means.shape[0]
    dist2 = _pairwise_dist2(means)
    off = ~torch.eye(K, dtype=torch.bool, device=means.device)
    if (dist2[off] <= 0).any():
        i, j = [int(v) for v in torch.nonzero((dist2 <= 0) & off)[0]]
        raise ValueError(f"classes {i} and {j} (sorted order) have identical means; CDNV is undefined.")
    ratio = (variances[:, None] + variances[None, :]) / (2 * dist2)
    return ratio.masked_fill(~off, float("nan"))


def _cdnv_from(means: torch.Tensor, variances: torch.Tensor) -> float:
    ratio = _cdnv_matrix(means, variances)
    return float(ratio[~torch.isnan(ratio)].mean())


def _nc2_from(means: torch.Tensor, centre: torch.Tensor | None = None) -> float:
    K = means.shape[0]
    M = means - (means.mean(0, keepdim=True) if centre is None else centre)
    G = M @ M.T
    norm = torch.linalg.matrix_norm(G)
    if norm <= 0:
        raise ValueError("all class means coincide (Sigma_B = 0); NC2 is undefined.")
    etf = torch.eye(K, dtype=G.dtype, device=G.device) - 1.0 / K
    etf = etf / (K - 1) ** 0.5
    return float(torch.linalg.matrix_norm(G / norm - etf))


def _nc2_parts_from(V: torch.Tensor, what: str) -> dict[str, float]:
    """Papyan et al.'s equinorm, equiangularity and max-angle of the rows of ``V`` (K x d)."""
    K = V.shape[0]
    norms = torch.linalg.vector_norm(V, dim=1)
    if (norms <= 0).any():
        k = int(torch.nonzero(norms <= 0)[0])
        raise ValueError(f"{what} {k} (sorted order) has zero length; its angles are undefined.")
    cos = (V / norms[:, None]) @ (V / norms[:, None]).T
    iu = torch.triu_indices(K, K, 1, device=V.device)
    pairs = cos[iu[0], iu[1]]
    return {
        "equinorm": float(norms.std() / norms.mean()),
        "equiangularity": float(pairs.std()) if pairs.numel() > 1 else 0.0,
        "max_angle": float((pairs + 1.0 / (K - 1)).abs().mean()),
    }


def _nc3_from(means: torch.Tensor, W: torch.Tensor, centre: torch.Tensor | None = None) -> float:
    M = means - (means.mean(0, keepdim=True) if centre is None else centre)  # K x d, row k = mu_k - mu_G
    return float(torch.linalg.matrix_norm(W / torch.linalg.matrix_norm(W) - M / torch.linalg.matrix_norm(M)))


def _classifier_layout(
    classifier_weight: Any, classes: torch.Tensor, d: int, device, name: str = "classifier_weight"
) -> tuple[torch.Tensor, torch.Tensor]:
    """The classifier rows (float64) and the class label each row predicts.

    One row per class (``num_outputs == K``): row ``k`` belongs to the ``k``-th smallest label.
    More rows than the largest label (non-negative labels only): row ``j`` belongs to label ``j``.
    """
    W = _to_tensor(classifier_weight, name).to(device=device, dtype=torch.float64)
    K = classes.numel()
    if W.ndim != 2 or W.shape[1] != d:
        raise ValueError(
            f"{name} must have shape (num_outputs, d={d}) like nn.Linear.weight; got {tuple(W.shape)}."
        )
    if not torch.isfinite(W).all():
        raise ValueError(f"{name} contains NaN or inf entries.")
    if W.shape[0] == K:
        return W, classes  # row i <-> i-th smallest label
    if int(classes.min()) < 0:
        raise ValueError(
            f"{name} has {W.shape[0]} rows but the labels have {K} classes, including the negative label "
            f"{int(classes.min())}, which cannot index a row; pass one row per class, the k-th smallest label "
            "matching row k."
        )
    if W.shape[0] > int(classes.max()):
        return W, torch.arange(W.shape[0], device=device)  # rows indexed by label value
    raise ValueError(
        f"{name} has {W.shape[0]} rows but the labels have {K} classes with maximum label "
        f"{int(classes.max())}; pass one row per class (sorted by label) or one row per label value."
    )


def _classifier_rows(classifier_weight: Any, classes: torch.Tensor, d: int, device) -> torch.Tensor:
    """The ``K`` classifier rows of the present classes, in sorted label order."""
    W, row_labels = _classifier_layout(classifier_weight, classes, d, device)
    return W if row_labels is classes else W[classes]


def _ncc_predict(xc: torch.Tensor, means: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Index of the nearest class mean (Euclidean) of each row of ``xc``."""
    dist = torch.cdist(xc - shift, means - shift, compute_mode="donot_use_mm_for_euclid_dist")
    return dist.argmin(1)


# --------------------------------------------------------------------------- public one-shot API
def class_means(features: ArrayLike, labels: ArrayLike) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Class means :math:`\mu_k` (float64, rows in sorted label order) and the sorted labels."""
    X, idx, classes, _ = _prepare(features, labels, scale=False)
    return _means(X, idx, classes.numel())[1], classes


def nc1(
    features: ArrayLike, labels: ArrayLike, *, rtol: float | None = None, global_mean: GlobalMean = "class_means"
) -> float:
    r"""Within-class variability collapse (Eq. 4).

    .. math::

        \mathrm{NC}_1 = \frac{1}{K} \operatorname{tr}\bigl(\Sigma_W \Sigma_B^\dagger\bigr)

    Exact (equal to a float64 dense-pseudo-inverse evaluation up to rounding) in :math:`O(N d K)`
    time and :math:`O(d K)` extra memory, using that :math:`\Sigma_B` has rank at most :math:`K`
    (:math:`K - 1` with the default centring).

    Parameters
    ----------
    features : (N, d) tensor or array
        One row per sample, on any device.
    labels : (N,) integer tensor or array
        Class of each row; any integers (need not be contiguous), classes may be imbalanced.
    rtol : float, optional
        Relative cut-off on the eigenvalues of :math:`\Sigma_B` treated as zero in the
        pseudo-inverse; default :math:`d \varepsilon` (what a dense ``pinv`` of :math:`\Sigma_B` uses).
    global_mean : {"class_means", "samples"}
        Centre of :math:`\Sigma_B`: the mean of the class means (default, Eq. 4) or the mean of all
        samples (Papyan et al.'s and tding1's code). They differ only for imbalanced classes.

    Returns
    -------
    float
        :math:`\mathrm{NC}_1` (0 for perfectly collapsed features; invariant to scaling the features).
    """
    _check_global_mean(global_mean)
    X, idx, classes, _ = _prepare(features, labels)
    K = classes.numel()
    counts, means = _means(X, idx, K)
    U, s = _between_basis(means, rtol, _centre(means, counts, global_mean))
    within = torch.zeros(U.shape[1], dtype=torch.float64, device=X.device)
    for xc, ic in _chunks(X, idx):
        z = (xc - means[ic]) @ U
        within += (z * z).sum(0)
    return _nc1_from_projected(within / X.shape[0], s)


def nc1_trace_ratio(
    features: ArrayLike, labels: ArrayLike, *, global_mean: GlobalMean = "class_means"
) -> float:
    r"""Trace-ratio NC1 (Tirer, Huang & Niles-Weed, ICML 2023).

    :math:`\Sigma_W` and :math:`\Sigma_B` as in :func:`nc1` (:math:`\Sigma_W` over all :math:`N`
    samples, :math:`\Sigma_B = \frac{1}{K} \sum_k (\mu_k - \mu_G)(\mu_k - \mu_G)^\top`), so the value is

    .. math::

        \frac{\operatorname{tr}(\Sigma_W)}{\operatorname{tr}(\Sigma_B)}
        = \frac{\frac{1}{N} \sum_i \lVert h_i - \mu_{y_i} \rVert^2}{\frac{1}{K} \sum_k \lVert \mu_k - \mu_G \rVert^2}.

    Unlike :func:`nc1` it is not invariant to invertible linear maps of the features, only to rotations and scaling.

    Parameters
    ----------
    features : (N, d) tensor or array
    labels : (N,) integer tensor or array
    global_mean : {"class_means", "samples"}
        Centre of :math:`\Sigma_B`, see :func:`nc1`.

    Returns
    -------
    float
        :math:`\operatorname{tr}(\Sigma_W) / \operatorname{tr}(\Sigma_B)`, 0 under full collapse.
    """
    _check_global_mean(global_mean)
    X, idx, classes, _ = _prepare(features, labels)
    counts, means = _means(X, idx, classes.numel())
    sq = _within_sq(X, idx, means)
    return _trace_ratio_from(float(sq.sum()), float(X.shape[0]), means, _centre(means, counts, global_mean))


def cdnv(features: ArrayLike, labels: ArrayLike, *, global_mean: GlobalMean = "class_means") -> float:
    r"""Class-distance normalised variance (Galanti et al. 2022; paper Appendix A).

    .. math::

        \operatorname{Avg}_{i \ne j} \frac{\mathrm{Var}_i + \mathrm{Var}_j}{2 \lVert \mu_i - \mu_j \rVert^2}
        \quad \text{with} \quad \mathrm{Var}_k = \frac{1}{n_k} \sum_{y_i = k} \lVert h_i - \mu_k \rVert^2.

    Linear in :math:`d`; 0 under full collapse.

    ``global_mean`` is accepted (and checked) for symmetry with :func:`nc1`; the CDNV depends only
    on differences of class means, so both choices give the same value.
    """
    _check_global_mean(global_mean)
    X, idx, classes, _ = _prepare(features, labels)
    counts, means = _means(X, idx, classes.numel())
    return _cdnv_from(means, _within_sq(X, idx, means) / counts)


def numerical_rank(features: ArrayLike, labels: ArrayLike) -> float:
    r"""Average numerical rank (paper Appendix A).

    .. math::

        \frac{1}{K} \sum_k \frac{\lVert H_k \rVert_F^2}{\lVert H_k \rVert_2^2}

    :math:`H_k` holds the (uncentred) features of class :math:`k`. The spectral norm is computed
    exactly from the smaller Gram matrix of :math:`H_k` rather than by power iteration. Ranges from 1
    (every class collapsed to a single direction) to :math:`\min(n_k, d)`.
    """
    X, idx, classes, _ = _prepare(features, labels)
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


def nc2(features: ArrayLike, labels: ArrayLike, *, global_mean: GlobalMean = "class_means") -> float:
    r"""Distance of the centred class means from a simplex ETF (Eq. 3).

    .. math::

        \Bigl\lVert \frac{G}{\lVert G \rVert_F}
        - \frac{I_K - \mathbf{1} \mathbf{1}^\top / K}{\sqrt{K - 1}} \Bigr\rVert_F

    with :math:`G = M^\top M` the Gram matrix of :math:`M = [\mu_1 - \mu_G, \dots, \mu_K - \mu_G]`.
    0 exactly when the centred means form a simplex ETF (any scale and rotation); positive
    otherwise, e.g. always when :math:`K > d + 1`. ``global_mean`` chooses :math:`\mu_G` as in :func:`nc1`.
    """
    X, idx, classes, _ = _prepare(features, labels)
    counts, means = _means(X, idx, classes.numel())
    return _nc2_from(means, _centre(means, counts, global_mean))


def nc2_parts(
    features: ArrayLike, labels: ArrayLike, *, global_mean: GlobalMean = "class_means"
) -> dict[str, float]:
    r"""NC2 split into norms and angles of the centred class means (Papyan, Han & Donoho 2020, Fig. 2-4).

    With :math:`m_k = \mu_k - \mu_G` and :math:`\cos_{ij}` the cosine between :math:`m_i` and :math:`m_j`:

    * ``equinorm`` :math:`= \operatorname{Std}_k \lVert m_k \rVert / \operatorname{Avg}_k \lVert m_k \rVert`
      (unbiased standard deviation, as ``torch.std``
      in the authors' code), 0 when all centred means have equal length;
    * ``equiangularity`` :math:`= \operatorname{Std}_{i<j} \cos_{ij}` over the :math:`K (K-1) / 2`
      pairs (unbiased; 0 for :math:`K = 2`), 0 when all pairs meet at the same angle;
    * ``max_angle`` :math:`= \operatorname{Avg}_{i \ne j} \lvert \cos_{ij} + 1 / (K - 1) \rvert`, 0 when
      every angle is the simplex ETF's maximal one, :math:`\arccos(-1 / (K - 1))`.

    All three are 0 exactly for a simplex ETF. ``global_mean`` chooses :math:`\mu_G` as in :func:`nc1`.

    Returns
    -------
    dict
        ``{"equinorm": float, "equiangularity": float, "max_angle": float}``.
    """
    X, idx, classes, _ = _prepare(features, labels)
    counts, means = _means(X, idx, classes.numel())
    return _nc2_parts_from(means - _centre(means, counts, global_mean), "centred class mean")


def nc2_weight_parts(weight: ArrayLike) -> dict[str, float]:
    r""":func:`nc2_parts` for the rows :math:`w_k` of a classifier weight (``nn.Linear.weight``, K x d).

    The rows are used as they are (not centred), as in Papyan et al.'s code. Every row counts as a
    class, so pass only the rows of the classes of interest.
    """
    W = _to_tensor(weight, "weight")
    if W.ndim != 2 or W.shape[0] < 2 or W.shape[1] == 0:
        raise ValueError(f"weight must have shape (K >= 2, d) like nn.Linear.weight; got {tuple(W.shape)}.")
    W = W.to(torch.float64)
    if not torch.isfinite(W).all():
        raise ValueError("weight contains NaN or inf entries; NC2 of the classifier cannot be computed.")
    return _nc2_parts_from(W, "weight row")


def nc_per_class(
    features: ArrayLike, labels: ArrayLike, *, global_mean: GlobalMean = "class_means"
) -> dict[str, torch.Tensor]:
    r"""Per-class and pairwise NC quantities, in sorted label order (float64, on the features' device).

    Returns
    -------
    dict
        ``classes`` (K,) the sorted labels; ``counts`` (K,) :math:`n_k`; ``means`` (K, d) :math:`\mu_k`;
        ``norms`` (K,) :math:`\lVert \mu_k - \mu_G \rVert`; ``variances`` (K,)
        :math:`\mathrm{Var}_k = \frac{1}{n_k} \sum_{y_i = k} \lVert h_i - \mu_k \rVert^2`;
        ``cdnv`` (K, K) :math:`(\mathrm{Var}_i + \mathrm{Var}_j) / (2 \lVert \mu_i - \mu_j \rVert^2)`
        with NaN on the diagonal (its
        off-diagonal mean is :func:`cdnv`); ``cosines`` (K, K) cosines between the centred means.
    """
    X, idx, classes, factor = _prepare(features, labels)
    counts, means = _means(X, idx, classes.numel())
    variances = _within_sq(X, idx, means) / counts
    centred = means - _centre(means, counts, global_mean)
    norms = torch.linalg.vector_norm(centred, dim=1)
    unit = centred / norms[:, None]
    return {
        "classes": classes,
        "counts": counts,
        "means": means / factor,
        "norms": norms / factor,
        "variances": variances / factor / factor,
        "cdnv": _cdnv_matrix(means, variances),
        "cosines": unit @ unit.T,
    }


def nc3(
    features: ArrayLike,
    labels: ArrayLike,
    classifier_weight: ArrayLike,
    *,
    global_mean: GlobalMean = "class_means",
) -> float:
    r"""Self-duality distance (paper footnote 1).

    .. math::

        \Bigl\lVert \frac{W}{\lVert W \rVert_F} - \frac{M^\top}{\lVert M \rVert_F} \Bigr\rVert_F

    ``W`` is the last-layer classifier weight (``nn.Linear.weight``). Its rows are matched to the
    classes either one row per class in sorted label order (``W.shape[0] == K``: the ``k``-th
    smallest label owns row ``k``, whatever the label values, negative ones included) or, for
    non-negative labels only, by label value (``W.shape[0] > max(labels)``); anything else raises
    ``ValueError``. 0 when :math:`w_k = c' (\mu_k - \mu_G)` for a common :math:`c' > 0`.
    """
    X, idx, classes, _ = _prepare(features, labels)
    counts, means = _means(X, idx, classes.numel())
    W = _classifier_rows(classifier_weight, classes, X.shape[1], X.device)
    return _nc3_from(means, W, _centre(means, counts, global_mean))


def nc4(
    features: ArrayLike, labels: ArrayLike, weight: ArrayLike, bias: ArrayLike | None = None
) -> float:
    r"""NC4 (Papyan et al. 2020): how often the classifier disagrees with the nearest class centre.

    The fraction of samples :math:`h` for which :math:`\operatorname{argmax}_k (w_k^\top h + b_k)` differs
    from :math:`\operatorname{argmin}_k \lVert h - \mu_k \rVert` (Euclidean, class means of ``features``).
    The rows of ``weight`` (and
    entries of ``bias``) are matched to the classes as in :func:`nc3`: one per class with the
    ``k``-th smallest label owning row ``k``, or (non-negative labels) one per label value, in
    which case a prediction of a label absent from ``labels`` counts as a disagreement.

    Parameters
    ----------
    features : (N, d) tensor or array
    labels : (N,) integer tensor or array
    weight : (num_outputs, d) tensor or array
        ``nn.Linear.weight`` of the last layer.
    bias : (num_outputs,) tensor or array, optional
        ``nn.Linear.bias``; none by default.

    Returns
    -------
    float
        In ``[0, 1]``; 0 when the classifier acts as the nearest-class-centre rule on these samples.
    """
    X, idx, classes, factor = _prepare(features, labels)
    counts, means = _means(X, idx, classes.numel())
    W, row_labels = _classifier_layout(weight, classes, X.shape[1], X.device, "weight")
    b = torch.zeros(W.shape[0], dtype=torch.float64, device=X.device)
    if bias is not None:
        b = _to_tensor(bias, "bias").to(device=X.device, dtype=torch.float64)
        if b.shape != (W.shape[0],) or not torch.isfinite(b).all():
            raise ValueError(
                f"bias must hold {W.shape[0]} finite numbers, one per row of weight; got shape {tuple(b.shape)}."
            )
        b = b * factor  # argmax(W h + b) = argmax(W (c h) + c b) for the exact rescaling c > 0
    shift = means.mean(0)
    disagree = 0
    for xc, _ in _chunks(X, idx):
        linear = row_labels[(xc @ W.T + b).argmax(1)]
        nearest = classes[_ncc_predict(xc, means, shift)]
        disagree += int((linear != nearest).sum())
    return disagree / X.shape[0]


def ncc_accuracy(features: ArrayLike, labels: ArrayLike) -> float:
    """Accuracy of the nearest-class-centre classifier: the fraction of samples whose nearest
    class mean (Euclidean, class means of ``features`` themselves) is that of their own class.

    1 under full collapse (NC4 with NC1 = 0); ties go to the smaller label.
    """
    X, idx, classes, _ = _prepare(features, labels)
    _, means = _means(X, idx, classes.numel())
    shift = means.mean(0)
    hits = sum(int((_ncc_predict(xc, means, shift) == ic).sum()) for xc, ic in _chunks(X, idx))
    return hits / X.shape[0]


# --------------------------------------------------------------------------- streaming
class NCAccumulator:
    r"""Streaming NC metrics over batches, for datasets whose features do not fit in memory.

    One pass, numerically stable: per class it keeps the count :math:`n_k` and the running mean
    :math:`\mu_k`, and overall the pooled within-class scatter :math:`S_W = N \Sigma_W`
    (:math:`d \times d`) and the per-class scatters :math:`\sum_{y_i = k} \lVert h_i - \mu_k \rVert^2`,
    all in float64 on the features' device. Each batch is reduced about its own class means (two
    passes over the batch) and merged with Chan et al.'s update

    .. math::

        S \leftarrow S + S_\text{batch} + \frac{n_a n_b}{n_a + n_b} (\mu_a - \mu_b)(\mu_a - \mu_b)^\top,

    which only adds positive semi-definite terms: nothing cancels, so :math:`\mathrm{NC}_1` stays
    accurate to rounding even at extreme collapse (:math:`\mathrm{NC}_1 \approx 10^{-17}`) far from
    the origin. Memory is :math:`O(d^2 + K d)` whatever the number of samples.

    NC4 and the nearest-class-centre accuracy compare every sample with the final class means and
    need a second pass (:func:`nc4`, :func:`ncc_accuracy`); they are not accumulated.

    Parameters
    ----------
    global_mean : {"class_means", "samples"}
        Default centre of :math:`\Sigma_B` for :meth:`compute` (see :func:`nc1`).

    Examples
    --------
    >>> acc = NCAccumulator()
    >>> for x, y in loader:                           # doctest: +SKIP
    ...     acc.update(model_features(x), y)
    >>> acc.compute()["nc1"]                          # doctest: +SKIP
    """

    def __init__(self, *, global_mean: GlobalMean = "class_means") -> None:
        self.global_mean = _check_global_mean(global_mean)
        self.reset()

    def reset(self) -> None:
        self._label_to_row: dict[int, int] = {}
        self._counts: torch.Tensor | None = None
        self._means: torch.Tensor | None = None
        self._sq: torch.Tensor | None = None
        self._scatter: torch.Tensor | None = None
        self.num_samples = 0

    @property
    def num_classes(self) -> int:
        return len(self._label_to_row)

    def _grow(self, new_labels: list[int]) -> None:
        d, dev = self._means.shape[1], self._means.device
        extra = len(new_labels)
        for lab in new_labels:
            self._label_to_row[lab] = len(self._label_to_row)
        z = torch.zeros
        self._counts = torch.cat([self._counts, z(extra, dtype=torch.float64, device=dev)])
        self._means = torch.cat([self._means, z(extra, d, dtype=torch.float64, device=dev)])
        self._sq = torch.cat([self._sq, z(extra, dtype=torch.float64, device=dev)])

    def update(self, features: ArrayLike, labels: ArrayLike) -> NCAccumulator:
        """Add a batch: ``features`` (B, d) and integer ``labels`` (B,)."""
        X = check_features(features)
        y = check_labels(labels, X.shape[0], X.device)
        if self._means is None:
            d, dev = X.shape[1], X.device
            self._counts = torch.zeros(0, dtype=torch.float64, device=dev)
            self._means = torch.zeros(0, d, dtype=torch.float64, device=dev)
            self._sq = torch.zeros(0, dtype=torch.float64, device=dev)
            self._scatter = torch.zeros(d, d, dtype=torch.float64, device=dev)
        elif X.shape[1] != self._means.shape[1]:
            raise ValueError(
                f"this batch has feature dimension {X.shape[1]} but earlier batches had "
                f"{self._means.shape[1]}; use one NCAccumulator per layer."
            )
        elif X.device != self._means.device:
            raise ValueError(f"this batch is on {X.device} but earlier batches were on {self._means.device}.")
        if X.dtype == torch.float64:
            rows = max(1, _CHUNK_ELEMENTS // X.shape[1])
            amax = max(float(X[i : i + rows].abs().max()) for i in range(0, X.shape[0], rows))
            if amax > _ACCUMULATOR_MAX:
                raise ValueError(
                    f"features reach {amax:.3g} in magnitude, beyond {_ACCUMULATOR_MAX:g}, where the accumulated "
                    "float64 scatter overflows; divide every batch by the same constant first (NC metrics are "
                    "scale-invariant)."
                )
        uniq = torch.unique(y).tolist()
        new = [lab for lab in uniq if lab not in self._label_to_row]
        if new:
            self._grow(new)
        lut = torch.tensor([self._label_to_row[lab] for lab in uniq], dtype=torch.long, device=X.device)
        local = torch.searchsorted(torch.tensor(uniq, device=X.device), y)  # 0..B_k-1 within the batch
        Kb = len(uniq)
        # the batch about its own class means (two passes over the batch)
        nb, mb = _means(X, local, Kb)
        sb = torch.zeros(Kb, dtype=torch.float64, device=X.device)
        for xc, lc in _chunks(X, local):
            z = xc - mb[lc]
            self._scatter.addmm_(z.T, z)
            sb.index_add_(0, lc, (z * z).sum(1))
        # Chan et al.'s merge of (n_a, mu_a, S_a) and (n_b, mu_b, S_b)
        na, ma = self._counts[lut], self._means[lut]
        n = na + nb
        delta = mb - ma
        w = na * nb / n
        v = delta * w.sqrt()[:, None]
        self._scatter.addmm_(v.T, v)
        self._sq[lut] += sb + w * (delta * delta).sum(1)
        self._means[lut] = ma + delta * (nb / n)[:, None]
        self._counts[lut] = n
        self.num_samples += X.shape[0]
        return self

    def _sorted_state(self) -> tuple[list[int], torch.Tensor, torch.Tensor, torch.Tensor]:
        if self.num_classes < 2:
            raise ValueError(
                f"NC metrics need at least 2 classes; {self.num_classes} seen in "
                f"{self.num_samples} samples so far."
            )
        order = sorted(self._label_to_row)  # report in sorted label order like the one-shot API
        perm = torch.tensor([self._label_to_row[lab] for lab in order], device=self._means.device)
        return order, self._counts[perm], self._means[perm], self._sq[perm]

    def compute(
        self,
        classifier_weight: ArrayLike | None = None,
        *,
        rtol: float | None = None,
        global_mean: GlobalMean | None = None,
    ) -> dict:
        """Return the metrics of all batches so far.

        Keys: ``nc1``, ``nc1_trace_ratio``, ``cdnv``, ``nc2``, ``equinorm``, ``equiangularity``,
        ``max_angle`` (:func:`nc2_parts`), ``num_samples``, ``num_classes``; given the classifier
        weight also ``nc3`` and ``weight_equinorm``, ``weight_equiangularity``, ``weight_max_angle``
        (:func:`nc2_weight_parts` of its rows of the seen classes). Values equal the one-shot
        functions on the concatenated batches up to float64 rounding. ``global_mean`` overrides
        the one given to the constructor.
        """
        gm = self.global_mean if global_mean is None else _check_global_mean(global_mean)
        order, counts, means, sq = self._sorted_state()
        N = float(self.num_samples)
        centre = _centre(means, counts, gm)
        U, s = _between_basis(means, rtol, centre)
        within = torch.einsum("dr,de,er->r", U, self._scatter, U) / N
        out = {
            "nc1": _nc1_from_projected(within, s),
            "nc1_trace_ratio": _trace_ratio_from(float(sq.sum()), N, means, centre),
            "cdnv": _cdnv_from(means, sq / counts),
            "nc2": _nc2_from(means, centre),
            **_nc2_parts_from(means - centre, "centred class mean"),
            "num_samples": int(self.num_samples),
            "num_classes": self.num_classes,
        }
        if classifier_weight is not None:
            classes = torch.tensor(order, device=means.device)
            W = _classifier_rows(classifier_weight, classes, means.shape[1], means.device)
            out["nc3"] = _nc3_from(means, W, centre)
            out.update({f"weight_{k}": v for k, v in _nc2_parts_from(W, "weight row").items()})
        return out

    def per_class(self, *, global_mean: GlobalMean | None = None) -> dict[str, torch.Tensor]:
        """:func:`nc_per_class` of all batches so far (same keys, sorted label order)."""
        gm = self.global_mean if global_mean is None else _check_global_mean(global_mean)
        order, counts, means, sq = self._sorted_state()
        variances = sq / counts
        centred = means - _centre(means, counts, gm)
        norms = torch.linalg.vector_norm(centred, dim=1)
        unit = centred / norms[:, None]
        return {
            "classes": torch.tensor(order, device=means.device),
            "counts": counts,
            "means": means,
            "norms": norms,
            "variances": variances,
            "cdnv": _cdnv_matrix(means, variances),
            "cosines": unit @ unit.T,
        }
