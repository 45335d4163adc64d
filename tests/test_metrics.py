"""NC metrics against hand-built cases and a dense float64 reference."""

import numpy as np
import pytest
import torch

from ncutils.metrics import (
    NCAccumulator,
    cdnv,
    check_features,
    class_means,
    nc1,
    nc1_trace_ratio,
    nc2,
    nc2_parts,
    nc2_weight_parts,
    nc3,
    nc4,
    nc_per_class,
    ncc_accuracy,
    numerical_rank,
)
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
    fns = {"nc1": nc1, "cdnv": cdnv, "nc2": nc2, "numerical_rank": numerical_rank}
    a = {k: fn(X, y) for k, fn in fns.items()}
    b = {k: fn(torch.from_numpy(X), torch.from_numpy(y)) for k, fn in fns.items()}
    c = {k: fn(torch.from_numpy(X).float(), torch.from_numpy(y).int()) for k, fn in fns.items()}
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


# --------------------------------------------------------------------------- dense references of the new metrics
def dense_stats(X, y, global_mean="class_means"):
    """Class means, Sigma_W and Sigma_B by their textbook definitions (numpy, float64)."""
    classes = np.unique(y)
    M = np.stack([X[y == c].mean(0) for c in classes])
    D = X - M[np.searchsorted(classes, y)]
    sigma_w = D.T @ D / len(y)
    mu_g = M.mean(0) if global_mean == "class_means" else X.mean(0)
    C = M - mu_g
    return classes, M, sigma_w, C.T @ C / len(classes), C


def dense_parts(V):
    """Papyan et al.'s equinorm / equiangularity / max-angle of the rows of V, by loops."""
    K = len(V)
    norms = np.array([np.sqrt(v @ v) for v in V])
    cos = [V[i] @ V[j] / (norms[i] * norms[j]) for i in range(K) for j in range(i + 1, K)]
    return {
        "equinorm": np.std(norms, ddof=1) / np.mean(norms),
        "equiangularity": np.std(cos, ddof=1) if len(cos) > 1 else 0.0,
        "max_angle": np.mean([abs(c + 1 / (K - 1)) for c in cos]),
    }


# --------------------------------------------------------------------------- global mean
def test_global_mean_samples_matches_dense_formula_and_differs_on_imbalanced_data():
    X, y = clusters(d=12, sizes=[300, 20, 5, 90], seed=11)
    for gm in ("class_means", "samples"):
        classes, _, sw, sb, _ = dense_stats(X, y, gm)
        ref = np.trace(sw @ np.linalg.pinv(sb)) / len(classes)
        assert nc1(X, y, global_mean=gm) == pytest.approx(ref, rel=1e-8)
        assert nc1_trace_ratio(X, y, global_mean=gm) == pytest.approx(np.trace(sw) / np.trace(sb), rel=1e-12)
    assert nc1(X, y, global_mean="class_means") == pytest.approx(dense_nc1(X, y), rel=1e-8)
    assert abs(nc1(X, y, global_mean="samples") / nc1(X, y) - 1) > 0.01  # imbalance matters
    assert cdnv(X, y, global_mean="samples") == cdnv(X, y)  # CDNV has no global mean
    # balanced classes: the two centres coincide
    Xb, yb = clusters(d=12, sizes=[50, 50, 50], seed=12)
    assert nc1(Xb, yb, global_mean="samples") == pytest.approx(nc1(Xb, yb), rel=1e-10)
    with pytest.raises(ValueError, match="global_mean must be"):
        nc1(X, y, global_mean="mean")


# --------------------------------------------------------------------------- trace ratio, NC2 parts, per class
def test_nc1_trace_ratio_matches_dense_traces_and_is_rotation_and_scale_invariant():
    X, y = clusters(d=10, sizes=[40, 70, 30, 55], seed=13)
    _, _, sw, sb, _ = dense_stats(X, y)
    ref = np.trace(sw) / np.trace(sb)
    assert nc1_trace_ratio(X, y) == pytest.approx(ref, rel=1e-12)
    Q = np.linalg.qr(np.random.default_rng(0).normal(size=(10, 10)))[0]
    assert nc1_trace_ratio(3.0 * X @ Q + 5.0, y) == pytest.approx(ref, rel=1e-9)
    means = np.random.default_rng(1).normal(size=(4, 10))
    assert nc1_trace_ratio(means[y], y) == pytest.approx(0.0, abs=1e-25)


