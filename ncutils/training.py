"""Pieces shared by every training loop: the paper's optimiser and schedule, checkpoints, seeding,
and the accuracy of a classifier on a loader (:func:`evaluate`).

The paper trains with SGD (momentum 0.9, weight decay 1e-4) and a cosine learning rate from 1e-1
to 1e-4 (Appendix B, following Loshchilov & Hutter 2017). Loops in :mod:`ncutils.pretrain` and
:mod:`ncutils.finetune` use these helpers so that an interrupted run resumes from its last
completed epoch and finishes with the same weights as an uninterrupted one: each epoch reseeds
every random source from ``(seed, epoch)``, and checkpoints are written atomically after every
epoch together with the optimiser, the scheduler and the history so far.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ncutils.runtime import autocast, resolve_device, seed_everything

__all__ = ["Checkpoint", "cosine_schedule", "evaluate", "make_optimizer", "make_schedule", "modes_kept", "seed_epoch",
           "sgd"]


def sgd(
    params: Iterable[nn.Parameter] | Iterable[dict],
    lr: float = 0.1,
    *,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
) -> torch.optim.SGD:
    """SGD with the paper's momentum and weight decay."""
    return torch.optim.SGD(_trainable(params), lr=lr, momentum=momentum, weight_decay=weight_decay)


def _trainable(params: Iterable[nn.Parameter] | Iterable[dict]) -> list:
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters: check which parameters have requires_grad=True.")
    return params


def make_optimizer(name: str, params: Iterable[nn.Parameter] | Iterable[dict], lr: float, *, momentum: float = 0.9,
                   weight_decay: float = 1e-4) -> torch.optim.Optimizer:
    """The optimiser called ``name``: ``"sgd"`` (:func:`sgd`: the paper's ResNet recipe, with ``momentum``) or
    ``"adamw"`` (decoupled weight decay, PyTorch's default betas: how ViTs are trained; ``momentum`` unused)."""
    if name == "sgd":
        return sgd(params, lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adamw":
        return torch.optim.AdamW(_trainable(params), lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; use 'sgd' or 'adamw'.")


def cosine_schedule(
    optimizer: torch.optim.Optimizer, total_steps: int, min_lr: float = 1e-4
) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """Cosine annealing from the optimiser's learning rate to ``min_lr`` over ``total_steps`` steps."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps), eta_min=min_lr)


def make_schedule(optimizer: torch.optim.Optimizer, spec: dict | None, epochs: int, steps_per_epoch: int,
                  min_lr: float = 1e-4) -> torch.optim.lr_scheduler.LRScheduler:
    """The learning-rate schedule described by ``spec``, stepped once per iteration.

    ``{"kind": "cosine"}`` (or ``None``): the paper's cosine from the optimiser's rate to ``min_lr``
    over all iterations (Appendix B). ``{"kind": "cosine", "warmup_epochs": w}``: a linear warm-up from
    ``1/(w·steps)`` of the rate to the rate over the first ``w`` epochs, then the cosine over the rest (the
    ViT recipe). ``{"kind": "step", "milestones": [e1, ...], "gamma": g}``: the rate multiplied by ``g`` at
    the start of each milestone epoch (the few-shot recipe of Table 2).
    """
    spec = dict(spec or {"kind": "cosine"})
    kind = spec.pop("kind", "cosine")
    if kind == "cosine" and not spec:
        return cosine_schedule(optimizer, epochs * steps_per_epoch, min_lr)
    if kind == "cosine" and set(spec) == {"warmup_epochs"}:
        warm = int(spec["warmup_epochs"]) * steps_per_epoch
        if not 0 < warm < epochs * steps_per_epoch:
            raise ValueError(f"warmup_epochs must lie in [1, epochs - 1] = [1, {epochs - 1}]; got "
                             f"{spec['warmup_epochs']}.")
        ramp = torch.optim.lr_scheduler.LinearLR(optimizer, start_factor=1.0 / warm, end_factor=1.0,
                                                 total_iters=warm)
        cosine = cosine_schedule(optimizer, epochs * steps_per_epoch - warm, min_lr)
        return torch.optim.lr_scheduler.SequentialLR(optimizer, [ramp, cosine], milestones=[warm])
    if kind == "step" and set(spec) <= {"milestones", "gamma"}:
        milestones = [int(m) * steps_per_epoch for m in spec.get("milestones", [])]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones, gamma=float(spec.get("gamma", 0.1)))
    raise ValueError(f"unknown schedule {dict(spec, kind=kind)!r}; use {{'kind': 'cosine'}} (optionally with "
                     "'warmup_epochs') or {'kind': 'step', 'milestones': [...], 'gamma': 0.1}.")


def seed_epoch(seed: int, epoch: int, loader: Any = None) -> None:
    """Reseed Python, NumPy, torch and the loader's shuffling generator for ``epoch``.

    Makes an epoch's data order, augmentations and dropout a function of ``(seed, epoch)`` only,
    which is what lets a resumed run retrace the uninterrupted one.
    """
    s = seed * 1_000_003 + epoch
    seed_everything(s)
    gen = getattr(loader, "generator", None)
    if isinstance(gen, torch.Generator):
        gen.manual_seed(s)


@contextlib.contextmanager
def modes_kept(module: nn.Module) -> Iterator[None]:
    """Restore the training flag of every submodule of ``module`` on exit."""
    modes = [(m, m.training) for m in module.modules()]
    try:
        yield
    finally:
        for m, flag in modes:
            m.training = flag


class Checkpoint:
    """Atomic save/resume of a training run in one file (``None`` path: checkpointing disabled)."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path is not None else None

    def __bool__(self) -> bool:
        return self.path is not None

    def save(self, *, epoch: int, model: nn.Module, optimizer=None, scheduler=None, **extra: Any) -> None:
        """Write the state after ``epoch`` completed epochs (to a temporary file, then renamed)."""
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            **extra,
        }
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        os.close(fd)
        try:
            torch.save(state, tmp)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def load(self, *, model: nn.Module, optimizer=None, scheduler=None, map_location="cpu") -> dict | None:
        """Restore states in place and return the saved dict, or ``None`` if there is no checkpoint."""
        if self.path is None or not self.path.exists():
            return None
        try:
            state = torch.load(self.path, map_location=map_location, weights_only=False)
        except Exception as err:  # a truncated or foreign file
            raise ValueError(
                f"could not read checkpoint {self.path} ({err}); delete it to start this run afresh."
            ) from err
        try:
            model.load_state_dict(state["model"])
        except RuntimeError as err:
            raise ValueError(
                f"checkpoint {self.path} belongs to a different model or configuration ({err}). "
                "Delete it, or point this run at another checkpoint path."
            ) from err
        if optimizer is not None and state.get("optimizer") is not None:
            optimizer.load_state_dict(state["optimizer"])
        if scheduler is not None and state.get("scheduler") is not None:
            scheduler.load_state_dict(state["scheduler"])
        return state


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
