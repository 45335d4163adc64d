"""Frozen features: linear probes and layer-wise collapse (Sections 2.4, 3.1 and 3.2).

``probe``
    Linear transfer of a frozen encoder (Table 1, Figs. 4-6, 13): penultimate features of the
    downstream training and test sets, a linear classifier trained with the paper's recipe, and the
    NC1 of the downstream training features. Arguments (:func:`run_probe`'s signature is the schema):
    ``backbone`` (backbone spec), ``train``, ``test`` (dataset specs), ``epochs``, ``lr``, ``batch_size``
    (of the classifier's SGD), ``loader_batch`` (of the feature extraction), ``seed``. Result:
    ``test_accuracy``, ``train_accuracy``, ``nc1``, ``feature_dim``, ``num_train``, ``num_test``.
``layerwise_probe``
    The same for the output of every requested block / layer (Figs. 7, 9). Its arguments
    (:func:`run_layerwise_probe`) add ``layers`` (paper numbering) and ``pool``; result:
    ``{layer: {nc1, train_accuracy, test_accuracy, dim, ...}}``.
``layer_nc``
    NC1, CDNV and NC2 of every requested layer's output on one dataset (Fig. 2). Arguments
    (:func:`run_layer_nc`): ``backbone`` (backbone spec), ``data``, ``layers``, ``loader_batch``, ``pool``;
    result ``{layer: {nc1, cdnv, nc2}}``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils import data as data_
from ncutils import features, pretrain, probe
from ncutils.book import datasets, networks
from ncutils.book.engine.units import kind


def _loader(spec: Mapping[str, Any], batch: int, ctx):
    return data_.make_loader(datasets.build(spec, data_root=ctx.data_root), batch, device=ctx.device)


@kind("probe")
def run_probe(ctx, *, backbone: dict, train: dict, test: dict, epochs: int, lr: float = 0.1, batch_size: int = 256,
              loader_batch: int = 256, seed: int) -> dict:
    """Linear probe of a frozen encoder on a downstream set, and the downstream NC1 (Section 3.2)."""
    enc = networks.encoder(backbone, ctx)
    return pretrain.transfer(
        enc, _loader(train, loader_batch, ctx), _loader(test, loader_batch, ctx),
        epochs=epochs, lr=lr, batch_size=batch_size, seed=seed,
        progress=ctx.progress, device=ctx.device)


@kind("layerwise_probe")
def run_layerwise_probe(ctx, *, backbone: dict, train: dict, test: dict, layers: list, pool: str = "avg",
                        epochs: int, loader_batch: int, seed: int) -> dict:
    """NC1 and linear-probe accuracy of the output of every requested layer (Figs. 7 and 9)."""
    enc = networks.encoder(backbone, ctx)
    return probe.layerwise_probe(
        enc, _loader(train, loader_batch, ctx), _loader(test, loader_batch, ctx),
        list(layers), pool=pool, epochs=epochs, device=ctx.device,
        seed=seed, progress=ctx.progress)


@kind("layer_nc")
def run_layer_nc(ctx, *, backbone: dict, data: dict, layers: list, loader_batch: int, pool: str = "avg") -> dict:
    """NC1, CDNV and NC2 of every requested layer on one dataset (Fig. 2's progressive collapse)."""
    enc = networks.encoder(backbone, ctx)
    loader = _loader(data, loader_batch, ctx)
    out = features.layerwise_nc(enc, loader, list(layers), pool=pool, progress=False,
                                device=ctx.device)
    return {name: {k: float(v[k]) for k in ("nc1", "cdnv", "nc2")} for name, v in out.items()}
