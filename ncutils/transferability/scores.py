"""Transferability scores of one model's features: NCTI (Wang et al. 2023), LogME, H-score, -NC1,
and the weighted Kendall tau that evaluates a score against fine-tuning accuracies."""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy import stats
from sklearn.decomposition import PCA
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from ncutils.metrics import check_features, check_labels, nc1

__all__ = [
    "DEFAULT_SCORES",
    "NCTI_TERMS",
    "SCORES",
    "hscore",
    "logme",
    "nc1_score",
    "ncti",
    "ncti_components",
    "normalize_components",
    "weighted_kendall",
]

ArrayLike = torch.Tensor | np.ndarray

#: The NCTI terms, in the order :func:`ncti_components` returns them.
NCTI_TERMS: tuple[str, str, str] = ("seli", "ncc", "vc")
_TERM_SIGN = {"seli": 1.0, "ncc": 1.0, "vc": -1.0}  # vc is a cost: it enters NCTI negatively

#: Scores :func:`rank_models` can compute; for every one of them higher means "transfers better". ``leep`` and
#: ``nce`` read the source classifier's outputs, the others the penultimate features
#: (:mod:`ncutils.transferability.baselines`).
SCORES: tuple[str, ...] = ("ncti", "logme", "hscore", "nc1", "leep", "nce", "nleep", "parc", "sfda", "gbc",
                           "transrate")

#: What :func:`rank_models` computes unless told otherwise: NCTI and the scores that are cheap at any size.
DEFAULT_SCORES: tuple[str, ...] = ("ncti", "logme", "hscore", "nc1")

_PCA_COMPONENTS = 64  # PCA dimension of NCTI
_SHRINKAGE_TERMS = 32  # number of leading PCA variances in the LDA shrinkage
_SHRINKAGE_FLOOR = 1e-10  # below this the shrinkage underflows and the SVD-solver LDA is used


# --------------------------------------------------------------------------- input handling
def _prepare(
    features: Any, labels: Any, name: str = "transferability scores", *, more_samples_than_classes: bool = False
) -> tuple[np.ndarray, np.ndarray, int]:
    """Validate; return float64 features on the host, class indices ``0..K-1`` and ``K``.

    ``name`` (the score) appears in the error messages. With ``more_samples_than_classes`` a
    ``ValueError`` is raised unless ``N > K``.
    """
    X = check_features(features, name=name)
    y = check_labels(labels, X.shape[0], X.device)
    Xn = X.to("cpu", torch.float64).numpy()
    classes, idx = np.unique(y.cpu().numpy(), return_inverse=True)
    if classes.size < 2:
        raise ValueError(f"{name} needs at least 2 classes; labels contain only {classes.tolist()}.")
    if more_samples_than_classes and Xn.shape[0] <= classes.size:
        raise ValueError(
            f"{name} needs more samples than classes; got {Xn.shape[0]} samples for {classes.size} classes. "
            "Use more target samples (a few per class at least)."
        )
    return Xn, idx.astype(np.int64), int(classes.size)


# --------------------------------------------------------------------------- NCTI
def _lda(explained_variance: np.ndarray) -> LinearDiscriminantAnalysis:
    """The NCTI discriminant: shrunk eigen-solver LDA, or SVD-solver LDA when the shrinkage underflows."""
    shrinkage = math.exp(-float(np.sum(explained_variance[:_SHRINKAGE_TERMS])))
    if shrinkage <= _SHRINKAGE_FLOOR:
        return LinearDiscriminantAnalysis(solver="svd")
    return LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)


def _nuclear_norm(A: np.ndarray) -> float:
    return float(np.linalg.svd(A, compute_uv=False).sum())


