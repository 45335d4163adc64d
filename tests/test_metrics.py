"""NC metrics against hand-built cases and a dense float64 reference."""

import numpy as np
import pytest
import torch

from ncutils.metrics import NCAccumulator, cdnv, class_means, nc1, nc2, nc3, nc_metrics, numerical_rank
from ncutils.reference import cdnv_pairwise, nc1_dense

# --------------------------------------------------------------------------- references
dense_nc1 = nc1_dense  # Eq. 4 with explicit d x d covariances and a dense pseudo-inverse
dense_cdnv = cdnv_pairwise


def clusters(n=600, d=16, k=5, spread=1.0, seed=0, labels=None, sizes=None):
    rng = np.random.default_rng(seed)
    if sizes is not None:
        y = np.repeat(np.arange(len(sizes)), sizes)
    else:
        y = rng.integers(0, k, size=n) if labels is None else labels
    means = rng.normal(scale=3.0, size=(int(y.max()) + 1, d))
    return means[y] + spread * rng.normal(size=(len(y), d)), y


def simplex_etf(k, d, scale=2.5, seed=0):
    """K x d rows forming a simplex ETF, rotated randomly into R^d (d >= K)."""
    rng = np.random.default_rng(seed)
    Q, _ = np.linalg.qr(rng.normal(size=(d, k)))
    M = np.sqrt(k / (k - 1)) * (np.eye(k) - np.ones((k, k)) / k)
    return scale * (Q @ M).T + rng.normal(size=d)  # arbitrary offset: centring removes it


# --------------------------------------------------------------------------- NC1
@pytest.mark.parametrize("seed", range(3))
def test_nc1_matches_dense_pinv(seed):
    X, y = clusters(seed=seed)
    ref = dense_nc1(X, y)
    assert nc1(X, y) == pytest.approx(ref, rel=1e-6)
    assert ref > 0.01  # a non-trivial case


def test_nc1_zero_for_collapsed_features():
    _, y = clusters(n=200, d=8, k=4)
    means = np.random.default_rng(1).normal(size=(4, 8))
    X = means[y]
    assert nc1(X, y) == pytest.approx(0.0, abs=1e-20)
    assert cdnv(X, y) == pytest.approx(0.0, abs=1e-20)
    assert numerical_rank(X, y) == pytest.approx(1.0, rel=1e-12)


def test_nc1_grows_with_within_class_spread():
    vals = [nc1(*clusters(spread=s, seed=3)) for s in (0.1, 1.0, 3.0)]
    assert vals[0] < vals[1] < vals[2]
    # Sigma_W scales with spread^2, Sigma_B is (almost) fixed
    assert vals[1] / vals[0] == pytest.approx(100, rel=0.05)


def test_nc1_imbalanced_classes():
    X, y = clusters(d=12, sizes=[300, 20, 5, 90])
    assert nc1(X, y) == pytest.approx(dense_nc1(X, y), rel=1e-6)


def test_nc1_more_classes_than_dimensions():
    X, y = clusters(n=900, d=6, k=30)
    assert len(np.unique(y)) == 30
    assert nc1(X, y) == pytest.approx(dense_nc1(X, y), rel=1e-6)


def test_nc1_high_dimension_rank_deficient_between_class():
    X, y = clusters(n=400, d=300, k=7)
    assert nc1(X, y) == pytest.approx(dense_nc1(X, y), rel=1e-6)


def test_non_contiguous_labels_equal_relabelled():
    X, y = clusters(k=3)
    sparse = np.array([3, 7, 9])[y]
    for fn in (nc1, cdnv, nc2, numerical_rank):
        assert fn(X, sparse) == pytest.approx(fn(X, y), rel=1e-12)
    _, classes = class_means(X, sparse)
    assert classes.tolist() == [3, 7, 9]


def test_tensor_and_array_inputs_agree():
    X, y = clusters()
    a = nc_metrics(X, y)
    b = nc_metrics(torch.from_numpy(X), torch.from_numpy(y))
    c = nc_metrics(torch.from_numpy(X).float(), torch.from_numpy(y).int())
    for k in a:
        assert b[k] == pytest.approx(a[k], rel=1e-12)
        assert c[k] == pytest.approx(a[k], rel=1e-5)  # float32 input, float64 accumulation


@pytest.mark.parametrize("scale", [1e6, 1e-6])
def test_scale_and_shift_invariance(scale):
    X, y = clusters(seed=4)
    base = nc1(X, y)
    assert nc1(X * scale, y) == pytest.approx(base, rel=1e-9)
    assert nc1(X * scale + 1e3 * scale, y) == pytest.approx(base, rel=1e-6)
    assert cdnv(X * scale, y) == pytest.approx(cdnv(X, y), rel=1e-9)


# --------------------------------------------------------------------------- other metrics
def test_cdnv_matches_pairwise_definition():
    X, y = clusters(d=10, sizes=[50, 80, 20])
    assert cdnv(X, y) == pytest.approx(dense_cdnv(X, y), rel=1e-10)


def test_numerical_rank_matches_definition():
    X, y = clusters(n=300, d=20, k=3, seed=5)
    ref = np.mean([
        np.linalg.norm(X[y == c], "fro") ** 2 / np.linalg.norm(X[y == c], 2) ** 2 for c in range(3)
    ])
    assert numerical_rank(X, y) == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize("k,d", [(4, 4), (5, 12), (10, 64)])