def test_nc2_parts_match_loops_and_vanish_for_a_simplex_etf():
    X, y = clusters(d=16, k=6, seed=14)
    for gm in ("class_means", "samples"):
        _, _, _, _, C = dense_stats(X, y, gm)
        got = nc2_parts(X, y, global_mean=gm)
        for key, val in dense_parts(C).items():
            assert got[key] == pytest.approx(val, rel=1e-10)
    W = np.random.default_rng(3).normal(size=(6, 16))
    for key, val in dense_parts(W).items():
        assert nc2_weight_parts(W)[key] == pytest.approx(val, rel=1e-10)
        assert nc2_weight_parts(torch.from_numpy(W).float())[key] == pytest.approx(val, rel=1e-5)
    etf = simplex_etf(5, 9)
    yy = np.repeat(np.arange(5), 4)
    noise = np.random.default_rng(4).normal(scale=0.5, size=(20, 9))
    noise -= np.stack([noise[yy == c].mean(0) for c in range(5)])[yy]
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in nc2_parts(etf[yy] + noise, yy).values())
    centred = etf - etf.mean(0)
    assert all(v == pytest.approx(0.0, abs=1e-12) for v in nc2_weight_parts(2.0 * centred).values())
    stretched = centred * np.array([1.0, 1, 1, 1, 3])[:, None]
    assert nc2_weight_parts(stretched)["equinorm"] > 0.3
    with pytest.raises(ValueError, match="zero length"):
        nc2_weight_parts(np.vstack([W[:2], np.zeros(16)]))
    with pytest.raises(ValueError, match="shape"):
        nc2_weight_parts(W[:1])


def test_nc_per_class_matches_pairwise_loops():
    X, y = clusters(d=8, sizes=[30, 60, 45], seed=15)
    y = np.array([7, -2, 11])[y]  # any labels, sorted order -2, 7, 11
    out = nc_per_class(X, y)
    assert out["classes"].tolist() == [-2, 7, 11]
    classes = [-2, 7, 11]
    mus = [X[y == c].mean(0) for c in classes]
    var = [((X[y == c] - m) ** 2).sum(1).mean() for c, m in zip(classes, mus)]
    mu_g = np.mean(mus, 0)
    for i in range(3):
        assert out["counts"][i] == (y == classes[i]).sum()
        assert out["norms"][i] == pytest.approx(np.linalg.norm(mus[i] - mu_g), rel=1e-12)
        assert out["variances"][i] == pytest.approx(var[i], rel=1e-12)
        assert np.isnan(float(out["cdnv"][i, i]))
        for j in range(3):
            if i != j:
                ref = (var[i] + var[j]) / (2 * np.sum((mus[i] - mus[j]) ** 2))
                assert out["cdnv"][i, j] == pytest.approx(ref, rel=1e-12)
                a, b = mus[i] - mu_g, mus[j] - mu_g
                assert out["cosines"][i, j] == pytest.approx(a @ b / np.linalg.norm(a) / np.linalg.norm(b), rel=1e-12)
    assert float(np.nanmean(out["cdnv"].numpy())) == pytest.approx(cdnv(X, y), rel=1e-12)


# --------------------------------------------------------------------------- NC4 and NCC accuracy
def dense_ncc_and_linear(X, y, W, b):
    classes = np.unique(y)
    M = np.stack([X[y == c].mean(0) for c in classes])
    nearest = classes[np.argmin(((X[:, None, :] - M[None]) ** 2).sum(-1), axis=1)]
    linear = classes[np.argmax(X @ W.T + b, axis=1)]
    return nearest, linear