def ncti_components(
    features: ArrayLike, labels: ArrayLike, *, pca_components: int = _PCA_COMPONENTS
) -> tuple[float, float, float]:
    r"""The three raw NCTI terms :math:`(S_\text{seli}, S_\text{ncc}, S_\text{vc})` of one model's features.

    Parameters
    ----------
    features : (N, d) tensor or array
        Penultimate features of the target training set (any device; used in float64).
    labels : (N,) integer tensor or array
        Class of each row; any integers (mapped to ``0..K-1`` in sorted order), at least 2 classes.
    pca_components : int
        PCA dimension before the LDA (64 in the paper); ``min(pca_components, N, d)`` is used.

    Returns
    -------
    (float, float, float)
        :math:`S_\text{seli}` (nuclear norm of the centred LDA projections, :math:`\ge 0`),
        :math:`S_\text{ncc}` (mean posterior of the true class, in :math:`[0, 1]`) and
        :math:`S_\text{vc}` (log of the summed class-wise nuclear
        norms of the posteriors). Combine several models' terms with :func:`ncti`.

    Notes
    -----
    PCA uses a fixed random state, so the result is deterministic also when scikit-learn picks
    its randomised solver (large ``N`` and ``d``). When the shrinkage underflows, every step is
    invariant to invertible linear maps of the PCA coordinates; in both regimes the terms are
    invariant to rotations of the features and to relabelling the classes.
    """
    X, y, K = _prepare(features, labels, "NCTI", more_samples_than_classes=True)
    n, d = X.shape
    if not np.ptp(X, axis=0).any():
        raise ValueError("all feature vectors are identical; the NCTI discriminant is undefined.")
    if pca_components < 1:
        raise ValueError(f"pca_components must be a positive integer; got {pca_components}.")
    pca = PCA(n_components=min(pca_components, n, d), random_state=0)
    Xp = pca.fit_transform(X)
    lda = _lda(pca.explained_variance_)
    low = lda.fit_transform(Xp, y)
    seli = _nuclear_norm(low - low.mean(0, keepdims=True))
    P = lda.predict_proba(Xp)
    ncc = float(P[np.arange(n), y].mean())
    vc = math.log(sum(_nuclear_norm(P[y == c]) for c in range(K)))
    return seli, ncc, vc


def _check_terms(terms: Sequence[str]) -> tuple[str, ...]:
    terms = (terms,) if isinstance(terms, str) else tuple(terms)
    unknown = [t for t in terms if t not in NCTI_TERMS]
    if unknown or not terms or len(set(terms)) != len(terms):
        raise ValueError(
            f"terms must be a non-empty selection without repeats of {NCTI_TERMS}; got {terms!r}."
        )
    return terms


def normalize_components(
    components_by_model: Mapping[str, Sequence[float]],
) -> dict[str, dict[str, float]]:
    r"""Min-max normalise each NCTI term over the candidate models.

    Each term :math:`t` becomes :math:`(t - \min_m t) / (\max_m t - \min_m t)` in :math:`[0, 1]`; a term on
    which all models agree carries no ranking information and becomes 0 for every model.

    Parameters
    ----------
    components_by_model : mapping of model name to ``(seli, ncc, vc)``
        At least two models, as returned by :func:`ncti_components`.

    Returns
    -------
    dict
        ``{model: {"seli": ..., "ncc": ..., "vc": ...}}`` with normalised values.
    """
    if not isinstance(components_by_model, Mapping):
        raise TypeError(
            "components_by_model must map model names to (seli, ncc, vc) tuples; "
            f"got {type(components_by_model).__name__}."
        )
    if len(components_by_model) < 2:
        raise ValueError(
            "NCTI normalises each term over the candidate models and needs at least 2 of them; got "
            f"{len(components_by_model)}."
        )
    names = list(components_by_model)
    rows = []
    for name in names:
        row = np.asarray(components_by_model[name], dtype=np.float64)
        if row.shape != (3,) or not np.isfinite(row).all():
            raise ValueError(
                f"components of {name!r} must be 3 finite numbers (seli, ncc, vc) as returned by "
                f"ncti_components; got {components_by_model[name]!r}."
            )
        rows.append(row)
    A = np.stack(rows)
    lo, span = A.min(0), np.ptp(A, axis=0)
    normed = np.divide(A - lo, span, out=np.zeros_like(A), where=span > 0)
    return {name: dict(zip(NCTI_TERMS, map(float, normed[i]))) for i, name in enumerate(names)}


