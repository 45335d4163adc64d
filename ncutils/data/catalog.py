"""The paper's datasets (Appendix B): a registry, their location on disk, a presence check and a loader.

CIFAR-10/100, FGVC-Aircraft, DTD, Oxford-IIIT Pets, Oxford Flowers-102, MNIST and Fashion-MNIST
are listed in :data:`DATASETS`, and :func:`load` returns them through torchvision with the
paper's preprocessing (:func:`ncutils.transforms.preprocess`). :func:`check` and :func:`locate` say,
file by file and in seconds, whether a dataset is on disk in full and which copy is read
(:mod:`ncutils.data.presence`); Fashion-MNIST is also read from the copy that Debian's package
``dataset-fashion-mnist`` installs (:mod:`ncutils.data.idx`), and a complete copy wins over an
incomplete one wherever each is. Nothing is downloaded unless asked for (:func:`download`); a
dataset with no complete copy raises :class:`DatasetNotFoundError`, whose message names the missing
or damaged files, the fix that suits each copy and the ways to get the dataset. A failed download
removes what it left (:mod:`ncutils.data.downloads`) and raises :class:`DownloadError`.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torchvision
from torch.utils.data import ConcatDataset, Dataset

from ncutils.data import idx, presence
from ncutils.data.downloads import DownloadError, archive_names, removing_leftovers
from ncutils.data.idx import FASHION_MNIST_ENV, FASHION_MNIST_PACKAGE, FashionMNISTFolder, fashion_mnist_folder
from ncutils.data.presence import Copy, Presence
from ncutils.transforms import NORMALIZATION, preprocess

__all__ = [
    "DATASETS",
    "ENV_VAR",
    "DatasetInfo",
    "DatasetNotFoundError",
    "DownloadError",
    "check",
    "data_root",
    "download",
    "image_size_for",
    "load",
    "locate",
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
        The dataset's folder in torchvision's layout, relative to the data root; which of its files
        must be there, and how each is checked, is in :mod:`ncutils.data.presence`.
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


# --------------------------------------------------------------------------- presence and how to get a dataset
def _ways_to_get(info: DatasetInfo, root: Path) -> str:
    """The ways to get dataset ``info`` into the data root ``root`` (or, for Fashion-MNIST, onto the system)."""
    size = f" (about {info.size})" if info.size else ""
    ways = []
    if info.name == "fashionmnist":
        custom = os.environ.get(FASHION_MNIST_ENV)
        read = (f"then unset {FASHION_MNIST_ENV}, which names {fashion_mnist_folder()} instead" if custom else
                "read when the data root holds no complete copy")
        ways.append(f"Debian/Ubuntu, offline: apt-get install {FASHION_MNIST_PACKAGE} (installs it in "
                    f"{idx.FASHION_MNIST_FOLDER}; {read})")
    ways += [
        f"a shell: python -m ncutils.data download {info.name} --root {root}{size}, on a machine with a network "
        "connection (then copy the folder over)",
        f"Python: ncutils.data.load({info.name!r}, download=True, root={str(root)!r})",
        f"if it is already elsewhere on disk: put it at {root / info.folder}, or pass root=... or set {ENV_VAR} "
        f"to the folder that contains {info.folder!r}",
    ]
    return "Get it with\n" + "".join(f"  * {w}\n" for w in ways) + f"Source: {info.homepage}"


def _unavailable(found: Presence, root: Path) -> str:
    """Why no copy of a dataset is usable, the fixes of the damaged copies, and the ways to get it."""
    info = DATASETS[found.name]
    lines = [f"{info.title} ({info.name!r}) has no complete copy on disk (data root {root}):"]
    lines += [f"  {line}" for line in found.problem_lines()]
    return "\n".join(lines) + "\n" + _ways_to_get(info, root)


def _not_found(info: DatasetInfo, root: Path, found: Presence) -> DatasetNotFoundError:
    return DatasetNotFoundError(_unavailable(found, root), name=info.name, path=root / info.folder)


def locate(name: str, root: str | os.PathLike | None = None) -> Presence:
    """Every copy of dataset ``name`` on disk, each checked file by file; ``.used`` is the one :func:`load` reads.

    The copy in torchvision's layout under the data root comes first, then, for Fashion-MNIST, the
    folder of :func:`ncutils.data.idx.fashion_mnist_folder` (Debian's package, or
    ``$NCUTILS_FASHION_MNIST``). The first complete copy is used, wherever it is. What each check
    looks at is listed in :mod:`ncutils.data.presence`; nothing is loaded and nothing is downloaded.
    """
    return presence.locate(_dataset_info(name), data_root(root))


def check(name: str, root: str | os.PathLike | None = None) -> str | None:
    """``None`` when dataset ``name`` has a complete copy on disk (:func:`locate`), else what is wrong and the fixes.

    Every file the dataset needs is checked (by size, header or torchvision's checksum, see
    :mod:`ncutils.data.presence`), not only the folder: a run can check every dataset it needs in
    seconds before computing anything.
    """
    found = locate(name, root)
    return None if found.used is not None else _unavailable(found, data_root(root))


# --------------------------------------------------------------------------- reading a copy
def _unreadable(info: DatasetInfo, root: Path, copy: Copy, err: Exception) -> DatasetNotFoundError:
    text = " ".join(str(err).split())
    return DatasetNotFoundError(f"{info.title} ({info.name!r}) at {copy.folder} ({copy.origin}) passed the file "
                                f"check but could not be read: {type(err).__name__}: {text}\n  fix: {copy.fix}",
                                name=info.name, path=root / info.folder)


def _build_part(info: DatasetInfo, root: Path, kwargs: dict, transform, copy: Copy) -> Dataset:
    try:
        return info.tv_class(str(root), transform=transform, download=False, **kwargs)
    except (RuntimeError, OSError, ValueError, EOFError, pickle.UnpicklingError) as err:
        raise _unreadable(info, root, copy, err) from err


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
            raise DatasetNotFoundError(f"DTD at {images} is incomplete: no image folder for {missing}.",
                                       name="dtd", path=root / DATASETS["dtd"].folder)
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


def _from_system(info: DatasetInfo, copy: Copy, root: Path, split: str, transform) -> Dataset:
    try:
        return FashionMNISTFolder(copy.folder, train=split == "train", transform=transform)
    except (ValueError, OSError) as err:
        raise _unreadable(info, root, copy, err) from err


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
        Data root (see :func:`data_root`). The first complete copy of the dataset is read
        (:func:`locate`): the data root's, else, for Fashion-MNIST, the files of Debian's package
        ``dataset-fashion-mnist`` (:class:`ncutils.data.idx.FashionMNISTFolder`, from
        :func:`ncutils.data.idx.fashion_mnist_folder`): same images, labels and order.
    download:
        Download the dataset through torchvision into the data root when no complete copy is on
        disk; see :func:`download`.
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
        When no copy of the dataset is complete and ``download`` is False, or a copy that passed the
        check cannot be read; the message names the files and the fix that suits each copy.
    DownloadError
        When ``download`` is True and the download fails (what it left is removed first).
    """
    info = _dataset_info(name)
    if split not in info.splits:
        raise ValueError(f"unknown split {split!r} for {info.name}; use 'train' or 'test'.")
    base = data_root(root)
    found = presence.locate(info, base)
    copy = found.used
    if copy is None:
        if not download:
            raise _not_found(info, base, found)
        copy = _fetch(info, base)
    mean, std = NORMALIZATION["imagenet"] if normalize else (None, None)
    transform = preprocess(image_size, mean, std, to_rgb=to_rgb, augment=augment)
    if copy.system:
        return _from_system(info, copy, base, split, transform)
    return _from_root(info, base, split, transform, copy)


