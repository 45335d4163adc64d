"""Frozen features: linear probes and layer-wise collapse (Sections 2.4, 3.1 and 3.2).

``probe``
    Linear transfer of a frozen encoder (Table 1, Figs. 4-6, 13): penultimate features of the
    downstream training and test sets, a linear classifier trained with the paper's recipe, and the
    NC1 of the downstream training features. Config: ``backbone`` (backbone spec), ``train``,
    ``test`` (dataset specs), ``epochs``, ``lr``, ``batch_size`` (of the classifier's SGD),
    ``loader_batch``, ``seed``. Result: ``test_accuracy``, ``train_accuracy``, ``nc1``,
    ``feature_dim``, ``num_train``, ``num_test``.
``layerwise_probe``
    The same for the output of every requested block / layer (Figs. 7, 9). Config adds ``layers``
    (paper numbering) and ``pool``; result: ``{layer: {nc1, train_accuracy, test_accuracy, dim, ...}}``.
``layer_nc``
    NC1, CDNV and NC2 of every requested layer's output on one dataset (Fig. 2). Config: ``backbone``
    (backbone spec), ``data``, ``layers``, ``loader_batch``, ``pool``; result ``{layer: {nc1, cdnv, nc2}}``.
    With ``bootstrap: {"samples": n, "resamples": B, "seed": s}`` the result also has ``"bootstrap"``:
    the NC1 of every layer on ``B`` class-stratified resamples (with replacement) of at most ``n``
    training samples, from which intervals for per-layer NC1 and for the per-layer decay factor follow.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ncutils import data, features, metrics, pretrain, probe
from ncutils.book import datasets, networks
from ncutils.book.engine.units import kind


def _loader(spec: Mapping[str, Any], batch: int, ctx):
    return data.make_loader(datasets.build(spec, data_root=ctx.data_root), batch, device=ctx.device)


@kind("probe")
def run_probe(cfg: Mapping[str, Any], ctx) -> dict:
    """Linear probe of a frozen encoder on a downstream set, and the downstream NC1 (Section 3.2)."""
    enc = networks.encoder(cfg["backbone"], ctx)
    return pretrain.transfer(
        enc, _loader(cfg["train"], cfg["loader_batch"], ctx), _loader(cfg["test"], cfg["loader_batch"], ctx),
        epochs=cfg["epochs"], lr=cfg.get("lr", 0.1), batch_size=cfg.get("batch_size", 256), seed=cfg["seed"],
        progress=ctx.progress, device=ctx.device)


@kind("layerwise_probe")
def run_layerwise_probe(cfg: Mapping[str, Any], ctx) -> dict:
    """NC1 and linear-probe accuracy of the output of every requested layer (Figs. 7 and 9)."""
    enc = networks.encoder(cfg["backbone"], ctx)
    return probe.layerwise_probe(
        enc, _loader(cfg["train"], cfg["loader_batch"], ctx), _loader(cfg["test"], cfg["loader_batch"], ctx),
        list(cfg["layers"]), pool=cfg.get("pool", "avg"), epochs=cfg["epochs"], device=ctx.device,
        seed=cfg["seed"], progress=ctx.progress)


@kind("layer_nc")
def run_layer_nc(cfg: Mapping[str, Any], ctx) -> dict:
    """NC1, CDNV and NC2 of every requested layer on one dataset (Fig. 2's progressive collapse)."""
    enc = networks.encoder(cfg["backbone"], ctx)
    loader = _loader(cfg["data"], cfg["loader_batch"], ctx)
    out = features.layerwise_nc(enc, loader, list(cfg["layers"]), pool=cfg.get("pool", "avg"), progress=False,
                                device=ctx.device)
    result: dict[str, Any] = {name: {k: float(v[k]) for k in ("nc1", "cdnv", "nc2")} for name, v in out.items()}
    boot = cfg.get("bootstrap")
    if boot:
        feats = features.extract_features(enc, loader, list(cfg["layers"]), pool=cfg.get("pool", "avg"),
                                          device=ctx.device, progress=False)
        labels = feats.pop("labels").cpu().numpy()
        result["bootstrap"] = nc1_resamples({k: v.double().cpu().numpy() for k, v in feats.items()}, labels,
                                            samples=boot["samples"], resamples=boot["resamples"], seed=boot["seed"])
    return result


def nc1_resamples(features_by_layer: Mapping[str, np.ndarray], labels: np.ndarray, *, samples: int,
                  resamples: int, seed: int) -> dict[str, list[float]]:
    """NC1 of every layer on ``resamples`` class-stratified bootstrap resamples of at most ``samples`` rows.

    The same resampled rows serve every layer, so statistics across layers (the per-layer decay factor)
    keep their pairing. Returns ``{layer: [NC1 of resample 1, ...]}``.
    """
    rng = np.random.default_rng(seed)
    classes = np.unique(labels)
    per = max(2, samples // len(classes))
    members = [np.flatnonzero(labels == c) for c in classes]
    out: dict[str, list[float]] = {k: [] for k in features_by_layer}
    for _ in range(resamples):
        idx = np.concatenate([rng.choice(m, size=min(per, len(m)), replace=True) for m in members])
        for k, x in features_by_layer.items():
            out[k].append(float(metrics.nc1(x[idx], labels[idx])))
    return out
