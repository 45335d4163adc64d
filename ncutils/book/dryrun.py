"""The paper-shaped dry run: the same units on synthetic stand-ins, random weights, a step or two each.

``python -m ncutils.book --profile paper --dry-run`` must prove, before anyone spends GPU-days, that
the whole paper grid executes: every unit kind, at the paper's architectures, image sizes, class
counts and batch sizes. :func:`dry` rewrites a unit accordingly: every dataset spec becomes a
synthetic stand-in with the same image size, channels and classes (two images per class, enough
for the episodes of few-shot units), every public network gets random weights (nothing is
downloaded), training runs one epoch (one or two optimisation steps on the stand-ins) and few-shot
evaluation a few episodes. Rewritten units have their own keys, so a dry run never mixes with real
results.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils.book import datasets
from ncutils.book.units import Unit

__all__ = ["dry"]

PER_CLASS = 2


def _rewrite(value: Any, memo: dict[str, Unit], per_class: int) -> Any:
    if isinstance(value, Unit):
        return dry(value, memo)
    if isinstance(value, Mapping):
        if "source" in value and "split" in value and not isinstance(value["source"], Unit):
            return datasets.stand_in(value, per_class=per_class)
        if isinstance(value.get("public"), str):
            return {"random": value["public"], "num_classes": 1000, "seed": 0}
        out = {}
        for k, v in value.items():
            if k == "epochs" and isinstance(v, int):
                out[k] = min(v, 1)
            elif k == "episodes" and isinstance(v, int):
                out[k] = min(v, 3)
            elif k == "nc_every":
                out[k] = None
            else:
                out[k] = _rewrite(v, memo, per_class)
        return out
    if isinstance(value, (list, tuple)):
        return [_rewrite(v, memo, per_class) for v in value]
    return value


def dry(u: Unit, memo: dict[str, Unit] | None = None) -> Unit:
    """``u`` rewritten for the dry run (see the module docstring)."""
    memo = {} if memo is None else memo
    if u.key not in memo:
        per_class = PER_CLASS
        if u.kind == "fewshot_eval":  # every class needs k_shot + n_query images
            per_class = max(u.config["shots"]) + u.config["queries"]
        elif u.kind == "pretrain":  # training drops the last partial batch: at least one full batch
            per_class = max(PER_CLASS, -(-int(u.config["batch_size"]) // int(u.config["num_classes"])))
        memo[u.key] = Unit(u.kind, _rewrite(u.config, memo, per_class))
    return memo[u.key]
