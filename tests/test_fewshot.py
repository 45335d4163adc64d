"""Few-shot backbones, CIFAR-FS / miniImageNet loaders, episodes and evaluation (Table 2)."""

import os
import pickle

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import TensorDataset

from ncutils import data, features, fewshot, models
from ncutils.metrics import nc1

SMALL = {
    "convnet4": {"hidden": 8},
    "resnet12": {"widths": (4, 6, 8, 10)},
    "seresnet12": {"widths": (4, 6, 8, 10), "se_reduction": 2},
}


# --------------------------------------------------------------------------- backbones
@pytest.mark.parametrize("name", ["convnet4", "resnet12", "seresnet12"])
@pytest.mark.parametrize("size", [32, 84])
def test_backbone_shapes_blocks_and_features(name, size):
    torch.manual_seed(0)
    m = fewshot.backbone(name, 7, **SMALL[name]).eval()
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        assert m(x).shape == (3, 7)
    units = models.blocks(m)
    assert [n for n, _ in units] == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
    d = m.fc.in_features
    assert d == m.embedding_dim == (8 if name == "convnet4" else 10)
    loader = torch.utils.data.DataLoader(TensorDataset(x, torch.tensor([0, 1, 0])), batch_size=2)
    out = features.extract_features(m, loader, layers=None, progress=False)
    assert out["penultimate"].shape == (3, d) and out["block4"].shape == (3, d)
    with torch.no_grad():
        torch.testing.assert_close(m.fc(out["penultimate"]), m(x))
    # the fourth ResNet12 block has no max-pool, so its pooled output is the embedding itself
    if name != "convnet4":
        torch.testing.assert_close(out["block4"], out["penultimate"])


def test_resnet12_structure():
    m = fewshot.ResNet12(5, widths=(4, 6, 8, 10))
    x = torch.randn(2, 3, 84, 84)
    sizes = []
    h = x
    with torch.no_grad():
        for _, b in models.blocks(m):
            h = b(h)
            sizes.append(tuple(h.shape[1:]))
    assert sizes == [(4, 42, 42), (6, 21, 21), (8, 10, 10), (10, 10, 10)]
    blk = m.blocks[0]
    assert [blk.conv1.kernel_size, blk.conv2.kernel_size, blk.conv3.kernel_size] == [(3, 3)] * 3
    assert blk.shortcut[0].kernel_size == (1, 1) and isinstance(blk.shortcut[1], torch.nn.BatchNorm2d)
    assert isinstance(blk.act, torch.nn.LeakyReLU) and blk.act.negative_slope == 0.1
    assert isinstance(m.blocks[3].pool, torch.nn.Identity)
    assert not any(isinstance(mod, fewshot.SqueezeExcitation) for mod in m.modules())
    default = fewshot.ResNet12(64)
    assert [b.conv1.out_channels for b in default.blocks] == [64, 160, 320, 640]
    assert fewshot.ConvNet4(64).fc.in_features == 64


def test_se_changes_the_output():
    torch.manual_seed(1)
    plain = fewshot.ResNet12(5, widths=(4, 6, 8, 10)).eval()
    se = fewshot.SEResNet12(5, widths=(4, 6, 8, 10), se_reduction=2).eval()
    assert sum(isinstance(mod, fewshot.SqueezeExcitation) for mod in se.modules()) == 4
    missing, unexpected = se.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(".se." in k for k in missing)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert not torch.allclose(se(x), plain(x))


def test_backbone_factory_errors_and_recipe():
    assert isinstance(fewshot.backbone("SE-ResNet12", 3, widths=(2, 2, 2, 2)), fewshot.SEResNet12)
    with pytest.raises(ValueError, match="unknown few-shot backbone"):
        fewshot.backbone("resnet18", 3)
    with pytest.raises(ValueError, match="4 positive widths"):
        fewshot.ResNet12(3, widths=(4, 8))
    r = fewshot.PAPER_RECIPE
    assert (r["lr"], r["momentum"], r["weight_decay"], r["batch_size"], r["lr_decay"]) == (
        0.05, 0.9, 5e-4, 64, 0.1)
    assert r["epochs"] == {"cifar_fs": 90, "mini_imagenet": 100}
    assert len(r["lr_milestones"]["cifar_fs"]) == 3 and len(r["lr_milestones"]["mini_imagenet"]) == 2
    opt, sched = fewshot.paper_optimizer(fewshot.ConvNet4(3, hidden=2).parameters(), "cifar_fs")
    lrs = []
    for _ in range(90):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.05) and lrs[-1] == pytest.approx(0.05e-3)


# --------------------------------------------------------------------------- splits and data
def test_cifar_fs_split_constants():
    s = fewshot.CIFAR_FS_SPLITS
    assert [len(s[k]) for k in ("train", "val", "test")] == [64, 16, 20]
    tr, va, te = (set(s[k]) for k in ("train", "val", "test"))
    assert not (tr & va or tr & te or va & te)
    assert tr | va | te == set(fewshot.CIFAR100_CLASSES) and len(fewshot.CIFAR100_CLASSES) == 100
    assert {"baby", "pickup_truck", "worm"} <= te and {"otter", "sea", "maple_tree"} <= va