def test_nc2_zero_for_simplex_etf(k, d):
    means = simplex_etf(k, d)
    y = np.repeat(np.arange(k), 7)
    rng = np.random.default_rng(0)
    noise = rng.normal(scale=0.3, size=(len(y), d))
    noise -= np.stack([noise[y == c].mean(0) for c in range(k)])[y]  # keep the class means exact
    X = means[y] + noise
    assert nc2(X, y) == pytest.approx(0.0, abs=1e-10)
    assert nc1(X, y) > 0.001  # within-class spread does not matter to NC2


def test_nc2_positive_off_etf():
    X, y = clusters(d=16, k=5, spread=0.01)
    assert nc2(X, y) > 0.05
    # an ETF cannot exist with K > d + 1
    X, y = clusters(n=600, d=3, k=8, spread=0.0)
    assert nc2(X, y) > 0.1


def test_nc3_self_duality():
    X, y = clusters(k=4)
    means, _ = class_means(X, y)
    W = 0.37 * (means - means.mean(0)).numpy()
    assert nc3(X, y, W) == pytest.approx(0.0, abs=1e-12)
    # one row per label value (a 10-way classifier, labels {2, 5, 6, 8})
    sparse = np.array([2, 5, 6, 8])[y]
    W10 = np.random.default_rng(0).normal(size=(10, X.shape[1]))
    W10[[2, 5, 6, 8]] = W
    assert nc3(X, sparse, W10) == pytest.approx(0.0, abs=1e-12)
    assert nc3(X, y, np.random.default_rng(1).normal(size=(4, X.shape[1]))) > 0.5


# --------------------------------------------------------------------------- streaming
def test_accumulator_equals_one_shot():
    X, y = clusters(n=1000, d=24, k=6, seed=7)
    order = np.argsort(y, kind="stable")  # classes arrive one after another
    Xs, ys = X[order], y[order] + 10
    W = np.random.default_rng(2).normal(size=(6, 24))
    acc = NCAccumulator()
    for i in range(0, len(ys), 77):
        acc.update(torch.from_numpy(Xs[i : i + 77]).float(), torch.from_numpy(ys[i : i + 77]))
    out = acc.compute(W)
    X32 = torch.from_numpy(Xs).float()
    assert out["nc1"] == pytest.approx(nc1(X32, ys), rel=1e-9)
    assert out["cdnv"] == pytest.approx(cdnv(X32, ys), rel=1e-9)
    assert out["nc2"] == pytest.approx(nc2(X32, ys), rel=1e-9)
    assert out["nc3"] == pytest.approx(nc3(X32, ys, W), rel=1e-9)
    assert out["num_samples"] == 1000 and out["num_classes"] == 6


def test_accumulator_on_nearly_collapsed_features_with_large_offset():
    X, y = clusters(n=500, d=8, k=4, spread=1e-4, seed=8)
    X = X + 1e4
    acc = NCAccumulator()
    for i in range(0, 500, 64):
        acc.update(X[i : i + 64], y[i : i + 64])
    assert acc.compute()["nc1"] == pytest.approx(dense_nc1(X, y), rel=1e-4)


def test_accumulator_errors():
    acc = NCAccumulator()
    acc.update(np.ones((4, 3)), np.zeros(4, dtype=int))
    with pytest.raises(ValueError, match="at least 2 classes"):
        acc.compute()
    with pytest.raises(ValueError, match="feature dimension 5"):
        acc.update(np.ones((4, 5)), np.ones(4, dtype=int))


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "features,labels,match",
    [
        (np.ones((5, 3)), np.arange(4), "5 rows but labels has 4"),
        (np.ones((5, 3, 2)), np.arange(5), "2-D"),
        (np.ones((5, 3)), np.ones((5, 2), dtype=int), "1-D"),
        (np.ones((5, 3)), np.zeros(5), "integers"),
        (np.ones((5, 3)), np.zeros(5, dtype=int), "at least 2 classes"),
        (np.array([[np.nan, 1.0], [0.0, 1.0]]), np.arange(2), "NaN or inf"),
        (np.array([[np.inf, 1.0], [0.0, 1.0]]), np.arange(2), "NaN or inf"),
    ],
)
def test_bad_input_raises_value_error(features, labels, match):
    for fn in (nc1, cdnv, nc2, numerical_rank):
        with pytest.raises(ValueError, match=match):
            fn(features, labels)
    with pytest.raises(ValueError, match=match):
        NCAccumulator().update(features, labels).compute()


def test_identical_class_means_are_reported():
    X = np.array([[0.0, 1.0], [0.0, -1.0], [1.0, 0.0], [-1.0, 0.0]])
    y = np.array([0, 0, 1, 1])  # both class means are the origin
    with pytest.raises(ValueError, match="coincide"):
        nc1(X, y)
    with pytest.raises(ValueError, match="identical means"):
        cdnv(X, y)


def test_wrong_type_raises_type_error():
    with pytest.raises(TypeError, match="torch.Tensor or a numpy array"):
        nc1("features", [0, 1])
