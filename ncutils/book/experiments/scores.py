"""Transferability scores of one candidate model on one target dataset (NCTI, Wang et al. 2023, and the
scores it is compared with).

Kind ``transfer_scores``: penultimate features of the target training set from the frozen candidate,
then the three raw NCTI terms (``seli``, ``ncc``, ``vc``; :func:`ncutils.transferability.ncti_components`)
and every baseline of :data:`FEATURE_SCORES` on the features; where the candidate has a source classifier
(:func:`ncutils.book.networks.encoder_and_source_head`), LEEP on its softmax outputs and NCE on its
predicted source classes (``None`` otherwise). A score undefined for the number of samples (N-LEEP needs
five per class) is ``None``. NCTI itself normalises each term over all candidates, so
chapters combine these per-candidate results with :func:`ncutils.transferability.ncti`.
Arguments (:func:`run_transfer_scores`'s signature is the schema): ``backbone`` (backbone spec), ``data``
(dataset spec), ``loader_batch``, and ``subsample`` (default ``None``: every score on all samples);
``{"scores": [...], "per_class": n, "seed": s}`` computes the named scores (the costly ones: N-LEEP's
Gaussian mixtures, PARC's N x N correlation) on a class-balanced share of ``n`` samples of every class
(all of the smallest class's where it has fewer; :func:`ncutils.data.balanced_subset` with ``seed``), and
every other score on all samples.
"""

from __future__ import annotations

import torch

from ncutils import data as data_
from ncutils import features, transferability
from ncutils.book import datasets, networks
from ncutils.book.engine.units import kind

__all__ = ["FEATURE_SCORES", "run_transfer_scores"]

#: Scores computed from the penultimate features and labels alone (larger = more transferable).
FEATURE_SCORES = {"logme": transferability.logme, "hscore": transferability.hscore,
                  "nc1": transferability.nc1_score, "nleep": transferability.nleep,
                  "parc": transferability.parc, "sfda": transferability.sfda, "gbc": transferability.gbc,
                  "transrate": transferability.transrate}

#: Samples per class a score needs beyond one: N-LEEP fits a mixture of 5 Gaussians per class (Li et al. 2021).
_SAMPLES_PER_CLASS = {"nleep": 5}


def balanced_share(y: torch.Tensor, per_class: int, seed: int) -> torch.Tensor:
    """Indices (sorted) of the same number of samples of every class of ``y``: ``per_class``, or all of the
    smallest class where it has fewer (:func:`ncutils.data.balanced_subset`, seeded with ``seed``)."""
    n = min(int(per_class), int(y.unique(return_counts=True)[1].min()))
    return torch.as_tensor(data_.balanced_subset(y.cpu(), n, seed=int(seed)))


def _defined(name: str, n: int, k: int) -> bool:
    """Whether score ``name`` is defined for ``n`` samples of ``k`` classes (every score needs ``n > k``)."""
    return n > k and n >= _SAMPLES_PER_CLASS.get(name, 1) * k


@kind("transfer_scores")
def run_transfer_scores(ctx, *, backbone: dict, data: dict, loader_batch: int, subsample: dict | None = None) -> dict:
    """The raw NCTI terms and every baseline score of one frozen candidate on one target set."""
    enc, head = networks.encoder_and_source_head(backbone, ctx)
    loader = data_.make_loader(datasets.build(data, data_root=ctx.data_root), loader_batch,
                               device=ctx.device)
    out = features.extract_features(enc, loader, (features.PENULTIMATE,), device=ctx.device, progress=ctx.progress)
    x, y = out[features.PENULTIMATE].float(), out["labels"].long()
    seli, ncc, vc = transferability.ncti_components(x, y)
    k = int(y.unique().numel())
    share = subsample or {}
    small = set(share.get("scores", ()))
    unknown = small - set(FEATURE_SCORES)
    if unknown:
        raise ValueError(f"subsample names unknown scores {sorted(unknown)}; use some of {sorted(FEATURE_SCORES)}.")
    if small:
        idx = balanced_share(y, int(share["per_class"]), int(share["seed"])).to(y.device)
        xs, ys = x[idx], y[idx]
    result = {"seli": seli, "ncc": ncc, "vc": vc}
    for name, score in FEATURE_SCORES.items():
        xx, yy = (xs, ys) if name in small else (x, y)
        # a score undefined at this size (a dry run's few images) is recorded as None, never guessed
        result[name] = score(xx, yy) if _defined(name, int(xx.shape[0]), k) else None
    if head is not None:
        with torch.inference_mode():
            logits = head.to(x.device)(x).double()
        result["leep"] = transferability.leep(torch.softmax(logits, 1), y)
        result["nce"] = transferability.nce(logits.argmax(1), y)
    else:
        result["leep"] = result["nce"] = None
    return {**result, "num_samples": int(x.shape[0]), "feature_dim": int(x.shape[1]),
            "source_classes": None if head is None else int(logits.shape[1])}