def test_nc4_and_ncc_accuracy_match_dense_argmin_argmax():
    X, y = clusters(n=500, d=6, k=4, spread=2.5, seed=16)
    y = np.array([3, 7, 11, 20])[y]
    rng = np.random.default_rng(5)
    W, b = rng.normal(size=(4, 6)), rng.normal(size=4)
    nearest, linear = dense_ncc_and_linear(X, y, W, b)
    ref_nc4 = np.mean(linear != nearest)
    assert 0.05 < ref_nc4 < 0.95
    assert nc4(X, y, W, b) == pytest.approx(ref_nc4, abs=1e-15)
    assert nc4(torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(W), torch.from_numpy(b)) == nc4(X, y, W, b)
    acc = ncc_accuracy(X, y)
    assert acc == pytest.approx(np.mean(nearest == y), abs=1e-15)
    assert 0.3 < acc < 1.0
    # the same classifier laid out with one row per label value (21 outputs)
    W21, b21 = rng.normal(size=(21, 6)), np.full(21, -1e6)
    W21[[3, 7, 11, 20]], b21[[3, 7, 11, 20]] = W, b
    assert nc4(X, y, W21, b21) == pytest.approx(ref_nc4, abs=1e-15)
    # without a bias
    _, linear0 = dense_ncc_and_linear(X, y, W, np.zeros(4))
    assert nc4(X, y, W) == pytest.approx(np.mean(linear0 != nearest), abs=1e-15)


def test_nc4_is_zero_for_the_nearest_class_centre_classifier():
    X, y = clusters(n=400, d=5, k=3, spread=2.0, seed=17)
    M, _ = class_means(X, y)
    M = M.numpy()
    # argmin ||h - mu_k||^2 = argmax (mu_k . h - ||mu_k||^2 / 2)
    assert nc4(X, y, M, -0.5 * (M**2).sum(1)) == 0.0
    assert nc4(X, y, M) > 0  # without the bias it is a different rule
    collapsed = M[y]
    assert ncc_accuracy(collapsed, y) == 1.0
    with pytest.raises(ValueError, match="bias must hold 3"):
        nc4(X, y, M, np.zeros(4))
    with pytest.raises(ValueError, match="shape"):
        nc4(X, y, M[:, :3])


# --------------------------------------------------------------------------- smaller defects
def test_nc3_maps_negative_labels_by_sorted_order_or_raises():
    X, y = clusters(k=4, seed=18)
    means, _ = class_means(X, y)
    W = 0.37 * (means - means.mean(0)).numpy()
    shifted = y - 1  # labels -1, 0, 1, 2: the smallest (-1) owns row 0
    assert nc3(X, shifted, W) == pytest.approx(0.0, abs=1e-12)
    assert nc3(X, shifted, W[[1, 2, 3, 0]]) > 0.5  # the old last-row lookup of -1 is not used
    with pytest.raises(ValueError, match="negative label -1"):
        nc3(X, shifted, np.vstack([W, W[:1]]))
    with pytest.raises(ValueError, match="negative label -1"):
        nc4(X, shifted, np.vstack([W, W[:1]]))


@pytest.mark.parametrize("scale", [1e155, 1e300, 1e-160, 1e-300])
def test_extreme_feature_magnitudes_are_rescaled_exactly(scale):
    X, y = clusters(n=300, d=8, k=4, seed=19)
    Xs = X * scale
    assert nc1(Xs, y) == pytest.approx(nc1(X, y), rel=1e-12)
    assert nc1_trace_ratio(Xs, y) == pytest.approx(nc1_trace_ratio(X, y), rel=1e-12)
    assert cdnv(Xs, y) == pytest.approx(cdnv(X, y), rel=1e-12)
    assert nc2(Xs, y) == pytest.approx(nc2(X, y), rel=1e-9)
    assert numerical_rank(Xs, y) == pytest.approx(numerical_rank(X, y), rel=1e-12)
    assert ncc_accuracy(Xs, y) == ncc_accuracy(X, y)
    W, b = np.random.default_rng(6).normal(size=(4, 8)), np.random.default_rng(7).normal(size=4)
    assert nc4(Xs, y, W, b * scale) == nc4(X, y, W, b)
    per = nc_per_class(Xs, y)
    assert per["norms"].numpy() == pytest.approx(nc_per_class(X, y)["norms"].numpy() * scale, rel=1e-12)
    assert class_means(Xs, y)[0].numpy() == pytest.approx(class_means(X, y)[0].numpy() * scale, rel=1e-12)


