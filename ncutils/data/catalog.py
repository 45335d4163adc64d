"""The paper's datasets (Appendix B): a registry, their location on disk and a loader.

CIFAR-10/100, FGVC-Aircraft, DTD, Oxford-IIIT Pets, Oxford Flowers-102, MNIST and Fashion-MNIST
are listed in :data:`DATASETS`, and :func:`load` returns them through torchvision with the
paper's preprocessing (:func:`ncutils.transforms.preprocess`). Nothing is downloaded unless asked
for (:func:`download`); a dataset that is not on disk raises :class:`DatasetNotFoundError`, whose
message says where it was expected and how to get it. Fashion-MNIST is also read from the copy that
Debian's package ``dataset-fashion-mnist`` installs (:mod:`ncutils.data.idx`) when the data root
lacks it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torchvision
from torch.utils.data import ConcatDataset, Dataset

from ncutils.data.idx import (
    FASHION_MNIST_ENV,
    FASHION_MNIST_PACKAGE,
    FashionMNISTFolder,
    fashion_mnist_files,
    fashion_mnist_folder,
)
from ncutils.transforms import NORMALIZATION, preprocess

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "DatasetInfo",
    "DatasetNotFoundError",
    "data_root",
    "download",
    "image_size_for",
    "load",
]

#: Environment variable naming the data root (see :func:`data_root`).
ENV_VAR = "NCUTILS_DATA"


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
        # torchvision reads all 108,754 images; load() keeps 50 training and 50 test images per class (the
        # sizes of the official partitions, drawn with a fixed seed: the partition files are not downloaded)
        _info("sun397", "SUN397 (50 + 50 images per class)", 397, _tvd.SUN397, 3, "SUN397", [{}], [{}],
              "https://vision.princeton.edu/projects/2010/SUN/", "37 GB"),
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


# --------------------------------------------------------------------------- torchvision datasets
def _not_found(info: DatasetInfo, root: Path, problem: str) -> DatasetNotFoundError:
    path = root / info.folder
    size = f" (about {info.size})" if info.size else ""
    system = ""
    if info.name == "fashionmnist":
        system = (f"  * Debian/Ubuntu, offline: apt-get install {FASHION_MNIST_PACKAGE} (read from "
                  f"{fashion_mnist_folder()}; ${FASHION_MNIST_ENV} names another folder of its IDX files), or\n")
    msg = (
        f"{info.title} ({info.name!r}) {problem}: expected it at {path} (data root {root}). Get it with\n"
        f"{system}"
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


SUN397_PER_CLASS = 50


def _sun397_split(full: Dataset, split: str) -> Dataset:
    """50 training or the next 50 test images of every SUN397 class, by a permutation seeded per class."""
    from torch.utils.data import Subset

    from ncutils.data.loading import class_rng

    labels = np.asarray(full._labels)
    chosen = []
    for c in np.unique(labels):
        order = class_rng(0, c).permutation(np.flatnonzero(labels == c))
        lo = 0 if split == "train" else SUN397_PER_CLASS
        chosen.append(order[lo: lo + SUN397_PER_CLASS])
    out = Subset(full, np.sort(np.concatenate(chosen)).tolist())
    out.classes = list(full.classes)
    return out


# --------------------------------------------------------------------------- copies installed by the system
def _system_copy(info: DatasetInfo) -> tuple[Path | None, str | None]:
    """Folder of a complete system-wide copy of the dataset (Debian's Fashion-MNIST), or why there is none.

    Returns ``(folder, None)`` when all the files are there (nothing is read), ``(None, None)`` when
    the dataset has no system copy or its folder does not exist, and ``(None, problem)`` when the
    folder exists but lacks files.
    """
    if info.name != "fashionmnist":
        return None, None
    folder = fashion_mnist_folder()
    if not folder.is_dir():
        return None, None
    _, missing = fashion_mnist_files(folder)
    if missing:
        return None, (f"the copy at {folder} is incomplete (no {', '.join(missing)}; reinstall it: "
                      f"apt-get install --reinstall {FASHION_MNIST_PACKAGE})")
    return folder, None


def _from_system(info: DatasetInfo, folder: Path, root: Path, split: str, transform) -> Dataset:
    try:
        return FashionMNISTFolder(folder, train=split == "train", transform=transform)
    except (ValueError, FileNotFoundError) as err:
        raise _not_found(info, root, f"could not be read from {folder} ({err}); reinstall it (apt-get install "
                                     f"--reinstall {FASHION_MNIST_PACKAGE}) or get it another way") from err


def check(name: str, root: str | os.PathLike | None = None) -> str | None:
    """``None`` when dataset ``name`` is on disk, else what is missing.

    Looks for the folder torchvision reads under the data root and, for Fashion-MNIST, for the
    files of Debian's copy (:func:`ncutils.data.idx.fashion_mnist_folder`); no loading, no
    network, so a run can check every dataset it needs in a moment before computing anything.
    """
    info = _dataset_info(name)
    path = data_root(root) / info.folder
    if path.is_dir() and any(path.iterdir()):
        return None
    folder, problem = _system_copy(info)
    if folder is not None:
        return None
    msg = f"{info.title} not found at {path} (about {info.size})"
    if info.name == "fashionmnist":
        msg += f"; {problem}" if problem else (f" nor at {fashion_mnist_folder()} (Debian/Ubuntu: apt-get install "
                                               f"{FASHION_MNIST_PACKAGE})")
    return msg


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
    train/test split. Images go through :func:`ncutils.transforms.preprocess`.

    Parameters
    ----------
    name:
        A key of :data:`DATASETS`: ``cifar10``, ``cifar100``, ``aircraft``, ``dtd``, ``pets``,
        ``flowers102``, ``mnist`` or ``fashionmnist``.
    split:
        ``"train"`` or ``"test"``.
    root:
        Data root (see :func:`data_root`). When it lacks Fashion-MNIST, the files of Debian's
        package ``dataset-fashion-mnist`` are read instead (:class:`ncutils.data.idx.FashionMNISTFolder`,
        from :func:`ncutils.data.idx.fashion_mnist_folder`): same images, labels and order.
    download:
        Download the dataset through torchvision into the data root when it is not on disk
        (neither there nor, for Fashion-MNIST, in Debian's copy); see also :func:`download`.
    image_size, augment, normalize, to_rgb:
        Preprocessing, see :func:`ncutils.transforms.preprocess` and :func:`image_size_for`;
        ``normalize`` uses the ImageNet statistics (``NORMALIZATION["imagenet"]``).

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
    system = None
    if not (base / info.folder).exists():
        system, problem = _system_copy(info)
        if system is None and not download:
            raise _not_found(info, base, "was not found" + (f", and {problem}" if problem else ""))
    mean, std = NORMALIZATION["imagenet"] if normalize else (None, None)
    transform = preprocess(image_size, mean, std, to_rgb=to_rgb, augment=augment)
    if system is not None:
        return _from_system(info, system, base, split, transform)
    return _from_root(info, base, split, transform, download)


def _from_root(info: DatasetInfo, base: Path, split: str, transform, download: bool) -> Dataset:
    """The split as torchvision reads it from the data root ``base`` (downloading it there if asked)."""
    if download:
        base.mkdir(parents=True, exist_ok=True)
    parts = [_build_part(info, base, kwargs, transform, download) for kwargs in info.splits[split]]
    if info.name == "dtd":
        _harmonise_dtd(parts, base)
    if info.name == "sun397":
        return _sun397_split(parts[0], split)
    if len(parts) == 1:
        return parts[0]
    dataset = ConcatDataset(parts)
    dataset.classes = list(parts[0].classes)
    return dataset


def download(name: str, root: str | os.PathLike | None = None) -> dict[str, int]:
    """Download both splits of dataset ``name`` through torchvision into the data root.

    Unlike ``load(name, download=True)``, this fetches the files even when Debian's copy of
    Fashion-MNIST is installed, so that the data root holds them (``python -m ncutils.data download``
    calls it); files already under the root are not downloaded again.

    Parameters
    ----------
    name:
        A key of :data:`DATASETS`.
    root:
        Data root (see :func:`data_root`); created if needed.

    Returns
    -------
    dict
        The number of images of the ``"train"`` and ``"test"`` splits.
    """
    info, base = _dataset_info(name), data_root(root)
    return {split: len(_from_root(info, base, split, None, True)) for split in info.splits}