def ncti(
    components_by_model: Mapping[str, Sequence[float]], *, terms: Sequence[str] = NCTI_TERMS
) -> dict[str, float]:
    r"""NCTI score of each candidate model: :math:`S_\text{seli} + S_\text{ncc} - S_\text{vc}`, min-max normalised.

    Parameters
    ----------
    components_by_model : mapping of model name to ``(seli, ncc, vc)``
        The raw terms of at least two models (:func:`ncti_components`), all on the same dataset.
    terms : sequence of {"seli", "ncc", "vc"}
        Terms to add up (``vc`` always with a minus sign). Leaving one out gives the paper's
        ablation, e.g. ``terms=("seli", "vc")`` is NCTI without the NCC term.

    Returns
    -------
    dict
        ``{model: score}``; higher means better expected transfer. With all three terms a score
        lies in ``[-1, 2]`` (2 for a model best on every term). Terms constant over the models
        contribute 0 (see :func:`normalize_components`).
    """
    terms = _check_terms(terms)
    normed = normalize_components(components_by_model)
    return {name: float(sum(_TERM_SIGN[t] * v[t] for t in terms)) for name, v in normed.items()}


# --------------------------------------------------------------------------- baselines
def _spectrum(X: np.ndarray, T: np.ndarray, rtol: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Non-zero squared singular values ``sigma`` of ``X`` and ``U^T T`` (rows: left singular vectors).

    Works on the smaller of the two Gram matrices, so the cost is ``O(N d min(N, d))`` and no
    ``N x d`` factor is formed. Squared singular values up to ``rtol`` times the largest count as
    zero (default: the size of that Gram matrix times the machine epsilon).
    """
    n, d = X.shape
    small = min(n, d)
    tol = small * np.finfo(np.float64).eps if rtol is None else rtol
    if n <= d:
        sigma, U = np.linalg.eigh(X @ X.T)
        keep = sigma > tol * max(sigma.max(), 0.0)
        return sigma[keep], U[:, keep].T @ T
    sigma, V = np.linalg.eigh(X.T @ X)
    keep = sigma > tol * max(sigma.max(), 0.0)
    sigma, V = sigma[keep], V[:, keep]
    return sigma, (V.T @ (X.T @ T)) / np.sqrt(sigma)[:, None]


_LOGME_FLOOR = 1e-12  # relative floor on ||m||^2, ||t - X m||^2 and N - gamma: keeps alpha, beta finite


def _log_evidence(alpha: float, beta: float, sigma: np.ndarray, x2: np.ndarray, rest: float,
                  n: int, d: int) -> tuple[float, float, float, float]:
    """Log evidence of one target and the statistics ``(gamma, ||m||^2, ||t - X m||^2)`` at (alpha, beta)."""
    lam = alpha / beta
    gamma = float(np.sum(sigma / (sigma + lam)))
    m2 = float(np.sum(sigma * x2 / (sigma + lam) ** 2))
    r2 = float(np.sum(x2 * (lam / (sigma + lam)) ** 2)) + rest
    logdet = float(np.sum(np.log(alpha + beta * sigma))) + (d - sigma.size) * math.log(alpha)
    evidence = (0.5 * d * math.log(alpha) + 0.5 * n * math.log(beta) - 0.5 * n * math.log(2 * math.pi)
                - 0.5 * beta * r2 - 0.5 * alpha * m2 - 0.5 * logdet)
    return evidence, gamma, m2, r2


def _logme_target(sigma: np.ndarray, x: np.ndarray, t2: float, n: int, d: int, max_iter: int,
                  tol: float) -> float:
    """Maximum log evidence per sample of one target, by the fixed-point iteration on (alpha, beta)."""
    x2 = x**2
    rest = max(t2 - float(x2.sum()), 0.0)  # part of the target outside the column space of X
    floor = _LOGME_FLOOR * t2
    alpha = beta = 1.0
    for _ in range(max_iter):
        lam = alpha / beta
        _, gamma, m2, r2 = _log_evidence(alpha, beta, sigma, x2, rest, n, d)
        alpha = max(gamma, _LOGME_FLOOR) / max(m2, floor)
        beta = max(n - gamma, _LOGME_FLOOR) / max(r2, floor)
        if abs(alpha / beta - lam) <= tol * lam:
            break
    return _log_evidence(alpha, beta, sigma, x2, rest, n, d)[0] / n


def logme(features: ArrayLike, labels: ArrayLike, *, max_iter: int = 1000, tol: float = 1e-7) -> float:
    r"""LogME (You et al., ICML 2021): average maximum log evidence of linear models on the features.

    For each class :math:`c` the one-vs-rest target :math:`t = \mathbb{1}[y = c]` is modelled as
    :math:`t = X w + \varepsilon` with :math:`w \sim \mathcal{N}(0, \alpha^{-1} I)` and noise
    :math:`\varepsilon \sim \mathcal{N}(0, \beta^{-1} I)`; the log marginal likelihood
    :math:`\log p(t \mid X, \alpha, \beta)` is maximised over :math:`(\alpha, \beta)` by the
    fixed-point iteration of You et al. (JMLR 2022, Algorithm 2) on the singular values of :math:`X`,
    divided by :math:`N` and averaged over the classes.

    Parameters
    ----------
    features : (N, d) tensor or array
        Features, used as they are (no centring or scaling), in float64.
    labels : (N,) integer tensor or array
        Any integer labels, at least 2 classes.
    max_iter, tol : int, float
        At most ``max_iter`` fixed-point steps, stopping once :math:`\alpha / \beta` changes by at most
        ``tol`` relatively. Each step costs :math:`O(\min(N, d))`, so the defaults run to convergence;
        the reference implementation (thuml/LogME) stops after at most 11 steps with ``tol=1e-3``
        and adds ``1e-5`` to the denominators of the updates, so its values can differ from the
        maximum evidence computed here: by little when :math:`N > d`, while for :math:`N < d` its default
        fixed-point code is off (thuml/LogME issue 23) and this function is the exact maximum.

    Returns
    -------
    float
        LogME; higher means better expected transfer.

    Raises
    ------
    ValueError
        For NaN/inf features, fewer than 2 classes, or :math:`N \le K` (with at most one sample per
        class the evidence says nothing about the features).
    """
    X, y, K = _prepare(features, labels, "LogME", more_samples_than_classes=True)
    n, d = X.shape
    if max_iter < 1 or tol <= 0:
        raise ValueError(f"max_iter must be >= 1 and tol > 0; got max_iter={max_iter}, tol={tol}.")
    T = np.eye(K)[y]  # one-vs-rest targets, one column per class
    sigma, proj = _spectrum(X, T)
    if sigma.size == 0:
        raise ValueError("features are all zero; LogME is undefined.")
    counts = T.sum(0)
    evidences = [_logme_target(sigma, proj[:, c], counts[c], n, d, max_iter, tol) for c in range(K)]
    return float(np.mean(evidences))


def hscore(features: ArrayLike, labels: ArrayLike, *, rtol: float | None = None) -> float:
    r"""H-score (Bao et al., ICIP 2019).

    .. math::

        \operatorname{tr}\bigl(\operatorname{cov}(f)^\dagger \operatorname{cov}(\mathbb{E}[f \mid y])\bigr)

    :math:`\operatorname{cov}(f)` is the covariance of the features and
    :math:`\operatorname{cov}(\mathbb{E}[f \mid y])` that of the features replaced by their class
    means (weighted by the class frequencies). Both use the same normalisation, which cancels: with
    the centred features :math:`F = U S V^\top` the score equals
    :math:`\sum_k \lVert U^\top \mathbb{1}_k \rVert^2 / n_k`, the energy of the class indicators
    :math:`\mathbb{1}_k` inside the span of the centred features, which is how it is computed
    (exactly, without a :math:`d \times d` inverse).

    Parameters
    ----------
    features : (N, d) tensor or array
    labels : (N,) integer tensor or array
        Any integer labels, at least 2 classes.
    rtol : float, optional
        Eigenvalues of :math:`\operatorname{cov}(f)` up to ``rtol`` times the largest are treated as zero
        in the pseudo-inverse; default :math:`\min(N, d) \, \varepsilon` (close to NumPy's ``pinv`` default).

    Returns
    -------
    float
        H-score, between 0 and ``K - 1``; higher means better expected transfer.

    Raises
    ------
    ValueError
        For NaN/inf features, fewer than 2 classes, or ``N <= K``: with one sample per class the
        score measures only the rank of the features (it is its maximum ``K - 1`` for any generic
        features with ``d >= N - 1``).
    """
    X, y, K = _prepare(features, labels, "H-score", more_samples_than_classes=True)
    T = np.eye(K)[y]
    sigma, proj = _spectrum(X - X.mean(0, keepdims=True), T, rtol)
    if sigma.size == 0:
        raise ValueError("all feature vectors are identical; the H-score is undefined.")
    return float(np.sum(proj**2 / T.sum(0)))


def nc1_score(features: ArrayLike, labels: ArrayLike) -> float:
    r""":math:`-\mathrm{NC}_1` (:func:`ncutils.metrics.nc1`), so that, like the other scores, higher is better."""
    return -nc1(check_features(features, name="the -NC1 score"), labels)


# --------------------------------------------------------------------------- evaluation
def _as_mapping(x: Any) -> Mapping | None:
    if isinstance(x, Mapping):
        return x
    if isinstance(x, pd.Series):
        return x.to_dict()
    return None


def weighted_kendall(
    scores: Mapping[str, float] | Sequence[float], accuracies: Mapping[str, float] | Sequence[float]
) -> float:
    """Weighted Kendall tau (hyperbolic weights) between transferability scores and accuracies.

    Parameters
    ----------
    scores, accuracies : mapping of model name to value (or pandas Series), or sequences
        Either both keyed by the same model names, or two sequences of equal length in the same
        model order; at least 2 models.

    Returns
    -------
    float
        ``scipy.stats.weightedtau(scores, accuracies).statistic``, the measure used in the
        transferability literature: 1 when the two rankings agree, with disagreements among the
        top-ranked models weighing most. NaN, with a ``scipy.stats.ConstantInputWarning`` that
        says which side is constant, when all scores (or all accuracies) are equal: a score that
        cannot tell the models apart has no rank correlation. Like ``scipy.stats.spearmanr``, this
        keeps a table of many scores and datasets going while flagging the undefined entry.
    """
    s_map, a_map = _as_mapping(scores), _as_mapping(accuracies)
    if (s_map is None) != (a_map is None):
        raise TypeError(
            "pass scores and accuracies both as mappings keyed by model name or both as sequences."
        )
    if s_map is not None:
        missing = [k for k in s_map if k not in a_map]
        extra = [k for k in a_map if k not in s_map]
        if missing or extra:
            raise ValueError(
                f"scores and accuracies must have the same model names; no accuracy for {missing}, no score "
                f"for {extra}. Select the common models first, e.g. {{m: acc[m] for m in scores}}."
            )
        x = [s_map[k] for k in s_map]
        y = [a_map[k] for k in s_map]
    else:
        x, y = list(scores), list(accuracies)
        if len(x) != len(y):
            raise ValueError(
                f"got {len(x)} scores but {len(y)} accuracies; they must pair up model by model."
            )
    x_arr, y_arr = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x_arr.size < 2:
        raise ValueError(f"a rank correlation needs at least 2 models; got {x_arr.size}.")
    if not (np.isfinite(x_arr).all() and np.isfinite(y_arr).all()):
        raise ValueError("scores and accuracies must be finite numbers.")
    values = {"scores": x_arr, "accuracies": y_arr}
    constant = [f"all {name} equal {arr[0]:g}" for name, arr in values.items() if np.all(arr == arr[0])]
    if constant:
        warnings.warn(
            f"{' and '.join(constant)}: the weighted Kendall tau is undefined, NaN is returned. A score that is "
            "constant over the models cannot rank them.",
            stats.ConstantInputWarning,
            stacklevel=2,
        )
        return float("nan")
    return float(stats.weightedtau(x_arr, y_arr).statistic)


