"""Dataset loading on tiny fake copies of the real on-disk formats, offline datasets, subsets, loaders."""

import gzip
import os
import pickle
import runpy
import sys
import urllib.error
import warnings
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
import torchvision
from PIL import Image
from torch.utils.data import ConcatDataset, Subset, TensorDataset

from ncutils import data, transforms
from ncutils.data import __main__ as data_cli
from ncutils.training import seed_epoch


# --------------------------------------------------------------------------- fake on-disk datasets
def _exists(fpath, md5=None):
    return os.path.isfile(fpath)


@pytest.fixture
def no_md5(monkeypatch):
    """The fakes cannot match torchvision's md5 sums: check that the files exist instead (tests only)."""
    monkeypatch.setattr(torchvision.datasets.cifar, "check_integrity", _exists)
    monkeypatch.setattr(torchvision.datasets.flowers102, "check_integrity", _exists)
    monkeypatch.setattr(data.presence, "_md5_matches", _exists)


def _pickle(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=2)


def _cifar_rows(n, seed):
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3072), dtype=np.uint8)


def fake_cifar10(root, per_batch=4, n_test=6):
    folder = root / "cifar-10-batches-py"
    batches = {}
    for b in range(1, 6):
        rows, labels = _cifar_rows(per_batch, b), [(b + i) % 10 for i in range(per_batch)]
        batches[f"data_batch_{b}"] = (rows, labels)
    batches["test_batch"] = (_cifar_rows(n_test, 0), [i % 10 for i in range(n_test)])
    for name, (rows, labels) in batches.items():
        _pickle(folder / name, {"batch_label": name, "labels": labels, "data": rows,
                                "filenames": [f"img_{i}.png" for i in range(len(labels))]})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    meta = {"num_cases_per_batch": per_batch, "label_names": names, "num_vis": 3072}
    _pickle(folder / "batches.meta", meta)
    return batches


def fake_cifar100(root, n_train=12, n_test=5):
    folder = root / "cifar-100-python"
    splits = {}
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        fine = [(7 * i + seed) % 100 for i in range(n)]
        splits[name] = (_cifar_rows(n, seed), fine)
        _pickle(folder / name, {"filenames": [f"f{i}.png" for i in range(n)], "batch_label": name,
                                "fine_labels": fine, "coarse_labels": [f // 5 for f in fine],
                                "data": splits[name][0]})
    _pickle(folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                              "coarse_label_names": [f"coarse{i}" for i in range(20)]})
    return splits


