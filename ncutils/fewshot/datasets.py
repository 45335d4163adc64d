"""The few-shot datasets of Table 2: CIFAR-FS (built from CIFAR-100) and miniImageNet (from a folder).

* CIFAR-FS (Bertinetto et al., 2019): CIFAR-100 split by class into 64 meta-train, 16
  meta-validation and 20 meta-test classes, using all 600 images (CIFAR-100's train and test
  images) of each class. :func:`cifar_fs` builds it from torchvision's ``CIFAR100`` files; the
  class lists are :data:`CIFAR_FS_SPLITS`.
* miniImageNet (Vinyals et al., 2016; split of Ravi & Larochelle, 2017): 100 ImageNet classes,
  600 images each, 64/16/20 classes. It cannot be downloaded automatically; :func:`mini_imagenet`
  reads a folder ``root/{train,val,test}/<wnid>/*.jpg``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from torch.utils.data import Dataset

from ncutils.data import data_root
from ncutils.transforms import fewshot_eval, fewshot_train

__all__ = [
    "CIFAR100_CLASSES",
    "CIFAR_FS_SPLITS",
    "CIFAR_FS_TEST_CLASSES",
    "CIFAR_FS_TRAIN_CLASSES",
    "CIFAR_FS_VAL_CLASSES",
    "CIFARFS",
    "MINI_IMAGENET_LAYOUT",
    "MINI_IMAGENET_SPLIT_SIZES",
    "check_cifar_fs",
    "check_mini_imagenet",
    "cifar_fs",
    "fewshot_transform",
    "mini_imagenet",
]

#: CIFAR-100's 100 fine classes in label order (``fine_label_names`` of its ``meta`` file).
CIFAR100_CLASSES: tuple[str, ...] = (
    "apple", "aquarium_fish", "baby", "bear", "beaver", "bed", "bee", "beetle", "bicycle", "bottle",
    "bowl", "boy", "bridge", "bus", "butterfly", "camel", "can", "castle", "caterpillar", "cattle",
    "chair", "chimpanzee", "clock", "cloud", "cockroach", "couch", "crab", "crocodile", "cup",
    "dinosaur", "dolphin", "elephant", "flatfish", "forest", "fox", "girl", "hamster", "house",
    "kangaroo", "keyboard", "lamp", "lawn_mower", "leopard", "lion", "lizard", "lobster", "man",
    "maple_tree", "motorcycle", "mountain", "mouse", "mushroom", "oak_tree", "orange", "orchid",
    "otter", "palm_tree", "pear", "pickup_truck", "pine_tree", "plain", "plate", "poppy",
    "porcupine", "possum", "rabbit", "raccoon", "ray", "road", "rocket", "rose", "sea", "seal",
    "shark", "shrew", "skunk", "skyscraper", "snail", "snake", "spider", "squirrel", "streetcar",
    "sunflower", "sweet_pepper", "table", "tank", "telephone", "television", "tiger", "tractor",
    "train", "trout", "tulip", "turtle", "wardrobe", "whale", "willow_tree", "wolf", "woman", "worm",
)

#: The 20 meta-test classes of CIFAR-FS (Bertinetto et al., 2019), alphabetical.
CIFAR_FS_TEST_CLASSES: tuple[str, ...] = (
    "baby", "bed", "bicycle", "chimpanzee", "fox", "leopard", "man", "pickup_truck", "plain", "poppy",
    "rocket", "rose", "snail", "sweet_pepper", "table", "telephone", "wardrobe", "whale", "woman",
    "worm",
)

#: The 16 meta-validation classes of CIFAR-FS, alphabetical.
CIFAR_FS_VAL_CLASSES: tuple[str, ...] = (
    "beaver", "beetle", "butterfly", "camel", "cattle", "crab", "crocodile", "flatfish", "lamp",
    "maple_tree", "motorcycle", "otter", "sea", "shark", "television", "tractor",
)

#: The 64 meta-train classes of CIFAR-FS: the other CIFAR-100 classes, alphabetical.
CIFAR_FS_TRAIN_CLASSES: tuple[str, ...] = tuple(
    c for c in CIFAR100_CLASSES if c not in set(CIFAR_FS_TEST_CLASSES) | set(CIFAR_FS_VAL_CLASSES)
)

#: CIFAR-FS's split of Cifar-100's classes (Bertinetto et al. 2019): 64 meta-train, 16 validation, 20 meta-test.
CIFAR_FS_SPLITS: dict[str, tuple[str, ...]] = {
    "train": CIFAR_FS_TRAIN_CLASSES,
    "val": CIFAR_FS_VAL_CLASSES,
    "test": CIFAR_FS_TEST_CLASSES,
}

assert len(CIFAR100_CLASSES) == len(set(CIFAR100_CLASSES)) == 100
assert [len(CIFAR_FS_SPLITS[s]) for s in ("train", "val", "test")] == [64, 16, 20]
assert set(CIFAR_FS_TEST_CLASSES) | set(CIFAR_FS_VAL_CLASSES) <= set(CIFAR100_CLASSES)
assert not set(CIFAR_FS_TEST_CLASSES) & set(CIFAR_FS_VAL_CLASSES)

#: Number of classes in each miniImageNet split (Ravi & Larochelle, 2017).
MINI_IMAGENET_SPLIT_SIZES: dict[str, int] = {"train": 64, "val": 16, "test": 20}

#: Folder layout read by :func:`mini_imagenet`.
MINI_IMAGENET_LAYOUT = ("root/{train,val,test}/<wnid>/<image>.jpg  "
                        "(e.g. root/test/n01930112/n0193011200000001.jpg)")

_SPLITS = ("train", "val", "test")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".JPEG", ".JPG", ".PNG")


def _check_split(split: str) -> str:
    s = {"validation": "val", "valid": "val", "meta-train": "train", "meta-test": "test"}.get(split, split)
    if s not in _SPLITS:
        raise ValueError(f"split must be one of {_SPLITS}; got {split!r}.")
    return s


def fewshot_transform(dataset: str, train: bool = False) -> Callable:
    """Image transform of Tian et al. for ``"cifar_fs"`` (32 px) or ``"mini_imagenet"`` (84 px).

    :func:`ncutils.transforms.fewshot_eval` (``train=False``: resize, tensor, normalisation) or
    :func:`ncutils.transforms.fewshot_train` (``train=True``: random crop with padding, colour
    jitter and horizontal flip first).
    """
    return fewshot_train(dataset) if train else fewshot_eval(dataset)


class CIFARFS(Dataset):
    """Images of one CIFAR-FS split: ``data`` (N, 32, 32, 3) uint8, ``targets`` in ``0..n-1``.

    ``classes[k]`` is the CIFAR-100 name of label ``k``; ``cifar100_targets`` keeps the original
    fine labels. Items are ``(transform(PIL image), label)``.
    """

    def __init__(self, data: np.ndarray, cifar100_targets: np.ndarray, classes: Sequence[str],
                 all_classes: Sequence[str], split: str, transform: Callable | None):
        self.split = split
        self.classes = list(classes)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        remap = {all_classes.index(c): i for i, c in enumerate(self.classes)}
        self.data = data
        self.cifar100_targets = np.asarray(cifar100_targets, dtype=np.int64)
        self.targets = [remap[int(t)] for t in self.cifar100_targets]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        img = Image.fromarray(self.data[i])
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[i]

    def __repr__(self) -> str:
        return f"CIFARFS(split={self.split!r}, classes={len(self.classes)}, images={len(self)})"


def cifar_fs(
    split: str,
    *,
    root: str | os.PathLike | None = None,
    download: bool = False,
    transform: Callable | None = None,
) -> CIFARFS:
    """One split of CIFAR-FS (``"train"``: 64 classes, ``"val"``: 16, ``"test"``: 20).

    Built from torchvision's ``CIFAR100`` files under ``root`` (see :func:`ncutils.data.data_root`): the
    train *and* test images of the split's classes (600 per class), labels renumbered
    ``0..n-1`` in the order of :data:`CIFAR_FS_SPLITS` ``[split]``. ``transform`` is applied
    to each PIL image; ``None`` means the evaluation transform
    ``fewshot_transform("cifar_fs")`` (tensor + normalisation); pass
    ``fewshot_transform("cifar_fs", train=True)`` to pre-train on ``"train"``.

    Raises
    ------
    FileNotFoundError
        When the CIFAR-100 files are missing and ``download`` is false.
    """
    from torchvision.datasets import CIFAR100

    split = _check_split(split)
    base = data_root(root)
    folder = base / CIFAR100.base_folder
    problem = check_cifar_fs(root)
    if problem and not download:
        raise FileNotFoundError(
            f"{problem}. Call cifar_fs({split!r}, root={str(base)!r}, download=True) to download it (about "
            "160 MB), or set NCUTILS_DATA / pass root= to where cifar-100-python/ already is."
        )
    parts = [CIFAR100(str(base), train=train, download=download and train) for train in (True, False)]
    all_classes = list(parts[0].classes)
    names = CIFAR_FS_SPLITS[split]
    unknown = [c for c in names if c not in all_classes]
    if unknown:
        raise ValueError(f"the CIFAR-100 meta file in {folder} lacks the classes {unknown}.")
    wanted = np.array([all_classes.index(c) for c in names])
    data, targets = [], []
    for part in parts:
        t = np.asarray(part.targets)
        keep = np.isin(t, wanted)
        data.append(part.data[keep])
        targets.append(t[keep])
    if transform is None:
        transform = fewshot_transform("cifar_fs")
    return CIFARFS(np.concatenate(data), np.concatenate(targets), names, all_classes, split, transform)


def check_cifar_fs(root: str | os.PathLike | None = None) -> str | None:
    """``None`` when CIFAR-100's files (which CIFAR-FS is built from) are under the data root, else what is
    missing (no loading, no network)."""
    from torchvision.datasets import CIFAR100

    folder = data_root(root) / CIFAR100.base_folder
    needed = [f for f, _ in CIFAR100.train_list + CIFAR100.test_list] + [CIFAR100.meta["filename"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    return f"CIFAR-100 (for CIFAR-FS) not found: missing {missing} in {folder}" if missing else None


def _mini_split_problem(folder: Path) -> bool:
    return not (folder.is_dir() and any(
        f.suffix in _IMAGE_EXTENSIONS for d in folder.iterdir() if d.is_dir() for f in d.iterdir()))


def check_mini_imagenet(root: str | os.PathLike | None = None) -> str | None:
    """``None`` when the miniImageNet folders ``data_root(root)/mini-imagenet/{train,val,test}`` hold images,
    else which split folders are missing or empty."""
    base = data_root(root) / "mini-imagenet"
    bad = [s for s in _SPLITS if _mini_split_problem(base / s)]
    return f"miniImageNet split folders {bad} missing or empty under {base}" if bad else None


def mini_imagenet(
    split: str,
    root: str | os.PathLike | None = None,
    *,
    transform: Callable | None = None,
):
    """One split of miniImageNet from a folder of images (it cannot be downloaded automatically).

    Expected layout (:data:`MINI_IMAGENET_LAYOUT`)::

        root/
          train/<wnid>/*.jpg   64 classes (meta-train)
          val/<wnid>/*.jpg     16 classes (meta-validation)
          test/<wnid>/*.jpg    20 classes (meta-test)

    with the class split of Ravi & Larochelle (2017), 600 images per class (the usual 84x84
    release; other sizes are resized). ``root`` defaults to ``data_root() / "mini-imagenet"``.
    Labels are ``0..n-1`` over the sorted folder names (``dataset.classes``). ``transform``
    ``None`` means ``fewshot_transform("mini_imagenet")``. Returns a torchvision
    ``ImageFolder``.

    Raises
    ------
    FileNotFoundError
        When ``root/split`` does not exist or holds no class folder with images.
    """
    from torchvision.datasets import ImageFolder

    split = _check_split(split)
    base = Path(root).expanduser() if root is not None else data_root() / "mini-imagenet"
    folder = base / split
    if _mini_split_problem(folder):
        raise FileNotFoundError(
            f"miniImageNet split {split!r} not found in {folder}: expected the layout "
            f"{MINI_IMAGENET_LAYOUT}, one sub-folder of images per class. miniImageNet cannot be "
            "downloaded automatically; build it from ImageNet with the Ravi & Larochelle split "
            "(train/val/test csv files) and pass its root."
        )
    if transform is None:
        transform = fewshot_transform("mini_imagenet")
    return ImageFolder(str(folder), transform=transform)

