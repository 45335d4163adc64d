"""Fine-tuning one configuration (Section 3.3: Tables 3-7, Figs. 10, 11, 14).

Kind ``finetune``: a backbone gets a new classifier and is trained with one of the four methods
(``linear`` probe with BatchNorm statistics updated on the downstream data, ``layer`` FT of one
block, ``scl`` FT with the skip connection, ``full`` FT), then tested. Config: ``backbone``
(backbone spec), ``method``, ``block`` (paper numbering, for ``layer``/``scl``), ``num_classes``,
``train`` (dataset spec, optionally a class-balanced ``subset`` for Fig. 11), ``test``, ``epochs``,
``lr``, ``weight_decay``, ``batch_size``, ``seed``, ``layerwise`` (also measure every block's NC1,
Figs. 10 and 14) and ``pool`` (``avg``; ``cls`` for ViT class tokens as in Fig. 14). Result:
``accuracy`` (test, %), ``nc1`` (penultimate NC1 on the training data, Table 3), ``percent`` of
parameters trained, ``train_accuracy`` (last epoch), ``history``, ``seconds``, and with ``layerwise``
``layer_nc1`` (every block, then the penultimate feature).

Kind ``param_percentages``: every "percentage of parameters fine-tuned" cell of Tables 3-7 computed
from real networks (config: the cells, as printed in the paper).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from ncutils import data, features, finetune
from ncutils.book import datasets, networks
from ncutils.book.engine.units import kind
from ncutils.book.experiments.probing import nc1_resamples


@kind("finetune")
def run_finetune(cfg: Mapping[str, Any], ctx) -> dict:
    """Fine-tune a backbone with one method on one downstream training set and test it (Table 3)."""
    back = networks.backbone(cfg["backbone"], ctx)
    train_set = datasets.build(cfg["train"], data_root=ctx.data_root)
    test_set = datasets.build(cfg["test"], data_root=ctx.data_root)
    bs = min(cfg["batch_size"], len(train_set))
    train = data.make_loader(train_set, bs, shuffle=True, seed=cfg["seed"], device=ctx.device)
    test = data.make_loader(test_set, 256, device=ctx.device)
    torch.manual_seed(cfg["seed"])
    net = finetune.build(back, cfg["method"], cfg["num_classes"], block=cfg.get("block"))
    fit = finetune.fit(net, train, epochs=cfg["epochs"], lr=cfg["lr"], weight_decay=cfg["weight_decay"],
                       test_loader=test, checkpoint=ctx.checkpoint_path(), seed=cfg["seed"], device=ctx.device,
                       progress=ctx.progress)
    out = {"accuracy": fit.test_accuracy, "nc1": fit.train_nc1,
           "percent": 100 * finetune.trainable_fraction(net), "train_accuracy": fit.history[-1]["train_accuracy"],
           "history": fit.history, "seconds": fit.seconds}
    plain = data.make_loader(train_set, 256, device=ctx.device)
    boot = cfg.get("bootstrap")
    if boot:  # intervals for the penultimate NC1 (Fig. 10's comparisons across blocks)
        feats, labels = _penultimate(net, plain, ctx.device)
        out["nc1_bootstrap"] = nc1_resamples({"penultimate": feats}, labels, samples=boot["samples"],
                                             resamples=boot["resamples"], seed=boot["seed"])["penultimate"]
    if cfg.get("layerwise"):
        nc = features.layerwise_nc(net.backbone, plain, list(range(1, len(net.units) + 1)),
                                   pool=cfg.get("pool", "avg"), progress=False, device=ctx.device)
        out["layer_nc1"] = [v["nc1"] for v in nc.values()] + [fit.train_nc1]
    return out


def _penultimate(net, loader, device) -> tuple[np.ndarray, np.ndarray]:
    """The classifier's input (penultimate feature, with SCL's skip) of every sample, in eval mode."""
    from ncutils.runtime import resolve_device

    dev = resolve_device(device)
    net.to(dev).eval()
    xs, ys = [], []
    with torch.inference_mode():
        for x, y in loader:
            xs.append(net.features(x.to(dev)).double().cpu())
            ys.append(torch.as_tensor(y).cpu())
    return torch.cat(xs).numpy(), torch.cat(ys).numpy()


@kind("param_percentages")
def run_param_percentages(cfg: Mapping[str, Any], ctx) -> dict:
    """The "percentage of parameters fine-tuned" of every given cell, from real networks (Tables 3-7)."""
    return {"cells": finetune.reproduce_percentages(cfg["cells"])}
