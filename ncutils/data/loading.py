"""Labels, class-balanced subsets, dataset wrappers and seeded loaders.

:func:`balanced_subset` draws nested class-balanced subsets, as in the sample-size curves of
Fig. 11 (:data:`FIG11_SIZES`), and :func:`make_loader` builds a loader whose shuffling generator
the training loops reseed every epoch (:func:`ncutils.training.seed_epoch`): a ``DataLoader``
(worker processes and pinned memory on CUDA), or for in-memory tensors on CUDA a
:class:`DeviceLoader` that keeps them on the GPU. :func:`index_batches` replays a loader's order.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import (
    BatchSampler,
    ConcatDataset,
    DataLoader,
    Dataset,
    RandomSampler,
    SequentialSampler,
    Subset,
    TensorDataset,
)

from ncutils.runtime import resolve_device

__all__ = [
    "DEVICE_MEMORY_FRACTION",
    "FIG11_SIZES",
    "MAX_WORKERS",
    "TMLR_FIG8_SIZES",
    "DeviceLoader",
    "TransformDataset",
    "balanced_subset",
    "check_seed",
    "class_rng",
    "in_order",
    "index_batches",
    "labels_of",
    "make_loader",
    "subset",
]

#: Samples per class of the downstream training sets in the paper's Fig. 11.
FIG11_SIZES = [10, 24, 59, 142, 344, 835, 2022, 4898]
#: Samples per class of the corresponding figure of the TMLR version of the paper (Fig. 8).
TMLR_FIG8_SIZES = [3, 10, 32, 100, 316]


def check_seed(seed: int) -> None:
    """Raise ``ValueError`` unless ``seed`` is a non-negative integer."""
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}.")


def class_rng(seed: int, label: Any) -> np.random.Generator:
    """Generator seeded by ``(seed, label)``: a class's draws do not depend on the other classes."""
    return np.random.default_rng([int(seed), int(label) % (1 << 64)])



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
    check_seed(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if len(idx) < n_per_class:
            raise ValueError(f"class {int(c)} has only {len(idx)} samples, fewer than n_per_class="
                             f"{n_per_class}; use a smaller n_per_class (at most {len(idx)}).")
        chosen.append(class_rng(seed, c).permutation(idx)[:n_per_class])
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def subset(dataset: Dataset, indices: Sequence[int] | np.ndarray | torch.Tensor) -> Subset:
    """``torch.utils.data.Subset`` of ``dataset`` at ``indices``; :func:`labels_of` reads its labels."""
    return Subset(dataset, [int(i) for i in np.asarray(torch.as_tensor(indices).cpu()).reshape(-1)])


class RelabelledSubset(Dataset):
    """The samples ``indices`` of ``base`` with their labels mapped through ``relabel`` (e.g. the kept
    classes of a dataset renumbered ``0..K-1``)."""

    def __init__(self, base: Dataset, indices: Sequence[int], relabel: dict[int, int]):
        self.base, self.indices, self.relabel = base, [int(i) for i in indices], dict(relabel)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        x, y = self.base[self.indices[index]][:2]
        return x, self.relabel[int(y)]


# --------------------------------------------------------------------------- wrappers and loaders
class TransformDataset(Dataset):
    """Apply ``transform`` to the image of every ``(image, label)`` pair of ``base``.

    Useful to add augmentation or the paper's preprocessing (:func:`ncutils.transforms.preprocess`) to an
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


#: Share of the GPU's free memory that the tensors of an in-memory dataset may take for
#: :func:`make_loader` to keep them on the GPU (:class:`DeviceLoader`).
DEVICE_MEMORY_FRACTION = 0.25
#: Worker processes :func:`make_loader` starts on CUDA for datasets that are not in memory (at most).
MAX_WORKERS = 8


def index_batches(loader: DataLoader | DeviceLoader) -> DataLoader:
    """Batches of dataset indices (int64 tensors) in the order iterating ``loader`` would produce them now.

    Shares the loader's batch sampler and generator, so the random numbers are drawn exactly as
    iterating ``loader`` itself would draw them (a ``DataLoader`` draws a base seed for its workers
    before its sampler shuffles): reseeding ``loader.generator`` reproduces the order. Used to replay
    an epoch on cached inputs (:mod:`ncutils.finetune.prefix_cache`) and by :class:`DeviceLoader`.
    """
    if getattr(loader, "batch_sampler", None) is None:
        raise TypeError(f"{type(loader).__name__} has no batch sampler whose order could be replayed; "
                        "use a DataLoader with a batch_size, or a DeviceLoader.")
    return DataLoader(range(len(loader.dataset)), batch_sampler=loader.batch_sampler,
                      generator=loader.generator)


class DeviceLoader:
    """Batches of a :class:`~torch.utils.data.TensorDataset` kept on ``device``: no copy per batch.

    The tensors are moved to ``device`` once; each batch is gathered there. Order and batches are
    those of ``DataLoader(dataset, batch_size, shuffle=shuffle, drop_last=drop_last,
    generator=loader.generator)``: a ``RandomSampler`` drawing ``torch.randperm(n,
    generator=loader.generator)`` (see :func:`index_batches`), so reseeding ``generator`` (as
    :func:`ncutils.training.seed_epoch` does every epoch) reproduces an epoch. ``dataset`` is a
    ``TensorDataset`` of the on-device tensors; batches are lists of tensors, as a ``DataLoader``'s.
    """

    def __init__(self, dataset: TensorDataset, batch_size: int = 128, *, shuffle: bool = False, seed: int = 0,
                 drop_last: bool = False, device: str | torch.device | None = "auto"):
        if not isinstance(dataset, TensorDataset):
            raise TypeError(f"DeviceLoader needs a TensorDataset; got {type(dataset).__name__}.")
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
        self.device = resolve_device(device)
        self.dataset = TensorDataset(*(t.to(self.device) for t in dataset.tensors))
        self.batch_size, self.drop_last = batch_size, drop_last
        self.generator = torch.Generator().manual_seed(int(seed))
        sampler = (RandomSampler(self.dataset, generator=self.generator) if shuffle
                   else SequentialSampler(self.dataset))
        self.batch_sampler = BatchSampler(sampler, batch_size, drop_last)

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        for idx in index_batches(self):
            idx = idx.to(self.device, non_blocking=True)
            yield [t[idx] for t in self.dataset.tensors]


def in_order(loader: Iterable, batch_size: int | None = None) -> Iterable:
    """The same data, transforms and collation as ``loader``, every sample once in dataset order.

    No shuffling and no ``drop_last``; ``batch_size`` defaults to the loader's (128 if it has none).
    A loader that is neither a ``DataLoader`` nor a :class:`DeviceLoader` is returned as it is.
    """
    if not isinstance(loader, DataLoader | DeviceLoader):
        return loader
    batch_size = batch_size or loader.batch_size or 128
    if isinstance(loader, DeviceLoader):
        return DeviceLoader(loader.dataset, batch_size, device=loader.device)
    return DataLoader(loader.dataset, batch_size=batch_size, shuffle=False, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      worker_init_fn=loader.worker_init_fn)


def _fits_on_device(dataset: TensorDataset, device: torch.device) -> bool:
    nbytes = sum(t.numel() * t.element_size() for t in dataset.tensors)
    free, _ = torch.cuda.mem_get_info(device)
    return nbytes <= DEVICE_MEMORY_FRACTION * free


def make_loader(
    dataset: Dataset,
    batch_size: int = 128,
    *,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    device: str | torch.device | None = "auto",
    num_workers: int | None = None,
) -> DataLoader | DeviceLoader:
    """A loader whose order is a function of ``seed``.

    Shuffling (and the seeds of worker processes) come from a ``torch.Generator`` seeded with
    ``seed`` and available as ``loader.generator``; reseeding it (as
    :func:`ncutils.training.seed_epoch` does every epoch) reproduces an epoch's order.

    Parameters
    ----------
    device : str or torch.device, optional
        Where the batches go (``"auto"``: CUDA when available). On the CPU this is a plain
        single-process ``DataLoader`` (``num_workers=0`` unless given).
    num_workers : int, optional
        ``None`` chooses by device and dataset. On CUDA, an in-memory ``TensorDataset`` whose
        tensors take at most :data:`DEVICE_MEMORY_FRACTION` of the GPU's free memory is moved to
        the GPU once and a :class:`DeviceLoader` is returned (same order and batches as the
        ``DataLoader``, no host-to-device copy per batch); another ``TensorDataset`` gets 0
        workers; any other dataset (files, per-sample transforms) ``min(8, os.cpu_count())``
        worker processes (:data:`MAX_WORKERS`). On CUDA memory is pinned. Workers are not
        persistent: they start again every epoch, seeded from ``loader.generator``, so that the
        epoch's augmentations, like its order, are a function of ``(seed, epoch)`` and a resumed
        run retraces the uninterrupted one (persistent workers keep their random state from one
        epoch to the next, out of reach of :func:`~ncutils.training.seed_epoch`).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}.")
    dev = resolve_device(device)
    in_memory = isinstance(dataset, TensorDataset)
    if num_workers is None:
        if dev.type == "cuda" and in_memory and _fits_on_device(dataset, dev):
            return DeviceLoader(dataset, batch_size, shuffle=shuffle, seed=seed, drop_last=drop_last,
                                device=dev)
        num_workers = min(MAX_WORKERS, os.cpu_count() or 1) if dev.type == "cuda" and not in_memory else 0
    generator = torch.Generator().manual_seed(int(seed))
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle,
        num_workers=num_workers,
        drop_last=drop_last,
        pin_memory=dev.type == "cuda",
        generator=generator,
        worker_init_fn=_seed_worker if num_workers > 0 else None,
        persistent_workers=False,
    )
