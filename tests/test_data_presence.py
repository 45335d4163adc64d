"""A dataset counts as present only when its files are; failed downloads leave nothing; fixes fit each copy.

Every dataset of the catalog is checked file by file (tiny fakes of the real layouts, from
``test_data``), a stale folder under the data root does not hide Debian's copy of Fashion-MNIST,
a damaged file is named with the fix that suits where it came from (before loading and while
loading, never a raw reshape error), and an offline download removes what it left.
"""

import gzip
import hashlib
import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from test_data import (  # noqa: F401  (no_md5: a fixture)
    _idx,
    _jpg,
    fake_aircraft,
    fake_cifar10,
    fake_cifar100,
    fake_debian_fashion,
    fake_dtd,
    fake_flowers,
    fake_mnist,
    fake_pets,
    no_md5,
)

from ncutils import data
from ncutils.book.runner import preflight
from ncutils.data import downloads, presence

RAW_LOAD = {"image_size": 28, "to_rgb": False, "normalize": False}


@pytest.fixture
def system_folder(tmp_path, monkeypatch):
    """Where "Debian's copy" of Fashion-MNIST is looked for here (nothing there yet); $NCUTILS_FASHION_MNIST unset."""
    folder = tmp_path / "usr-share-datasets-fashion-mnist"
    monkeypatch.setattr(data.idx, "FASHION_MNIST_FOLDER", folder)
    monkeypatch.delenv(data.idx.FASHION_MNIST_ENV, raising=False)
    return folder


