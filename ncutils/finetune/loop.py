"""The fine-tuning loop of Section 3.3 (paper recipe, Appendix B)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ncutils.data.loading import in_order
from ncutils.finetune.methods import FineTuneNet
from ncutils.finetune.prefix_cache import PrefixCache, cache_mode, recalibrate_batchnorm
from ncutils.metrics import NCAccumulator
from ncutils.runtime import autocast, cpu_numerics, resolve_device
from ncutils.runtime import channels_last as runtime_channels_last
from ncutils.training import Checkpoint, cosine_schedule, evaluate, seed_epoch, sgd

__all__ = ["FitResult", "fit"]


@dataclass
class FitResult:
    """What :func:`fit` measured; accuracies in percent."""

    history: list[dict] = field(default_factory=list)
    train_nc1: float | None = None  # penultimate NC1 on the training data after training (Table 3)
    test_accuracy: float | None = None
    epochs_run: int = 0
    seconds: float = 0.0
    cache_seconds: float = 0.0  # building the prefix cache (0 without one)
    cache_mode: str | None = None  # "memory", "disk" or None: where the frozen prefix's outputs were cached
    cache_bytes: int | None = None  # estimated size of that cache (None: not estimated)

    def to_dict(self) -> dict:
        return {
            "history": self.history,
            "train_nc1": self.train_nc1,
            "test_accuracy": self.test_accuracy,
            "epochs_run": self.epochs_run,
            "seconds": self.seconds,
            "cache_seconds": self.cache_seconds,
            "cache_mode": self.cache_mode,
            "cache_bytes": self.cache_bytes,
        }


def _prepare_device(net: FineTuneNet, dev: torch.device, channels_last: bool) -> bool:
    net.to(dev)
    return runtime_channels_last(net, dev, channels_last and not net.is_vit)


def _on_device(loader: Iterable, dev: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(inputs, labels) of each batch of ``loader`` on ``dev``."""
    return ((b[0].to(dev, non_blocking=True), b[1].to(dev, non_blocking=True)) for b in loader)


def _bytes(gb: float | None) -> int | None:
    return None if gb is None else int(gb * 1e9)


def _prefix_output(net: FineTuneNet, x: torch.Tensor, cached: bool) -> torch.Tensor:
    """The prefix output of a batch of inputs (float32, like the cache's), or ``x`` itself when ``cached``."""
    if cached:
        return x
    with torch.no_grad():  # frozen prefix in eval mode: no graph, fixed statistics
        return net.forward_prefix(x).float()


def _nc1_of(net: FineTuneNet, batches: Iterable, dev, amp, *, cached: bool) -> float:
    """NC1 of the penultimate feature over ``batches`` of (input, or prefix output when ``cached``; label)."""
    net.eval()
    acc = NCAccumulator()
    with torch.inference_mode():
        for x, y in batches:
            with autocast(dev, amp):
                acc.update(net.features_from(_prefix_output(net, x, cached)).float(), y)
    return acc.compute()["nc1"]


def _train_mode(net: FineTuneNet) -> None:
    """Training mode, except the frozen prefix: it stays in eval mode with its recalibrated statistics."""
    net.train()
    for m in net.prefix_modules():
        m.eval()


