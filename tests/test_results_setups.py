"""Resumable results, the model store, the profiles' data and networks, and layer-wise probing."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from ncutils import data, models, probe, setups
from ncutils.results import ModelStore, Results, config_key, to_jsonable


# --------------------------------------------------------------------------- results
def test_results_are_written_as_produced_and_reused(tmp_path):
    path = tmp_path / "r.json"
    calls = []

    def compute(x):
        calls.append(x)
        return {"value": np.float64(x) * 2, "tensor": torch.tensor([1.0, 2.0]), "nan": float("nan")}

    res = Results(path, meta={"profile": "cpu"})
    assert res.get_or_compute("a", compute, 1)["value"] == 2.0
    on_disk = json.loads(path.read_text())
    assert on_disk["results"]["a"] == {"value": 2.0, "tensor": [1.0, 2.0], "nan": None}
    assert on_disk["meta"] == {"profile": "cpu"}
    again = Results(path)  # a rerun: nothing recomputed
    assert again.get_or_compute("a", compute, 1)["value"] == 2.0 and calls == [1]
    fresh = Results(path, reuse=False)  # starts afresh
    assert "a" not in fresh and json.loads(path.read_text())["results"] == {}


def test_results_reject_damaged_files_and_unstorable_values(tmp_path):
    path = tmp_path / "r.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="reuse_results=False"):
        Results(path)
    with pytest.raises(TypeError, match="cannot store"):
        Results(None).put("x", object())
    assert to_jsonable((1, np.int64(2))) == [1, 2]


def test_config_key_is_stable_and_discriminating():
    a = config_key("m", {"lr": 0.1, "epochs": 3})
    assert a == config_key("m", {"epochs": 3, "lr": np.float64(0.1)})
    assert a != config_key("m", {"lr": 0.2, "epochs": 3}) and a.startswith("m-")


def test_model_store_trains_once_and_reloads(tmp_path):
    store, trained = ModelStore(tmp_path), []

    def build():
        torch.manual_seed(len(trained))  # a different initialisation every time it is called
        return torch.nn.Linear(3, 2)

    def train(model):
        trained.append(1)
        with torch.no_grad():
            model.weight.fill_(0.5)
        return {"loss": 0.25}

    m1, info1 = store.get("k", build, train)
    m2, info2 = store.get("k", build, train)
    assert len(trained) == 1 and info1 == info2 == {"loss": 0.25}
    torch.testing.assert_close(m2.weight, torch.full((2, 3), 0.5))
    m3, _ = ModelStore(tmp_path, reuse=False).get("k", build, train)
    assert len(trained) == 2
    with pytest.raises(ValueError, match="does not match"):
        store.get("k", lambda: torch.nn.Linear(4, 2), train)


# --------------------------------------------------------------------------- setups
@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_profiles_provide_genuine_transfer_pairs(profile):
    src = setups.source(profile, "train")
    x, y = src[0]
    s = setups.get(profile)
    assert x.shape == (3, s.image_size, s.image_size)
    assert int(data.labels_of(src).max()) + 1 == s.source_classes
    for name in s.downstream:
        down = setups.downstream(profile, name, "train")
        assert down[0][0].shape == x.shape
        assert len(np.unique(data.labels_of(down))) == 5
    if profile == "cpu":  # digits 0-4 as source, 5-9 downstream: no shared class
        assert setups._raw("cpu", "source", "train", 0).classes == ["0", "1", "2", "3", "4"]
        assert setups._raw("cpu", "digits5-9", "train", 0).classes == ["5", "6", "7", "8", "9"]


def test_cpu_source_pixels_and_normalisation():
    raw = setups._raw("cpu", "source", "train", 0).tensors[0]
    assert raw.min() >= 0 and raw.max() <= 1 and raw.shape[1] == 3
    assert (raw[:, :, 0, 0] == 0).all()  # strokes coloured on a black background
    plain = setups.source("cpu", "train", level=1).tensors[0]
    torch.testing.assert_close(plain.mean((0, 2, 3)), torch.zeros(3), atol=1e-4, rtol=0)


def test_source_model_is_cached_and_its_encoder_transfers(tmp_path):
    cfg = setups.source_config("smoke", "resnet18", epochs=1, batch_size=8, level=3)
    store = ModelStore(tmp_path)
    net, info = setups.source_model(cfg, store)
    assert setups.model_key(cfg) in store and np.isfinite(info["source_nc1"])
    again, info2 = setups.source_model(cfg, store)
    assert info2 == info
    for a, b in zip(net.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    back = setups.pretrained_backbone(cfg, store)
    for k, v in net.encoder.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    out = setups.transfer_eval(net.encoder, "smoke", "synthetic-b", probe_epochs=2)
    assert 0 <= out["test_accuracy"] <= 100 and out["feature_dim"] == 32


@pytest.mark.parametrize("name", ["resnet18-w4", "resnet50", "convnet4", "seresnet12", "vit", "mlp-w16-d3"])
def test_zoo_networks_build_and_have_blocks(name):
    net = setups.zoo_backbone(name, "smoke", 5)
    assert net(torch.randn(2, 3, 16, 16)).shape == (2, 5)
    assert len(models.blocks(net)) >= 3


def test_unknown_names_are_reported():
    with pytest.raises(ValueError, match="unknown profile"):
        setups.get("laptop")
    with pytest.raises(ValueError, match="no dataset 'cifar10' in the cpu profile"):
        setups._raw("cpu", "cifar10", "train", 0)


def test_colorize_without_background_keeps_black_background():
    x = torch.zeros(4, 1, 5, 5)
    x[:, :, 2, 2] = 1.0
    out = data.colorize(x, seed=1, background=False)
    assert out.shape == (4, 3, 5, 5) and out[:, :, 0, 0].abs().max() == 0
    assert (out[:, :, 2, 2] >= 0.2).all() and not torch.equal(out[0, :, 2, 2], out[1, :, 2, 2])


# --------------------------------------------------------------------------- layer-wise probing
def test_layerwise_probe_reports_every_layer():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(60) % 3
    x = torch.randn(60, 3, 16, 16, generator=g) * 0.3 + y[:, None, None, None]
    loader = DataLoader(TensorDataset(x, y), batch_size=20)
    torch.manual_seed(0)
    net = models.resnet("resnet18", 3, cifar_stem=True, width=4)
    out = probe.layerwise_probe(net, loader, loader, [1, 4, 8], epochs=20)
    assert list(out) == ["block1", "block4", "block8"]
    assert [v["dim"] for v in out.values()] == [4, 8, 32]
    assert all(v["test_accuracy"] > 80 and v["nc1"] > 0 for v in out.values())
