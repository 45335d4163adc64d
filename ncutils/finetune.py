"""The fine-tuning methods of Section 3.3 and their training loop.

Four methods, all on a pre-trained backbone with a new linear classifier (Table 3):

``linear``  Linear Probe: only the classifier is trained.
``layer``   Layer FT: one block (ResNet) or encoder layer (ViT) plus the classifier (Fig. 8, left).
``scl``     SCL FT: Layer FT plus a skip connection from the fine-tuned block to the penultimate
            feature (Fig. 8, right). For ResNets the block output is average-pooled to one value
            per channel and zero-padded to the penultimate width (Appendix B.2); for ViTs it is
            reduced like the last layer (final LayerNorm, class token). The sum is the classifier's
            input. The skip adds no parameters.
``full``    Full model FT.

Blocks are numbered as in the paper, from 1 at the input (:func:`ncutils.models.blocks`); the
paper's defaults (Table 3) are Block 5 of ResNet18, Block 8 of ResNet50 and Layer 8 of
ViT-B/32 (:data:`PAPER_BLOCK`). For every method the normalisation layers update their running
statistics on the downstream data (Appendix B.2): the whole network is in training mode while it
trains.

The frozen prefix (everything before the fine-tuned block, or the whole encoder for the linear
probe) receives no gradient, so :func:`fit` can compute its output once and train on the cache
(``prefix_cache="memory"`` or ``"disk"``) when the inputs are not augmented: each epoch then runs
only the blocks from ``k`` on. The cache is computed in evaluation mode after re-estimating the
prefix's BatchNorm statistics on the downstream training data in one pass (exact population
statistics), which is what the running statistics of an uncached run converge to; during training
an uncached prefix normalises with per-batch statistics instead. LayerNorm networks (ViT) are
unaffected.
"""

from __future__ import annotations

import copy
import os
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from torchvision.models.resnet import ResNet
from tqdm.auto import tqdm

from ncutils import models
from ncutils.metrics import NCAccumulator
from ncutils.runtime import autocast, resolve_device
from ncutils.runtime import channels_last as runtime_channels_last
from ncutils.training import Checkpoint, cosine_schedule, seed_epoch, sgd

__all__ = [
    "ARCHS",
    "METHODS",
    "PAPER_BLOCK",
    "PAPER_GRID",
    "FineTuneNet",
    "FitResult",
    "build",
    "evaluate",
    "fit",
    "prepare",
    "reproduce_percentages",
    "trainable_fraction",
]

METHODS = ("linear", "layer", "scl", "full")
ARCHS = ("resnet18", "resnet34", "resnet50", "vit_b_32")
#: The block/layer fine-tuned by Layer FT and SCL FT in Table 3 (footnote 11).
PAPER_BLOCK = {"resnet18": 5, "resnet34": 9, "resnet50": 8, "vit_b_32": 8}
#: Learning-rate x weight-decay grid searched per method in the TMLR version (Appendix B).
PAPER_GRID = {
    "resnet": {"lr": (1e-1, 5e-2), "weight_decay": (1e-4, 5e-4)},
    "vit": {"lr": (1e-2, 1e-3), "weight_decay": (1e-4, 0.0)},
}