def _train_epoch(net: FineTuneNet, batches: Iterable, opt: torch.optim.Optimizer, sched, dev: torch.device,
                 amp: bool, use_cl: bool, *, cached: bool) -> dict[str, float]:
    """One epoch of SGD on ``batches`` of (input, label), or of (prefix output, label) when ``cached``."""
    _train_mode(net)
    t0, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
    for x, y in batches:
        if use_cl and x.ndim == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(dev, amp):
            logits = net.forward_from(_prefix_output(net, x, cached))
            loss = F.cross_entropy(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        total_loss += loss.item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        seen += len(y)
    return {"loss": total_loss / max(seen, 1), "train_accuracy": 100.0 * correct / max(seen, 1),
            "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}


def fit(
    net: FineTuneNet,
    train_loader: Iterable,
    *,
    epochs: int = 200,
    lr: float = 0.1,
    min_lr: float = 1e-4,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    prefix_cache: str | None = "auto",
    cache_dir: str | Path | None = None,
    cache_budget_gb: float | None = None,
    disk_budget_gb: float | None = None,
    test_loader: Iterable | None = None,
    checkpoint: str | Path | None = None,
    stop_after: int | None = None,
    measure_nc1: bool = True,
    seed: int = 0,
    device: str | torch.device = "auto",
    amp: bool = True,
    channels_last: bool = True,
    progress: bool = True,
) -> FitResult:
    """Fine-tune ``net`` with the paper's recipe; return the history and Table 3's measurements.

    SGD (momentum 0.9) with a cosine learning rate from ``lr`` to ``min_lr`` stepped every
    iteration over ``epochs`` epochs (Appendix B). bfloat16 autocast (``amp``) and channels-last
    memory (``channels_last``, convolutional networks) apply on CUDA.

    The frozen prefix (everything before the fine-tuned block; the whole encoder for the linear
    probe) first gets its BatchNorm statistics re-estimated on the training data in one pass in
    dataset order (population statistics; the normalisation layers "update their running
    statistics on the downstream data", Appendix B.2), then runs in evaluation mode; the trained
    block and everything after it train in training mode. The prefix thus computes a fixed
    function of each input, which is what lets the cache below change nothing but the speed.

    Parameters
    ----------
    prefix_cache : {"auto", "memory", "disk", None}
        Compute the frozen prefix once and train on its cached output
        (:mod:`ncutils.finetune.prefix_cache`). ``"auto"`` caches a DataLoader (or
        :class:`~ncutils.data.DeviceLoader`) without random transforms: in memory (float32) if the
        cache fits ``cache_budget_gb``, else on disk (float16 in ``cache_dir``) if it fits
        ``disk_budget_gb``, else not at all; augmented data are never cached. ``"memory"`` and
        ``"disk"`` force that storage (no budget check) and are refused for augmented data;
        ``None`` never caches. A disk cache is deleted afterwards.
    cache_dir : path, optional
        Folder of a disk cache; the temporary folder by default (if that lives in memory, as a tmpfs
        does, point this at a real disk).
    cache_budget_gb : float, optional
        Memory budget of ``"auto"``, in GB (1e9 bytes); by default a quarter of the machine's RAM,
        at most 16 GB (:func:`~ncutils.finetune.prefix_cache.memory_budget_bytes`).
    disk_budget_gb : float, optional
        Disk budget of ``"auto"``, in GB; by default 80% of the free space in ``cache_dir``
        (:func:`~ncutils.finetune.prefix_cache.disk_budget_bytes`).
    checkpoint : path, optional
        Saved after every epoch; an existing checkpoint is resumed from, and a resumed run ends
        with the same weights as an uninterrupted one.
    stop_after : int, optional
        Stop after this many epochs in this call (the schedule still spans ``epochs``): a
        time-boxed run that a later call resumes from the checkpoint.
    measure_nc1 : bool
        After training, the NC1 of the penultimate feature on the training data (Table 3, middle).

    Returns
    -------
    FitResult
        With the cache mode chosen (``cache_mode``) and its estimated size (``cache_bytes``).

    On the CPU, denormal floats are flushed to zero while the loop runs
    (:func:`ncutils.runtime.cpu_numerics`) and the previous setting is restored afterwards.
    """
    dev = resolve_device(device)
    use_cl = _prepare_device(net, dev, channels_last)
    amp = amp and dev.type == "cuda"
    if not hasattr(train_loader, "__len__"):
        raise ValueError("the training loader has no length; pass a DataLoader over a sized dataset.")
    mode, cache_bytes = cache_mode(prefix_cache, train_loader, net, memory_budget=_bytes(cache_budget_gb),
                                   disk_budget=_bytes(disk_budget_gb), cache_dir=cache_dir)
    params = [p for p in net.parameters() if p.requires_grad]
    opt = sgd(params, lr, momentum=momentum, weight_decay=weight_decay)
    steps = len(train_loader)
    sched = cosine_schedule(opt, epochs * steps, min_lr)
    ckpt = Checkpoint(checkpoint)
    t_start = time.perf_counter()
    result = FitResult(cache_mode=mode, cache_bytes=cache_bytes)
    cache = None
    with cpu_numerics(dev):
        state = ckpt.load(model=net, optimizer=opt, scheduler=sched)
        if state is None and net.has_frozen_prefix:  # a resumed run has the statistics from its checkpoint
            recalibrate_batchnorm(net, train_loader, dev, amp)
        start_epoch = state["epoch"] if state else 0
        result.history = list(state.get("history", [])) if state else []
        try:
            if mode is not None:
                t0 = time.perf_counter()
                cache = PrefixCache.build(net, train_loader, dev, amp, mode, cache_dir, progress)
                result.cache_seconds = time.perf_counter() - t0
            last = epochs if stop_after is None else min(epochs, start_epoch + stop_after)
            for epoch in range(start_epoch, last):
                seed_epoch(seed, epoch, train_loader)
                if cache is not None:  # the very batches the loader would have produced this epoch
                    batches = cache.replay(train_loader, dev)
                else:
                    batches = _on_device(train_loader, dev)
                bar = tqdm(batches, total=steps, desc=f"{net.method} epoch {epoch + 1}/{epochs}",
                           disable=not progress, leave=False)
                record = {"epoch": epoch + 1, **_train_epoch(net, bar, opt, sched, dev, amp, use_cl,
                                                             cached=cache is not None)}
                result.history.append(record)
                ckpt.save(epoch=epoch + 1, model=net, optimizer=opt, scheduler=sched, history=result.history)
            result.epochs_run = len(result.history)
            finished = result.epochs_run >= epochs
            if measure_nc1 and finished:
                if cache is not None:
                    batches = cache.sequential(train_loader.batch_size or 128, dev)
                else:
                    batches = _on_device(in_order(train_loader), dev)
                result.train_nc1 = _nc1_of(net, batches, dev, amp, cached=cache is not None)
            if test_loader is not None and finished:
                result.test_accuracy = evaluate(net, test_loader, device=dev, amp=amp)["accuracy"]
        finally:
            if cache is not None:
                cache.close()
    result.seconds = time.perf_counter() - t_start
    return result
