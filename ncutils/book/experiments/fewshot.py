"""Few-shot evaluation of a frozen backbone (Section 3.2, Table 2; Tian et al. 2020).

Kind ``fewshot_eval``: embed every image of the meta-test split with the frozen backbone, then for
each of ``episodes`` ``ways``-way ``k``-shot tasks fit a logistic regression on the support
embeddings and score it on ``queries`` query images per class. Arguments (:func:`run_fewshot_eval`'s
signature is the schema): ``backbone`` (backbone spec; the few-shot backbones are ``pretrain`` units
trained on the meta-train classes only),
``data`` (dataset spec of the meta-test split), ``shots``, ``ways``, ``queries``, ``episodes``,
``seed``, ``loader_batch``. Result per shot: mean ``accuracy`` and ``ci95`` over episodes, the
per-episode ``accuracies``, the mean query ``nc1`` and per-episode ``nc1_per_episode``; and
``split_nc1``, the NC1 of all meta-test embeddings with their labels (Table 2's bottom block).
"""

from __future__ import annotations

from typing import Any

from ncutils import fewshot, metrics
from ncutils.book import datasets, networks
from ncutils.book.engine.units import kind


@kind("fewshot_eval")
def run_fewshot_eval(ctx, *, backbone: dict, data: dict, shots: list, ways: int, queries: int, episodes: int,
                     seed: int, loader_batch: int) -> dict:
    """Few-shot accuracy and query NC1 of a frozen backbone on meta-test episodes (Table 2)."""
    enc = networks.encoder(backbone, ctx)
    meta_test = datasets.build(data, data_root=ctx.data_root)
    feats, labels = fewshot.embed(enc, meta_test, batch_size=loader_batch, device=ctx.device)
    by_shot = fewshot.evaluate_shots(feats, labels, shots, n_way=ways, n_query=queries,
                                     episodes=episodes, seed=seed)
    out: dict[str, Any] = {
        str(k): {"accuracy": r["accuracy"], "ci95": r["ci95"], "accuracies": r["accuracies"], "nc1": r["nc1"],
                 "nc1_per_episode": r["nc1_per_episode"]} for k, r in by_shot.items()}
    out["split_nc1"] = metrics.nc1(feats, labels)
    return out
