"""Transferability scores: NCTI, LogME, H-score, -NC1, weighted Kendall tau, published data, rank_models."""

import math
import warnings

import numpy as np
import pandas as pd
import pytest
import timm
import torch
import torchvision
from scipy.optimize import minimize
from scipy.stats import ortho_group
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ncutils.book.published import ncti_finetune_accuracy, ncti_scores, ncti_weighted_tau
from ncutils.metrics import nc1
from ncutils.transferability import (
    hscore,
    logme,
    nc1_score,
    ncti,
    ncti_components,
    normalize_components,
    rank_models,
    weighted_kendall,
)
from ncutils.transferability import scores as tr_scores

SUPERVISED = ["resnet34", "resnet50", "resnet101", "resnet152", "densenet121", "densenet169", "densenet201",
              "mnasnet1_0", "mobilenet_v2", "googlenet", "inception_v3"]


def blobs(sizes, d, sep, seed, noise=1.0):
    """Gaussian classes of the given sizes around random centres scaled by ``sep``."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(len(sizes)), sizes)
    centres = rng.normal(size=(len(sizes), d)) * sep
    return centres[y] + noise * rng.normal(size=(y.size, d)), y


# --------------------------------------------------------------------------- published data
def test_weighted_kendall_reproduces_the_published_ncti_tau():
    tau = weighted_kendall(ncti_scores(), ncti_finetune_accuracy("cifar10"))
    assert round(tau, 3) == ncti_weighted_tau() == 0.843
    assert tau == pytest.approx(0.8426, abs=5e-5)


def test_published_data_is_complete_and_consistent():
    datasets = ["aircraft", "caltech101", "cars", "cifar10", "cifar100", "dtd", "flowers", "food", "pets",
                "sun397", "voc2007"]
    for name in datasets:
        acc = ncti_finetune_accuracy(name)
        assert list(acc) == SUPERVISED and all(50 < v < 100 for v in acc.values())
    assert ncti_finetune_accuracy("aircraft")["mnasnet1_0"] == 66.48
    assert ncti_finetune_accuracy("SUN397")["resnet152"] == 64.82
    assert ncti_finetune_accuracy("voc2007")["inception_v3"] == 83.84
    scores = ncti_scores()
    assert sorted(scores) == sorted(SUPERVISED)
    # all three normalised terms best for ResNet152 gives the maximum NCTI of 2
    assert scores["resnet152"] == 2.0 and all(-1 <= v <= 2 for v in scores.values())
    ncti_scores()["resnet152"] = 0.0  # callers get copies
    assert ncti_scores()["resnet152"] == 2.0
    with pytest.raises(ValueError, match="available"):
        ncti_finetune_accuracy("imagenet")


# --------------------------------------------------------------------------- weighted Kendall tau
def test_weighted_kendall_inputs():
    s = {"a": 3.0, "b": 2.0, "c": 1.0, "d": 0.0}
    acc = {"d": 60.0, "c": 70.0, "b": 80.0, "a": 90.0}  # key order does not matter
    assert weighted_kendall(s, acc) == pytest.approx(1.0)
    assert weighted_kendall(s, {k: -v for k, v in acc.items()}) == pytest.approx(-1.0)
    assert weighted_kendall(pd.Series(s), acc) == pytest.approx(1.0)
    assert weighted_kendall([1, 2, 3, 4], [1, 3, 2, 4]) == weighted_kendall(
        {"w": 1, "x": 2, "y": 3, "z": 4}, {"w": 1, "x": 3, "y": 2, "z": 4})
    with pytest.raises(ValueError, match=r"no accuracy for \['a'\], no score for \['e'\]"):
        weighted_kendall(s, {"b": 1, "c": 2, "d": 3, "e": 4})
    with pytest.raises(ValueError, match="pair up"):
        weighted_kendall([1, 2, 3], [1, 2])
    with pytest.raises(TypeError, match="both as mappings"):
        weighted_kendall(s, [1, 2, 3, 4])
    with pytest.raises(ValueError, match="at least 2"):
        weighted_kendall({"a": 1}, {"a": 2})
    with pytest.raises(ValueError, match="finite"):
        weighted_kendall([1, float("nan")], [1, 2])


# --------------------------------------------------------------------------- NCTI components
def test_separated_clusters_collapse_ncc_and_vc_to_their_one_hot_values():
    sizes = [30, 50, 80]  # imbalanced on purpose
    X, y = blobs(sizes, d=16, sep=30.0, seed=0)
    seli, ncc, vc = ncti_components(X, y)
    assert ncc > 0.999
    # one-hot posteriors: P_c is rank one with nuclear norm sqrt(n_c)
    assert vc == pytest.approx(math.log(sum(math.sqrt(n) for n in sizes)), abs=1e-3)
    Xo, yo = blobs(sizes, d=16, sep=0.2, seed=0)
    seli_o, ncc_o, vc_o = ncti_components(Xo, yo)
    assert seli > 5 * seli_o and ncc > ncc_o + 0.3 and ncc_o < 0.8


def test_vc_lies_between_its_bounds():
    # each posterior row r has 1/sqrt(K) <= ||r||_2 <= 1, so sqrt(n_c / K) <= ||P_c||_* <= sqrt(K n_c)
    sizes = [20, 35, 45, 25]
    K = len(sizes)
    for sep in (0.0, 0.5, 2.0):
        X, y = blobs(sizes, d=10, sep=sep, seed=1)
        _, ncc, vc = ncti_components(X, y)
        lower, upper = (math.log(sum(math.sqrt(f * n) for n in sizes)) for f in (1 / K, K))
        assert lower <= vc <= upper
        assert 1 / K - 0.05 < ncc <= 1


def test_components_are_invariant_to_rotation_relabelling_order_and_input_type():
    X, y = blobs([40, 40, 40], d=12, sep=1.0, seed=2)
    ref = ncti_components(X, y)
    Q = ortho_group.rvs(12, random_state=0)
    assert ncti_components(X @ Q, y) == pytest.approx(ref, rel=1e-6)
    assert ncti_components(X, np.array([7, -3, 100])[y]) == pytest.approx(ref, rel=1e-9)
    perm = np.random.default_rng(0).permutation(len(y))
    assert ncti_components(X[perm], y[perm]) == pytest.approx(ref, rel=1e-6)
    assert ncti_components(torch.from_numpy(X), torch.from_numpy(y)) == pytest.approx(ref, rel=1e-12)


def test_lda_shrinkage_rule_and_scale_invariance_of_the_unshrunk_regime():
    lda = tr_scores._lda(np.full(40, 0.5))  # 32 leading variances sum to 16: shrinkage exp(-16)
    assert lda.solver == "eigen" and lda.shrinkage == pytest.approx(math.exp(-16))
    assert tr_scores._lda(np.full(40, 1.0)).solver == "svd"  # exp(-32) underflows the 1e-10 floor
    X, y = blobs([30, 30, 30], d=20, sep=1.0, seed=3)
    # with large variances the LDA is unshrunk and every step is invariant to scaling
    assert ncti_components(10 * X, y) == pytest.approx(ncti_components(1000 * X, y), rel=1e-6)


def test_small_dimensions_and_samples():
    X, y = blobs([6, 6, 6, 6, 6], d=3, sep=3.0, seed=4)  # d < K - 1 and d < 64
    assert all(np.isfinite(ncti_components(X, y)))
    X, y = blobs([5, 5], d=100, sep=3.0, seed=5)  # N < 64 < d
    seli, ncc, vc = ncti_components(X, y)
    assert np.isfinite(seli) and 0 <= ncc <= 1


def test_component_input_errors():
    X, y = blobs([10, 10], d=4, sep=1.0, seed=6)
    with pytest.raises(ValueError, match="at least 2 classes"):
        ncti_components(X, np.zeros(20, dtype=int))
    with pytest.raises(ValueError, match="more samples than classes"):
        ncti_components(X[:2], y[[0, 19]])
    with pytest.raises(ValueError, match="identical"):
        ncti_components(np.ones((20, 4)), y)
    with pytest.raises(ValueError, match="NaN"):
        ncti_components(np.where(X > 2, np.nan, X), y)
    with pytest.raises(ValueError, match="rows but labels"):
        ncti_components(X, y[:5])
    with pytest.raises(ValueError, match="integers"):
        ncti_components(X, y.astype(float))
    with pytest.raises(ValueError, match="2-D"):
        ncti_components(X[0], y[:1])


# --------------------------------------------------------------------------- NCTI normalisation
COMPONENTS = {"a": (1.0, 0.5, 2.0), "b": (3.0, 0.9, 1.0), "c": (2.0, 0.7, 3.0)}


def test_min_max_normalisation_by_hand():
    normed = normalize_components(COMPONENTS)
    assert normed["a"] == pytest.approx({"seli": 0.0, "ncc": 0.0, "vc": 0.5})
    assert normed["b"] == pytest.approx({"seli": 1.0, "ncc": 1.0, "vc": 0.0})
    assert normed["c"] == pytest.approx({"seli": 0.5, "ncc": 0.5, "vc": 1.0})
    assert ncti(COMPONENTS) == pytest.approx({"a": -0.5, "b": 2.0, "c": 0.0})


def test_ablations_are_one_call_each():
    assert ncti(COMPONENTS, terms=("seli", "vc")) == pytest.approx({"a": -0.5, "b": 1.0, "c": -0.5})
    assert ncti(COMPONENTS, terms=("ncc", "seli")) == pytest.approx({"a": 0.0, "b": 2.0, "c": 1.0})
    assert ncti(COMPONENTS, terms=("vc",)) == pytest.approx({"a": -0.5, "b": 0.0, "c": -1.0})
    assert ncti(COMPONENTS, terms="ncc") == pytest.approx({"a": 0.0, "b": 1.0, "c": 0.5})


def test_normalisation_is_affine_invariant_and_constant_terms_vanish():
    shifted = {m: (7 * s + 3, n, 0.1 * v - 5) for m, (s, n, v) in COMPONENTS.items()}
    assert ncti(shifted) == pytest.approx(ncti(COMPONENTS))
    same_ncc = {m: (s, 0.8, v) for m, (s, n, v) in COMPONENTS.items()}
    assert all(v["ncc"] == 0.0 for v in normalize_components(same_ncc).values())
    assert ncti(same_ncc) == pytest.approx(ncti(COMPONENTS, terms=("seli", "vc")))
    tie = {"x": (1.0, 1.0, 1.0), "y": (1.0, 1.0, 1.0)}
    assert ncti(tie) == {"x": 0.0, "y": 0.0}


def test_ncti_errors():
    with pytest.raises(ValueError, match="at least 2"):
        ncti({"a": (1.0, 0.5, 2.0)})
    with pytest.raises(ValueError, match="non-empty selection"):
        ncti(COMPONENTS, terms=("seli", "nc1"))
    with pytest.raises(ValueError, match="non-empty selection"):
        ncti(COMPONENTS, terms=("seli", "seli"))
    with pytest.raises(ValueError, match="non-empty selection"):
        ncti(COMPONENTS, terms=())
    with pytest.raises(ValueError, match="3 finite numbers"):
        ncti({"a": (1.0, 0.5), "b": (1.0, 0.5, 2.0)})
    with pytest.raises(ValueError, match="3 finite numbers"):
        ncti({"a": (1.0, float("inf"), 0.0), "b": (1.0, 0.5, 2.0)})
    with pytest.raises(TypeError, match="map model names"):
        ncti([(1.0, 0.5, 2.0), (1.0, 0.5, 2.0)])


# --------------------------------------------------------------------------- baselines
def test_baselines_prefer_separable_features():
    good, y = blobs([40, 40, 40, 40], d=16, sep=2.0, seed=7)
    noise = np.random.default_rng(8).normal(size=good.shape)
    assert logme(good, y) > logme(noise, y)
    assert hscore(good, y) > hscore(noise, y)
    assert nc1_score(good, y) > nc1_score(noise, y)
    assert nc1_score(good, y) == -nc1(good, y) < 0


def _dense_log_evidence(X, t):
    """max over (alpha, beta) of log N(t | 0, X X^T / alpha + I / beta), per sample, by brute force."""
    n = len(t)

    def neg(p):
        a, b = np.exp(p)
        C = X @ X.T / a + np.eye(n) / b
        return 0.5 * (np.linalg.slogdet(C)[1] + t @ np.linalg.solve(C, t) + n * math.log(2 * math.pi))

    fits = [minimize(neg, x0, method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-13, "maxiter": 4000})
            for x0 in ((0.0, 0.0), (2.0, 1.0))]
    return -min(f.fun for f in fits) / n


@pytest.mark.parametrize(("n", "d", "k"), [(40, 5, 3), (8, 12, 2)])  # N > d and N < d
def test_logme_is_the_maximum_evidence_of_bayesian_linear_regression(n, d, k):
    rng = np.random.default_rng(n)
    y = np.arange(n) % k
    X = rng.normal(size=(n, d)) + 2 * np.eye(k, d)[y]
    ref = np.mean([_dense_log_evidence(X, (y == c).astype(float)) for c in range(k)])
    assert logme(X, y) == pytest.approx(ref, abs=1e-6)
    assert logme(X @ ortho_group.rvs(d, random_state=1), y) == pytest.approx(logme(X, y), abs=1e-9)
    assert logme(X, np.array([5, 9, 2])[y]) == pytest.approx(logme(X, y), abs=1e-12)


def test_hscore_matches_the_covariance_formula_and_its_bounds():
    X, y = blobs([30, 50, 40], d=6, sep=1.0, seed=9)
    g = np.zeros_like(X)
    for c in range(3):
        g[y == c] = X[y == c].mean(0)
    ref = np.trace(np.linalg.pinv(np.cov(X, rowvar=False)) @ np.cov(g, rowvar=False))
    assert hscore(X, y) == pytest.approx(ref, rel=1e-10)
    assert 0 < hscore(X, y) < 2
    # with N - 1 <= d the centred features span every centred indicator: H = K - 1 exactly
    Xw, yw = blobs([5, 6, 7], d=30, sep=0.0, seed=10)
    assert hscore(Xw, yw) == pytest.approx(2.0, abs=1e-9)
    with pytest.raises(ValueError, match="identical"):
        hscore(np.ones((6, 3)), np.arange(6) % 2)
    with pytest.raises(ValueError, match="all zero"):
        logme(np.zeros((6, 3)), np.arange(6) % 2)


# --------------------------------------------------------------------------- rank_models
class TinyNet(nn.Module):
    """Flatten -> Linear(16, 8) -> ReLU -> fc; ``pick`` selects which 8 of the 16 inputs it sees."""

    def __init__(self, pick: slice):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(16, 8), nn.ReLU())
        self.fc = nn.Linear(8, 3)
        with torch.no_grad():
            w = torch.zeros(8, 16)
            w[:, pick] = torch.eye(8)
            self.body[1].weight.copy_(w)
            self.body[1].bias.fill_(5.0)  # keep the ReLU in its linear range

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


def _count_calls(net: nn.Module) -> list[int]:
    calls = [0]
    net.body[1].register_forward_hook(lambda *_: calls.__setitem__(0, calls[0] + 1))
    return calls


@pytest.fixture
def target():
    """96 "images" (1 x 4 x 4) in 3 classes: inputs 0-7 carry the class, inputs 8-15 are noise."""
    g = torch.Generator().manual_seed(0)
    y = torch.arange(96) % 3
    x = torch.randn(96, 16, generator=g) * 0.5
    x[:, :8] += 3 * torch.randn(3, 8, generator=g)[y]
    return TensorDataset(x.view(96, 1, 4, 4), y)


def test_rank_models_orders_tiny_networks_and_reuses_the_cache(target, tmp_path):
    good, bad = TinyNet(slice(0, 8)), TinyNet(slice(8, 16))
    calls = _count_calls(good)
    table = rank_models([("noise", bad), ("informative", good)], target, dataset_name="toy",
                        cache_dir=tmp_path, progress=False, device="cpu")
    assert list(table.index) == ["informative", "noise"] and table.index.name == "model"
    assert list(table.columns) == ["ncti", "logme", "hscore", "nc1", "seli", "ncc", "vc"]
    assert (table.loc["informative"] > table.loc["noise"])[["ncti", "logme", "hscore", "nc1"]].all()
    # with two models each normalised term is 0 or 1; the informative network's confident, one-hot
    # posteriors also give it the larger vc, which NCTI subtracts: 1 + 1 - 1 against 0 + 0 - 0
    assert table.loc["informative", "vc"] > table.loc["noise", "vc"]
    assert table.loc["informative", "ncti"] == 1.0 and table.loc["noise", "ncti"] == 0.0
    assert calls[0] == 2  # two batches of 64
    assert sorted(p.name for p in tmp_path.iterdir()) == ["informative__toy.pt", "noise__toy.pt"]

    again = rank_models([("noise", bad), ("informative", good)], DataLoader(target, batch_size=32),
                        dataset_name="toy", cache_dir=tmp_path, progress=False, device="cpu")
    assert calls[0] == 2  # features came from the cache: the network did not run
    pd.testing.assert_frame_equal(again, table)
    fresh = rank_models([("noise", bad), ("informative", good)], DataLoader(target, batch_size=32),
                        dataset_name="toy", progress=False, device="cpu")
    assert calls[0] == 5
    pd.testing.assert_frame_equal(fresh, table, rtol=1e-6)

    (tmp_path / "noise__toy.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match="corrupt.*delete"):
        rank_models([("noise", bad), ("informative", good)], target, dataset_name="toy",
                    cache_dir=tmp_path, progress=False, device="cpu")


def test_rank_models_score_selection_and_errors(target):
    nets = [("a", TinyNet(slice(0, 8))), ("b", TinyNet(slice(4, 12)))]
    table = rank_models(nets, target, dataset_name="toy", scores=("nc1", "logme"), progress=False,
                        device="cpu")
    assert list(table.columns) == ["nc1", "logme"] and table["nc1"].is_monotonic_decreasing
    with pytest.raises(ValueError, match="unique"):
        rank_models([nets[0], nets[0]], target, dataset_name="toy", progress=False)
    with pytest.raises(ValueError, match="at least 2"):
        rank_models(nets[:1], target, dataset_name="toy", progress=False)
    with pytest.raises(ValueError, match="unknown scores"):
        rank_models(nets, target, dataset_name="toy", scores=("ncti", "magic"), progress=False)
    with pytest.raises(TypeError, match="timm"):
        rank_models([nets[0], TinyNet(slice(0, 8))], target, dataset_name="toy", progress=False)
    with pytest.raises(TypeError, match="Dataset or DataLoader"):
        rank_models(nets, [1, 2, 3], dataset_name="toy", progress=False)
    with pytest.raises(ValueError, match="not a torchvision classification model"):
        rank_models(["resnet_unknown", nets[0]], target, dataset_name="toy", progress=False)


def test_rank_models_scores_the_source_classifier_outputs_with_leep_and_nce(target, tmp_path):
    """LEEP and NCE read the candidate's own classifier on the target images (its fc on the penultimate
    features, kept in the cache); a candidate without a linear classifier gets NaN for them."""
    from ncutils.transferability import leep, nce

    good, bad = TinyNet(slice(0, 8)), TinyNet(slice(8, 16))
    names = ("ncti", "leep", "nce", "nleep", "parc", "sfda", "gbc", "transrate")
    table = rank_models([("noise", bad), ("informative", good)], target, dataset_name="toy", scores=names,
                        cache_dir=tmp_path, progress=False, device="cpu")
    x, y = target.tensors[0], target.tensors[1]
    with torch.no_grad():
        logits = good(x)
    assert table.loc["informative", "leep"] == pytest.approx(leep(torch.softmax(logits.double(), 1), y), rel=1e-6)
    assert table.loc["informative", "nce"] == pytest.approx(nce(logits.argmax(1), y), rel=1e-6)
    assert (table.loc["informative"] > table.loc["noise"])[["leep", "nce", "parc", "gbc"]].all()
    assert torch.load(tmp_path / "informative__toy.pt")["logits"].shape == (96, 3)
    # an image encoder without a classifier (CLIP's, say): no source outputs, so no LEEP
    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=0, img_size=16, patch_size=8)
    with_head = timm.create_model("vit_tiny_patch16_224", pretrained=False, num_classes=5, img_size=16, patch_size=8)
    g = torch.Generator().manual_seed(2)
    images = TensorDataset(torch.randn(24, 3, 16, 16, generator=g), torch.arange(24) % 3)
    mixed = rank_models([("encoder only", vit), ("classifier", with_head)], images, dataset_name="vit",
                        scores=("leep", "logme"), progress=False, device="cpu")
    assert np.isnan(mixed.loc["encoder only", "leep"]) and np.isfinite(mixed.loc["encoder only", "logme"])
    assert np.isfinite(mixed.loc["classifier", "leep"])


def test_rank_models_builds_torchvision_and_timm_models(monkeypatch, tmp_path):
    g = torch.Generator().manual_seed(1)
    data = TensorDataset(torch.randn(12, 3, 32, 32, generator=g), torch.arange(12) % 2)
    built = []
    get_model = torchvision.models.get_model

    def spy(name, **kwargs):
        built.append((name, kwargs))
        return get_model(name, weights=None)  # no downloads in tests

    monkeypatch.setattr(torchvision.models, "get_model", spy)
    table = rank_models(["resnet18", "timm:test_resnet"], data, dataset_name="noise", cache_dir=tmp_path,
                        progress=False, device="cpu", pretrained=False)
    assert built == [("resnet18", {"weights": None})]
    assert set(table.index) == {"resnet18", "timm:test_resnet"}
    assert torch.load(tmp_path / "resnet18__noise.pt")["features"].shape == (12, 512)
    assert (tmp_path / "timm_test_resnet__noise.pt").exists()
    rank_models(["resnet18", "mobilenet_v2"], data, dataset_name="noise", cache_dir=tmp_path, progress=False,
                device="cpu", pretrained=True, scores=("hscore",))
    assert built[1:] == [("mobilenet_v2", {"weights": "DEFAULT"})]  # resnet18 came from the cache


# --------------------------------------------------------------------------- input checks of the scores
def test_scores_refuse_no_more_samples_than_classes():
    X, y = blobs([1, 1, 1], d=8, sep=1.0, seed=11)  # N = K = 3
    for fn, name in ((logme, "LogME"), (hscore, "H-score"), (ncti_components, "NCTI")):
        with pytest.raises(ValueError, match=f"{name} needs more samples than classes; got 3 samples for 3 classes"):
            fn(X, y)
    Xa, ya = blobs([2, 1, 1], d=8, sep=1.0, seed=11)  # N = K + 1 is accepted
    assert np.isfinite(logme(Xa, ya)) and 0 < hscore(Xa, ya) <= 2 + 1e-9


def test_nan_messages_name_the_transferability_score():
    X, y = blobs([10, 10], d=4, sep=1.0, seed=6)
    X[3, 1] = np.nan
    for fn, name in ((logme, "LogME"), (hscore, "H-score"), (ncti_components, "NCTI"), (nc1_score, "the -NC1 score")):
        with pytest.raises(ValueError, match=f"NaN or inf entries, so {name} cannot be computed") as err:
            fn(X, y)
        assert "NC metrics" not in str(err.value)


def test_weighted_kendall_warns_and_returns_nan_for_constant_scores():
    with pytest.warns(RuntimeWarning, match="all scores equal 0.5: the weighted Kendall tau is undefined"):
        assert math.isnan(weighted_kendall({"a": 0.5, "b": 0.5, "c": 0.5}, {"a": 1.0, "b": 2.0, "c": 3.0}))
    with pytest.warns(RuntimeWarning, match="all accuracies equal 70"):
        assert math.isnan(weighted_kendall([1.0, 2.0, 3.0], [70.0, 70.0, 70.0]))
    with pytest.warns(RuntimeWarning, match="all scores equal 1 and all accuracies equal 2"):
        weighted_kendall([1.0, 1.0], [2.0, 2.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert weighted_kendall([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]) == pytest.approx(1.0)