def fake_sun397(root, classes=("/a/abbey", "/b/bakery/shop"), per_class=presence.SUN397_MIN_PER_CLASS):
    base = root / "SUN397"
    base.mkdir(parents=True)
    (base / "ClassName.txt").write_text("".join(c + "\n" for c in classes))
    for c in classes:
        (base / c.lstrip("/")).mkdir(parents=True)
        for i in range(per_class):
            (base / c.lstrip("/") / f"sun_{i:04d}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
    return base


def _remove(path):
    path.unlink()


def _empty(path):
    path.write_bytes(b"")


def _truncate(path):
    path.write_bytes(path.read_bytes()[:-30])


# name, fake, file damaged (relative to the data root), damage, words the problem must contain
CASES = [
    ("cifar10", fake_cifar10, "cifar-10-batches-py/test_batch", _remove, "test_batch is missing"),
    ("cifar100", fake_cifar100, "cifar-100-python/meta", _empty, "meta is empty"),
    ("mnist", fake_mnist, "MNIST/raw/t10k-images-idx3-ubyte", _truncate, "t10k-images-idx3-ubyte is truncated"),
    ("fashionmnist", lambda r: fake_mnist(r, "FashionMNIST"), "FashionMNIST/raw/train-labels-idx1-ubyte", _remove,
     "train-labels-idx1-ubyte is missing"),
    ("dtd", fake_dtd, "dtd/dtd/images/dotted/dotted_0002.jpg", _remove,
     "1 of the 2 images listed in {root}/dtd/dtd/labels/val1.txt are missing or empty: {path}"),
    ("pets", fake_pets, "oxford-iiit-pet/images/Abyssinian_2.jpg", _empty,
     "1 of the 4 images listed in {root}/oxford-iiit-pet/annotations/trainval.txt are missing or empty: {path}"),
    ("flowers102", fake_flowers, "flowers-102/jpg/image_00007.jpg", _remove,
     "1 of the 3 images listed in {root}/flowers-102/setid.mat are missing or empty: {path}"),
    ("aircraft", fake_aircraft, "fgvc-aircraft-2013b/data/images_variant_test.txt", _remove,
     "images_variant_test.txt is missing"),
    ("sun397", fake_sun397, "SUN397/b/bakery/shop/sun_0042.jpg", _remove,
     "1 of the classes listed in {root}/SUN397/ClassName.txt have fewer than 100 non-empty images: "
     "{root}/SUN397/b/bakery/shop (99)"),
]


def test_every_catalog_dataset_has_a_file_check():
    assert set(presence.VERIFIERS) == set(data.DATASETS) == {c[0] for c in CASES}
    assert presence.SUN397_MIN_PER_CLASS == 2 * data.catalog.SUN397_PER_CLASS  # load() draws 50 + 50 per class


@pytest.mark.usefixtures("no_md5", "system_folder")
@pytest.mark.parametrize("name, fake, damaged, damage, words", CASES, ids=[c[0] for c in CASES])
def test_a_dataset_counts_only_when_its_files_do(tmp_path, name, fake, damaged, damage, words):
    root = tmp_path / "data"
    fake(root)
    assert data.check(name, root) is None
    assert data.locate(name, root).used.folder == root / data.DATASETS[name].folder
    damage(root / damaged)
    problem = data.check(name, root)
    assert problem is not None and words.format(root=root, path=root / damaged).replace(
        f"{root / data.DATASETS[name].folder}/", "") in problem
    assert f"fix: delete {root / data.DATASETS[name].folder} and run: python -m ncutils.data download {name}" in problem
    with pytest.raises(data.DatasetNotFoundError) as info:  # load() agrees with the check, before reading anything
        data.load(name, root=root)
    assert str(info.value) == problem


def test_md5_checks_use_torchvision_checksums_and_notice_changes(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"0123456789" * 1000)
    good = hashlib.md5(path.read_bytes()).hexdigest()
    assert presence._need_md5(path, good) is None
    path.write_bytes(b"0123456789" * 999)  # truncated: the remembered checksum is not reused
    assert "does not match torchvision's md5 checksum" in str(presence._need_md5(path, good))
    assert presence._need_md5(tmp_path / "absent", good).missing
    files = dict(torchvision.datasets.CIFAR10.train_list)
    assert files["data_batch_1"] == "c99cafc152244af753f735de768cd75f"  # the checksums torchvision itself checks


def test_idx_header_names_truncated_and_garbage_files(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(2, 28, 28), dtype=np.uint8)
    for name in ("images", "images.gz"):
        _idx(tmp_path / name, images)
        dtype, shape = data.idx.idx_header(tmp_path / name)
        assert dtype == np.uint8 and shape == (2, 28, 28)
    plain, packed = (tmp_path / "images").read_bytes(), (tmp_path / "images.gz").read_bytes()
    cases = {
        "cut": (plain[:-16], r"cut is truncated: its header announces shape \(2, 28, 28\) \(1568 bytes of data\) but "
                             r"it holds 1552 bytes"),
        "long": (plain + b"\0", "long has extra bytes"),
        "garbage": (b"<html>not found</html>", "garbage is not an IDX file: its header 3c 68 74 6d"),
        "empty": (b"", r"empty is not an IDX file: its header \(empty\)"),
        "cut.gz": (packed[:-40], "cut.gz is truncated or corrupted: .* does not end with the gzip trailer"),
        "head.gz": (packed[:12], "head.gz is not a complete gzip file"),
        "text.gz": (b"<html>", "text.gz is not a complete gzip file"),
        "png.gz": (gzip.compress(b"\x89PNG\r\n\x1a\n" * 10), "png.gz is not an IDX file"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=message):
            data.idx.idx_header(tmp_path / name)


@pytest.mark.skipif(not data.idx.FASHION_MNIST_FOLDER.is_dir(), reason="Debian's dataset-fashion-mnist not installed")
def test_real_debian_files_pass_the_header_check():
    files, missing = data.idx.fashion_mnist_files(data.idx.FASHION_MNIST_FOLDER)
    assert missing == [] and presence.idx_problems(files) == []
    assert data.idx.idx_header(files["train-images-idx3-ubyte"]) == (np.dtype(np.uint8), (60000, 28, 28))


def test_a_stale_folder_does_not_hide_debians_copy(tmp_path, system_folder):
    root = tmp_path / "data"
    (root / "FashionMNIST" / "raw").mkdir(parents=True)  # left by an old failed download
    raw = fake_debian_fashion(system_folder, seed=3)
    assert data.check("fashionmnist", root) is None
    found = data.locate("fashionmnist", root)
    assert found.used.folder == system_folder and found.used.system
    assert found.describe() == (
        f"Fashion-MNIST: using {system_folder} (Debian's package dataset-fashion-mnist); passed over the incomplete "
        f"copy at {root / 'FashionMNIST'} (the data root): raw/train-images-idx3-ubyte is missing; "
        "raw/train-labels-idx1-ubyte is missing; raw/t10k-images-idx3-ubyte is missing (and 1 more)")
    test = data.load("fashionmnist", "test", root=root, **RAW_LOAD)
    assert isinstance(test, data.idx.FashionMNISTFolder)
    np.testing.assert_array_equal(test.data.numpy(), raw["t10k"][0])
    # a complete copy under the data root is read first, as before
    tv = fake_mnist(root, "FashionMNIST", seed=4)
    test = data.load("fashionmnist", "test", root=root, **RAW_LOAD)
    assert not isinstance(test, data.idx.FashionMNISTFolder)
    np.testing.assert_array_equal(test.data.numpy(), tv["t10k"][0])


def _both(name, root):
    """The check's text and the load error's, which must agree."""
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load(name, root=root)
    return [data.check(name, root), str(info.value)]


def test_a_truncated_raw_file_is_named_with_the_download_fix(tmp_path, system_folder):
    root = tmp_path / "data"
    fake_mnist(root, "FashionMNIST")
    broken = root / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte"
    broken.write_bytes(broken.read_bytes()[:-16])  # what once ended in "shape '[5, 28, 28]' is invalid for input"
    for text in _both("fashionmnist", root):
        assert "raw/t10k-images-idx3-ubyte is truncated: its header announces shape (5, 28, 28)" in text
        assert f"fix: delete {root / 'FashionMNIST'} and run: python -m ncutils.data download fashionmnist" in text
        assert "apt-get install dataset-fashion-mnist" in text and "invalid for input" not in text


@pytest.mark.parametrize("where", ["debian", "custom"])
def test_a_damaged_system_file_is_named_with_the_fix_of_its_origin(tmp_path, system_folder, monkeypatch, where):
    folder = system_folder if where == "debian" else tmp_path / "my-fashion"
    if where == "custom":
        monkeypatch.setenv(data.idx.FASHION_MNIST_ENV, str(folder))
    fake_debian_fashion(folder)
    good = (folder / "t10k-images-idx3-ubyte.gz").read_bytes()
    fix = ("fix: apt-get install --reinstall dataset-fashion-mnist" if where == "debian" else
           f"fix: replace the files named with complete copies of Fashion-MNIST's IDX files (in {folder})")
    for content, words in ((good[: len(good) // 2], "t10k-images-idx3-ubyte.gz is truncated or corrupted"),
                           (gzip.compress(b"PK\x03\x04 a zip"), "t10k-images-idx3-ubyte.gz is not an IDX file")):
        (folder / "t10k-images-idx3-ubyte.gz").write_bytes(content)
        for text in _both("fashionmnist", tmp_path / "data"):
            assert words in text and fix in text
            assert ("--reinstall" in text) == (where == "debian")


def test_damage_the_quick_check_cannot_see_is_named_while_loading(tmp_path, system_folder):
    raw = fake_debian_fashion(system_folder)
    path = system_folder / "train-images-idx3-ubyte.gz"
    packed = bytearray(path.read_bytes())
    packed[len(packed) // 2] ^= 0xFF  # inside the compressed data: header and trailer still fine
    path.write_bytes(bytes(packed))
    assert data.check("fashionmnist", tmp_path / "data") is None
    with pytest.raises(data.DatasetNotFoundError) as info:
        data.load("fashionmnist", root=tmp_path / "data")
    text = str(info.value)
    assert f"at {system_folder} (Debian's package dataset-fashion-mnist) passed the file check but could not " \
           "be read" in text and str(path) in text and "fix: apt-get install --reinstall dataset-fashion-mnist" in text
    test = data.load("fashionmnist", "test", root=tmp_path / "data", **RAW_LOAD)  # the split whose files are sound
    np.testing.assert_array_equal(test.data.numpy(), raw["t10k"][0])


# --------------------------------------------------------------------------- downloads
def _idx_bytes(tmp_path, array):
    _idx(tmp_path / "scratch", array)
    return (tmp_path / "scratch").read_bytes()


def _network(monkeypatch, serve):
    """Replace torchvision's MNIST download by ``serve(raw_folder, file_name)``; returns the names requested."""
    calls = []

    def download_and_extract_archive(url, download_root, filename=None, md5=None, **kwargs):
        calls.append(filename)
        serve(Path(download_root), filename)

    monkeypatch.setattr(torchvision.datasets.mnist, "download_and_extract_archive", download_and_extract_archive)
    return calls


def _offline(folder, name):
    (folder / name).write_bytes(b"\x1f\x8b\x08 the first bytes")  # a partial archive, then the network fails
    raise urllib.error.URLError("no network in the tests")


def _run_book_check(monkeypatch, root, fetch=False):
    """preflight (or fetch_missing) for units that need Fashion-MNIST only (the plan itself is tested elsewhere)."""
    monkeypatch.setattr(preflight, "flatten", lambda chapters: chapters["ch"])
    monkeypatch.setattr(preflight, "needs", lambda unit: unit)
    chapters = {"ch": [{"datasets": ["fashionmnist"], "weights": []}]}
    return (preflight.fetch_missing if fetch else preflight.preflight)(chapters, str(root))


def test_offline_download_then_debians_copy(tmp_path, system_folder, monkeypatch, capsys):
    root = tmp_path / "data"
    calls = _network(monkeypatch, _offline)
    # the book command: the download fails, leaves nothing, and the check says what to do
    assert _run_book_check(monkeypatch, root, fetch=True) is False
    out = capsys.readouterr().out
    assert calls and not root.exists()  # the partial archive, raw/, FashionMNIST/ and the new data root are gone
    assert "could not fetch fashionmnist: DownloadError: downloading Fashion-MNIST" in out
    assert "MISSING dataset fashionmnist: no complete copy of Fashion-MNIST" in out
    assert f"{system_folder} (Debian's package dataset-fashion-mnist): not there" in out
    assert "fetch: apt-get install dataset-fashion-mnist" in out
    # the library call says why it failed and the other ways to get the data
    with pytest.raises(data.DownloadError) as info:
        data.download("fashionmnist", root)
    text = str(info.value)
    assert "Error downloading train-images-idx3-ubyte.gz" in text and "<urlopen error no network in the tests>" in text
    assert f"Removed what it had left: {root / 'FashionMNIST' / 'raw' / 'train-images-idx3-ubyte.gz'}" in text
    assert "apt-get install dataset-fashion-mnist" in text and f"put it at {root / 'FashionMNIST'}" in text
    assert f"python -m ncutils.data download fashionmnist --root {root}" in text and not root.exists()
    problem = data.check("fashionmnist", root)
    assert "apt-get install dataset-fashion-mnist" in problem and "python -m ncutils.data download" in problem
    # Debian's package is installed: the check passes, says which copy, and loading returns its arrays
    raw = fake_debian_fashion(system_folder, seed=11)
    assert data.check("fashionmnist", root) is None
    assert _run_book_check(monkeypatch, root) is True
    assert f"found dataset fashionmnist: Fashion-MNIST: using {system_folder} (Debian's package" in \
           capsys.readouterr().out
    for split, prefix in (("train", "train"), ("test", "t10k")):
        ds = data.load("fashionmnist", split, root=root, download=True, **RAW_LOAD)
        assert ds.data.dtype == torch.uint8
        np.testing.assert_array_equal(ds.data.numpy(), raw[prefix][0])
        np.testing.assert_array_equal(data.labels_of(ds), raw[prefix][1])
    assert calls == ["train-images-idx3-ubyte.gz"] * 2  # the two failed downloads; none once Debian's copy is there


def test_a_failed_download_keeps_what_was_there(tmp_path, system_folder, monkeypatch):
    root = tmp_path / "data"
    (root / "FashionMNIST" / "raw").mkdir(parents=True)
    (root / "FashionMNIST" / "README").write_text("mine")
    (root / "cifar-10-batches-py").mkdir()
    _network(monkeypatch, _offline)
    with pytest.raises(data.DownloadError, match="Removed what it had left: .*train-images-idx3-ubyte.gz"):
        data.load("fashionmnist", root=root, download=True)
    left = sorted(str(p.relative_to(root)) for p in root.rglob("*"))
    assert left == ["FashionMNIST", "FashionMNIST/README", "FashionMNIST/raw", "cifar-10-batches-py"]


def test_download_writes_complete_files_or_removes_them(tmp_path, system_folder, monkeypatch):
    images = np.random.default_rng(0).integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([4, 0, 9], dtype=np.uint8)
    files = {"train-images-idx3-ubyte": _idx_bytes(tmp_path, images),
             "t10k-images-idx3-ubyte": _idx_bytes(tmp_path, images[:2]),
             "train-labels-idx1-ubyte": _idx_bytes(tmp_path, labels),
             "t10k-labels-idx1-ubyte": _idx_bytes(tmp_path, labels[:2])}

    def serve(folder, name):
        (folder / name[:-3]).write_bytes(files[name[:-3]])

    _network(monkeypatch, serve)
    assert data.download("fashionmnist", tmp_path / "good") == {"train": 3, "test": 2}
    assert data.check("fashionmnist", tmp_path / "good") is None
    files["t10k-labels-idx1-ubyte"] = files["t10k-labels-idx1-ubyte"][:-1]  # a server sends a short file
    with pytest.raises(data.DownloadError, match="the downloaded files do not pass the check: .*t10k-labels-idx1-ubyte "
                                                 "is truncated"):
        data.download("fashionmnist", tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_download_does_not_write_over_damaged_files(tmp_path, system_folder, monkeypatch):
    root = tmp_path / "data"
    fake_mnist(root, "FashionMNIST")
    (root / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").write_bytes(b"\0\0\x08\x03garbage")
    calls = _network(monkeypatch, _offline)
    with pytest.raises(data.DatasetNotFoundError, match="files there are damaged .*train-images-idx3-ubyte is "
                                                        "truncated") as info:
        data.download("fashionmnist", root)
    assert f"fix: delete {root / 'FashionMNIST'} and run: python -m ncutils.data download" in str(info.value)
    assert calls == [] and len(list((root / "FashionMNIST" / "raw").iterdir())) == 4


def test_removing_leftovers_also_on_interrupt(tmp_path):
    root = tmp_path / "a" / "b"
    with pytest.raises(KeyboardInterrupt), downloads.removing_leftovers(root, ["MNIST", "x.tar.gz"]) as removed:
        (root / "MNIST" / "raw").mkdir(parents=True)
        (root / "MNIST" / "raw" / "part").write_bytes(b"1")
        (root / "x.tar.gz").write_bytes(b"1")
        (root / "other").write_bytes(b"kept: not the download's")
        raise KeyboardInterrupt
    assert sorted(os.listdir(root)) == ["other"] and len(removed) == 4
    assert downloads.archive_names(torchvision.datasets.CIFAR10) == {"cifar-10-python.tar.gz"}
    assert "SUN397.tar.gz" in downloads.archive_names(torchvision.datasets.SUN397)
