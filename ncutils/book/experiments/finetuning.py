"""Fine-tuning one configuration (Section 3.3: Tables 3-7, Figs. 10, 11, 14).

Kind ``finetune``: a backbone gets a new classifier and is trained with one of the four methods
(``linear`` probe with BatchNorm statistics updated on the downstream data, ``layer`` FT of one
block, ``scl`` FT with the skip connection, ``full`` FT), then tested. Arguments (:func:`run_finetune`'s
signature is the schema): ``backbone`` (backbone spec), ``method``, ``block`` (paper numbering, for
``layer``/``scl``; ``None`` otherwise), ``num_classes``,
``train`` (dataset spec, optionally a class-balanced ``subset`` for Fig. 11), ``test``, ``epochs``,
``lr``, ``weight_decay``, ``batch_size``, ``seed``, ``layerwise`` (also measure every block's NC1,
Figs. 10 and 14) and ``pool`` (``avg``; ``cls`` for ViT class tokens as in Fig. 14). Result:
``accuracy`` (test, %), ``nc1`` (penultimate NC1 on the training data, Table 3), ``percent`` of
parameters trained, ``train_accuracy`` (last epoch), ``history``, ``seconds``, and with ``layerwise``
``layer_nc1`` (every block, then the penultimate feature).

Kind ``param_percentages``: every "percentage of parameters fine-tuned" cell of Tables 3-7 computed
from real networks (argument ``cells``: the cells, as printed in the paper).
"""

from __future__ import annotations

import torch

from ncutils import data, features, finetune
from ncutils.book import datasets, networks
from ncutils.book.engine.units import kind


@kind("finetune")
def run_finetune(ctx, *, backbone: dict, method: str, block: int | None = None, num_classes: int, train: dict,
                 test: dict, epochs: int, lr: float, weight_decay: float, batch_size: int, seed: int,
                 layerwise: bool = False, pool: str = "avg") -> dict:
    """Fine-tune a backbone with one method on one downstream training set and test it (Table 3)."""
    back = networks.backbone(backbone, ctx)
    train_set = datasets.build(train, data_root=ctx.data_root)
    test_set = datasets.build(test, data_root=ctx.data_root)
    bs = min(batch_size, len(train_set))
    train_loader = data.make_loader(train_set, bs, shuffle=True, seed=seed, device=ctx.device)
    test_loader = data.make_loader(test_set, 256, device=ctx.device)
    torch.manual_seed(seed)
    net = finetune.build(back, method, num_classes, block=block)
    fit = finetune.fit(net, train_loader, epochs=epochs, lr=lr, weight_decay=weight_decay,
                       test_loader=test_loader, checkpoint=ctx.checkpoint_path(), seed=seed, device=ctx.device,
                       progress=ctx.progress)
    out = {"accuracy": fit.test_accuracy, "nc1": fit.train_nc1,
           "percent": 100 * finetune.trainable_fraction(net), "train_accuracy": fit.history[-1]["train_accuracy"],
           "history": fit.history, "seconds": fit.seconds}
    plain = data.make_loader(train_set, 256, device=ctx.device)
    if layerwise:
        nc = features.layerwise_nc(net.backbone, plain, list(range(1, len(net.units) + 1)),
                                   pool=pool, progress=False, device=ctx.device)
        out["layer_nc1"] = [v["nc1"] for v in nc.values()] + [fit.train_nc1]
    return out


@kind("param_percentages")
def run_param_percentages(ctx, *, cells: list) -> dict:
    """The "percentage of parameters fine-tuned" of every given cell, from real networks (Tables 3-7)."""
    return {"cells": finetune.reproduce_percentages(cells)}