# --------------------------------------------------------------------------- model
class FineTuneNet(nn.Module):
    """A backbone prepared for one fine-tuning method.

    ``forward(x) = forward_from(forward_prefix(x))``: :meth:`forward_prefix` is the frozen part
    before the first trained unit, :meth:`forward_from` the rest (trained block, later frozen
    blocks, optional skip connection, classifier). :meth:`features` returns the classifier's
    input, the penultimate feature ``h^{L-1}`` at which Table 3 measures NC1.
    """

    def __init__(self, backbone: nn.Module, method: str, block: int | None):
        super().__init__()
        self.backbone = backbone
        self.method = method
        self.block = block  # 1-based paper numbering, None for linear/full
        self.is_vit = models._is_vit(backbone)
        if not (self.is_vit or isinstance(backbone, ResNet)):
            raise TypeError(
                f"fine-tuning supports torchvision ResNets and timm Vision Transformers; got "
                f"{type(backbone).__name__}."
            )
        self.units = [m for _, m in models.blocks(backbone)]
        self.feature_dim = models.feature_dim(backbone)
        # index of the first unit run by forward_from (len(units) + 1 means "only the head")
        self._start = {"full": 0, "linear": None}.get(method, block)

    # ---- the pieces of the network
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        if self.is_vit:
            return b.norm_pre(b.patch_drop(b._pos_embed(b.patch_embed(x))))
        return b.maxpool(b.relu(b.bn1(b.conv1(x))))

    def reduce(self, h: torch.Tensor) -> torch.Tensor:
        """Reduce a block output to a vector the way the network reduces its last block."""
        if self.is_vit:
            return self.backbone.forward_head(self.backbone.norm(h), pre_logits=True)
        return torch.flatten(self.backbone.avgpool(h), 1)

    def skip(self, h: torch.Tensor) -> torch.Tensor:
        """SCL skip feature: the reduced block output, zero-padded to the penultimate width."""
        z = self.reduce(h)
        return F.pad(z, (0, self.feature_dim - z.shape[1])) if z.shape[1] < self.feature_dim else z

    def head(self) -> nn.Linear:
        return models.classifier(self.backbone)

    # ---- split forward
    def forward_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen computation before the first trained unit (identity for full FT)."""
        if self.method == "full":
            return x
        h = self.stem(x)
        stop = len(self.units) if self.method == "linear" else self.block - 1
        for unit in self.units[:stop]:
            h = unit(h)
        return self.reduce(h) if self.method == "linear" else h

    def features_from(self, h: torch.Tensor) -> torch.Tensor:
        """Penultimate feature (classifier input) from the prefix output."""
        if self.method == "linear":
            return h
        if self.method == "full":
            h = self.stem(h)
        start = 0 if self.method == "full" else self.block - 1
        skip = None
        for i, unit in enumerate(self.units[start:], start):
            h = unit(h)
            if self.method == "scl" and i == self.block - 1:
                skip = self.skip(h)
        feat = self.reduce(h)
        return feat + skip if skip is not None else feat

    def forward_from(self, h: torch.Tensor) -> torch.Tensor:
        return self.head()(self.features_from(h))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_from(self.forward_prefix(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.forward_prefix(x))

    @property
    def has_frozen_prefix(self) -> bool:
        return self.method != "full"

    def extra_repr(self) -> str:
        return f"method={self.method!r}, block={self.block}"


def _load_backbone(arch: str, num_classes: int, pretrained: bool) -> nn.Module:
    try:
        if arch.startswith("vit"):
            return models.vit(arch, num_classes, pretrained=pretrained)
        return models.resnet(arch, num_classes, pretrained=pretrained)
    except (OSError, RuntimeError, ValueError) as err:
        if not pretrained:
            raise
        raise RuntimeError(
            f"could not load the pretrained weights of {arch} ({type(err).__name__}: {err}). They are "
            "downloaded on first use (torchvision: TORCH_HOME, timm: the Hugging Face cache) and need "
            "internet access once; or pass pretrained=False for random weights."
        ) from err


def build(
    arch: str | nn.Module,
    method: str,
    num_classes: int,
    block: int | None = None,
    pretrained: bool = False,
) -> FineTuneNet:
    """A network ready for fine-tuning with ``method`` (Section 3.3, Table 3).

    Parameters
    ----------
    arch : str or nn.Module
        ``resnet18``, ``resnet34``, ``resnet50`` (torchvision) or ``vit_b_32`` (timm, the paper's
        ViT-B/32 at 384 px with 145 tokens); or an already built/pre-trained torchvision ResNet or
        timm ViT, which is copied (the original is left untouched) and given a new classifier.
    method : {"linear", "layer", "scl", "full"}
    num_classes : int
        Classes of the downstream task (a new, randomly initialised classifier).
    block : int, optional
        Block/layer to fine-tune for ``layer``/``scl``, 1-based in the paper's numbering; defaults
        to :data:`PAPER_BLOCK` (Table 3).
    pretrained : bool
        Load the ImageNet-1k (ResNet) / ImageNet-21k (ViT) weights through torchvision/timm.

    Only the intended parameters have ``requires_grad``: the classifier, plus the chosen block for
    ``layer``/``scl``, plus everything for ``full``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}.")
    if isinstance(arch, str):
        if arch not in ARCHS and not arch.startswith(("resnet", "vit")):
            raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS} or pass a model.")
        if method in ("layer", "scl") and block is None and arch not in PAPER_BLOCK:
            raise ValueError(f"pass block=... for {method!r} fine-tuning of {arch}.")
        backbone = _load_backbone(arch, num_classes, pretrained)
        block = PAPER_BLOCK.get(arch) if (method in ("layer", "scl") and block is None) else block
    else:
        if pretrained:
            raise ValueError("pretrained=True only applies to architecture names; this model is used as is.")
        backbone = models.replace_classifier(copy.deepcopy(arch), num_classes)
    return prepare(backbone, method, block)


