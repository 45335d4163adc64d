"""The paper-shaped dry run: the same units on synthetic stand-ins, random weights, a step or two each.

``python -m ncutils.book --profile paper --dry-run`` must prove, before anyone spends GPU-days, that
the whole paper grid executes: every unit kind, at the paper's architectures, image sizes, class
counts and batch sizes. The dry run is a transform the engine applies to units, before any is computed:
:func:`dry` rewrites one unit (and the units it depends on), :func:`dry_grid` every unit of a chapter's
grid, sharing the rewritten dependencies. Every dataset spec becomes a
synthetic stand-in with the same image size, channels and number of classes, every public network
gets random weights (nothing is downloaded), training runs one epoch (one or two optimisation steps
on the stand-ins) and few-shot evaluation a few episodes. Rewritten units have their own keys, so a
dry run never mixes with real results.

Two scales (``scale``):

``"batch"`` (a GPU)
    the paper's batch sizes: two images per class, and at least one full batch for pre-training, so
    that a dry run on the GPU meets the memory and throughput of the real run.
``"minimal"`` (a CPU)
    the least data that runs every code path: stand-ins of :data:`MINIMAL_CLASSES` of the classes
    (spread over the label range, the classifiers keep every class) with two images each, and batches
    of at most :data:`MINIMAL_BATCH` images; few-shot episodes draw from ``ways`` classes with
    :data:`MINIMAL_QUERIES` query images each; adversarial training attacks with one PGD step. A forward pass of
    ViT-B/32 at 384 px costs about 13 GFLOPs an image, so the 134 fine-tuning units at the batch scale
    alone take hours on two CPU cores.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ncutils.book import datasets
from ncutils.book.engine.units import Unit

__all__ = ["CAPS", "MINIMAL_BATCH", "MINIMAL_CLASSES", "MINIMAL_QUERIES", "MINIMAL_SCALE", "SCALES", "dry",
           "dry_grid"]

PER_CLASS = 2
MINIMAL_CLASSES = 4
MINIMAL_BATCH = 8
MINIMAL_QUERIES = 2
SCALES = ("batch", "minimal")
#: Upper bounds on integer configuration fields, per scale (``None`` fields are left alone).
CAPS = {"batch": {"epochs": 1, "episodes": 3},
        "minimal": {"epochs": 1, "episodes": 3, "batch_size": MINIMAL_BATCH, "loader_batch": MINIMAL_BATCH,
                    "queries": MINIMAL_QUERIES, "pgd_steps": 1}}
#: The minimal scale in one sentence, for the pages.
MINIMAL_SCALE = (f"At the minimal scale (a CPU's), every stand-in holds only {MINIMAL_CLASSES} of the classes, "
                 f"{PER_CLASS} images each (few-shot: the classes of one episode, with {MINIMAL_QUERIES} query images "
                 f"each), batches hold at most {MINIMAL_BATCH} images and adversarial training attacks with one PGD "
                 "step; a dry run on a GPU keeps the paper's batch sizes.")


def _rewrite(value: Any, memo: dict[tuple[str, str], Unit], stand_in: dict[str, Any], scale: str) -> Any:
    if isinstance(value, Unit):
        return dry(value, memo, scale)
    if isinstance(value, Mapping):
        if "source" in value and "split" in value and not isinstance(value["source"], Unit):
            return datasets.stand_in(value, **stand_in)
        if isinstance(value.get("public"), str):
            return {"random": value["public"], "num_classes": 1000, "seed": 0}
        caps, out = CAPS[scale], {}
        for k, v in value.items():
            if k in caps and isinstance(v, int):
                out[k] = min(v, caps[k])
            elif k == "nc_every":
                out[k] = None
            else:
                out[k] = _rewrite(v, memo, stand_in, scale)
        return out
    if isinstance(value, (list, tuple)):
        return [_rewrite(v, memo, stand_in, scale) for v in value]
    return value


def dry(u: Unit, memo: dict[tuple[str, str], Unit] | None = None, scale: str = "batch") -> Unit:
    """``u`` rewritten for the dry run at ``scale`` (``"batch"`` or ``"minimal"``, see the module docstring)."""
    if scale not in SCALES:
        raise ValueError(f"unknown dry-run scale {scale!r}; use one of {SCALES}.")
    memo = {} if memo is None else memo
    if (scale, u.key) not in memo:
        stand_in: dict[str, Any] = {"per_class": PER_CLASS}
        if u.kind == "fewshot_eval":  # every class needs k_shot + n_query images
            stand_in["per_class"] = max(u.config["shots"]) + min(u.config["queries"],
                                                                 CAPS[scale].get("queries", u.config["queries"]))
            if scale == "minimal":  # just enough classes for one episode
                stand_in["present"] = u.config["ways"]
        elif scale == "minimal":
            stand_in["present"] = MINIMAL_CLASSES
        elif u.kind == "pretrain":  # training drops the last partial batch: at least one full batch
            stand_in["per_class"] = max(PER_CLASS, -(-int(u.config["batch_size"]) // int(u.config["num_classes"])))
        memo[(scale, u.key)] = Unit(u.kind, _rewrite(u.config, memo, stand_in, scale))
    return memo[(scale, u.key)]


def dry_grid(grid: dict[str, dict[Any, Unit]], scale: str) -> dict[str, dict[Any, Unit]]:
    """Every unit of ``grid`` (named groups of labelled units) rewritten by :func:`dry` at ``scale``, with one
    memo: a unit several units depend on is rewritten once. The groups and labels are kept."""
    memo: dict[tuple[str, str], Unit] = {}
    return {group: {label: dry(u, memo, scale) for label, u in units.items()} for group, units in grid.items()}
