"""Source models: pre-training a network on the source data (Section 3.1, Appendix B).

Kind ``pretrain`` trains :class:`ncutils.pretrain.PretrainNet` (encoder, projection head, classifier)
and stores its weights with the result. Its configuration is the signature of :func:`run_pretrain` (types
and defaults there); what the arguments mean:

``network``       network spec (:mod:`ncutils.book.networks`)
``data``          dataset spec of the source training set (normalisation included)
``num_classes``   classes of the source task
``loss``          ``ce``, ``mse`` or ``supcon``; ``head_layers`` 0-3 (Table 1, Fig. 3); ``simclr``: label-free
                  contrastive (the CLIP stand-in)
``loss_options``  options of :func:`ncutils.pretrain.make_loss` (e.g. MSE's rescaling ``scale``, ``weight``;
                  default none)
``level``         augmentation level 1-5 (Fig. 4); ``padding`` of its random crop (level >= 2);
                  ``adv_eps`` l-inf radius or ``None``, ``pgd_steps`` of its attack (``None``: the
                  library's default)
``epochs``, ``lr``, ``min_lr``, ``momentum``, ``weight_decay``, ``batch_size``, ``seed``
``schedule``      ``{"kind": "cosine"}`` (the paper's recipe) or ``{"kind": "step", "milestones": [...],
                  "gamma": 0.1}`` (the few-shot recipe of Table 2)
``nc_every``      measure the source NC1 every this many epochs (Fig. 3's curves), and after the last
                  (``None``: after the last only)
``until``         ``None``, or ``{"train_accuracy": a, "max_extra_epochs": k}``: after the schedule, train
                  up to ``k`` more epochs at a quarter of ``lr`` (constant) until the training accuracy
                  on the un-augmented source set reaches ``a`` percent (the terminal phase with margin,
                  on any machine's float rounding)

Result: ``history`` (per epoch: loss, training accuracy on the augmented batches, learning rate,
source NC1 when measured; the epochs added by ``until`` are flagged ``extra``), ``extra_epochs``
(how many), ``source_nc1`` (Eq. 4 on the un-augmented source training set, Table 1),
``train_accuracy`` (on the un-augmented source training set after training: the terminal-phase
check; for the contrastive losses, which have no classifier, the accuracy of a linear classifier fitted to convergence
on the encoder's frozen features), ``seconds``.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from ncutils import data as data_
from ncutils import features, pretrain, training
from ncutils.book import datasets
from ncutils.book.engine.units import kind
from ncutils.book.networks import build_net

__all__ = ["COSINE", "NO_OPTIONS", "run_pretrain"]

#: The default ``schedule``: the paper's cosine decay from ``lr`` to ``min_lr``.
COSINE: Mapping[str, Any] = MappingProxyType({"kind": "cosine"})
#: The default ``loss_options``: none (the loss with its own defaults).
NO_OPTIONS: Mapping[str, Any] = MappingProxyType({})


def _linear_accuracy(encoder: nn.Module, loader, pre: nn.Module, device) -> float:
    """Training accuracy of the best linear classifier of the encoder's frozen features (for SupCon, which has
    no classifier): multinomial logistic regression on standardised features, fitted to convergence by L-BFGS
    in float64 (a convex problem: the answer does not depend on a learning rate or on the data order)."""
    feats = features.extract_features(features.EncoderFeatures(encoder, pre), loader, ("feature",), device=device,
                                      progress=False)
    x, y = feats["feature"].double().cpu(), feats["labels"].cpu()
    x = (x - x.mean(0)) / x.std(0).clamp_min(1e-12)
    k = int(y.max()) + 1
    w = torch.zeros(x.shape[1] + 1, k, dtype=torch.float64, requires_grad=True)
    xb = torch.cat([x, torch.ones(len(x), 1, dtype=torch.float64)], 1)
    opt = torch.optim.LBFGS([w], lr=1.0, max_iter=500, tolerance_grad=1e-10, tolerance_change=1e-14,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = nn.functional.cross_entropy(xb @ w, y) + 1e-6 * w[:-1].pow(2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    pred = (xb @ w.detach()).argmax(1)
    return 100.0 * (pred == y).double().mean().item()


def _train_accuracy(net, loader, device) -> float:
    """Accuracy on the un-augmented source training set (the terminal-phase check)."""
    if net.classifier is not None:
        return training.evaluate(net, loader, device=device)["accuracy"]
    return _linear_accuracy(net.encoder, loader, net.normalize, device)


@kind("pretrain", stores_weights=True)
def run_pretrain(ctx, *, network: dict, data: dict, num_classes: int, loss: str,
                 loss_options: Mapping[str, Any] = NO_OPTIONS, head_layers: int, level: int,
                 padding: int | None = None, adv_eps: float | None = None, pgd_steps: int | None = None,
                 epochs: int, lr: float, min_lr: float = 1e-4, momentum: float = 0.9, weight_decay: float = 1e-4,
                 optimizer: str = "sgd", batch_size: int, schedule: Mapping[str, Any] = COSINE,
                 nc_every: int | None = None, until: dict | None = None, seed: int) -> tuple[dict, nn.Module]:
    """Pre-train a source model (Section 3.1) and measure its source NC1 and training accuracy.

    ``optimizer`` and ``schedule`` give the recipe: SGD with a cosine rate for the ResNets and MLPs (the paper's),
    AdamW with a warm-up (``{"kind": "cosine", "warmup_epochs": w}``) for a ViT, as ViTs are trained."""
    adversarial = adv_eps is not None
    views = 2 if loss in pretrain.CONTRASTIVE else 1
    train_set, batch_transform = datasets.training_data(
        data, level=level, views=views, normalize=not adversarial, data_root=ctx.data_root,
        padding=padding)
    plain = datasets.build(data, data_root=ctx.data_root) if not adversarial else \
        datasets.raw(data, data_root=ctx.data_root)
    net = build_net({"network": network, "data": data, "num_classes": num_classes, "loss": loss,
                     "head_layers": head_layers, "adv_eps": adv_eps, "seed": seed})
    loader = data_.make_loader(train_set, batch_size, shuffle=True, seed=seed, drop_last=True,
                               device=ctx.device)
    nc_loader = data_.make_loader(plain, 512, device=ctx.device)
    schedule = dict(schedule)
    criterion = pretrain.make_loss(loss, **loss_options) if loss_options else loss
    # what every stretch of training shares: the loss, the optimiser's settings, the data and the attack
    # (``pgd_steps`` is None where there is no attack: the library's default then, which nothing reads)
    shared = dict(loss=criterion, momentum=momentum, weight_decay=weight_decay, optimizer=optimizer,
                  batch_transform=batch_transform, adversarial_eps=adv_eps,
                  pgd_steps=pgd_steps or 10, nc_loader=nc_loader, progress=ctx.progress, device=ctx.device)
    history = pretrain.pretrain(
        net, loader, epochs=epochs, lr=lr, min_lr=min_lr, schedule=schedule,
        seed=seed, nc_every=nc_every or epochs, checkpoint=ctx.checkpoint_path(), **shared)
    train_acc = _train_accuracy(net, nc_loader, ctx.device)
    extra = 0
    while until and train_acc < until["train_accuracy"] and extra < until["max_extra_epochs"]:
        # one more epoch at a constant quarter of the peak rate, seeded by its own number (a resumed run
        # repeats it exactly), then the check again
        extra += 1
        more = pretrain.pretrain(net, loader, epochs=1, lr=lr / 4, min_lr=lr / 4,
                                 seed=seed + 7919 * extra, nc_every=1, **shared)
        history += [dict(r, epoch=len(history) + 1, extra=True) for r in more]
        train_acc = _train_accuracy(net, nc_loader, ctx.device)
    source_nc1 = history[-1].get("nc1")
    if source_nc1 is None:
        source_nc1 = pretrain.source_nc1(net.encoder, nc_loader, normalize=net.normalize, device=ctx.device)
    result = {"history": history, "source_nc1": source_nc1, "train_accuracy": train_acc, "extra_epochs": extra}
    return result, net.cpu()
