"""The pre-training loop, the source NC1 and the linear transfer of Section 3.1 (Table 1, Figs. 3-5)."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from ncutils.features import encoder_feature_model, layerwise_nc
from ncutils.pretrain.adversarial import pgd_attack
from ncutils.pretrain.losses import Loss, as_loss
from ncutils.pretrain.networks import PretrainNet
from ncutils.probe import layerwise_probe
from ncutils.runtime import autocast, cpu_numerics, resolve_device
from ncutils.runtime import channels_last as runtime_channels_last
from ncutils.training import Checkpoint, make_optimizer, make_schedule, modes_kept, seed_epoch

__all__ = ["pretrain", "source_nc1", "transfer"]


def _encoder_nc(encoder: nn.Module, loader: Iterable, *, pre: nn.Module | None = None, **kwargs) -> dict:
    model, name = encoder_feature_model(encoder, pre)
    with modes_kept(encoder):
        out = layerwise_nc(model, loader, [name], **kwargs)[name]
    return {k: float(out[k]) for k in ("nc1", "cdnv", "nc2")}


def source_nc1(
    encoder: nn.Module,
    loader: Iterable,
    *,
    normalize: nn.Module | None = None,
    device: str | torch.device = "auto",
    amp: bool = False,
    progress: bool = False,
) -> float:
    """NC1 (Eq. 4) of ``encoder``'s penultimate features over ``loader`` (Table 1's source NC1).

    ``loader`` should yield the source training data without augmentation. Features are
    streamed through :class:`~ncutils.metrics.NCAccumulator` in eval mode; ``normalize`` is applied
    to the inputs first (e.g. ``net.normalize`` when the loader yields raw pixels).
    """
    stats = _encoder_nc(encoder, loader, pre=normalize, device=device, amp=amp, progress=progress,
                        desc="source NC1")
    return stats["nc1"]


def transfer(
    encoder: nn.Module,
    train_loader: Iterable,
    test_loader: Iterable,
    *,
    epochs: int = 200,
    lr: float = 0.1,
    min_lr: float = 1e-4,
    batch_size: int = 256,
    standardize: bool = False,
    seed: int = 0,
    device: str | torch.device = "auto",
    amp: bool = False,
    progress: bool = True,
) -> dict[str, float]:
    """Linear transfer of a frozen encoder (Table 1, Figs. 4, 5; Appendix B).

    Extracts the penultimate features of the downstream training and test data once (eval mode,
    no augmentation expected from the loaders), trains a linear classifier on them with the
    paper's recipe (:func:`ncutils.probe.linear_probe`: SGD, cosine 1e-1 -> 1e-4, ``epochs``)
    and measures NC1 of the downstream training features (Fig. 5). The encoder's weights and
    training flags are left as they are (it is moved to ``device``).

    Returns
    -------
    dict
        ``test_accuracy`` and ``train_accuracy`` in percent, ``nc1`` of the downstream training
        features, ``feature_dim``, ``num_train`` and ``num_test``.
    """
    model, name = encoder_feature_model(encoder)
    with modes_kept(encoder):
        res = layerwise_probe(model, train_loader, test_loader, [name], epochs=epochs, lr=lr, min_lr=min_lr,
                              batch_size=batch_size, standardize=standardize, device=device, amp=amp,
                              seed=seed, progress=progress)[name]
    return {
        "test_accuracy": float(res["test_accuracy"]),
        "train_accuracy": float(res["train_accuracy"]),
        "nc1": float(res["nc1"]),
        "feature_dim": res["dim"],
        "num_train": res["num_train"],
        "num_test": res["num_test"],
    }


# =========================================================================== pre-training
def _num_batches(loader: Iterable) -> int:
    try:
        n = len(loader)
    except TypeError:
        raise ValueError(
            "train_loader must have a length (e.g. a DataLoader over a map-style dataset): the cosine "
            "schedule steps once per iteration over epochs * len(train_loader) iterations."
        ) from None
    if n == 0:
        raise ValueError("train_loader yields no batches; check the dataset size and drop_last.")
    return n


def _check_setup(net: nn.Module, loss: Loss, adversarial_eps: float | None, nc_loader: Any) -> None:
    if isinstance(net, PretrainNet):
        if loss.contrastive and net.classifier is not None:
            raise ValueError(
                "SupCon trains on the head's embedding: build the PretrainNet with num_classes=None."
            )
        if not loss.contrastive and net.classifier is None:
            raise ValueError(f"loss {loss.name!r} needs logits: build the PretrainNet with num_classes=K.")
    if nc_loader is not None and not isinstance(getattr(net, "encoder", None), nn.Module):
        raise ValueError(
            "nc_loader measures NC1 of net.encoder, which this network lacks; wrap it in PretrainNet."
        )
    if adversarial_eps is not None and not 0 <= adversarial_eps <= 1:
        raise ValueError(f"adversarial_eps is a radius on pixels in [0, 1]; got {adversarial_eps}. "
                         "Use one of PAPER_EPSILONS.")


def _views(x: torch.Tensor, y: torch.Tensor, contrastive: bool) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Flatten (B, V, C, H, W) multi-view batches to (B*V, ...); return the labels used per row and V."""
    if x.ndim == 5:
        V = x.shape[1]
        return x.flatten(0, 1), (y if contrastive else y.repeat_interleave(V)), V
    return x, y, 1


