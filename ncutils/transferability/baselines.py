"""Transferability baselines: LEEP, NCE, N-LEEP, PARC, SFDA, GBC and TransRate.

Each score follows its paper and the defaults of the authors' (or the reference) implementation,
named in its docstring; for every one of them a larger value means "transfers better". The
features-based scores (N-LEEP, PARC, SFDA, GBC, TransRate) take the penultimate features of the
target training set, LEEP the source classifier's softmax outputs and NCE its predicted source
classes.

Conventions are those of :mod:`ncutils.transferability.scores`: inputs are numpy arrays or torch
tensors on any device (used in float64 on the host), labels are any integers (mapped to
``0..K-1`` in sorted order, which changes no score), the caller's arrays are never modified, and a
``ValueError`` names the problem for NaN/inf input, fewer than 2 classes, or ``N <= K``.

References
----------
C. Nguyen, T. Hassner, M. Seeger, C. Archambeau. LEEP: A New Measure to Evaluate Transferability
of Learned Representations. ICML 2020.
A. T. Tran, C. V. Nguyen, T. Hassner. Transferability and Hardness of Supervised Classification
Tasks. ICCV 2019.
Y. Li, X. Jia, R. Sang, Y. Zhu, B. Green, L. Wang, B. Gong. Ranking Neural Checkpoints. CVPR 2021.
D. Bolya, R. Mittapalli, J. Hoffman. Scalable Diverse Model Selection for Accessible Transfer
Learning. NeurIPS 2021.
W. Shao, X. Zhao, Y. Ge, Z. Zhang, L. Yang, X. Wang, Y. Shan, P. Luo. Not All Models Are Equal:
Predicting Model Transferability in a Self-challenging Fisher Space. ECCV 2022.
M. Pandy, A. Agostinelli, J. Uijlings, V. Ferrari, T. Mensink. Transferability Estimation using
Bhattacharyya Class Separability. CVPR 2022.
L.-K. Huang, J. Huang, Y. Rong, Q. Yang, Y. Wei. Frustratingly Easy Transferability Estimation.
ICML 2022.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.linalg
import torch
from scipy import stats
from scipy.spatial.distance import cdist
from sklearn.decomposition import PCA
from sklearn.mixture import GaussianMixture
from sklearn.preprocessing import StandardScaler

from ncutils.metrics import _to_tensor, check_labels
from ncutils.transferability.scores import _prepare

__all__ = ["gbc", "leep", "nce", "nleep", "parc", "sfda", "transrate"]

ArrayLike = torch.Tensor | np.ndarray

_PROB_TOL = 1e-3  # rows of LEEP's probabilities must sum to 1 within this
_NLEEP_VARIANCE = 0.8  # N-LEEP: PCA keeps 80% of the variance
_NLEEP_COMPONENTS_PER_CLASS = 5  # N-LEEP: Gaussian mixture components per target class
_PARC_DIMS = 32  # PARC: PCA dimension (dbolya/parc demo and the SFDA repository: n_dims=32)
_PARC_PCA = {"svd_solver": "randomized", "random_state": 1919, "iterated_power": 1}  # dbolya/parc feature_reduce
_GBC_DIMS = 64  # GBC: PCA dimension of the stable_transfer experiments (pca_reduction = 64)
_GBC_MIN_VARIANCE = 1e-4  # GBC: per-dimension variance floor of the reference code
_SFDA_POWER_STEPS = 3  # SFDA: power-iteration steps (iterative_A(..., max_iterations=3))
_SFDA_SHRINKAGE_FLOOR = 1e-10  # SFDA: lower bound of the adaptive shrinkage
_TRANSRATE_EPS = 1e-4  # TransRate: distortion of the coding rate (tllib default)


# --------------------------------------------------------------------------- LEEP and its relatives
def _leep_from(P: np.ndarray, y: np.ndarray, K: int) -> float:
    """``(1/N) sum_i log sum_z P(y_i | z) P[i, z]`` with ``P(y | z)`` from the empirical joint of ``P``."""
    n = P.shape[0]
    order = np.argsort(y, kind="stable")
    starts = np.searchsorted(y[order], np.arange(K))
    joint = np.add.reduceat(P[order], starts, axis=0) / n  # P(y, z), K x Z; every class is present
    marginal = joint.sum(0)  # P(z)
    conditional = np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)  # P(y | z)
    eep = np.einsum("iz,iz->i", P, conditional[y])  # expected empirical prediction of the true class
    return float(np.mean(np.log(eep)))


def leep(probabilities: ArrayLike, labels: ArrayLike) -> float:
    r"""LEEP, the log expected empirical prediction (Nguyen et al., ICML 2020, Eq. 2).

    With :math:`\theta(x_i)` the source classifier's softmax output on target sample :math:`x_i`,
    the empirical joint :math:`P(y, z) = \frac{1}{N} \sum_{i: y_i = y} \theta(x_i)_z`,
    :math:`P(z) = \sum_y P(y, z)` and :math:`P(y \mid z) = P(y, z) / P(z)`,

    .. math::

        \mathrm{LEEP} = \frac{1}{N} \sum_i \log \sum_z P(y_i \mid z) \, \theta(x_i)_z.

    As the paper and the reference implementations (tllib's ``log_expected_empirical_prediction``,
    google-research ``stable_transfer/transferability/leep.py``), including the log; source classes
    with :math:`P(z) = 0` contribute nothing (``divide_no_nan`` as in stable_transfer).

    Parameters
    ----------
    probabilities : (N, Z) tensor or array
        Softmax outputs of the source classifier on the target samples (rows sum to 1).
    labels : (N,) integer tensor or array
        Target labels, any integers, at least 2 classes.

    Returns
    -------
    float
        LEEP, at most 0 (0 when the source predictions determine the target label).
    """
    P, y, K = _prepare(probabilities, labels, "LEEP", more_samples_than_classes=True)
    if (P < 0).any():
        raise ValueError("probabilities contain negative entries; pass softmax outputs, not logits.")
    sums = P.sum(1)
    bad = np.abs(sums - 1) > _PROB_TOL
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(
            f"rows of probabilities must sum to 1 (softmax outputs of the source classifier); row {i} sums to "
            f"{sums[i]:.6g}. Apply torch.softmax(logits, dim=1) first."
        )
    return _leep_from(P, y, K)


def nce(source_labels: ArrayLike, labels: ArrayLike) -> float:
    r"""NCE, the negative conditional entropy :math:`-H(Y \mid Z)` (Tran et al., ICCV 2019).

    :math:`Z` are the source classifier's predicted classes (argmax of its outputs) on the target
    samples and :math:`Y` the target labels. As tllib's ``negative_conditional_entropy``: the joint
    :math:`P(y, z)` is the table of counts divided by :math:`N` (no smoothing), source classes never
    predicted are left out, and :math:`10^{-20}` is added to :math:`P(y \mid z)` inside the logarithm
    only (to avoid :math:`\log 0`), so

    .. math::

        -H(Y \mid Z) = \sum_z P(z) \sum_y P(y \mid z) \log P(y \mid z).

    Parameters
    ----------
    source_labels : (N,) integer tensor or array
        Predicted source class of each target sample, any integers (``logits.argmax(1)``).
    labels : (N,) integer tensor or array
        Target labels, any integers, at least 2 classes.

    Returns
    -------
    float
        NCE, between ``-log K`` and 0 (0 when the source prediction determines the target label).
    """
    z_t, y_t = _to_tensor(source_labels, "source_labels"), _to_tensor(labels, "labels")
    if z_t.ndim == 1 and y_t.ndim == 1 and z_t.shape[0] != y_t.shape[0]:
        raise ValueError(
            f"source_labels has {z_t.shape[0]} entries but labels has {y_t.shape[0]}; they must match sample by sample."
        )
    cpu = torch.device("cpu")
    z_raw = check_labels(z_t, z_t.shape[0], cpu).numpy()
    classes, y = np.unique(check_labels(y_t, z_raw.shape[0], cpu).numpy(), return_inverse=True)
    n, K = y.shape[0], classes.size
    if K < 2:
        raise ValueError(f"NCE needs at least 2 classes; labels contain only {classes.tolist()}.")
    if n <= K:
        raise ValueError(f"NCE needs more samples than classes; got {n} samples for {K} classes.")
    _, z = np.unique(z_raw, return_inverse=True)  # only predicted source classes: P(z) > 0
    Zs = int(z.max()) + 1
    joint = np.bincount(z * K + y, minlength=Zs * K).reshape(Zs, K) / n  # P(z, y)
    p_z = joint.sum(1)
    conditional = joint / p_z[:, None] + 1e-20  # P(y | z), as tllib
    entropy_given_z = -(conditional * np.log(conditional)).sum(1)
    return float(-(entropy_given_z * p_z).sum())


def nleep(features: ArrayLike, labels: ArrayLike, *, seed: int = 0) -> float:
    """N-LEEP (Li et al., Ranking Neural Checkpoints, CVPR 2021): LEEP on a Gaussian mixture's posteriors.

    The features are reduced by PCA to the fewest components that explain 80% of their variance
    (``PCA(n_components=0.8, svd_solver="full")``), a Gaussian mixture with 5 components per target
    class is fitted to them (``sklearn.mixture.GaussianMixture(n_components=5 K,
    random_state=seed)`` with its defaults: full covariances, ``reg_covar=1e-6``, k-means
    initialisation, one initialisation, at most 100 EM steps), and its posterior responsibilities
    play the role of the source classifier's probabilities in :func:`leep`. This is google-research
    ``stable_transfer/transferability/nleep.py`` with its experiment defaults (``pca_reduction =
    0.8``; number of components ``5 K`` as in the paper), except that the seed is ``seed`` (the
    reference uses ``random_state=123``) and the computation stays in float64 (the reference casts
    the PCA output to float32).

    Parameters
    ----------
    features : (N, d) tensor or array
        Penultimate features of the target samples.
    labels : (N,) integer tensor or array
        Target labels, any integers, at least 2 classes and ``N >= 5 K`` samples.
    seed : int
        Random state of the Gaussian mixture's initialisation.

    Returns
    -------
    float
        N-LEEP, at most 0; higher means better expected transfer.
    """
    X, y, K = _prepare(features, labels, "N-LEEP", more_samples_than_classes=True)
    n_components = _NLEEP_COMPONENTS_PER_CLASS * K
    if X.shape[0] < n_components:
        raise ValueError(
            f"N-LEEP fits a Gaussian mixture with {_NLEEP_COMPONENTS_PER_CLASS} components per class and needs at "
            f"least {n_components} samples for {K} classes; got {X.shape[0]}."
        )
    _check_not_constant(X, "N-LEEP")
    Xp = PCA(n_components=_NLEEP_VARIANCE, svd_solver="full").fit_transform(X)
    gmm = GaussianMixture(n_components=n_components, random_state=seed).fit(Xp)
    return _leep_from(gmm.predict_proba(Xp), y, K)


def _check_not_constant(X: np.ndarray, name: str) -> None:
    if not np.ptp(X, axis=0).any():
        raise ValueError(f"all feature vectors are identical; {name} is undefined.")


# --------------------------------------------------------------------------- PARC
def parc(features: ArrayLike, labels: ArrayLike) -> float:
    """PARC, Pairwise Annotation Representation Comparison (Bolya et al., NeurIPS 2021).

    As dbolya/parc (``methods.PARC`` with ``n_dims=32``, its demo's and the SFDA repository's
    setting): the features are reduced by PCA to ``min(32, N, d)`` dimensions with the reference's
    ``feature_reduce`` (``PCA(svd_solver="randomized", random_state=1919, iterated_power=1)``,
    ``fit_transform``; the reference fails for ``d < 32``, here the dimension is capped instead),
    standardised per dimension (``StandardScaler``), and the dissimilarity matrix of the samples
    ``1 - corr(h_i, h_j)`` (Pearson correlation across dimensions, ``1 - np.corrcoef``) is compared
    with that of the one-hot labels by the Spearman correlation of their upper triangles (``k = 1``),
    times 100.

    The label dissimilarity ``1 - corrcoef(e_{y_i}, e_{y_j})`` is 0 for equal labels and
    ``K / (K - 1)`` otherwise; it is built exactly from the equality of the labels, so tied pairs
    stay exactly tied (``np.corrcoef`` of one-hot vectors leaves rounding noise of about ``1e-16``
    that breaks some ties at random and shifts the Spearman ranks slightly).

    Memory and time are ``O(N^2)`` (all pairs of samples); the SFDA repository subsamples to 15000
    samples, which is left to the caller.

    Parameters
    ----------
    features : (N, d) tensor or array
        Penultimate features, ``d >= 2``.
    labels : (N,) integer tensor or array
        Target labels, any integers, at least 2 classes, ``N > K``.

    Returns
    -------
    float
        PARC in ``[-100, 100]``; higher means better expected transfer.
    """
    X, y, K = _prepare(features, labels, "PARC", more_samples_than_classes=True)
    n, d = X.shape
    if d < 2:
        raise ValueError("PARC correlates the feature vectors of pairs of samples and needs d >= 2 dimensions.")
    Xp = PCA(n_components=min(_PARC_DIMS, n, d), **_PARC_PCA).fit_transform(X)
    Xs = StandardScaler().fit_transform(Xp)
    flat = np.ptp(Xs, axis=1) == 0
    if flat.any():
        raise ValueError(
            f"{int(flat.sum())} samples have all-equal standardised PCA coordinates; their Pearson correlation with "
            "other samples, and PARC, are undefined."
        )
    rows, cols = np.triu_indices(n, 1)
    feature_dissimilarity = (1.0 - np.corrcoef(Xs))[rows, cols]
    label_dissimilarity = np.where(y[rows] == y[cols], 0.0, K / (K - 1))
    return float(stats.spearmanr(feature_dissimilarity, label_dissimilarity)[0] * 100)


# --------------------------------------------------------------------------- SFDA
def _largest_eigenvalue(A: np.ndarray, steps: int = _SFDA_POWER_STEPS) -> float:
    """SFDA's ``iterative_A``: a few steps of power iteration from ``A 1`` and the Rayleigh-type quotient."""
    x = A.sum(1)
    for _ in range(steps):
        t = A @ x
        v = t / np.linalg.norm(t)
        t = A @ v
        x = t / np.linalg.norm(t)
    return float(x @ A @ v)