def _idx(path, array, code=0x08, dtype=np.uint8):
    """Write an IDX file (big-endian header: 0, 0, type 0x08 = ubyte, number of dimensions; then sizes).

    A path ending in ``.gz`` is gzipped, as in Debian's Fashion-MNIST."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = bytes([0, 0, code, array.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in array.shape)
    raw = header + array.astype(np.dtype(dtype).newbyteorder(">")).tobytes()
    path.write_bytes(gzip.compress(raw) if path.suffix == ".gz" else raw)


def fake_mnist(root, folder="MNIST", n_train=12, n_test=5, *, seed=0, raw="raw", suffix=""):
    """torchvision's layout (root/folder/raw/*-ubyte); ``raw=""`` and ``suffix=".gz"``: Debian's (root/*-ubyte.gz)."""
    rng = np.random.default_rng(seed)
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
        labels = rng.permutation(np.arange(n, dtype=np.uint8) % 10)
        _idx(root / folder / raw / f"{prefix}-images-idx3-ubyte{suffix}", images)
        _idx(root / folder / raw / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
        out[prefix] = (images, labels)
    return out


def fake_debian_fashion(folder, **kwargs):
    """Debian's dataset-fashion-mnist layout: the four gzipped IDX files directly in ``folder``."""
    return fake_mnist(folder, "", raw="", suffix=".gz", **kwargs)


@pytest.fixture
def debian_fashion(tmp_path, monkeypatch):
    """A fake Debian copy of Fashion-MNIST (12 + 5 images), found through $NCUTILS_FASHION_MNIST."""
    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    raw = fake_debian_fashion(folder, seed=7)
    monkeypatch.setenv(data.idx.FASHION_MNIST_ENV, str(folder))
    return folder, raw


@pytest.fixture
def no_debian_fashion(tmp_path, monkeypatch):
    """No Debian copy of Fashion-MNIST, whether or not the package is installed here."""
    monkeypatch.setenv(data.idx.FASHION_MNIST_ENV, str(tmp_path / "no-fashion-mnist"))


def _jpg(path, seed, size=(40, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def fake_dtd(root):
    """DTD layout: dtd/dtd/images/<class>/<file>.jpg and dtd/dtd/labels/{train,val,test}1.txt."""
    base = root / "dtd" / "dtd"
    split_files = {
        "train1": ["banded/banded_0001.jpg", "dotted/dotted_0001.jpg", "striped/striped_0001.jpg",
                   "banded/banded_0002.jpg"],
        "val1": ["dotted/dotted_0002.jpg", "striped/striped_0002.jpg"],  # no 'banded' in val
        "test1": ["banded/banded_0003.jpg", "striped/striped_0003.jpg", "dotted/dotted_0003.jpg"],
    }
    for split, files in split_files.items():
        (base / "labels").mkdir(parents=True, exist_ok=True)
        (base / "labels" / f"{split}.txt").write_text("".join(f + "\n" for f in files))
        for i, f in enumerate(files):
            _jpg(base / "images" / f, seed=len(split) * 10 + i)
    return split_files


def fake_pets(root):
    """Oxford-IIIT Pets layout: images/<Breed>_<n>.jpg, annotations/{trainval,test}.txt."""
    base = root / "oxford-iiit-pet"
    lines = {  # image id, class id (1..37), species (1 cat, 2 dog), breed id
        "trainval": ["Abyssinian_1 1 1 1", "american_bulldog_1 2 2 1", "Abyssinian_2 1 1 1",
                     "yorkshire_terrier_1 37 2 25"],
        "test": ["american_bulldog_2 2 2 1", "yorkshire_terrier_2 37 2 25"],
    }
    (base / "annotations" / "trimaps").mkdir(parents=True, exist_ok=True)
    for split, rows in lines.items():
        (base / "annotations" / f"{split}.txt").write_text("".join(r + "\n" for r in rows))
        for i, r in enumerate(rows):
            _jpg(base / "images" / f"{r.split()[0]}.jpg", seed=i, size=(50, 36))
    return lines


def fake_flowers(root):
    """Flowers-102 layout: flowers-102/jpg/image_NNNNN.jpg, imagelabels.mat, setid.mat (1-based ids)."""
    base = root / "flowers-102"
    labels = np.array([1, 5, 102, 5, 1, 7, 3, 102], dtype=np.uint8)  # 1-based, image k has labels[k-1]
    for k in range(1, len(labels) + 1):
        _jpg(base / "jpg" / f"image_{k:05d}.jpg", seed=k)
    scipy.io.savemat(base / "imagelabels.mat", {"labels": labels[None, :]})
    scipy.io.savemat(base / "setid.mat", {"trnid": np.array([[1, 2, 3]], dtype=np.uint16),
                                          "valid": np.array([[4, 5]], dtype=np.uint16),
                                          "tstid": np.array([[6, 7, 8]], dtype=np.uint16)})
    return labels


def fake_aircraft(root):
    """FGVC-Aircraft layout: fgvc-aircraft-2013b/data/{variants.txt, images_variant_<split>.txt, images/}."""
    base = root / "fgvc-aircraft-2013b" / "data"
    variants = ["707-320", "A300B4", "Cessna 172", "F-16A/B"]
    rows = {"trainval": [("1000001", "A300B4"), ("1000002", "Cessna 172"), ("1000003", "707-320")],
            "test": [("1000004", "F-16A/B"), ("1000005", "A300B4")]}
    base.mkdir(parents=True)
    (base / "variants.txt").write_text("".join(v + "\n" for v in variants))
    for split, pairs in rows.items():
        (base / f"images_variant_{split}.txt").write_text("".join(f"{i} {v}\n" for i, v in pairs))
        for i, _ in pairs:
            _jpg(base / "images" / f"{i}.jpg", seed=int(i), size=(60, 40))
    return variants, rows


# --------------------------------------------------------------------------- registry and paths
def test_registry():
    expected = {"cifar10": 10, "cifar100": 100, "aircraft": 100, "dtd": 47, "pets": 37, "flowers102": 102,
                "mnist": 10, "fashionmnist": 10, "sun397": 397}
    assert {k: v.num_classes for k, v in data.DATASETS.items()} == expected
    assert data.DATASETS["mnist"].channels == data.DATASETS["fashionmnist"].channels == 1
    assert data.DATASETS["pets"].tv_class is torchvision.datasets.OxfordIIITPet
    for info in data.DATASETS.values():
        assert issubclass(info.tv_class, torchvision.datasets.VisionDataset)
    assert data.FIG11_SIZES == [10, 24, 59, 142, 344, 835, 2022, 4898]
    assert data.TMLR_FIG8_SIZES == [3, 10, 32, 100, 316]


def test_data_root_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("NCUTILS_DATA", raising=False)
    assert data.data_root() == Path.home() / ".cache" / "ncutils" / "data"
    monkeypatch.setenv("NCUTILS_DATA", str(tmp_path / "env"))
    assert data.data_root() == tmp_path / "env"
    assert data.data_root(tmp_path / "arg") == tmp_path / "arg"


def test_image_size_for():
    assert data.image_size_for("vit_b_32") == 384
    assert data.image_size_for("resnet50") == data.image_size_for("mlp") == 224


# --------------------------------------------------------------------------- torchvision formats
def test_cifar10_layout_labels_and_transforms(tmp_path, no_md5):
    batches = fake_cifar10(tmp_path)
    train = data.load("cifar10", root=tmp_path, image_size=32, normalize=False)
    test = data.load("cifar10", "test", root=tmp_path)
    assert len(train) == 20 and len(test) == 6
    assert train.classes[0] == "airplane"
    expected = np.concatenate([batches[f"data_batch_{b}"][1] for b in range(1, 6)])
    np.testing.assert_array_equal(data.labels_of(train), expected)
    # pixels come back in the right place: rows are R, G, B planes of 32 x 32
    x, y = train[5]
    raw = batches["data_batch_2"][0][1].reshape(3, 32, 32) / 255.0
    torch.testing.assert_close(x, torch.from_numpy(raw).float())
    assert y == expected[5]
    x, _ = test[0]
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    assert x.min() < 0  # ImageNet-normalised


def test_cifar100_fine_labels(tmp_path, no_md5):
    splits = fake_cifar100(tmp_path)
    train, test = data.load("cifar100", root=tmp_path), data.load("cifar100", "test", root=tmp_path)
    assert (len(train), len(test)) == (12, 5) and len(train.classes) == 100
    np.testing.assert_array_equal(data.labels_of(train), splits["train"][1])
    np.testing.assert_array_equal(data.labels_of(test), splits["test"][1])
    assert train[3][0].shape == (3, 224, 224) and train[3][1] == splits["train"][1][3]


@pytest.mark.parametrize("name, folder", [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_mnist_idx_files(tmp_path, name, folder):
    raw = fake_mnist(tmp_path, folder)
    train, test = data.load(name, root=tmp_path), data.load(name, "test", root=tmp_path)
    assert (len(train), len(test)) == (12, 5)
    np.testing.assert_array_equal(data.labels_of(train), raw["train"][1])
    x, y = test[2]
    assert x.shape == (3, 224, 224) and y == raw["t10k"][1][2]
    mean, std = (torch.tensor(v)[:, None, None] for v in transforms.NORMALIZATION["imagenet"])
    gray = x * std + mean  # the digit repeated to three channels, then ImageNet-normalised
    torch.testing.assert_close(gray[0], gray[1])
    torch.testing.assert_close(gray[0], gray[2])
    gray = data.load(name, "test", root=tmp_path, image_size=28, to_rgb=False, normalize=False)
    x, _ = gray[2]
    assert x.shape == (1, 28, 28)
    torch.testing.assert_close(x[0], torch.from_numpy(raw["t10k"][0][2] / 255.0).float())
    x, _ = data.load(name, "test", root=tmp_path, image_size=32, to_rgb=False)[0]
    assert x.shape == (1, 32, 32)  # normalised with the channel-averaged ImageNet statistics


def test_dtd_train_is_train_plus_val(tmp_path):
    files = fake_dtd(tmp_path)
    train, test = data.load("dtd", root=tmp_path), data.load("dtd", "test", root=tmp_path)
    assert isinstance(train, ConcatDataset)
    assert len(train) == len(files["train1"]) + len(files["val1"]) and len(test) == 3
    classes = ["banded", "dotted", "striped"]
    assert train.classes == classes
    expected = [classes.index(f.split("/")[0]) for f in files["train1"] + files["val1"]]
    np.testing.assert_array_equal(data.labels_of(train), expected)  # 'banded' absent from val1: still 0
    x, y = train[4]  # first item of val1: dotted
    assert x.shape == (3, 224, 224) and y == 1
    assert [test[i][1] for i in range(3)] == [0, 2, 1]


def test_pets_trainval_test(tmp_path):
    lines = fake_pets(tmp_path)
    train, test = data.load("pets", root=tmp_path, image_size=64), data.load("pets", "test", root=tmp_path)
    assert (len(train), len(test)) == (4, 2)
    np.testing.assert_array_equal(data.labels_of(train), [0, 1, 0, 36])
    np.testing.assert_array_equal(data.labels_of(test), [1, 36])
    assert train[3][0].shape == (3, 64, 64) and train[3][1] == 36
    assert train.classes[0] == "Abyssinian" and len(lines["test"]) == len(test)


def test_flowers_train_is_train_plus_val(tmp_path, no_md5):
    labels = fake_flowers(tmp_path)
    train, test = data.load("flowers102", root=tmp_path), data.load("flowers102", "test", root=tmp_path)
    assert (len(train), len(test)) == (5, 3)
    np.testing.assert_array_equal(data.labels_of(train), labels[:5].astype(int) - 1)
    np.testing.assert_array_equal(data.labels_of(test), labels[5:].astype(int) - 1)
    assert train[2][0].shape == (3, 224, 224) and train[2][1] == 101


def test_aircraft_trainval_variants(tmp_path):
    variants, rows = fake_aircraft(tmp_path)
    train, test = data.load("aircraft", root=tmp_path), data.load("aircraft", "test", root=tmp_path)
    assert (len(train), len(test)) == (3, 2) and train.classes == variants
    np.testing.assert_array_equal(data.labels_of(train), [1, 2, 0])
    np.testing.assert_array_equal(data.labels_of(test), [3, 1])
    assert test[0][0].shape == (3, 224, 224)


def test_augmentation_is_random_but_seeded(tmp_path, no_md5):
    fake_cifar10(tmp_path)
    train = data.load("cifar10", root=tmp_path, image_size=32, augment=True)
    draws = []
    for seed in (0, 0, 1):
        torch.manual_seed(seed)
        draws.append(torch.stack([train[0][0] for _ in range(4)]))
    assert draws[0].shape == (4, 3, 32, 32)
    torch.testing.assert_close(draws[0], draws[1])
    assert not torch.equal(draws[0], draws[2])


# --------------------------------------------------------------------------- missing data and the CLI
def test_missing_dataset_says_where_and_how(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("cifar10", root=tmp_path)
    msg = str(info.value)
    assert isinstance(info.value, FileNotFoundError)
    assert "CIFAR-10" in msg and str(tmp_path / "cifar-10-batches-py") in msg
    assert "download=True" in msg and "python -m ncutils.data download cifar10" in msg
    assert "NCUTILS_DATA" in msg
    assert info.value.path == tmp_path / "cifar-10-batches-py"


def test_incomplete_dataset_is_reported(tmp_path):
    (tmp_path / "MNIST" / "raw").mkdir(parents=True)
    with pytest.raises(data.DatasetNotFoundError, match="raw/train-images-idx3-ubyte is missing") as info:
        data.load("mnist", root=tmp_path)
    assert f"fix: delete {tmp_path / 'MNIST'} and run: python -m ncutils.data download mnist" in str(info.value)


def test_environment_variable_is_honoured(tmp_path, monkeypatch):
    monkeypatch.setenv("NCUTILS_DATA", str(tmp_path))
    with pytest.raises(data.DatasetNotFoundError, match=str(tmp_path / "MNIST")):
        data.load("mnist")
    fake_mnist(tmp_path)
    assert len(data.load("mnist", "test")) == 5


def test_download_flag_reaches_torchvision(tmp_path, monkeypatch):
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    with pytest.raises(data.DownloadError, match=r"downloading CIFAR-10 .*into .* failed: URLError"):
        data.load("cifar10", root=tmp_path / "new", download=True)
    assert calls == [torchvision.datasets.CIFAR10.url] and not (tmp_path / "new").exists()  # the new root is removed


def test_bad_name_and_split(tmp_path, no_debian_fashion):
    with pytest.raises(ValueError, match="unknown dataset"):
        data.load("imagenet", root=tmp_path)
    with pytest.raises(ValueError, match="unknown split"):
        data.load("mnist", "val", root=tmp_path)
    with pytest.raises(data.DatasetNotFoundError, match="Fashion-MNIST"):  # names are forgiving
        data.load("Fashion-MNIST", root=tmp_path)


def test_cli_download_on_existing_data(tmp_path, no_md5, capsys, monkeypatch):
    fake_cifar10(tmp_path)
    assert data_cli.main(["download", "cifar10", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "train: 20 images" in out and "test: 6 images" in out
    monkeypatch.setattr(sys, "argv", ["ncutils.data", "--help"])  # `python -m ncutils.data --help`
    with pytest.raises(SystemExit) as exit_info, warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runpy: module already imported by the tests
        runpy.run_module("ncutils.data", run_name="__main__")
    assert exit_info.value.code == 0 and "download" in capsys.readouterr().out


# --------------------------------------------------------------------------- Fashion-MNIST from Debian's package
def test_fashion_mnist_from_debian_copy_matches_torchvision(tmp_path, debian_fashion):
    folder, raw = debian_fashion
    empty, tv_root = tmp_path / "empty", tmp_path / "tv"
    (tv_root / "FashionMNIST" / "raw").mkdir(parents=True)
    for name in os.listdir(folder):  # the same files, unpacked where torchvision reads them
        (tv_root / "FashionMNIST" / "raw" / name[:-3]).write_bytes(gzip.decompress((folder / name).read_bytes()))
    assert data.check("fashionmnist", empty) is None  # the Debian copy counts as present
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = raw[prefix]
        deb = data.load("fashionmnist", split, root=empty, image_size=28, to_rgb=False, normalize=False)
        tv = data.load("fashionmnist", split, root=tv_root, image_size=28, to_rgb=False, normalize=False)
        assert isinstance(deb, data.idx.FashionMNISTFolder) and isinstance(deb, torchvision.datasets.FashionMNIST)
        assert not isinstance(tv, data.idx.FashionMNISTFolder)  # the data root's copy comes first
        assert len(deb) == len(images) and deb.classes == tv.classes and deb.classes[9] == "Ankle boot"
        assert deb.data.dtype == torch.uint8 and deb.targets.dtype == torch.int64
        np.testing.assert_array_equal(deb.data.numpy(), images)
        np.testing.assert_array_equal(data.labels_of(deb), labels)
        assert torch.equal(deb.data, tv.data) and torch.equal(deb.targets, tv.targets)
        for i in (0, len(images) - 1):
            x, y = deb[i]
            assert x.shape == (1, 28, 28) and y == labels[i] and isinstance(y, int)
            torch.testing.assert_close(x[0], torch.from_numpy(images[i] / 255.0).float())
            torch.testing.assert_close(x, tv[i][0])
    x, y = data.load("fashionmnist", "test", root=empty)[3]  # the paper's preprocessing, as for the other datasets
    assert x.shape == (3, 224, 224) and x.min() < 0 and y == raw["t10k"][1][3]
    assert not empty.exists()  # nothing was created under the data root


def test_read_idx_types_and_damaged_files(tmp_path, debian_fashion):
    folder, raw = debian_fashion
    values = np.arange(-6, 6, dtype=np.int32).reshape(3, 4) * 1000
    _idx(tmp_path / "ints.idx", values, code=0x0C, dtype=np.int32)
    np.testing.assert_array_equal(data.idx.read_idx(tmp_path / "ints.idx"), values)
    np.testing.assert_array_equal(data.idx.read_idx(folder / "t10k-labels-idx1-ubyte.gz"), raw["t10k"][1])
    good = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    (tmp_path / "cut.gz").write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="cut.gz is not a complete gzip file"):
        data.idx.read_idx(tmp_path / "cut.gz")
    (tmp_path / "short.gz").write_bytes(gzip.compress(gzip.decompress(good)[:-28]))
    with pytest.raises(ValueError, match=r"short.gz is truncated: .* shape \(12, 28, 28\)"):
        data.idx.read_idx(tmp_path / "short.gz")
    (tmp_path / "long").write_bytes(gzip.decompress(good) + b"\0")
    with pytest.raises(ValueError, match="long has extra bytes"):
        data.idx.read_idx(tmp_path / "long")
    (tmp_path / "png.gz").write_bytes(gzip.compress(b"\x89PNG\r\n\x1a\n"))
    with pytest.raises(ValueError, match="png.gz is not an IDX file"):
        data.idx.read_idx(tmp_path / "png.gz")
    # a damaged copy in the folder $NCUTILS_FASHION_MNIST names: load() says which file is wrong and to replace it
    (folder / "train-images-idx3-ubyte.gz").write_bytes(good[:100])
    with pytest.raises(data.DatasetNotFoundError, match="train-images-idx3-ubyte.gz is not a complete gzip") as info:
        data.load("fashionmnist", root=tmp_path / "empty")
    assert "fix: replace the files named" in str(info.value) and "--reinstall" not in str(info.value)
    _idx(folder / "train-images-idx3-ubyte.gz", raw["train"][0][:11])  # 11 images for 12 labels
    with pytest.raises(data.DatasetNotFoundError, match="11 images but .* 12 labels"):
        data.load("fashionmnist", root=tmp_path / "empty")
    _idx(folder / "train-images-idx3-ubyte.gz", raw["train"][1])  # the labels where the images belong
    with pytest.raises(data.DatasetNotFoundError, match=r"shape \(12,\), not uint8 images"):
        data.load("fashionmnist", root=tmp_path / "empty")
    with pytest.raises(data.DatasetNotFoundError, match="train-images-idx3-ubyte.gz holds"):
        data.load("fashionmnist", "test", root=tmp_path / "empty")  # a copy counts only when all its files are sound


def test_missing_fashion_mnist_names_apt_and_download(tmp_path, no_debian_fashion, monkeypatch):
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("fashionmnist", root=tmp_path / "root")
    msg = str(info.value)
    assert "apt-get install dataset-fashion-mnist" in msg and "python -m ncutils.data download fashionmnist" in msg
    assert str(tmp_path / "no-fashion-mnist") in msg and "NCUTILS_FASHION_MNIST" in msg
    assert info.value.path == tmp_path / "root" / "FashionMNIST" and not (tmp_path / "root").exists()
    problem = data.check("fashionmnist", tmp_path / "root")
    assert "apt-get install dataset-fashion-mnist" in problem and str(tmp_path / "root" / "FashionMNIST") in problem
    # a Debian folder that lacks a file
    folder = tmp_path / "partial"
    fake_debian_fashion(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    monkeypatch.setenv(data.idx.FASHION_MNIST_ENV, str(folder))
    for text in (str(pytest.raises(data.DatasetNotFoundError, data.load, "fashionmnist", root=tmp_path).value),
                 data.check("fashionmnist", tmp_path)):
        assert f"{folder} (the folder $NCUTILS_FASHION_MNIST names): t10k-labels-idx1-ubyte.gz is missing" in text
        assert "fix: replace the files named" in text and "unset NCUTILS_FASHION_MNIST" in text
    assert data.check("mnist", tmp_path) is not None  # the Debian copy is Fashion-MNIST's only


def test_download_command_still_fetches_fashion_mnist(tmp_path, debian_fashion, monkeypatch, capsys):
    calls = []

    def offline(url, *args, **kwargs):
        calls.append(url)
        raise urllib.error.URLError("no network in the tests")

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", offline)
    assert len(data.load("fashionmnist", root=tmp_path / "a", download=True)) == 12  # the Debian copy suffices
    assert calls == []
    with pytest.raises(RuntimeError, match="Error downloading train-images-idx3-ubyte.gz"):
        data_cli.main(["download", "fashionmnist", "--root", str(tmp_path / "b")])
    assert calls and calls[0] == torchvision.datasets.FashionMNIST.mirrors[0] + "train-images-idx3-ubyte.gz"
    fake_mnist(tmp_path / "c", "FashionMNIST")
    assert data_cli.main(["download", "fashionmnist", "--root", str(tmp_path / "c")]) == 0
    out = capsys.readouterr().out
    assert "train: 12 images" in out and "test: 5 images" in out and str(tmp_path / "c" / "FashionMNIST") in out


@pytest.mark.skipif(not data.idx.FASHION_MNIST_FOLDER.is_dir(),
                    reason="the real Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
def test_real_fashion_mnist_from_debian_package(tmp_path, monkeypatch):
    monkeypatch.delenv(data.idx.FASHION_MNIST_ENV, raising=False)
    assert data.check("fashionmnist", tmp_path) is None
    for split, n in (("train", 60000), ("test", 10000)):
        ds = data.load("fashionmnist", split, root=tmp_path)
        assert isinstance(ds, data.idx.FashionMNISTFolder) and len(ds.classes) == 10
        assert ds.data.shape == (n, 28, 28) and ds.data.dtype == torch.uint8
        assert np.bincount(data.labels_of(ds)).tolist() == [n // 10] * 10
        assert ds.targets[0] == 9  # both splits open with an ankle boot
        x, y = ds[0]
        assert x.shape == (3, 224, 224) and y == 9


# --------------------------------------------------------------------------- labels_of
def test_labels_of_wrappers_and_fallback():
    x, y = torch.zeros(6, 1, 2, 2), torch.tensor([3, 1, 4, 1, 5, 9])
    ds = TensorDataset(x, y)
    np.testing.assert_array_equal(data.labels_of(ds), y.numpy())
    np.testing.assert_array_equal(data.labels_of(Subset(ds, [5, 0])), [9, 3])
    np.testing.assert_array_equal(data.labels_of(ConcatDataset([ds, Subset(ds, [1])])), [3, 1, 4, 1, 5, 9, 1])
    np.testing.assert_array_equal(data.labels_of(data.TransformDataset(ds, lambda t: t + 1)), y.numpy())
    pairs = [(torch.zeros(1), torch.tensor(2)), (torch.zeros(1), 7)]  # no label attribute: iterated
    labels = data.labels_of(pairs)
    assert labels.dtype == np.int64 and labels.tolist() == [2, 7]


# --------------------------------------------------------------------------- offline datasets
def test_mnist5k_shapes_splits_and_counts():
    train, test = data.mnist5k(), data.mnist5k("test")
    x, y = train.tensors
    assert x.shape == (4000, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert 0.0 <= x.min() and x.max() == 1.0
    assert np.bincount(y.numpy()).tolist() == [400] * 10
    assert np.bincount(test.tensors[1].numpy()).tolist() == [100] * 10
    assert not set(train.source_indices) & set(test.source_indices)
    assert len(set(train.source_indices) | set(test.source_indices)) == 5000
    again = data.mnist5k("test")
    torch.testing.assert_close(again.tensors[0], test.tensors[0])
    other = data.mnist5k("test", seed=1)
    assert not np.array_equal(other.source_indices, test.source_indices)


def test_mnist5k_class_selection_is_a_transfer_pair():
    full = data.mnist5k()
    up = data.mnist5k(classes=[5, 6, 7, 8, 9])
    down = data.mnist5k(classes=[0, 1, 2, 3, 4])
    assert up.tensors[1].unique().tolist() == [0, 1, 2, 3, 4] and up.classes == ["5", "6", "7", "8", "9"]
    assert len(up) == len(down) == 2000
    # digit 7 -> label 2, same images and same split as in the full set
    sevens = full.tensors[0][full.tensors[1] == 7]
    torch.testing.assert_close(up.tensors[0][up.tensors[1] == 2], sevens)
    reordered = data.mnist5k("test", classes=[9, 3])
    assert np.bincount(reordered.tensors[1].numpy()).tolist() == [100, 100]
    full_test = data.mnist5k("test")
    torch.testing.assert_close(reordered.tensors[0][reordered.tensors[1] == 0],
                               full_test.tensors[0][full_test.tensors[1] == 9])
    with pytest.raises(ValueError, match="do not exist"):
        data.mnist5k(classes=[3, 10])
    with pytest.raises(ValueError, match="repeats"):
        data.mnist5k(classes=[3, 3])


def test_mnist5k_resize_and_channels():
    ds = data.mnist5k("test", image_size=32, channels=3, classes=[0, 1])
    x = ds.tensors[0]
    assert x.shape == (200, 3, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0
    torch.testing.assert_close(x[:, 0], x[:, 2])
    assert data.mnist5k("test", image_size=14).tensors[0].shape == (1000, 1, 14, 14)
    with pytest.raises(ValueError, match="channels"):
        data.mnist5k(channels=2)


def test_sklearn_digits():
    train, test = data.sklearn_digits(), data.sklearn_digits("test")
    assert len(train) + len(test) == 1797
    x = train.tensors[0]
    assert x.shape[1:] == (1, 28, 28) and 0.0 <= x.min() and x.max() == 1.0
    counts = np.bincount(test.tensors[1].numpy())
    assert counts.min() >= 34 and counts.max() <= 37  # 20 % of 174..183 per class
    assert not set(train.source_indices) & set(test.source_indices)
    sub = data.sklearn_digits("test", classes=[8, 2], image_size=8, channels=3, seed=3)
    assert sub.tensors[0].shape[1:] == (3, 8, 8) and set(sub.tensors[1].tolist()) == {0, 1}
    torch.testing.assert_close(sub.tensors[0], data.sklearn_digits("test", classes=[8, 2], image_size=8,
                                                                   channels=3, seed=3).tensors[0])


def test_synthetic_is_deterministic_and_learnable():
    a, b = data.synthetic(seed=4), data.synthetic(seed=4)
    torch.testing.assert_close(a.tensors[0], b.tensors[0])
    assert a.tensors[0].shape == (200, 3, 32, 32) and np.bincount(a.tensors[1].numpy()).tolist() == [20] * 10
    assert not torch.equal(a.tensors[0], data.synthetic(seed=5).tensors[0])

    def nearest_mean_accuracy(ds):
        x, y = ds.tensors[0].flatten(1), ds.tensors[1]
        fit = torch.arange(len(y)) % 2 == 0
        means = torch.stack([x[fit & (y == c)].mean(0) for c in range(int(y.max()) + 1)])
        pred = torch.cdist(x[~fit], means).argmin(1)
        return (pred == y[~fit]).float().mean().item()

    assert nearest_mean_accuracy(data.synthetic(num_classes=5, per_class=20, image_size=16, seed=1)) == 1.0
    assert nearest_mean_accuracy(data.synthetic(num_classes=5, per_class=20, image_size=16, seed=1,
                                                separation=0.0)) < 0.5


def test_colorize():
    digits = data.sklearn_digits("test", image_size=12)
    coloured = data.colorize(digits, seed=2)
    x = coloured.tensors[0]
    assert x.shape == (len(digits), 3, 12, 12) and 0.0 <= x.min() and x.max() <= 1.0
    torch.testing.assert_close(coloured.tensors[1], digits.tensors[1])
    torch.testing.assert_close(x, data.colorize(digits, seed=2).tensors[0])
    # background pixels (intensity 0) all have one colour per image, which differs between images
    corner = x[:, :, 0, 0]
    assert torch.unique(corner, dim=0).shape[0] > len(digits) // 2
    assert data.colorize(torch.rand(4, 5, 5)).shape == (4, 3, 5, 5)


# --------------------------------------------------------------------------- subsets
def test_balanced_subset_counts_determinism_nesting():
    labels = np.repeat(np.arange(4), [30, 50, 40, 60])
    np.random.default_rng(0).shuffle(labels)
    small = data.balanced_subset(labels, 5, seed=3)
    assert np.bincount(labels[small]).tolist() == [5] * 4 and len(np.unique(small)) == 20
    np.testing.assert_array_equal(small, data.balanced_subset(labels, 5, seed=3))
    assert not np.array_equal(small, data.balanced_subset(labels, 5, seed=4))
    previous = set()
    for n in [3, 10, 24, 30]:
        current = set(data.balanced_subset(labels, n, seed=3).tolist())
        assert previous <= current
        previous = current
    ds = TensorDataset(torch.zeros(len(labels), 1), torch.from_numpy(labels))
    np.testing.assert_array_equal(data.balanced_subset(ds, 5, seed=3), small)
    sub = data.subset(ds, small)
    assert isinstance(sub, Subset) and np.bincount(data.labels_of(sub)).tolist() == [5] * 4
    with pytest.raises(ValueError, match="class 0 has only 30 samples"):
        data.balanced_subset(labels, 31)


def test_balanced_subset_on_mnist5k_fig11_sizes():
    train = data.mnist5k()
    sizes = [n for n in data.FIG11_SIZES if n <= 400]
    subsets = [set(data.balanced_subset(train, n).tolist()) for n in sizes]
    assert [len(s) for s in subsets] == [10 * n for n in sizes]
    assert all(a <= b for a, b in zip(subsets, subsets[1:]))


# --------------------------------------------------------------------------- wrappers and loaders
def test_transform_dataset_with_paper_preprocessing():
    base = data.mnist5k("test", classes=[1, 2])
    ds = data.TransformDataset(base, transforms.preprocess(224, augment=True))
    x, y = ds[0]
    assert x.shape == (3, 224, 224) and y == base[0][1] and len(ds) == len(base)
    assert ds.classes == ["1", "2"]
    np.testing.assert_array_equal(data.labels_of(ds), base.tensors[1].numpy())


def _order(loader):
    return torch.cat([y for _, y in loader]).tolist()


def test_make_loader_order_is_seeded():
    ds = TensorDataset(torch.zeros(50, 1), torch.arange(50))
    a = data.make_loader(ds, 8, shuffle=True, seed=1, device="cpu")
    b = data.make_loader(ds, 8, shuffle=True, seed=1, device="cpu")
    assert isinstance(a.generator, torch.Generator) and not a.pin_memory
    first = _order(a)
    assert first == _order(b) and sorted(first) == list(range(50))
    assert first != _order(data.make_loader(ds, 8, shuffle=True, seed=2, device="cpu"))
    second = _order(a)  # the next epoch continues the generator
    assert second != first
    a.generator.manual_seed(1)
    assert _order(a) == first
    seed_epoch(0, 3, a)
    epoch3 = _order(a)
    seed_epoch(0, 3, b)
    assert _order(b) == epoch3
    plain = data.make_loader(ds, 8, drop_last=True, device="cpu")
    assert _order(plain) == list(range(48))