def _check_pixels(x: torch.Tensor) -> None:
    lo, hi = (float(v) for v in torch.aminmax(x))
    if lo < 0 or hi > 1:
        raise ValueError(
            f"adversarial training perturbs pixels in [0, 1], but this batch spans [{lo:.3g}, {hi:.3g}]. "
            "Build the data with ncutils.transforms.augmentation(..., normalize=False) and put "
            "Normalize(mean, std) in the network (PretrainNet(..., normalize=...))."
        )


def _train_step(
    net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss, opt: torch.optim.Optimizer, sched,
    dev: torch.device, *, adversarial_eps: float | None, pgd_steps: int, pgd_step_size: float | None,
    amp: bool, channels_last: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One SGD step on a batch; returns the loss and the number of correct rows (``None`` for SupCon)."""
    B = y.shape[0]
    x, y_rows, V = _views(x, y, loss.contrastive)
    if channels_last and x.ndim == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    def batch_loss(out: torch.Tensor, lab: torch.Tensor) -> torch.Tensor:
        """The loss in float32, also where it is called inside an autocast region (PGD)."""
        out = out.float().reshape(B, V, -1) if loss.contrastive else out.float()
        with torch.autocast(dev.type, enabled=False) if amp else contextlib.nullcontext():
            return loss(out, lab)

    if adversarial_eps:
        _check_pixels(x)
        with autocast(dev, amp):
            x = pgd_attack(net, x, y_rows, adversarial_eps, pgd_steps, pgd_step_size, loss_fn=batch_loss)
    with autocast(dev, amp):
        out = net(x)
    value = batch_loss(out, y_rows)
    if not torch.isfinite(value):
        raise FloatingPointError(
            f"the {loss.name} loss became {value.item()}; lower the learning rate, or run with amp=False."
        )
    opt.zero_grad(set_to_none=True)
    value.backward()
    opt.step()
    sched.step()
    correct = None if loss.contrastive else (out.detach().argmax(1) == y_rows).sum()
    return value.detach(), correct


def _train_epoch(
    net: nn.Module, loader: Iterable, loss: Loss, opt: torch.optim.Optimizer, sched, dev: torch.device, *,
    progress: bool, desc: str, batch_transform: Callable | None = None, **step_kwargs: Any,
) -> dict[str, float | None]:
    net.train()
    total = torch.zeros((), dtype=torch.float64, device=dev)
    correct = torch.zeros((), dtype=torch.long, device=dev)
    n_samples = n_rows = 0
    # a manual bar: wrapping the loader in tqdm.auto would call iter() on it twice per epoch
    with tqdm(total=_num_batches(loader), desc=desc, disable=not progress, leave=False) as bar:
        for batch in loader:
            x, y = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
            if batch_transform is not None:
                x = batch_transform(x)
            value, right = _train_step(net, x, y, loss, opt, sched, dev, **step_kwargs)
            total += value.double() * y.shape[0]
            n_samples += y.shape[0]
            if right is not None:
                correct += right
                n_rows += y.shape[0] * (x.shape[1] if x.ndim == 5 else 1)
            bar.update()
    return {
        "loss": float(total) / n_samples,
        "train_accuracy": None if loss.contrastive else 100.0 * int(correct) / n_rows,
    }


def pretrain(
    net: nn.Module,
    train_loader: Iterable,
    *,
    loss: str | Loss = "ce",
    epochs: int = 200,
    lr: float = 0.1,
    min_lr: float = 1e-4,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    optimizer: str = "sgd",
    schedule: dict | None = None,
    adversarial_eps: float | None = None,
    pgd_steps: int = 10,
    pgd_step_size: float | None = None,
    batch_transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
    nc_loader: Iterable | None = None,
    nc_every: int = 1,
    checkpoint: str | os.PathLike | Checkpoint | None = None,
    stop_after: int | None = None,
    seed: int = 0,
    device: str | torch.device = "auto",
    amp: bool = True,
    channels_last: bool = True,
    progress: bool = True,
) -> list[dict[str, Any]]:
    """Pre-train ``net`` on the source data with the recipe of Section 3.1 / Appendix B.

    SGD (``momentum``, ``weight_decay``) with a cosine learning rate from ``lr`` to ``min_lr``
    stepped every iteration, for ``epochs`` epochs (``schedule`` may ask for a warm-up or a step schedule
    instead, see :func:`ncutils.training.make_schedule`; ``optimizer="adamw"`` trains as ViTs are trained,
    :func:`ncutils.training.make_optimizer`). Each epoch starts with
    :func:`ncutils.training.seed_epoch` and ends with a checkpoint (weights, optimiser,
    scheduler, history); when ``checkpoint`` already holds a run with the same settings, training
    resumes after its last completed epoch and ends with the weights an uninterrupted run gets.

    Parameters
    ----------
    net : PretrainNet
        Outputs logits (CE, MSE) or embeddings (SupCon). Only ``net.encoder`` is meant for transfer.
    train_loader : DataLoader
        ``(x, labels)`` with ``x`` of shape (B, C, H, W), or (B, V, C, H, W) views from
        :class:`~ncutils.transforms.TwoViews` (SupCon contrasts them; CE/MSE train on every view).
    loss : "ce", "mse", "supcon", "simclr" or :func:`make_loss` (...)
    adversarial_eps : float, optional
        Train on PGD adversarial examples of this l-infinity radius (Fig. 4; Madry et al. 2018),
        ``pgd_steps`` steps of ``pgd_step_size``. Inputs must be pixels in [0, 1], normalised inside
        ``net`` (:class:`~ncutils.pretrain.networks.Normalize`).
    batch_transform : callable, optional
        Applied to every batch of images on the device before the step, e.g.
        :func:`ncutils.transforms.augmentation` (or :class:`~ncutils.transforms.TwoViews` of it)
        for in-memory data, which then need no per-sample transform.
    nc_loader : DataLoader, optional
        Source training data without augmentation (same input space as ``train_loader``); NC1,
        CDNV and NC2 of the encoder's penultimate features on it are logged after every epoch
        (Fig. 3's NC1 trend).
    nc_every : int
        Measure on ``nc_loader`` only every ``nc_every`` epochs (and always after the last epoch).
    checkpoint : path or :class:`~ncutils.training.Checkpoint`, optional
    stop_after : int, optional
        Train at most this many epochs in this call (the schedule still spans ``epochs``): a
        time-boxed run that a later call resumes from the checkpoint.
    amp : bool
        bfloat16 autocast on CUDA for the forward passes (training, PGD, NC1 measurement), as in
        :func:`ncutils.finetune.fit`; the loss is computed in float32 from float32 outputs.
        Ignored on the CPU, where results do not depend on it.
    channels_last : bool
        Channels-last memory for convolutional networks on CUDA.

    Returns
    -------
    list of dict
        One JSON-serialisable record per epoch (keys as in :func:`ncutils.finetune.fit`): ``epoch``
        (1-based), ``lr`` (at the epoch's first step), ``loss`` (training loss), ``train_accuracy``
        (percent, on the inputs trained on; ``None`` for SupCon), ``seconds`` (training time), and
        with ``nc_loader`` the source ``nc1``, ``cdnv`` and ``nc2`` and ``nc_seconds``. The whole
        history, resumed epochs included.

    Notes
    -----
    On the CPU, denormal floats are flushed to zero while the loop runs
    (:func:`ncutils.runtime.cpu_numerics`) and the previous setting is restored afterwards.
    """
    loss_fn = as_loss(loss)
    _check_setup(net, loss_fn, adversarial_eps, nc_loader)
    if epochs < 1:
        raise ValueError(f"epochs must be at least 1; got {epochs}.")
    if stop_after is not None and stop_after < 1:
        raise ValueError(f"stop_after must be at least 1 epoch (None: the whole run); got {stop_after}.")
    dev = resolve_device(device)
    amp = amp and dev.type == "cuda"
    steps = _num_batches(train_loader)
    net.to(dev)
    use_cl = runtime_channels_last(net, dev, channels_last)
    trainable = [p for p in net.parameters() if p.requires_grad]
    opt = make_optimizer(optimizer, trainable, lr, momentum=momentum, weight_decay=weight_decay)
    sched = make_schedule(opt, schedule, epochs, steps, min_lr)
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else Checkpoint(checkpoint)
    config = {
        "loss": loss_fn.name, "loss_kwargs": dict(loss_fn.kwargs), "epochs": epochs, "lr": lr,
        "min_lr": min_lr, "momentum": momentum, "weight_decay": weight_decay,
        **({"optimizer": optimizer} if optimizer != "sgd" else {}),
        **({"schedule": dict(schedule)} if schedule and schedule != {"kind": "cosine"} else {}),
        "adversarial_eps": adversarial_eps, "pgd_steps": pgd_steps, "pgd_step_size": pgd_step_size,
        "seed": seed, "steps_per_epoch": steps,
    }
    history: list[dict[str, Any]] = []
    start = 0
    with modes_kept(net), cpu_numerics(dev):
        state = ckpt.load(model=net, optimizer=opt, scheduler=sched, map_location=dev)
        if state is not None:
            if state.get("config") != config:
                raise ValueError(
                    f"checkpoint {ckpt.path} was written by a run with settings {state.get('config')}, but "
                    f"this run uses {config}. Resume with the same settings, or delete the checkpoint "
                    "(or choose another path) to start afresh."
                )
            start, history = int(state["epoch"]), list(state.get("history", []))
        normalize = getattr(net, "normalize", None)
        last = epochs if stop_after is None else min(epochs, start + stop_after)
        bar = tqdm(range(start, last), desc=f"pretrain ({loss_fn.name})", disable=not progress,
                   initial=start, total=epochs)
        for epoch in bar:
            seed_epoch(seed, epoch, train_loader)
            record: dict[str, Any] = {"epoch": epoch + 1, "lr": float(opt.param_groups[0]["lr"])}
            t0 = time.perf_counter()
            record.update(_train_epoch(
                net, train_loader, loss_fn, opt, sched, dev, adversarial_eps=adversarial_eps,
                pgd_steps=pgd_steps, pgd_step_size=pgd_step_size, amp=amp, channels_last=use_cl,
                batch_transform=batch_transform, progress=progress, desc=f"epoch {epoch + 1}",
            ))
            record["seconds"] = time.perf_counter() - t0
            if nc_loader is not None and ((epoch + 1) % max(1, nc_every) == 0 or epoch + 1 == epochs):
                t0 = time.perf_counter()
                record.update(_encoder_nc(net.encoder, nc_loader, pre=normalize, device=dev, amp=amp,
                                          progress=progress, desc="NC1"))
                record["nc_seconds"] = time.perf_counter() - t0
            history.append(record)
            ckpt.save(epoch=epoch + 1, model=net, optimizer=opt, scheduler=sched, history=history,
                      config=config)
            bar.set_postfix({k: f"{record[k]:.4g}" for k in ("loss", "train_accuracy", "nc1")
                             if isinstance(record.get(k), float) and math.isfinite(record[k])})
    return history