def _shrunk(C: np.ndarray, shrinkage: float) -> np.ndarray:
    """``(1 - s) C + s (tr C / d) I`` (sklearn's ``shrunk_covariance``)."""
    out = (1.0 - shrinkage) * C
    out.flat[:: C.shape[0] + 1] += shrinkage * np.trace(C) / C.shape[0]
    return out


def _sfda_fit(X: np.ndarray, y: np.ndarray, K: int, shrinkage: float | None) -> tuple[np.ndarray, np.ndarray, float]:
    """Coefficients, intercepts and shrinkage of SFDA's regularised Fisher discriminant (``SFDA.fit``)."""
    n = X.shape[0]
    counts = np.bincount(y, minlength=K)
    priors = counts / n
    means = np.zeros((K, X.shape[1]))
    np.add.at(means, y, X)
    means /= counts[:, None]
    D = X - means[y]
    Sw = D.T @ D / n  # sum_k prior_k * (biased covariance of class k): the within scatter
    if np.trace(Sw) <= 0:
        raise ValueError(
            "every sample equals its class mean (zero within-class scatter); SFDA's discriminant is undefined."
        )
    if shrinkage is None:
        shrinkage = max(math.exp(-5.0 * _largest_eigenvalue(Sw)), _SFDA_SHRINKAGE_FLOOR)
    # coef = means V V^T with V the generalised eigenvectors of (S_b, shrunk S_w), normalised to
    # V^T (shrunk S_w) V = I; all of them are kept, so V V^T = (shrunk S_w)^-1.
    try:
        coef = scipy.linalg.solve(_shrunk(Sw, shrinkage), means.T, assume_a="pos").T
    except (np.linalg.LinAlgError, scipy.linalg.LinAlgError) as err:
        raise ValueError(
            f"SFDA's regularised within-class scatter (shrinkage {shrinkage:.3g}) is numerically singular; "
            "reduce the feature dimension (e.g. by PCA) first."
        ) from err
    intercept = -0.5 * np.einsum("kd,kd->k", means, coef) + np.log(priors)
    return coef, intercept, shrinkage