def test_accumulator_refuses_features_that_would_overflow():
    X, y = clusters(n=100, d=4, k=2, seed=20)
    with pytest.raises(ValueError, match="overflows"):
        NCAccumulator().update(X * 1e155, y)


def test_nan_message_names_the_caller():
    bad = np.array([[np.nan, 1.0], [0.0, 1.0]])
    with pytest.raises(ValueError, match="so NC metrics cannot be computed"):
        nc1(bad, np.arange(2))
    with pytest.raises(ValueError, match="so LogME cannot be computed"):
        check_features(bad, name="LogME")


# --------------------------------------------------------------------------- streaming: new quantities and stability
def test_accumulator_exposes_the_new_quantities():
    X, y = clusters(n=700, d=10, k=5, seed=21, sizes=[200, 50, 150, 100, 200])
    y = np.array([9, 2, 4, 30, 6])[y]
    perm = np.random.default_rng(8).permutation(len(y))
    X, y = X[perm], y[perm]
    W = np.random.default_rng(9).normal(size=(5, 10))
    for gm in ("class_means", "samples"):
        acc = NCAccumulator(global_mean=gm)
        for i in range(0, len(y), 64):
            acc.update(X[i : i + 64], y[i : i + 64])
        out = acc.compute(W)
        assert out["nc1"] == pytest.approx(nc1(X, y, global_mean=gm), rel=1e-9)
        assert out["nc1_trace_ratio"] == pytest.approx(nc1_trace_ratio(X, y, global_mean=gm), rel=1e-12)
        assert out["cdnv"] == pytest.approx(cdnv(X, y), rel=1e-12)
        assert out["nc2"] == pytest.approx(nc2(X, y, global_mean=gm), rel=1e-9)
        assert out["nc3"] == pytest.approx(nc3(X, y, W, global_mean=gm), rel=1e-9)
        for key, val in nc2_parts(X, y, global_mean=gm).items():
            assert out[key] == pytest.approx(val, rel=1e-9)
        for key, val in nc2_weight_parts(W).items():
            assert out["weight_" + key] == pytest.approx(val, rel=1e-12)
        per, ref = acc.per_class(), nc_per_class(X, y, global_mean=gm)
        for key in ref:
            assert np.allclose(per[key].numpy(), ref[key].numpy(), rtol=1e-10, equal_nan=True), key
    # the constructor's centre can be overridden at compute time
    assert acc.compute(global_mean="class_means")["nc1"] == pytest.approx(nc1(X, y), rel=1e-9)


@pytest.mark.parametrize("target", [1e-15, 1e-17])
def test_accumulator_is_exact_at_extreme_collapse_far_from_the_origin(target):
    rng = np.random.default_rng(22)
    K, d, n = 5, 16, 1000
    y = rng.integers(0, K, n)
    means = rng.normal(scale=3.0, size=(K, d))
    noise = rng.normal(size=(n, d))
    X = means[y] + 100.0 + noise * np.sqrt(target / nc1(means[y] + noise, y))  # offset 100 on every coordinate
    one_shot = nc1(X, y)
    assert one_shot == pytest.approx(target, rel=0.05)
    assert one_shot == pytest.approx(dense_nc1(X, y), rel=1e-6)
    acc = NCAccumulator()
    for i in range(0, n, 96):
        acc.update(X[i : i + 96], y[i : i + 96])
    out = acc.compute()
    assert out["nc1"] == pytest.approx(one_shot, rel=1e-6)
    assert out["nc1_trace_ratio"] == pytest.approx(nc1_trace_ratio(X, y), rel=1e-6)
    assert out["cdnv"] == pytest.approx(cdnv(X, y), rel=1e-6)
