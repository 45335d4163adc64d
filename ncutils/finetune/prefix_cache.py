"""The frozen prefix of a fine-tuning network: its BatchNorm statistics and its cache (Section 3.3, App. B.2).

The frozen prefix (everything before the fine-tuned block, or the whole encoder for the linear
probe) receives no gradient. :func:`ncutils.finetune.fit` re-estimates its BatchNorm statistics on
the downstream training data in one pass (:func:`recalibrate_batchnorm`, exact population
statistics: the normalisation layers "update their running statistics on the downstream data",
Appendix B.2) and then runs it in evaluation mode, so that it computes a fixed function of each
input. Without random augmentation its output can then be computed once and trained on
(:class:`PrefixCache`), with the same result as recomputing it every epoch: each epoch replays the
batches the loader would have produced (:meth:`PrefixCache.replay`).

:func:`cache_mode` decides whether and where to cache: in memory (float32) when the cache fits a
memory budget, else on disk (float16) when it fits a disk budget, else not at all; the size comes
from :func:`estimate_cache_bytes`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ncutils.data.loading import DeviceLoader, in_order, index_batches
from ncutils.finetune.methods import FineTuneNet
from ncutils.runtime import autocast
from ncutils.training import modes_kept
from ncutils.transforms import is_random

__all__ = [
    "DISK_FRACTION",
    "MEMORY_CAP_GB",
    "MEMORY_FRACTION",
    "MODES",
    "PrefixCache",
    "augmentations_in",
    "cache_mode",
    "disk_budget_bytes",
    "estimate_cache_bytes",
    "memory_budget_bytes",
    "recalibrate_batchnorm",
]

#: Values of ``fit(..., prefix_cache=...)``.
MODES = ("auto", "memory", "disk", None)
#: The default memory budget of the cache: this share of the machine's RAM, at most MEMORY_CAP_GB.
MEMORY_FRACTION = 0.25
#: The most memory (GB) the default budget of the cache takes, whatever the machine's RAM.
MEMORY_CAP_GB = 16.0
#: The default disk budget of the cache: this share of the free space in its folder.
DISK_FRACTION = 0.8
#: Storage type of each cache mode.
DTYPES = {"memory": torch.float32, "disk": torch.float16}
GB = 1e9


def memory_budget_bytes() -> int:
    """The default memory budget: :data:`MEMORY_FRACTION` of the RAM, at most :data:`MEMORY_CAP_GB` GB."""
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # no sysconf (Windows): assume a 16 GB machine
        ram = 16 * GB
    return int(min(MEMORY_CAP_GB * GB, MEMORY_FRACTION * ram))


def disk_budget_bytes(folder: str | os.PathLike | None = None) -> int:
    """The default disk budget: :data:`DISK_FRACTION` of the free space in ``folder`` (default: temporary)."""
    folder = Path(folder) if folder else Path(tempfile.gettempdir())
    while not folder.exists() and folder != folder.parent:  # a cache_dir not created yet
        folder = folder.parent
    return int(DISK_FRACTION * shutil.disk_usage(folder).free)


def estimate_cache_bytes(net: FineTuneNet, sample_shape: tuple[int, ...] | torch.Size, num_samples: int,
                         dtype: torch.dtype = torch.float32) -> int:
    """Bytes the prefix outputs of ``num_samples`` inputs of shape ``sample_shape`` take as ``dtype``.

    The output shape comes from one forward of one random input through the frozen prefix (in
    evaluation mode, without gradients, on the network's device); 0 for a network without a
    frozen prefix (full FT).
    """
    if not net.has_frozen_prefix:
        return 0
    param = next(net.parameters())
    x = torch.randn(1, *sample_shape, device=param.device, dtype=param.dtype)
    with modes_kept(net), torch.no_grad():
        net.eval()
        per_sample = net.forward_prefix(x)[0].numel()
    return int(num_samples) * per_sample * torch.empty((), dtype=dtype).element_size()


def augmentations_in(dataset: Any) -> list[str]:
    """Names of the random transforms on a dataset (:func:`ncutils.transforms.is_random`).

    Reads the ``transform`` and ``transforms`` of ``dataset`` and of the datasets it wraps
    (``dataset``, ``datasets`` and ``base`` links: ``Subset``, ``ConcatDataset``,
    :class:`ncutils.data.TransformDataset`). Transforms not known to be deterministic count as random.
    """
    if dataset is None:
        return []
    found = is_random(getattr(dataset, "transform", None)) + is_random(getattr(dataset, "transforms", None))
    parts = getattr(dataset, "datasets", None)
    for part in [getattr(dataset, "dataset", None), getattr(dataset, "base", None),
                 *(parts if isinstance(parts, (list, tuple)) else ())]:
        found += augmentations_in(part)
    return list(dict.fromkeys(found))


def _replayable(loader: Iterable) -> bool:
    return isinstance(loader, (DataLoader, DeviceLoader))


def cache_mode(
    prefix_cache: str | None,
    train_loader: Iterable,
    net: FineTuneNet,
    *,
    memory_budget: int | None = None,
    disk_budget: int | None = None,
    cache_dir: str | os.PathLike | None = None,
) -> tuple[str | None, int | None]:
    """How :func:`ncutils.finetune.fit` caches the prefix, and the cache's estimated size in bytes.

    Returns ``(mode, bytes)`` with ``mode`` ``"memory"``, ``"disk"`` or ``None``. ``"auto"``
    caches a ``DataLoader`` or :class:`~ncutils.data.DeviceLoader` without random transforms: in
    memory (float32) if :func:`estimate_cache_bytes` is within ``memory_budget``
    (:func:`memory_budget_bytes` by default), else on disk (float16 in ``cache_dir``) if it is
    within ``disk_budget`` (:func:`disk_budget_bytes` of ``cache_dir`` by default), else not at
    all. ``"memory"`` and ``"disk"`` are taken as asked, without a budget, and refused
    (``ValueError``) for augmented data or another kind of loader. Networks without a frozen
    prefix (full FT) are never cached. ``bytes`` is the estimate for the chosen mode (float32 when
    ``"auto"`` found no room), ``None`` when nothing was estimated.
    """
    if prefix_cache not in MODES:
        raise ValueError(f"prefix_cache must be 'auto', 'memory', 'disk' or None; got {prefix_cache!r}.")
    if prefix_cache is None or not net.has_frozen_prefix:
        return None, None
    if prefix_cache == "auto":
        if not _replayable(train_loader) or augmentations_in(train_loader.dataset):
            return None, None
    elif not _replayable(train_loader):
        raise ValueError("prefix_cache needs a torch DataLoader or an ncutils DeviceLoader (to replay its "
                         "batches); pass prefix_cache=None.")
    else:
        aug = augmentations_in(train_loader.dataset)
        if aug:
            raise ValueError(
                f"the training data is augmented ({', '.join(sorted(set(aug)))} in its transform; transforms "
                "not known to be deterministic count as random), so the frozen prefix cannot be cached: pass "
                "prefix_cache=None, or remove the random transforms."
            )
    shape = torch.as_tensor(train_loader.dataset[0][0]).shape
    n = len(train_loader.dataset)
    if prefix_cache != "auto":
        return prefix_cache, estimate_cache_bytes(net, shape, n, DTYPES[prefix_cache])
    in_memory = estimate_cache_bytes(net, shape, n, DTYPES["memory"])
    if in_memory <= (memory_budget_bytes() if memory_budget is None else memory_budget):
        return "memory", in_memory
    on_disk = estimate_cache_bytes(net, shape, n, DTYPES["disk"])
    if on_disk <= (disk_budget_bytes(cache_dir) if disk_budget is None else disk_budget):
        return "disk", on_disk
    return None, in_memory


def recalibrate_batchnorm(net: FineTuneNet, loader: DataLoader | DeviceLoader, dev: torch.device,
                          amp: bool) -> None:
    """Re-estimate the running statistics of the prefix's BatchNorm layers on ``loader`` (one pass).

    The statistics are the cumulative average over the batches of the loader in dataset order
    (``momentum=None``): the population statistics of the downstream training data. The rest of
    the prefix runs in evaluation mode during the pass; every module's mode is restored afterwards.
    Nothing happens for a prefix without BatchNorm (ViT).
    """
    prefix = net.prefix_modules()
    bns = [m for pm in prefix for m in pm.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    momenta = [(m, m.momentum) for m in bns]
    with modes_kept(net), torch.no_grad():
        for pm in prefix:
            pm.eval()
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the pass: the population statistics
            m.train()
        try:
            for batch in in_order(loader):
                with autocast(dev, amp):
                    net.forward_prefix(batch[0].to(dev, non_blocking=True))
        finally:
            for m, momentum in momenta:
                m.momentum = momentum


def _storage(mode: str, shape: tuple[int, ...],
             cache_dir: str | os.PathLike | None) -> tuple[torch.Tensor, Path | None]:
    """A preallocated tensor for the cache: in RAM (float32), or a float16 memory-mapped ``.npy`` file."""
    if mode == "memory":
        return torch.empty(shape, dtype=DTYPES["memory"]), None
    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix="ncutils-prefix-", suffix=".npy")
    os.close(fd)
    mm = np.lib.format.open_memmap(name, mode="w+", dtype=np.float16, shape=shape)
    return torch.from_numpy(mm), Path(name)


@dataclass
class PrefixCache:
    """Prefix outputs of every training sample, in dataset order, in memory (float32) or on disk (float16).

    Built by :meth:`build`; :meth:`replay` yields an epoch's batches in the loader's order,
    :meth:`sequential` all samples in dataset order, and :meth:`close` deletes a disk cache.
    """

    inputs: torch.Tensor | None
    labels: torch.Tensor
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.labels)

    @classmethod
    def build(cls, net: FineTuneNet, loader: DataLoader | DeviceLoader, dev: torch.device, amp: bool,
              mode: str, cache_dir: str | os.PathLike | None = None, progress: bool = False) -> PrefixCache:
        """Run the frozen prefix once over the training set (dataset order, evaluation mode) and keep its
        outputs: ``mode`` ``"memory"`` (float32) or ``"disk"`` (float16 in ``cache_dir``, by default a
        temporary folder). The storage is allocated once, at its full size, and filled batch by batch.

        The prefix's BatchNorm statistics should be recalibrated first (:func:`recalibrate_batchnorm`).
        """
        if mode not in DTYPES:
            raise ValueError(f"mode must be 'memory' or 'disk'; got {mode!r}.")
        store, path, labels, n, total = None, None, None, 0, len(loader.dataset)
        try:
            with modes_kept(net), torch.inference_mode():
                net.eval()
                for batch in tqdm(in_order(loader), desc="caching frozen prefix", disable=not progress,
                                  leave=False):
                    with autocast(dev, amp):
                        h = net.forward_prefix(batch[0].to(dev, non_blocking=True))
                    y = torch.as_tensor(batch[1])
                    if store is None:
                        store, path = _storage(mode, (total, *h.shape[1:]), cache_dir)
                        labels = torch.empty(total, dtype=torch.long)
                    store[n : n + len(h)].copy_(h.float())
                    labels[n : n + len(h)].copy_(y)
                    n += len(h)
        except BaseException:
            if path is not None:
                path.unlink(missing_ok=True)
            raise
        if n != total:
            raise ValueError(f"the loader yielded {n} samples, but its dataset has {total}.")
        return cls(store, labels, path)

    def batch(self, idx: list[int] | torch.Tensor, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Prefix outputs (float32) and labels of the samples ``idx``, on ``dev``."""
        idx = torch.as_tensor(idx, dtype=torch.long, device="cpu")
        x = self.inputs[idx].to(dev, non_blocking=True).float()
        return x, self.labels[idx].to(dev, non_blocking=True)

    def replay(self, loader: DataLoader | DeviceLoader,
               dev: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The very batches (as prefix outputs) that iterating ``loader`` would produce now."""
        return (self.batch(idx, dev) for idx in index_batches(loader))

    def sequential(self, batch_size: int, dev: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """All samples in dataset order, ``batch_size`` at a time."""
        for i in range(0, len(self), batch_size):
            yield self.batch(torch.arange(i, min(i + batch_size, len(self))), dev)

    def close(self) -> None:
        """Release the outputs; delete the file of a disk cache."""
        self.inputs = None
        if self.path is not None:
            self.path.unlink(missing_ok=True)