def _softmax(S: np.ndarray) -> np.ndarray:
    E = np.exp(S - S.max(1, keepdims=True))
    return E / E.sum(1, keepdims=True)


def sfda(features: ArrayLike, labels: ArrayLike) -> float:
    r"""SFDA, Self-challenging Fisher Discriminant Analysis (Shao et al., ECCV 2022).

    As ``SFDA_Score`` of TencentARC/SFDA (``metrics.py``) with its defaults:

    1. a regularised Fisher discriminant (``SFDA()``): within scatter
       :math:`S_w = \sum_k (n_k / N) \operatorname{Cov}_k` (biased class covariances), shrinkage
       :math:`\lambda = \max(e^{-5 a}, 10^{-10})` with :math:`a` the largest eigenvalue of :math:`S_w`
       estimated by 3 steps of power iteration from :math:`S_w \mathbf{1}` (``iterative_A``),
       :math:`S_w` shrunk to :math:`\tilde S_w = (1 - \lambda) S_w + \lambda (\operatorname{tr} S_w / d) I`;
       class scores :math:`h W^\top + b` with :math:`W = M \tilde S_w^{-1}` and
       :math:`b_k = -\mu_k W_k^\top / 2 + \log(n_k / N)`, and their softmax :math:`p(y \mid h)` (the
       reference obtains :math:`W` from the generalised eigenvectors :math:`V` of the between and the
       shrunk within scatter as :math:`M V V^\top`; keeping all of them, :math:`V V^\top` is the
       inverse of the shrunk within scatter, which is what is computed here);
    2. the probabilities are softened by a second softmax (:math:`e^{p} / \sum e^{p}`);
    3. ConfMix: each sample becomes :math:`p h + (1 - p) \mu'_k`, with :math:`p` its softened
       probability of its own class :math:`k` and :math:`\mu'_k` the mean of the other classes' means;
    4. the discriminant of step 1 is fitted again on the mixed features with the same shrinkage,
       and the score is the mean probability of the true class on the mixed features (no log,
       as in the reference).

    The reference overwrites the caller's features with the mixed ones; here they are left
    untouched. It runs in float32 features from torch; here everything is float64.

    Parameters
    ----------
    features : (N, d) tensor or array
        Penultimate features (``O(d^2)`` memory, ``O(N d^2 + d^3)`` time).
    labels : (N,) integer tensor or array
        Target labels, any integers, at least 2 classes, ``N > K``.

    Returns
    -------
    float
        SFDA in ``(0, 1]``; higher means better expected transfer.
    """
    X, y, K = _prepare(features, labels, "SFDA", more_samples_than_classes=True)
    n = X.shape[0]
    rows = np.arange(n)
    coef, intercept, shrinkage = _sfda_fit(X, y, K, None)
    prob = _softmax(_softmax(X @ coef.T + intercept))  # p(y | x), then softened once more
    counts = np.bincount(y, minlength=K)
    means = np.zeros((K, X.shape[1]))
    np.add.at(means, y, X)
    means /= counts[:, None]
    others = (means.sum(0, keepdims=True) - means) / (K - 1)  # mean of the other classes' means
    p = prob[rows, y][:, None]
    mixed = p * X + (1.0 - p) * others[y]  # a new array: the caller's features stay as they are
    coef, intercept, _ = _sfda_fit(mixed, y, K, shrinkage)
    return float(_softmax(mixed @ coef.T + intercept)[rows, y].mean())