def prepare(backbone: nn.Module, method: str, block: int | None = None) -> FineTuneNet:
    """Wrap ``backbone`` (its classifier already sized for the task) for ``method``, in place.

    Sets ``requires_grad`` on exactly the parameters the method trains; the same backbone can be
    prepared again for another method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}.")
    if method in ("layer", "scl"):
        if block is None:
            raise ValueError(f"pass block=... for {method!r} fine-tuning.")
        block = models.block_index(backbone, block) + 1
    elif block is not None:
        raise ValueError(f"block applies to 'layer' and 'scl' only, not to {method!r}.")
    net = FineTuneNet(backbone, method, block)
    for p in backbone.parameters():
        p.requires_grad_(method == "full")
    for p in net.head().parameters():
        p.requires_grad_(True)
    if block is not None:
        for p in net.units[block - 1].parameters():
            p.requires_grad_(True)
    return net


def reproduce_percentages(cells: Iterable[dict]) -> list[dict]:
    """Compute the "percentage of parameters fine-tuned" of each cell with real networks.

    ``cells`` are dicts with ``arch``, ``method``, ``block`` and ``num_classes`` (as yielded by
    :func:`ncutils.published.percentage_cells`). Each (architecture, classes) backbone is built
    once with random weights and prepared for every method in turn. Returns the cells with
    ``fraction`` (trainable / all parameters) and ``formatted`` (as the paper prints it) added.
    """
    backbones: dict[tuple[str, int], nn.Module] = {}
    out = []
    for cell in cells:
        key = (cell["arch"], cell["num_classes"])
        if key not in backbones:
            backbones[key] = _load_backbone(cell["arch"], cell["num_classes"], pretrained=False)
        net = prepare(backbones[key], cell["method"], cell.get("block"))
        frac = trainable_fraction(net)
        out.append({**cell, "fraction": frac, "formatted": "100%" if frac == 1 else f"{100 * frac:.2f}%"})
    return out


def trainable_fraction(model: nn.Module) -> float:
    """Trainable parameters divided by all parameters (the "percentage fine-tuned" of Tables 3-7)."""
    total = models.count_parameters(model)
    return models.count_parameters(model, trainable_only=True) / total


# --------------------------------------------------------------------------- prefix cache
_RANDOM_TRANSFORMS = ("Random", "ColorJitter", "AutoAugment", "RandAugment", "TrivialAugment", "AugMix")


def _augmentations_in(dataset: Any) -> list[str]:
    """Names of random transforms found on a dataset (following Subset/wrapper ``dataset`` links)."""
    found, seen = [], 0
    while dataset is not None and seen < 10:
        for attr in ("transform", "transforms"):
            t = getattr(dataset, attr, None)
            if t is None:
                continue
            stack = [t]
            while stack:
                cur = stack.pop()
                name = type(cur).__name__
                if name.startswith(_RANDOM_TRANSFORMS):
                    found.append(name)
                for child in ("transforms", "transform"):
                    sub = getattr(cur, child, None)
                    if isinstance(sub, (list, tuple)):
                        stack.extend(sub)
                    elif sub is not None and sub is not cur and not isinstance(sub, (str, int, float)):
                        stack.append(sub)
        dataset, seen = getattr(dataset, "dataset", None), seen + 1
    return found


def _recalibrate_batchnorm(net: FineTuneNet, loader: Iterable, dev: torch.device, amp: bool) -> None:
    """Re-estimate the running statistics of the prefix's BatchNorm layers on ``loader`` (one pass)."""
    prefix_modules = [net.backbone.conv1, net.backbone.bn1] if not net.is_vit else []
    stop = len(net.units) if net.method == "linear" else net.block - 1
    prefix_modules += net.units[:stop]
    bns = [m for pm in prefix_modules for m in pm.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return
    saved = [(m, m.momentum, m.training) for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass: the population statistics
        m.train()
    try:
        with torch.no_grad():
            for batch in loader:
                with autocast(dev, amp):
                    net.forward_prefix(batch[0].to(dev, non_blocking=True))
    finally:
        for m, momentum, training in saved:
            m.momentum = momentum
            m.train(training)


@dataclass
class _Cache:
    """Prefix outputs of every training sample, in dataset order, in memory or on disk (float16)."""

    inputs: torch.Tensor | np.ndarray
    labels: torch.Tensor
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.labels)

    def batch(self, idx: list[int] | torch.Tensor, dev: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.as_tensor(idx, dtype=torch.long)
        if isinstance(self.inputs, np.ndarray):
            x = torch.from_numpy(self.inputs[idx.numpy()])
        else:
            x = self.inputs[idx]
        return x.to(dev, non_blocking=True).float(), self.labels[idx].to(dev, non_blocking=True)

    def sequential(self, batch_size: int, dev: torch.device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(0, len(self), batch_size):
            yield self.batch(torch.arange(i, min(i + batch_size, len(self))), dev)

    def close(self) -> None:
        if self.path is not None:
            self.inputs = None
            self.path.unlink(missing_ok=True)


def _in_order(loader: DataLoader) -> DataLoader:
    """The same dataset, transforms and collation as ``loader``, without shuffling."""
    return DataLoader(loader.dataset, batch_size=loader.batch_size or 128, shuffle=False,
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn,
                      pin_memory=loader.pin_memory)


def _replay_indices(loader: DataLoader) -> DataLoader:
    """Batches of dataset indices in the order ``loader`` would produce them now.

    Shares the loader's batch sampler and generator, so the random numbers are drawn exactly as
    iterating ``loader`` itself would draw them.
    """
    return DataLoader(range(len(loader.dataset)), batch_sampler=loader.batch_sampler,
                      generator=loader.generator)


def _build_cache(net, loader: DataLoader, dev, amp, mode: str, cache_dir, progress: bool) -> _Cache:
    """Run the frozen prefix once over the training set (dataset order) and keep its outputs."""
    net.eval()
    xs, ys, mm, path, n, total = [], [], None, None, 0, len(loader.dataset)
    with torch.inference_mode():
        for batch in tqdm(_in_order(loader), desc="caching frozen prefix", disable=not progress, leave=False):
            with autocast(dev, amp):
                h = net.forward_prefix(batch[0].to(dev, non_blocking=True))
            h = h.float().cpu()
            if mode == "disk":
                if mm is None:
                    folder = Path(cache_dir) if cache_dir else Path(tempfile.gettempdir())
                    folder.mkdir(parents=True, exist_ok=True)
                    fd, name = tempfile.mkstemp(dir=folder, prefix="ncutils-prefix-", suffix=".npy")
                    os.close(fd)
                    path = Path(name)
                    shape = (total, *h.shape[1:])
                    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=shape)
                mm[n : n + len(h)] = h.numpy().astype(np.float16)
            else:
                xs.append(h)
            ys.append(torch.as_tensor(batch[1]).cpu())
            n += len(h)
    labels = torch.cat(ys).long()
    if mode == "disk":
        mm.flush()
        return _Cache(mm, labels, path)
    return _Cache(torch.cat(xs), labels)


# --------------------------------------------------------------------------- training loop
@dataclass
class FitResult:
    """What :func:`fit` measured; accuracies in percent."""

    history: list[dict] = field(default_factory=list)
    train_nc1: float | None = None  # penultimate NC1 on the training data after training (Table 3)
    test_accuracy: float | None = None
    epochs_run: int = 0
    seconds: float = 0.0
    cache_seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "history": self.history,
            "train_nc1": self.train_nc1,
            "test_accuracy": self.test_accuracy,
            "epochs_run": self.epochs_run,
            "seconds": self.seconds,
            "cache_seconds": self.cache_seconds,
        }


def _prepare_device(net: FineTuneNet, dev: torch.device, channels_last: bool) -> bool:
    net.to(dev)
    return runtime_channels_last(net, dev, channels_last and not net.is_vit)


def _nc1_of(net: FineTuneNet, batches: Iterable, dev, amp) -> float:
    """NC1 of the penultimate feature over ``batches`` of (prefix output, label), in eval mode."""
    net.eval()
    acc = NCAccumulator()
    with torch.inference_mode():
        for h, y in batches:
            with autocast(dev, amp):
                acc.update(net.features_from(h).float(), y)
    return acc.compute()["nc1"]


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

    Parameters
    ----------
    prefix_cache : {"auto", "memory", "disk", None}
        Compute the frozen prefix once and train on its cached output (see the module docstring).
        ``"memory"`` and ``"disk"`` (float16 in ``cache_dir``, a temporary folder by default, deleted
        afterwards) are refused when the training data carry random augmentations; ``"auto"`` caches
        in memory when the loader is a DataLoader without random transforms and trains without the
        cache otherwise; ``None`` never caches.
    checkpoint : path, optional
        Saved after every epoch; an existing checkpoint is resumed from, and a resumed run ends
        with the same weights as an uninterrupted one.
    stop_after : int, optional
        Stop after this many epochs in this call (the schedule still spans ``epochs``): a
        time-boxed run that a later call resumes from the checkpoint.
    measure_nc1 : bool
        After training, the NC1 of the penultimate feature on the training data (Table 3, middle).
    """
    dev = resolve_device(device)
    use_cl = _prepare_device(net, dev, channels_last)
    amp = amp and dev.type == "cuda"
    if prefix_cache not in (None, "auto", "memory", "disk"):
        raise ValueError(f"prefix_cache must be 'auto', 'memory', 'disk' or None; got {prefix_cache!r}.")
    if prefix_cache == "auto":
        cacheable = isinstance(train_loader, DataLoader) and not _augmentations_in(train_loader.dataset)
        prefix_cache = "memory" if cacheable else None
    use_cache = prefix_cache is not None and net.has_frozen_prefix
    if use_cache:
        if not isinstance(train_loader, DataLoader):
            raise ValueError(
                "prefix_cache needs a torch DataLoader (to replay its batches); pass prefix_cache=None."
            )
        aug = _augmentations_in(train_loader.dataset)
        if aug:
            raise ValueError(
                f"the training data is augmented ({', '.join(sorted(set(aug)))} in its transform), so the "
                "frozen prefix cannot be cached: pass prefix_cache=None, or remove the random transforms."
            )
    if not hasattr(train_loader, "__len__"):
        raise ValueError("the training loader has no length; pass a DataLoader over a sized dataset.")
    params = [p for p in net.parameters() if p.requires_grad]
    opt = sgd(params, lr, momentum=momentum, weight_decay=weight_decay)
    steps = len(train_loader)
    sched = cosine_schedule(opt, epochs * steps, min_lr)
    ckpt = Checkpoint(checkpoint)
    t_start = time.perf_counter()
    result = FitResult()
    cache = None
    if use_cache:
        t0 = time.perf_counter()
        _recalibrate_batchnorm(net, _in_order(train_loader), dev, amp)
        cache = _build_cache(net, train_loader, dev, amp, prefix_cache, cache_dir, progress)
        result.cache_seconds = time.perf_counter() - t0
    state = ckpt.load(model=net, optimizer=opt, scheduler=sched)  # after caching: restores every statistic
    start_epoch = state["epoch"] if state else 0
    result.history = list(state.get("history", [])) if state else []
    try:
        last = epochs if stop_after is None else min(epochs, start_epoch + stop_after)
        for epoch in range(start_epoch, last):
            seed_epoch(seed, epoch, train_loader)
            net.train()
            t0, total_loss, correct, seen = time.perf_counter(), 0.0, 0, 0
            if cache is not None:  # the very batches the loader would have produced this epoch
                batches = (cache.batch(idx, dev) for idx in _replay_indices(train_loader))
            else:
                batches = ((b[0].to(dev, non_blocking=True), b[1].to(dev, non_blocking=True))
                           for b in train_loader)
            bar = tqdm(batches, total=steps, desc=f"{net.method} epoch {epoch + 1}/{epochs}",
                       disable=not progress, leave=False)
            for x, y in bar:
                if use_cl and x.ndim == 4:
                    x = x.contiguous(memory_format=torch.channels_last)
                with autocast(dev, amp):
                    if cache is None:
                        with torch.no_grad():  # frozen prefix: no graph, but BN statistics still update
                            h = net.forward_prefix(x)
                    else:
                        h = x
                    logits = net.forward_from(h)
                    loss = F.cross_entropy(logits.float(), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total_loss += loss.item() * len(y)
                correct += (logits.argmax(1) == y).sum().item()
                seen += len(y)
            record = {"epoch": epoch + 1, "loss": total_loss / max(seen, 1),
                      "train_accuracy": 100.0 * correct / max(seen, 1),
                      "lr": opt.param_groups[0]["lr"], "seconds": time.perf_counter() - t0}
            result.history.append(record)
            ckpt.save(epoch=epoch + 1, model=net, optimizer=opt, scheduler=sched, history=result.history)
        result.epochs_run = len(result.history)
        finished = result.epochs_run >= epochs
        if measure_nc1 and finished:
            if cache is not None:
                batches = cache.sequential(train_loader.batch_size or 128, dev)
            else:
                batches = ((net.forward_prefix(b[0].to(dev)), b[1].to(dev)) for b in train_loader)
            result.train_nc1 = _nc1_of(net, batches, dev, amp)
        if test_loader is not None and finished:
            result.test_accuracy = evaluate(net, test_loader, device=dev, amp=amp)["accuracy"]
    finally:
        if cache is not None:
            cache.close()
    result.seconds = time.perf_counter() - t_start
    return result


def evaluate(
    net: nn.Module, loader: Iterable, *, device: str | torch.device = "auto", amp: bool = True
) -> dict[str, float]:
    """Accuracy (percent) and mean cross-entropy of ``net`` on ``loader`` in evaluation mode."""
    dev = resolve_device(device)
    amp = amp and dev.type == "cuda"
    was_training = net.training
    net.to(dev).eval()
    correct, seen, loss = 0, 0, 0.0
    with torch.inference_mode():
        for batch in loader:
            x, y = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
            with autocast(dev, amp):
                logits = net(x).float()
            loss += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            seen += len(y)
    net.train(was_training)
    if seen == 0:
        raise ValueError("the evaluation loader yielded no samples.")
    return {"accuracy": 100.0 * correct / seen, "loss": loss / seen}
