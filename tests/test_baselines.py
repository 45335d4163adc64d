"""Transferability baselines against straightforward numpy ports of their reference implementations.

Each ``ref_*`` function below is a line-by-line port of the published code named in its docstring
(TensorFlow replaced by numpy, the computation kept in float64); the library's implementation is
independent of it (vectorised, other linear algebra) and must agree on random data.
"""

import math

import numpy as np
import pytest
import scipy.linalg
import scipy.stats
import sklearn.decomposition
import sklearn.preprocessing
import torch
from sklearn.mixture import GaussianMixture

from ncutils.transferability import gbc, leep, nce, nleep, parc, sfda, transrate

FEATURE_SCORES = (nleep, parc, sfda, gbc, transrate)


def data(seed, n=150, d=40, k=4, sep=1.0, sizes=None):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n) if sizes is None else np.repeat(np.arange(len(sizes)), sizes)
    rng.shuffle(y)
    X = rng.normal(size=(k, d))[y] * sep + rng.normal(size=(len(y), d)) + 3.0
    return X, y


def source_probabilities(y, seed, z=12, sharp=2.0):
    """Softmax outputs of a fake source classifier that partly depend on the target label."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(len(y), z)) + sharp * rng.normal(size=(int(y.max()) + 1, z))[y]
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


# --------------------------------------------------------------------------- reference ports
def ref_leep_tllib(source_pred, target_label):
    """tllib/ranking/leep.py, log_expected_empirical_prediction."""
    N, C_s = source_pred.shape
    target_label = target_label.reshape(-1)
    C_t = int(np.max(target_label) + 1)
    normalized_prob = source_pred / float(N)
    joint = np.zeros((C_t, C_s), dtype=float)
    for i in range(C_t):
        this_class = normalized_prob[target_label == i]
        joint[i] = np.sum(this_class, axis=0)
    with np.errstate(invalid="ignore"):  # 0 / 0 for a source class nobody predicts
        p_target_given_source = (joint / joint.sum(axis=0, keepdims=True)).T
    empirical_prediction = source_pred @ p_target_given_source
    empirical_prob = np.array([predict[label] for predict, label in zip(empirical_prediction, target_label)])
    return np.mean(np.log(empirical_prob))


def ref_leep_stable_transfer(predictions, target_labels):
    """google-research stable_transfer/transferability/leep.py, get_leep_score (numpy for tf)."""
    num_target_classes = int(np.max(target_labels)) + 1
    one_hot_encoding_t = np.eye(num_target_classes)[target_labels]
    occurrences_s_t = np.einsum("bt,bs->st", one_hot_encoding_t, predictions)
    occurrences_s = np.sum(occurrences_s_t, axis=-1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        probability_t_given_s = np.where(occurrences_s > 0, occurrences_s_t / occurrences_s, 0.0)
    target_predictions = predictions @ probability_t_given_s
    eep = np.sum(target_predictions * one_hot_encoding_t, axis=-1)
    with np.errstate(divide="ignore"):
        return np.mean(np.where(eep > 0, np.log(eep), -np.log(float(num_target_classes))))


def ref_nce_tllib(source_labels, target_labels):
    """tllib/ranking/nce.py, negative_conditional_entropy."""
    C_t = int(np.max(target_labels) + 1)
    C_s = int(np.max(source_labels) + 1)
    N = len(source_labels)
    joint = np.zeros((C_t, C_s), dtype=float)
    for s, t in zip(source_labels, target_labels):
        joint[int(t), int(s)] += 1.0 / N
    p_z = joint.sum(axis=0, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        p_target_given_source = (joint / p_z).T
    mask = p_z.reshape(-1) != 0
    p_target_given_source = p_target_given_source[mask] + 1e-20
    entropy_y_given_z = np.sum(-p_target_given_source * np.log(p_target_given_source), axis=1, keepdims=True)
    conditional_entropy = np.sum(entropy_y_given_z * p_z.reshape((-1, 1))[mask])
    return -conditional_entropy


def ref_nleep_stable_transfer(features, target_labels, random_state):
    """stable_transfer: pca_reduction(features, 0.8) then get_nleep_score with 5 * C components."""
    reduced = sklearn.decomposition.PCA(n_components=0.8, svd_solver="full").fit_transform(features)
    num_components_gmm = int((np.max(target_labels) + 1) * 5)
    gmm = GaussianMixture(n_components=num_components_gmm, random_state=random_state).fit(reduced)
    return ref_leep_stable_transfer(gmm.predict_proba(reduced), target_labels)


def ref_parc(features, y, n_dims=32):
    """dbolya/parc methods.py: feature_reduce + PARC.get_parc_correlation (labels one-hot, np.corrcoef)."""
    f = n_dims if n_dims <= features.shape[0] else features.shape[0]
    feats = sklearn.decomposition.PCA(
        n_components=f, svd_solver="randomized", random_state=1919, iterated_power=1
    ).fit_transform(features)
    labels = np.eye(len(np.unique(y)))[y]
    feats = sklearn.preprocessing.StandardScaler().fit_transform(feats)
    rdm1 = 1 - np.corrcoef(feats)
    rdm2 = 1 - np.corrcoef(labels)
    iu = np.triu_indices(rdm1.shape[0], 1)
    return rdm1[iu], rdm2[iu]


def ref_parc_score(features, y, decimals=None):
    lt1, lt2 = ref_parc(features, y)
    if decimals is not None:  # undo the rounding noise of corrcoef on one-hot rows
        lt2 = np.round(lt2, decimals)
    return scipy.stats.spearmanr(lt1, lt2)[0] * 100


def _ref_cov(X, shrinkage=-1):
    emp_cov = np.cov(np.asarray(X).T, bias=1)
    if shrinkage < 0:
        return emp_cov
    n_features = emp_cov.shape[0]
    mu = np.trace(emp_cov) / n_features
    shrunk_cov = (1.0 - shrinkage) * emp_cov
    shrunk_cov.flat[:: n_features + 1] += shrinkage * mu
    return shrunk_cov


def _ref_iterative_A(A, max_iterations=3):
    x = A.sum(axis=1)
    for _ in range(max_iterations):
        temp = np.dot(A, x)
        y = temp / np.linalg.norm(temp, 2)
        temp = np.dot(A, y)
        x = temp / np.linalg.norm(temp, 2)
    return np.dot(np.dot(x.T, A), y)


class RefSFDA:
    """TencentARC/SFDA metrics.py, class SFDA (fit and predict_proba), without the print."""

    def __init__(self, shrinkage=None):
        self.shrinkage = shrinkage

    def fit(self, X, y):
        _, y_t = np.unique(y, return_inverse=True)
        self.priors_ = np.bincount(y_t) / float(len(y))
        classes, y = np.unique(y, return_inverse=True)
        cnt = np.bincount(y)
        means = np.zeros(shape=(len(classes), X.shape[1]))
        np.add.at(means, y, X)
        means /= cnt[:, None]
        self.means_ = means
        cov = np.zeros(shape=(X.shape[1], X.shape[1]))
        for idx, group in enumerate(classes):
            cov += self.priors_[idx] * np.atleast_2d(_ref_cov(X[y == group, :]))
        Sw = cov
        if self.shrinkage is None:
            self.shrinkage = max(np.exp(-5 * _ref_iterative_A(Sw, max_iterations=3)), 1e-10)
        St = _ref_cov(X, shrinkage=self.shrinkage)
        n_features = Sw.shape[0]
        mu = np.trace(Sw) / n_features
        shrunk_Sw = (1.0 - self.shrinkage) * Sw
        shrunk_Sw.flat[:: n_features + 1] += self.shrinkage * mu
        Sb = St - shrunk_Sw
        evals, evecs = scipy.linalg.eigh(Sb, shrunk_Sw)
        evecs = evecs[:, np.argsort(evals)[::-1]]
        self.coef_ = np.dot(self.means_, evecs).dot(evecs.T)
        self.intercept_ = -0.5 * np.diag(np.dot(self.means_, self.coef_.T)) + np.log(self.priors_)
        return self

    def predict_proba(self, X):
        scores = np.dot(X, self.coef_.T) + self.intercept_
        scores = scores - scores.max(1, keepdims=True)
        e = np.exp(scores)
        return e / e.sum(1, keepdims=True)


def ref_sfda_score(X, y):
    """TencentARC/SFDA metrics.py, SFDA_Score (modifies X in place, as the original)."""
    n = len(y)
    num_classes = len(np.unique(y))
    first = RefSFDA()
    prob = first.fit(X, y).predict_proba(X)
    prob = np.exp(prob) / np.exp(prob).sum(axis=1, keepdims=True)
    classes, yi = np.unique(y, return_inverse=True)
    cnt = np.bincount(yi)
    means = np.zeros(shape=(len(classes), X.shape[1]))
    np.add.at(means, yi, X)
    means /= cnt[:, None]
    means_ = np.zeros(shape=(len(classes), X.shape[1]))
    for i in range(len(classes)):
        means_[i] = (np.sum(means, axis=0) - means[i]) / (len(classes) - 1)
    for y_ in range(num_classes):
        indices = np.where(y == y_)[0]
        y_prob = np.take(prob, indices, axis=0)[:, y_]
        X[indices] = y_prob.reshape(len(y_prob), 1) * X[indices] + (1 - y_prob.reshape(len(y_prob), 1)) * means_[y_]
    second = RefSFDA(shrinkage=first.shrinkage)
    prob = second.fit(X, y).predict_proba(X)
    return np.sum(prob[np.arange(n), y]) / n


def ref_gbc(features, target_labels, pca=64):
    """stable_transfer: pca_reduction(features, 64) then get_gbc_score(..., 'spherical') (numpy for tf)."""
    features = sklearn.decomposition.PCA(n_components=pca, svd_solver="full").fit_transform(features)
    unique_labels = list(dict.fromkeys(target_labels.tolist()))  # tf.unique: order of appearance
    stats = {}
    for label in unique_labels:
        class_features = features[target_labels == label]
        stats[label] = (class_features.mean(0), np.maximum(class_features.var(0), 1e-4))
    total = []
    for c1 in unique_labels:
        temp = []
        for c2 in unique_labels:
            if c1 != c2:
                mu1, sigma1 = stats[c1][0], np.mean(stats[c1][1])
                mu2, sigma2 = stats[c2][0], np.mean(stats[c2][1])
                avg_sigma = (sigma1 + sigma2) / 2
                first_part = np.sum((mu1 - mu2) ** 2 / avg_sigma) / 8
                second_part = np.sum(np.log(avg_sigma))
                second_part -= 0.5 * np.sum(np.log(sigma1))
                second_part -= 0.5 * np.sum(np.log(sigma2))
                temp.append(np.exp(-(first_part + 0.5 * second_part)))
        total.append(np.sum(temp))
    return -np.sum(total)


def _ref_coding_rate(features, eps=1e-4):
    n, d = features.shape
    (_, rate) = np.linalg.slogdet(np.eye(d) + 1 / (n * eps) * features.transpose() @ features)
    return 0.5 * rate


def ref_transrate(features, labels, eps=1e-4):
    """tllib/ranking/transrate.py, transrate."""
    f = features - np.mean(features, axis=0, keepdims=True)
    Rf = _ref_coding_rate(f, eps)
    Rfy = 0.0
    C = int(labels.max() + 1)
    for i in range(C):
        Rfy += _ref_coding_rate(f[(labels == i).flatten()], eps)
    return Rf - Rfy / C


def rel(a, b):
    return abs(a - b) / abs(b)


# --------------------------------------------------------------------------- agreement with the references
@pytest.mark.parametrize("seed", range(3))
def test_leep_matches_tllib_and_stable_transfer(seed):
    _, y = data(seed, sizes=[40, 25, 60, 15])
    P = source_probabilities(y, seed)
    ours = leep(P, y)
    assert rel(ours, ref_leep_tllib(P, y)) < 1e-12
    assert rel(ours, ref_leep_stable_transfer(P, y)) < 1e-12
    assert -math.log(4) < ours < 0
    # a source class no sample predicts: tllib divides 0 by 0, stable_transfer (and we) drop it
    P0 = np.hstack([P, np.zeros((len(y), 1))])
    assert rel(leep(P0, y), ref_leep_stable_transfer(P0, y)) < 1e-12
    assert np.isnan(ref_leep_tllib(P0, y))


def test_leep_of_a_source_that_determines_the_target_is_zero():
    y = np.arange(30) % 3
    assert leep(np.eye(5)[y + 2], y) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="sum to 1"):
        leep(np.ones((30, 5)), y)
    with pytest.raises(ValueError, match="negative"):
        leep(np.eye(5)[y] - 0.1, y)


@pytest.mark.parametrize("seed", range(3))
def test_nce_matches_tllib(seed):
    _, y = data(seed, n=300, k=5)
    z = source_probabilities(y, seed, z=9, sharp=1.0).argmax(1)
    ours = nce(z, y)
    assert rel(ours, ref_nce_tllib(z, y)) < 1e-12
    assert -math.log(5) < ours < 0
    # arbitrary source and target label values
    assert nce(np.array([100, -4, 7, 55, 3, 11, 2, 9, 8])[z], np.array([3, 7, 11, 20, 40])[y]) == pytest.approx(
        ours, rel=1e-14
    )
    assert nce(y + 10, y) == pytest.approx(0.0, abs=1e-15)  # the source prediction determines the label


@pytest.mark.parametrize("seed", range(2))
def test_nleep_matches_stable_transfer(seed):
    X, y = data(seed, n=200, d=30, k=3, sep=0.6)
    ours = nleep(X, y, seed=123)
    ref = ref_nleep_stable_transfer(X, y, random_state=123)
    assert rel(ours, ref) < 1e-9
    assert -math.log(3) < ours < -0.01  # not a trivial value
    assert nleep(X, y) == pytest.approx(nleep(X, y, seed=0), rel=0, abs=0)  # deterministic


@pytest.mark.parametrize("seed", range(3))
def test_parc_matches_dbolya_parc(seed):
    X, y = data(seed, n=120, d=50, k=4, sep=0.5)
    ours = parc(X, y)
    # with the one-hot dissimilarities rounded back onto their two exact values, the port is PARC
    assert rel(ours, ref_parc_score(X, y, decimals=12)) < 1e-10
    # the unrounded port differs only by the random tie-breaking of corrcoef's rounding noise
    assert abs(ours - ref_parc_score(X, y)) < 0.5
    assert 1 < ours < 100


def test_parc_keeps_label_ties_exact():
    X, y = data(4, n=90, d=50, k=3, sep=0.5)
    _, lt2 = ref_parc(X, y)
    assert np.unique(lt2).size > 2  # np.corrcoef on one-hot rows does break the ties
    exact = np.where(y[:, None] == y[None, :], 0.0, 1.5)[np.triu_indices(90, 1)]
    assert np.allclose(lt2, exact, atol=1e-12)
    ref = scipy.stats.spearmanr(ref_parc(X, y)[0], exact)[0] * 100
    assert parc(X, y) == pytest.approx(ref, rel=1e-10)


def test_parc_for_fewer_than_32_dimensions():
    X, y = data(5, n=60, d=6, k=3, sep=1.0)  # the reference raises here (n_components=32 > d)
    lt1 = 1 - np.corrcoef(
        sklearn.preprocessing.StandardScaler().fit_transform(
            sklearn.decomposition.PCA(n_components=6, svd_solver="randomized", random_state=1919,
                                      iterated_power=1).fit_transform(X)
        )
    )
    iu = np.triu_indices(60, 1)
    ref = scipy.stats.spearmanr(lt1[iu], (y[:, None] != y[None, :])[iu])[0] * 100
    assert parc(X, y) == pytest.approx(ref, rel=1e-10)
    with pytest.raises(ValueError, match="d >= 2"):
        parc(X[:, :1], y)


@pytest.mark.parametrize("seed", range(3))
def test_sfda_matches_tencentarc(seed):
    X, y = data(seed, n=160, d=20, k=4, sep=0.4)
    ours = sfda(X, y)
    ref = ref_sfda_score(X.copy(), y)
    assert rel(ours, ref) < 1e-11
    assert 0.3 < ours < 0.99


def test_sfda_adaptive_shrinkage_regime():
    # small features: the power-iteration eigenvalue is small and the shrinkage exp(-5 a) is large
    X, y = data(6, n=120, d=15, k=3, sep=0.4)
    X = X * 0.05
    assert rel(sfda(X, y), ref_sfda_score(X.copy(), y)) < 1e-11


@pytest.mark.parametrize(("seed", "d"), [(0, 40), (1, 100), (2, 100)])
def test_gbc_matches_stable_transfer(seed, d):
    X, y = data(seed, n=150, d=d, k=5, sep=0.5)
    ours = gbc(X, y)
    ref = ref_gbc(X, y, pca=min(64, *X.shape))
    assert rel(ours, ref) < 1e-10
    assert -20 < ours < -0.01


@pytest.mark.parametrize(("n", "d"), [(150, 40), (60, 100)])  # N > d and N < d (Gram of the other side)
def test_transrate_matches_tllib(n, d):
    X, y = data(n, n=n, d=d, k=4, sep=0.7)
    ours = transrate(X, y)
    assert rel(ours, ref_transrate(X, y)) < 1e-10
    assert ours > 0
    assert transrate(X, y, eps=1e-2) == pytest.approx(ref_transrate(X, y, eps=1e-2), rel=1e-10)


# --------------------------------------------------------------------------- conventions
def test_scores_prefer_separable_features():
    good, y = data(7, n=200, d=40, k=4, sep=3.0)
    noise = np.random.default_rng(8).normal(size=good.shape)
    for fn in FEATURE_SCORES:
        assert fn(good, y) > fn(noise, y), fn.__name__


def test_inputs_are_not_modified_and_torch_equals_numpy():
    X, y = data(9, n=120, d=36, k=3, sep=0.5)
    P = source_probabilities(y, 9)
    Xc, yc, Pc = X.copy(), y.copy(), P.copy()
    for fn in FEATURE_SCORES:
        a = fn(X, y)
        np.testing.assert_array_equal(X, Xc)
        np.testing.assert_array_equal(y, yc)
        Xt = torch.from_numpy(X)
        b = fn(Xt, torch.from_numpy(y))
        assert torch.equal(Xt, torch.from_numpy(Xc))
        assert b == pytest.approx(a, rel=1e-12), fn.__name__
        assert fn(Xt.float(), torch.from_numpy(y).int()) == pytest.approx(a, rel=1e-3, abs=1e-6), fn.__name__
    assert leep(torch.from_numpy(P), torch.from_numpy(y)) == pytest.approx(leep(P, y), rel=1e-12)
    np.testing.assert_array_equal(P, Pc)
    z = P.argmax(1)
    assert nce(torch.from_numpy(z), torch.from_numpy(y)) == pytest.approx(nce(z, y), rel=1e-12)


def test_arbitrary_integer_labels_equal_contiguous_ones():
    X, y = data(10, n=120, d=36, k=3, sep=0.5)
    sparse = np.array([3, 7, 11])[y]
    for fn in FEATURE_SCORES:
        assert fn(X, sparse) == pytest.approx(fn(X, y), rel=1e-12), fn.__name__
    P = source_probabilities(y, 10)
    assert leep(P, sparse) == pytest.approx(leep(P, y), rel=1e-12)
    assert nce(P.argmax(1), -sparse) == pytest.approx(nce(P.argmax(1), y), rel=1e-12)


@pytest.mark.parametrize("fn", FEATURE_SCORES + (leep, nce))
def test_clear_errors(fn):
    name = {"nleep": "N-LEEP", "parc": "PARC", "sfda": "SFDA", "gbc": "GBC", "transrate": "TransRate",
            "leep": "LEEP", "nce": "NCE"}[fn.__name__]
    X, y = data(11, n=40, d=8, k=2)
    P = source_probabilities(y, 11)

    def call(features, labels):
        if fn is leep:
            return fn(P[: len(labels)] if features is not None else P, labels)
        if fn is nce:
            return fn(P[: len(labels)].argmax(1), labels)
        return fn(features, labels)

    with pytest.raises(ValueError, match=f"{name} needs at least 2 classes"):
        call(X, np.zeros(40, dtype=int))
    with pytest.raises(ValueError, match=f"{name} needs more samples than classes; got 2 samples for 2 classes"):
        call(X[:2], np.array([0, 1]))
    if fn is not nce:
        bad = (P if fn is leep else X).copy()
        bad[5, 1] = np.nan
        with pytest.raises(ValueError, match=f"NaN or inf entries, so {name} cannot be computed"):
            fn(bad, y)
    else:
        with pytest.raises(ValueError, match="must match"):
            nce(P.argmax(1)[:10], y)


def test_score_specific_errors():
    X, y = data(12, n=12, d=8, k=3)
    with pytest.raises(ValueError, match="needs at least 15 samples for 3 classes"):
        nleep(X, y)
    with pytest.raises(ValueError, match="identical"):
        nleep(np.ones((40, 3)), np.arange(40) % 2)
    with pytest.raises(ValueError, match="zero within-class scatter"):
        sfda(np.eye(4)[np.arange(20) % 2], np.arange(20) % 2)
    with pytest.raises(ValueError, match="eps must be positive"):
        transrate(X, y, eps=0.0)