# --------------------------------------------------------------------------- GBC
def gbc(features: ArrayLike, labels: ArrayLike) -> float:
    r"""GBC, the Gaussian Bhattacharyya coefficient (Pandy et al., CVPR 2022).

    As google-research ``stable_transfer/transferability/gbc.py`` with the experiment defaults of
    ``config_transferability_*.py`` (``gaussian_type = "spherical"``, ``pca_reduction = 64``): the
    features are reduced by ``PCA(n_components=min(64, N, d), svd_solver="full")``; each class
    :math:`k` is a spherical Gaussian with the class mean :math:`\mu_k` and the variance :math:`s_k`,
    the mean over dimensions of the per-dimension (biased) variances floored at :math:`10^{-4}`;
    between classes

    .. math::

        \mathrm{BD}(i, j) = \frac{\lVert \mu_i - \mu_j \rVert^2}{8 s}
        + \frac{1}{2} \Bigl(\log s - \frac{\log s_i + \log s_j}{2}\Bigr),
        \qquad s = \frac{s_i + s_j}{2},

    exactly as the reference computes it (its log term is that of one dimension: it sums the log
    of the scalar spherical variance without the factor :math:`d` of the textbook distance between
    isotropic Gaussians), and :math:`\mathrm{GBC} = -\sum_{i \ne j} \exp(-\mathrm{BD}(i, j))` over ordered pairs. The
    reference casts the PCA output to float32; here everything is float64.

    Parameters
    ----------
    features : (N, d) tensor or array
        Penultimate features.
    labels : (N,) integer tensor or array
        Target labels, any integers, at least 2 classes, ``N > K``.

    Returns
    -------
    float
        GBC in ``[-K (K - 1), 0)``; higher (closer to 0) means better separated classes.
    """
    X, y, K = _prepare(features, labels, "GBC", more_samples_than_classes=True)
    n, d = X.shape
    Xp = PCA(n_components=min(_GBC_DIMS, n, d), svd_solver="full").fit_transform(X)
    counts = np.bincount(y, minlength=K)
    means = np.zeros((K, Xp.shape[1]))
    np.add.at(means, y, Xp)
    means /= counts[:, None]
    var = np.zeros_like(means)
    np.add.at(var, y, (Xp - means[y]) ** 2)
    s = np.maximum(var / counts[:, None], _GBC_MIN_VARIANCE).mean(1)  # spherical variance per class
    avg = (s[:, None] + s[None, :]) / 2
    bd = cdist(means, means, "sqeuclidean") / avg / 8 + 0.5 * (
        np.log(avg) - 0.5 * np.log(s)[:, None] - 0.5 * np.log(s)[None, :]
    )
    bc = np.exp(-bd)
    np.fill_diagonal(bc, 0.0)
    return float(-bc.sum())