def _from_root(info: DatasetInfo, base: Path, split: str, transform, copy: Copy) -> Dataset:
    """The split as torchvision reads it from the data root ``base``."""
    parts = [_build_part(info, base, kwargs, transform, copy) for kwargs in info.splits[split]]
    if info.name == "dtd":
        _harmonise_dtd(parts, base)
    if info.name == "sun397":
        return _sun397_split(parts[0], split)
    if len(parts) == 1:
        return parts[0]
    dataset = ConcatDataset(parts)
    dataset.classes = list(parts[0].classes)
    return dataset


# --------------------------------------------------------------------------- downloading
def _fetch(info: DatasetInfo, base: Path) -> Copy:
    """Download dataset ``info`` into the data root ``base`` unless its copy there is complete; the checked copy.

    A copy with damaged files is not downloaded over (torchvision would keep most of them): the
    error names them. A failed download removes what it left and says why it failed and what to do.
    """
    copy = presence.root_copy(info, base)
    if copy.complete:
        return copy
    if copy.damaged:
        raise DatasetNotFoundError(f"{info.title} is not downloaded into {copy.folder}: files there are damaged "
                                   f"({copy.describe()}).\n  fix: {copy.fix}", name=info.name, path=copy.folder)
    names = {info.folder.split("/")[0], *archive_names(info.tv_class)}
    try:
        with removing_leftovers(base, names) as removed:
            base.mkdir(parents=True, exist_ok=True)
            info.tv_class(str(base), download=True, **info.splits["train"][0])
            copy = presence.root_copy(info, base)
            if not copy.complete:
                raise DownloadError(f"the downloaded files do not pass the check: {copy.describe()}")
    except Exception as err:
        why = " ".join(str(err).split())
        cleaned = (f"Removed what it had left: {_listing(removed)}." if removed else "It left nothing behind.")
        raise DownloadError(f"downloading {info.title} ({info.name!r}) into {base} failed: {type(err).__name__}: "
                            f"{why}\n{cleaned}\n{_ways_to_get(info, base)}") from err
    return copy


def _listing(paths: list[Path]) -> str:
    shown = ", ".join(str(p) for p in paths[:presence.SHOWN])
    return shown + (f" and {len(paths) - presence.SHOWN} more" if len(paths) > presence.SHOWN else "")


def download(name: str, root: str | os.PathLike | None = None) -> dict[str, int]:
    """Download both splits of dataset ``name`` through torchvision into the data root.

    Unlike ``load(name, download=True)``, this fetches the files even when Debian's copy of
    Fashion-MNIST is installed, so that the data root holds them (``python -m ncutils.data download``
    calls it); a complete copy under the root is not downloaded again. A download that fails removes
    the files and folders it created (partial files, empty folders, the data root if it was new) and
    raises :class:`DownloadError`, whose message says why it failed and the other ways to get the data.

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

    Raises
    ------
    DownloadError
        When the download fails, or its files do not pass the presence check.
    DatasetNotFoundError
        When the data root holds damaged files of the dataset (they are named; delete them first).
    """
    info, base = _dataset_info(name), data_root(root)
    copy = _fetch(info, base)
    return {split: len(_from_root(info, base, split, None, copy)) for split in info.splits}
