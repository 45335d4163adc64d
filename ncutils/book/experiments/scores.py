"""Transferability scores of one candidate model on one target dataset (NCTI, Wang et al. 2023).

Kind ``transfer_scores``: penultimate features of the target training set from the frozen
candidate, then the three raw NCTI terms (``seli``, ``ncc``, ``vc``; :func:`ncutils.transferability.
ncti_components`) and the baselines LogME, H-score and -NC1. NCTI itself normalises each term over
all candidates, so chapters combine these per-candidate results with :func:`ncutils.transferability.ncti`.
Config: ``backbone`` (backbone spec), ``data`` (dataset spec), ``loader_batch``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils import data, features, transferability
from ncutils.book import datasets, networks
from ncutils.book.engine.units import kind


@kind("transfer_scores")
def run_transfer_scores(cfg: Mapping[str, Any], ctx) -> dict:
    """The raw NCTI terms, LogME, H-score and -NC1 of one frozen candidate on one target set."""
    enc = networks.encoder(cfg["backbone"], ctx)
    loader = data.make_loader(datasets.build(cfg["data"], data_root=ctx.data_root), cfg["loader_batch"],
                              device=ctx.device)
    out = features.extract_features(enc, loader, (features.PENULTIMATE,), device=ctx.device, progress=ctx.progress)
    x, y = out[features.PENULTIMATE].float(), out["labels"].long()
    seli, ncc, vc = transferability.ncti_components(x, y)
    return {"seli": seli, "ncc": ncc, "vc": vc, "logme": transferability.logme(x, y),
            "hscore": transferability.hscore(x, y), "nc1": transferability.nc1_score(x, y),
            "num_samples": int(x.shape[0]), "feature_dim": int(x.shape[1])}