# --------------------------------------------------------------------------- TransRate
def _coding_rate(Z: np.ndarray, eps: float) -> float:
    """``(1/2) log det(I_d + Z^T Z / (n eps))``, through the smaller of the two Gram matrices."""
    n, d = Z.shape
    G = Z @ Z.T if n < d else Z.T @ Z  # det(I_d + c Z^T Z) = det(I_n + c Z Z^T)
    G /= n * eps
    G.flat[:: G.shape[0] + 1] += 1.0
    return 0.5 * float(np.linalg.slogdet(G)[1])


def transrate(features: ArrayLike, labels: ArrayLike, *, eps: float = _TRANSRATE_EPS) -> float:
    r"""TransRate (Huang et al., ICML 2022): coding rate of the features minus the mean per-class rate.

    As tllib's ``transrate`` (``tllib/ranking/transrate.py``, ``eps = 1e-4``): the features are
    centred at their mean (once, over all samples),
    :math:`R(Z) = \frac{1}{2} \log\det\bigl(I + Z^\top Z / (n \varepsilon)\bigr)` for :math:`n` rows
    :math:`Z`, and

    .. math::

        \mathrm{TransRate} = R(Z) - \frac{1}{K} \sum_k R(Z_k),

    with :math:`Z_k` the (globally centred) rows of class :math:`k`. The log-determinants are taken
    on the smaller of :math:`Z^\top Z` and :math:`Z Z^\top` (equal by Sylvester's determinant identity).

    Parameters
    ----------
    features : (N, d) tensor or array
        Penultimate features.
    labels : (N,) integer tensor or array
        Target labels, any integers, at least 2 classes, ``N > K``.
    eps : float
        Distortion ``epsilon`` of the coding rate.

    Returns
    -------
    float
        TransRate; higher means better expected transfer.
    """
    if not eps > 0:
        raise ValueError(f"eps must be positive; got {eps}.")
    X, y, K = _prepare(features, labels, "TransRate", more_samples_than_classes=True)
    Z = X - X.mean(0, keepdims=True)
    return _coding_rate(Z, eps) - float(np.mean([_coding_rate(Z[y == k], eps) for k in range(K)]))