def _write_fake_cifar100(root, per_class=(3, 2)):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in zip(("train", "test"), per_class):
        fine = np.repeat(np.arange(100), n)
        rng.shuffle(fine)
        # pixel value 0 encodes the fine label so images can be traced through the loader
        pixels = rng.integers(0, 256, (fine.size, 3072), dtype=np.uint8)
        pixels[:, 0] = fine
        entry = {"filenames": [f"{i}.png" for i in range(fine.size)], "batch_label": name,
                 "fine_labels": fine.tolist(), "coarse_labels": (fine // 5).tolist(), "data": pixels}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)
    meta = {"fine_label_names": list(fewshot.CIFAR100_CLASSES),
            "coarse_label_names": [f"super{i}" for i in range(20)]}
    with open(folder / "meta", "wb") as f:
        pickle.dump(meta, f)


@pytest.fixture
def fake_cifar(tmp_path, monkeypatch):
    import torchvision.datasets.cifar as tv_cifar

    # the fake files cannot match the real md5 sums: only check that they exist
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))
    _write_fake_cifar100(tmp_path)
    return tmp_path


@pytest.mark.parametrize("split,n", [("train", 64), ("val", 16), ("test", 20)])
def test_cifar_fs_loader(fake_cifar, split, n):
    ds = fewshot.cifar_fs(split, root=fake_cifar)
    assert len(ds) == n * 5 and ds.classes == list(fewshot.CIFAR_FS_SPLITS[split])
    assert sorted(set(ds.targets)) == list(range(n))
    assert np.bincount(ds.targets).tolist() == [5] * n  # 3 train + 2 test images per class
    for i in range(0, len(ds), 7):  # labels follow the images, renumbered in split order
        fine = int(ds.data[i, 0, 0, 0])
        assert ds.classes[ds.targets[i]] == fewshot.CIFAR100_CLASSES[fine]
    x, y = ds[0]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and isinstance(y, int)
    raw = fewshot.cifar_fs(split, root=fake_cifar, transform=lambda im: im)
    assert isinstance(raw[0][0], Image.Image)


def test_cifar_fs_root_from_env(fake_cifar, monkeypatch):
    monkeypatch.setenv("NCUTILS_DATA", str(fake_cifar))
    assert data.data_root() == fake_cifar
    assert len(fewshot.cifar_fs("test")) == 100
    monkeypatch.delenv("NCUTILS_DATA")
    assert data.data_root().parts[-3:] == (".cache", "ncutils", "data")


def test_cifar_fs_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="download=True") as err:
        fewshot.cifar_fs("test", root=tmp_path / "nowhere")
    assert "cifar-100-python" in str(err.value) and "nowhere" in str(err.value)
    with pytest.raises(ValueError, match="split"):
        fewshot.cifar_fs("novel", root=tmp_path)


def test_mini_imagenet_folder(tmp_path):
    rng = np.random.default_rng(0)
    wnids = ["n01532829", "n01558993", "n01704323"]
    for split in ("train", "test"):
        for w in wnids:
            d = tmp_path / split / w
            d.mkdir(parents=True)
            for j in range(4):
                px = rng.integers(0, 256, (10, 12, 3), dtype=np.uint8)
                Image.fromarray(px).save(d / f"{w}{j:08d}.jpg")
    ds = fewshot.mini_imagenet("test", tmp_path)
    assert len(ds) == 12 and ds.classes == wnids
    assert sorted(set(ds.targets)) == [0, 1, 2]
    x, y = ds[5]
    assert x.shape == (3, 84, 84) and y == 1
    with pytest.raises(FileNotFoundError, match=r"train,val,test"):
        fewshot.mini_imagenet("val", tmp_path)
    with pytest.raises(FileNotFoundError, match="cannot be downloaded"):
        fewshot.mini_imagenet("test", tmp_path / "absent")


# --------------------------------------------------------------------------- episodes
def test_episodes_deterministic_balanced_disjoint():
    labels = np.repeat(np.arange(10), 25)[np.random.default_rng(0).permutation(250)]
    a = fewshot.sample_episodes(labels, 5, 2, 6, episodes=30, seed=3)
    b = fewshot.sample_episodes(torch.from_numpy(labels), 5, 2, 6, episodes=30, seed=3)
    c = fewshot.sample_episodes(labels, 5, 2, 6, episodes=30, seed=4)
    assert len(a) == 30
    assert all(np.array_equal(u, v) for ea, eb in zip(a, b) for u, v in zip(ea, eb))
    assert any(not np.array_equal(ea.query, ec.query) for ea, ec in zip(a, c))
    for ep in a:
        assert np.bincount(ep.support_labels).tolist() == [2] * 5
        assert np.bincount(ep.query_labels).tolist() == [6] * 5
        assert not set(ep.support) & set(ep.query)
        assert len(set(ep.support)) == 10 and len(set(ep.query)) == 30
        # episode labels map one-to-one onto 5 distinct dataset classes
        for idx, lab in ((ep.support, ep.support_labels), (ep.query, ep.query_labels)):
            for k in range(5):
                assert len(set(labels[idx[lab == k]])) == 1
        assert len(set(labels[ep.support])) == 5
        assert set(labels[ep.support]) == set(labels[ep.query])


