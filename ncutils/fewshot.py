"""Few-shot classification with a frozen pre-trained embedding (paper Section 3.2, Table 2).

Table 2 follows Tian et al. (2020), "Rethinking few-shot image classification: a good embedding
is all you need?" (paper Appendix B.2):

1. **Pre-training.** A backbone (:class:`ConvNet4`, :class:`ResNet12` or :class:`SEResNet12`) is
   trained as an ordinary ``K``-way classifier with cross-entropy on the *merged meta-train
   classes* (``K = 64`` for CIFAR-FS and for miniImageNet), e.g. on ``cifar_fs("train")``. This
   module has no training loop of its own: any generic supervised loop does it (the book uses
   :mod:`ncutils.pretrain`) with the hyper-parameters of :data:`PAPER_RECIPE` (SGD, momentum 0.9,
   weight decay 5e-4, batch 64, learning rate 0.05 decayed by 0.1 three times over 90 epochs
   for CIFAR-FS, twice over 100 epochs for miniImageNet; random crop, colour jitter and
   horizontal flip, :func:`fewshot_transform` with ``train=True``).
2. **Meta-testing.** The network is frozen; every image of the meta-test split is mapped to its
   penultimate embedding (:func:`embed`). For each of many ``N``-way ``K``-shot episodes
   (:func:`sample_episodes`) a multinomial logistic regression (scikit-learn) is fitted on the
   L2-normalised support embeddings and scored on the query embeddings
   (:func:`evaluate_episodes`); the NC1 (Eq. 4) of the query embeddings of the episode is
   recorded alongside. Accuracies are reported as the mean over episodes with a 95%
   confidence interval.

Data
----
* CIFAR-FS (Bertinetto et al., 2019): CIFAR-100 split by class into 64 meta-train, 16
  meta-validation and 20 meta-test classes, using all 600 images (CIFAR-100's train and test
  images) of each class. :func:`cifar_fs` builds it from torchvision's ``CIFAR100`` files; the
  class lists are :data:`CIFAR_FS_SPLITS`.
* miniImageNet (Vinyals et al., 2016; split of Ravi & Larochelle, 2017): 100 ImageNet classes,
  600 images each, 64/16/20 classes. It cannot be downloaded automatically; :func:`mini_imagenet`
  reads a folder ``root/{train,val,test}/<wnid>/*.jpg``.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ncutils.data import data_root
from ncutils.features import extract_features
from ncutils.metrics import nc1

__all__ = [
    "BACKBONES",
    "CIFAR100_CLASSES",
    "CIFAR_FS_SPLITS",
    "CIFAR_FS_TEST_CLASSES",
    "CIFAR_FS_TRAIN_CLASSES",
    "CIFAR_FS_VAL_CLASSES",
    "CIFARFS",
    "ConvNet4",
    "Episode",
    "MINI_IMAGENET_LAYOUT",
    "MINI_IMAGENET_SPLIT_SIZES",
    "NORMALIZATION",
    "PAPER_RECIPE",
    "ResNet12",
    "SEResNet12",
    "SqueezeExcitation",
    "backbone",
    "cifar_fs",
    "embed",
    "evaluate_episodes",
    "evaluate_shots",
    "few_shot_eval",
    "fewshot_transform",
    "mini_imagenet",
    "paper_optimizer",
    "sample_episodes",
    "split_nc1",
]

# --------------------------------------------------------------------------- recipe
#: Pre-training and meta-testing hyper-parameters of Table 2 (paper Appendix B.2, quoting Tian
#: et al. 2020). ``lr_milestones`` are the epochs at which the learning rate is multiplied by
#: ``lr_decay``: neither paper states them, only the number of decays (three for CIFAR-FS, two
#: for miniImageNet, "as the third decay has no effect"); the values below are the usual
#: choice for miniImageNet (60, 80 of 100) and evenly spaced decays in the second half of the
#: 90 CIFAR-FS epochs.
PAPER_RECIPE: dict[str, Any] = {
    "objective": "cross-entropy, one K-way classifier over the merged meta-train classes",
    "num_classes": {"cifar_fs": 64, "mini_imagenet": 64},
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 64,
    "lr": 0.05,
    "lr_decay": 0.1,
    "epochs": {"cifar_fs": 90, "mini_imagenet": 100},
    "lr_milestones": {"cifar_fs": (45, 60, 75), "mini_imagenet": (60, 80)},
    "augmentation": ("random crop", "colour jitter", "random horizontal flip"),
    "image_size": {"cifar_fs": 32, "mini_imagenet": 84},
    "meta_test": {
        "n_way": 5,
        "shots": (1, 5),
        "n_query": 15,
        "episodes": 600,
        "classifier": "scikit-learn LogisticRegression (multinomial, L2, C=1, lbfgs) on "
                      "L2-normalised penultimate embeddings of the support images",
    },
}

#: Per-channel mean and standard deviation (RGB, [0, 1] scale) used by Tian et al.
NORMALIZATION: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = {
    "cifar_fs": ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
    "mini_imagenet": ((120.39586422 / 255, 115.59361427 / 255, 104.54012653 / 255),
                      (70.68188272 / 255, 68.27635443 / 255, 72.54505529 / 255)),
}


def _recipe_dataset(dataset: str) -> str:
    key = dataset.lower().replace("-", "_").replace("miniimagenet", "mini_imagenet")
    if key not in PAPER_RECIPE["epochs"]:
        raise ValueError(f"unknown few-shot dataset {dataset!r}; use 'cifar_fs' or 'mini_imagenet'.")
    return key


def paper_optimizer(
    params: Iterable[nn.Parameter], dataset: str, *, steps_per_epoch: int = 1
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.MultiStepLR]:
    """SGD and step schedule of :data:`PAPER_RECIPE` for pre-training on ``dataset``'s meta-train split.

    The scheduler is meant to be stepped once per optimisation step; with ``steps_per_epoch``
    set to the number of batches per epoch its milestones fall at the recipe's epochs (with the
    default ``1``, step it once per epoch).
    """
    key = _recipe_dataset(dataset)
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters.")
    opt = torch.optim.SGD(params, lr=PAPER_RECIPE["lr"], momentum=PAPER_RECIPE["momentum"],
                          weight_decay=PAPER_RECIPE["weight_decay"])
    milestones = [m * steps_per_epoch for m in PAPER_RECIPE["lr_milestones"][key]]
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=PAPER_RECIPE["lr_decay"])


# --------------------------------------------------------------------------- backbones
class _PooledBackbone(nn.Module):
    """``blocks`` -> global average pool -> ``fc``: the layout shared by the few-shot backbones."""

    blocks: nn.Sequential
    pool: nn.Module
    fc: nn.Linear

    @property
    def embedding_dim(self) -> int:
        return self.fc.in_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.blocks(x)), 1))


class ConvNet4(_PooledBackbone):
    """The 4-layer convolutional network of Table 2: ``hidden`` filters in every layer.

    Each item of ``blocks`` is Conv3x3(``hidden``) -> BatchNorm -> ReLU -> MaxPool2d(2). The last
    feature map is globally average-pooled into a ``hidden``-dimensional embedding (so any input
    size works; Tian et al. flatten the 5x5 map of 84-px inputs instead), and ``fc`` classifies
    it into ``num_classes`` meta-train classes.
    """

    def __init__(self, num_classes: int, in_channels: int = 3, hidden: int = 64):
        super().__init__()
        chans = [in_channels] + [hidden] * 4
        self.blocks = nn.Sequential(*[
            nn.Sequential(
                nn.Conv2d(a, b, 3, padding=1, bias=False),
                nn.BatchNorm2d(b),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(2),
            )
            for a, b in zip(chans[:-1], chans[1:])
        ])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(hidden, num_classes)
        _init_weights(self)


class SqueezeExcitation(nn.Module):
    """Squeeze-and-excitation (Hu et al., 2018): rescale channels by a gate computed from their means."""

    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        hidden = max(1, channels // reduction)
        self.fc1 = nn.Linear(channels, hidden)
        self.fc2 = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean(dim=(2, 3))))))
        return x * gate[:, :, None, None]


class ResNet12Block(nn.Module):
    """One residual block of ResNet12 (a paper unit).

    Three 3x3 convolutions, each followed by BatchNorm and (except the last) LeakyReLU(0.1); an
    optional squeeze-and-excitation on the residual branch; a 1x1 convolution + BatchNorm
    shortcut; LeakyReLU(0.1) after the addition; then a 2x2 max-pool when ``pool``.
    """

    def __init__(self, in_channels: int, out_channels: int, *, pool: bool, se: bool, se_reduction: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_channels)
        self.act = nn.LeakyReLU(0.1)
        self.se = SqueezeExcitation(out_channels, se_reduction) if se else nn.Identity()
        self.shortcut = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
        )
        self.pool = nn.MaxPool2d(2) if pool else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.se(self.bn3(self.conv3(out)))
        return self.pool(self.act(out + self.shortcut(x)))


class ResNet12(_PooledBackbone):
    """ResNet12 of Table 2 (paper Appendix B.2; Oreshkin et al. 2018, Lee et al. 2019).

    Four residual blocks (the items of ``blocks``, paper Blocks 1-4) of widths ``widths``
    (64, 160, 320, 640 as in Tian et al.; pass smaller widths for a CPU-sized network). Each
    has three 3x3 conv -> BN -> LeakyReLU(0.1) layers and a 1x1 conv + BN shortcut; a 2x2
    max-pool follows each of the first three blocks, and global average pooling after the
    fourth gives the ``widths[-1]``-dimensional embedding classified by ``fc``. With ``se`` a
    squeeze-and-excitation module (reduction ``se_reduction``) gates the residual branch of
    every block (:class:`SEResNet12`). DropBlock regularisation, which some ResNet12
    implementations add, is not part of the paper's description and is not included.
    """

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 160, 320, 640),
        se: bool = False,
        se_reduction: int = 16,
    ):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if len(widths) != 4 or min(widths) < 1:
            raise ValueError(f"ResNet12 needs 4 positive widths; got {widths}.")
        chans = (in_channels,) + widths
        self.blocks = nn.Sequential(*[
            ResNet12Block(chans[i], chans[i + 1], pool=i < 3, se=se, se_reduction=se_reduction)
            for i in range(4)
        ])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)
        _init_weights(self)


class SEResNet12(ResNet12):
    """:class:`ResNet12` with a squeeze-and-excitation module in every block (Hu et al., 2018)."""

    def __init__(
        self,
        num_classes: int,
        in_channels: int = 3,
        widths: Sequence[int] = (64, 160, 320, 640),
        se_reduction: int = 16,
    ):
        super().__init__(num_classes, in_channels, widths, se=True, se_reduction=se_reduction)


def _init_weights(model: nn.Module) -> None:
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="leaky_relu", a=0.1)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


BACKBONES: dict[str, type[nn.Module]] = {
    "convnet4": ConvNet4,
    "resnet12": ResNet12,
    "seresnet12": SEResNet12,
}


def backbone(name: str, num_classes: int, **kwargs) -> nn.Module:
    """Build a Table 2 backbone by name: ``"convnet4"``, ``"resnet12"`` or ``"seresnet12"``.

    ``kwargs`` go to the class (``in_channels``, ``hidden`` for ConvNet4, ``widths`` and
    ``se_reduction`` for the ResNets), e.g. ``backbone("resnet12", 64, widths=(16, 32, 64, 128))``
    for a small CPU network.
    """
    key = name.lower().replace("-", "").replace("_", "")
    if key not in BACKBONES:
        raise ValueError(f"unknown few-shot backbone {name!r}; choose one of {sorted(BACKBONES)}.")
    return BACKBONES[key](num_classes, **kwargs)


# --------------------------------------------------------------------------- class splits
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

    Evaluation (``train=False``): resize to the dataset's size (a no-op for CIFAR-FS), tensor,
    per-channel normalisation. Pre-training (``train=True``): random crop with padding (4 px for
    CIFAR-FS, 8 px for miniImageNet), colour jitter (0.4 brightness/contrast/saturation), random
    horizontal flip, tensor, normalisation.
    """
    from torchvision import transforms as T

    key = _recipe_dataset(dataset)
    size = PAPER_RECIPE["image_size"][key]
    mean, std = NORMALIZATION[key]
    resize = [T.Resize((size, size))] if key == "mini_imagenet" else []
    tail = [T.ToTensor(), T.Normalize(mean, std)]
    if not train:
        return T.Compose(resize + tail)
    pad = 4 if key == "cifar_fs" else 8
    return T.Compose(resize + [
        T.RandomCrop(size, padding=pad),
        T.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4),
        T.RandomHorizontalFlip(),
    ] + tail)


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
    needed = [f for f, _ in CIFAR100.train_list + CIFAR100.test_list] + [CIFAR100.meta["filename"]]
    missing = [f for f in needed if not (folder / f).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"CIFAR-100 not found: expected the files {needed} in {folder} (missing: {missing}). "
            f"Call cifar_fs({split!r}, root={str(base)!r}, download=True) to download it (about 160 MB), "
            "or set NCUTILS_DATA / pass root= to where cifar-100-python/ already is."
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
    has_images = folder.is_dir() and any(
        f.suffix in _IMAGE_EXTENSIONS for d in folder.iterdir() if d.is_dir() for f in d.iterdir()
    )
    if not has_images:
        raise FileNotFoundError(
            f"miniImageNet split {split!r} not found in {folder}: expected the layout "
            f"{MINI_IMAGENET_LAYOUT}, one sub-folder of images per class. miniImageNet cannot be "
            "downloaded automatically; build it from ImageNet with the Ravi & Larochelle split "
            "(train/val/test csv files) and pass its root."
        )
    if transform is None:
        transform = fewshot_transform("mini_imagenet")
    return ImageFolder(str(folder), transform=transform)


# --------------------------------------------------------------------------- episodes
class Episode(NamedTuple):
    """One few-shot task: indices into the dataset and labels ``0..n_way-1``.

    ``support``/``query`` are grouped by class: class ``c`` of the episode owns
    ``support[c*k_shot:(c+1)*k_shot]`` and ``query[c*n_query:(c+1)*n_query]``.
    """

    support: np.ndarray
    support_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def sample_episodes(
    labels: Any,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
) -> list[Episode]:
    """Sample ``episodes`` class-balanced ``n_way``-way ``k_shot``-shot tasks from ``labels``.

    Each episode draws ``n_way`` distinct classes, then ``k_shot + n_query`` distinct samples of
    each: the first ``k_shot`` form the support set, the rest the query set, so support and
    query never overlap. The result depends only on ``labels`` and ``seed`` (a NumPy
    ``default_rng(seed)``); the default values are those of Tian et al. (600 episodes of 15
    queries per class).

    Raises
    ------
    ValueError
        When ``labels`` has fewer than ``n_way`` classes or some class has fewer than
        ``k_shot + n_query`` samples.
    """
    y = _as_numpy(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array; got shape {y.shape}, dtype {y.dtype}.")
    for name, v, lo in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("n_query", n_query, 1),
                        ("episodes", episodes, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}.")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < n_way:
        raise ValueError(f"{n_way}-way episodes need at least {n_way} classes; labels have {classes.size}.")
    need = k_shot + n_query
    small = classes[counts < need]
    if small.size:
        raise ValueError(
            f"every class needs at least k_shot + n_query = {need} samples; classes "
            f"{small[:10].tolist()}{'...' if small.size > 10 else ''} have fewer (minimum "
            f"{int(counts.min())})."
        )
    order = np.argsort(y, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    members = [order[starts[i]:starts[i + 1]] for i in range(classes.size)]
    rng = np.random.default_rng(seed)
    out = []
    base_s = np.repeat(np.arange(n_way), k_shot)
    base_q = np.repeat(np.arange(n_way), n_query)
    for _ in range(episodes):
        chosen = rng.choice(classes.size, size=n_way, replace=False)
        picks = [members[c][rng.choice(members[c].size, size=need, replace=False)] for c in chosen]
        support = np.concatenate([p[:k_shot] for p in picks])
        query = np.concatenate([p[k_shot:] for p in picks])
        out.append(Episode(support, base_s.copy(), query, base_q.copy()))
    return out


# --------------------------------------------------------------------------- evaluation
def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@contextlib.contextmanager
def _single_threaded():
    """Run BLAS/OpenMP and torch single-threaded: episodes are tiny problems, and thread start-up and
    spin-waiting would dominate (by orders of magnitude on a busy machine)."""
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(n)


def _run_episodes(
    X: np.ndarray, y: np.ndarray, episodes: Sequence[Episode], template: Any, compute_nc1: bool
) -> tuple[list[float], list[float]]:
    """Per-episode accuracy (percent) of a fresh clone of ``template`` and NC1 of the queries."""
    from sklearn.base import clone

    accs, nc1s = [], []
    for i, ep in enumerate(episodes):
        s, sl, q, ql = (np.asarray(a) for a in ep)
        for idx, lab in ((s, sl), (q, ql)):
            pairs = np.unique(np.stack([lab, y[idx]]), axis=1)
            if (np.unique(pairs[0]).size != pairs.shape[1]
                    or np.unique(pairs[1]).size != pairs.shape[1]):
                raise ValueError(
                    f"episode {i} does not match `labels`: its episode labels and the dataset labels "
                    "of its samples are not in one-to-one correspondence (were the episodes sampled "
                    "from these labels?)."
                )
        clf = clone(template)
        clf.fit(X[s], sl)
        accs.append(100.0 * float(np.mean(clf.predict(X[q]) == ql)))
        if compute_nc1:
            nc1s.append(nc1(X[q], ql))
    return accs, nc1s


def evaluate_episodes(
    embeddings: Any,
    labels: Any,
    episodes: Sequence[Episode],
    *,
    normalize: bool = True,
    C: float = 1.0,
    max_iter: int = 1000,
    compute_nc1: bool = True,
) -> dict[str, Any]:
    """Few-shot accuracy of a linear classifier fitted per episode, and the NC1 of its queries.

    For every episode, scikit-learn's multinomial ``LogisticRegression`` (L2 penalty ``C``,
    lbfgs, as Tian et al.) is fitted on the support embeddings and scored on the query
    embeddings; with ``normalize`` every embedding is first divided by its L2 norm (Tian et al.).
    NC1 (Eq. 4, :func:`ncutils.metrics.nc1`) is computed per episode on the query embeddings
    the classifier sees (L2-normalised when ``normalize``) with the episode's query labels.

    Parameters
    ----------
    embeddings : (N, d) tensor or array
        Embedding of every sample of the dataset the episodes index into.
    labels : (N,) integer labels
        Dataset labels; used to check that the episodes were sampled from these labels.
    episodes : list of :class:`Episode`
        From :func:`sample_episodes`.

    Returns
    -------
    dict
        ``accuracy`` (mean, percent), ``ci95`` (``1.96 * std / sqrt(episodes)``, percent, with the
        sample standard deviation over episodes), ``std``, ``accuracies`` (per episode),
        ``nc1`` (mean over episodes) and ``nc1_per_episode`` (absent without ``compute_nc1``),
        ``episodes``, ``n_way``, ``k_shot``, ``n_query``.
    """
    from sklearn.linear_model import LogisticRegression

    X = _as_numpy(embeddings).astype(np.float64, copy=False)
    y = _as_numpy(labels)
    if X.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, d); got shape {X.shape}.")
    if y.shape != (X.shape[0],):
        raise ValueError(f"labels must have shape ({X.shape[0]},) to match embeddings; got {y.shape}.")
    if not np.isfinite(X).all():
        raise ValueError("embeddings contain NaN or inf.")
    if len(episodes) == 0:
        raise ValueError("no episodes to evaluate.")
    if normalize:
        X = _l2_normalize(X)
    template = LogisticRegression(C=C, max_iter=max_iter, random_state=0)
    with _single_threaded():
        accs, nc1s = _run_episodes(X, y, episodes, template, compute_nc1)
    accs_arr = np.asarray(accs)
    n = accs_arr.size
    std = float(accs_arr.std(ddof=1)) if n > 1 else 0.0
    ep0 = episodes[0]
    n_way = int(np.unique(ep0[1]).size)
    out: dict[str, Any] = {
        "accuracy": float(accs_arr.mean()),
        "ci95": 1.96 * std / math.sqrt(n),
        "std": std,
        "accuracies": accs_arr,
        "episodes": n,
        "n_way": n_way,
        "k_shot": len(ep0[0]) // n_way,
        "n_query": len(ep0[2]) // n_way,
    }
    if compute_nc1:
        out["nc1_per_episode"] = np.asarray(nc1s)
        out["nc1"] = float(np.mean(nc1s))
    return out


def evaluate_shots(
    embeddings: Any,
    labels: Any,
    shots: Sequence[int] = (1, 5),
    *,
    n_way: int = 5,
    n_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
    **kwargs,
) -> dict[int, dict[str, Any]]:
    """:func:`evaluate_episodes` for several ``k_shot`` on the same embeddings (one Table 2 row).

    ``kwargs`` go to :func:`evaluate_episodes`. Returns ``{k_shot: result}``.
    """
    return {
        k: evaluate_episodes(embeddings, labels,
                             sample_episodes(labels, n_way, k, n_query, episodes, seed), **kwargs)
        for k in shots
    }


def embed(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate embeddings (the input of ``fc``) and labels of every item of ``dataset``, on the CPU.

    Uses :func:`ncutils.features.extract_features` (model in eval mode, no gradients, dataset
    order kept).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out = extract_features(model, loader, layers=("penultimate",), device=device, progress=False)
    return out["penultimate"], out["labels"]


def few_shot_eval(
    model: nn.Module,
    dataset: Dataset,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
    *,
    normalize: bool = True,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> dict[str, Any]:
    """Embed ``dataset`` (a meta-test split) with the frozen ``model`` and evaluate few-shot episodes.

    :func:`embed` + :func:`sample_episodes` + :func:`evaluate_episodes`; see the latter for
    the returned dict. To score several shots on one embedding pass, use :func:`embed` and
    :func:`evaluate_shots`.
    """
    X, y = embed(model, dataset, batch_size=batch_size, device=device)
    eps = sample_episodes(y, n_way, k_shot, n_query, episodes, seed)
    return evaluate_episodes(X, y, eps, normalize=normalize)


def split_nc1(
    model: nn.Module,
    dataset: Dataset,
    *,
    normalize: bool = False,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> float:
    """NC1 (Eq. 4) of ``model``'s penultimate embeddings over every image of ``dataset``.

    All images of the given split and all its classes enter one NC1 (not an average over
    episodes), with the split's labels. Table 2's bottom block reports NC1 of models
    *pre-trained* on the meta-train split; its caption states that these NC1 values, like the
    accuracies, are *evaluated on the meta-test split*, so pass e.g. ``cifar_fs("test")`` to
    reproduce it. Passing ``cifar_fs("train")`` instead measures collapse on the pre-training
    classes (Section 3.1's source-data NC1). ``normalize`` L2-normalises each embedding first,
    as :func:`evaluate_episodes` does; the default uses the raw features, the usual NC1.
    """
    X, y = embed(model, dataset, batch_size=batch_size, device=device)
    if normalize:
        X = torch.nn.functional.normalize(X, dim=1)
    return nc1(X, y)