def test_episodes_errors():
    labels = np.repeat(np.arange(6), 10)
    with pytest.raises(ValueError, match="at least 7 classes"):
        fewshot.sample_episodes(labels, n_way=7)
    with pytest.raises(ValueError, match="k_shot \\+ n_query = 16"):
        fewshot.sample_episodes(labels, 5, 1, 15)
    with pytest.raises(ValueError, match="n_way"):
        fewshot.sample_episodes(labels, n_way=1)
    with pytest.raises(ValueError, match="integer"):
        fewshot.sample_episodes(labels.astype(float))
    assert len(fewshot.sample_episodes(labels, 5, 1, 9, episodes=2)) == 2


# --------------------------------------------------------------------------- evaluation
def _clusters(noise, classes=10, per_class=30, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, d)) * 3
    y = np.repeat(np.arange(classes), per_class)
    return centres[y] + noise * rng.normal(size=(y.size, d)), y


def test_separable_embeddings_are_classified_perfectly():
    X, y = _clusters(noise=0.3)
    eps = fewshot.sample_episodes(y, 5, 1, 15, episodes=40, seed=0)
    res = fewshot.evaluate_episodes(torch.from_numpy(X).float(), torch.from_numpy(y), eps)
    assert res["accuracy"] >= 99 and res["accuracies"].shape == (40,)
    assert (res["episodes"], res["n_way"], res["k_shot"], res["n_query"]) == (40, 5, 1, 15)
    expected_ci = 1.96 * np.std(res["accuracies"], ddof=1) / np.sqrt(40)
    assert res["ci95"] == pytest.approx(expected_ci) and res["nc1_per_episode"].shape == (40,)
    # with normalisation, rescaling individual embeddings changes nothing
    scale = np.random.default_rng(1).uniform(0.1, 10, (X.shape[0], 1))
    res2 = fewshot.evaluate_episodes(X * scale, y, eps, compute_nc1=False)
    np.testing.assert_allclose(res2["accuracies"], res["accuracies"])
    assert "nc1" not in res2


def test_noise_is_at_chance():
    rng = np.random.default_rng(2)
    X, y = rng.normal(size=(400, 16)), np.repeat(np.arange(20), 20)
    eps = fewshot.sample_episodes(y, 5, 1, 15, episodes=120, seed=1)
    res = fewshot.evaluate_episodes(X, y, eps, compute_nc1=False)
    assert 14 < res["accuracy"] < 26  # chance is 20%
    assert res["ci95"] > 0


def test_query_nc1_is_lower_for_tight_clusters():
    tight, y = _clusters(noise=0.2)
    loose, _ = _clusters(noise=2.0)
    eps = fewshot.sample_episodes(y, 5, 5, 10, episodes=15, seed=0)
    r_tight = fewshot.evaluate_episodes(tight, y, eps, normalize=False)
    r_loose = fewshot.evaluate_episodes(loose, y, eps, normalize=False)
    assert r_tight["nc1"] < r_loose["nc1"] / 10
    ep = eps[0]
    assert r_tight["nc1_per_episode"][0] == pytest.approx(nc1(tight[ep.query], ep.query_labels))
    assert r_tight["accuracy"] >= r_loose["accuracy"]


def test_evaluate_rejects_mismatched_episodes():
    X, y = _clusters(noise=0.3)
    eps = fewshot.sample_episodes(y, 5, 1, 5, episodes=3, seed=0)
    with pytest.raises(ValueError, match="does not match"):
        fewshot.evaluate_episodes(X, np.random.default_rng(0).permutation(y), eps)
    with pytest.raises(ValueError, match="labels must have shape"):
        fewshot.evaluate_episodes(X, y[:-1], eps)


def test_embed_then_evaluate_end_to_end():
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    y = torch.arange(6).repeat_interleave(8)
    x = torch.randn(y.numel(), 3, 32, 32, generator=g) * 0.3 + y.float()[:, None, None, None] / 3
    ds = TensorDataset(x, y)
    model = fewshot.backbone("convnet4", 64, hidden=8)
    X, labels = fewshot.embed(model, ds, batch_size=16, device="cpu")
    assert X.shape == (48, 8) and torch.equal(labels, y)
    res = fewshot.evaluate_episodes(X, labels, fewshot.sample_episodes(labels, 5, 1, 5, 10, 0))
    assert 0 <= res["accuracy"] <= 100 and np.isfinite(res["nc1"])
    rows = fewshot.evaluate_shots(X, labels, shots=(1, 2), n_query=5, episodes=10)
    assert set(rows) == {1, 2} and rows[1]["accuracy"] == pytest.approx(res["accuracy"])
    assert fewshot.split_nc1(model, ds, device="cpu") == pytest.approx(nc1(X, labels))
    assert fewshot.split_nc1(model, ds, device="cpu", normalize=True) > 0
