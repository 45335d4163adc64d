"""Ranking candidate pre-trained models on a target dataset (:func:`rank_models`): model building,
penultimate features (and the source classifier's outputs on them) with an on-disk cache, and every score of
:mod:`ncutils.transferability.scores` and :mod:`ncutils.transferability.baselines`."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import timm
import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ncutils import models as ncmodels
from ncutils.features import PENULTIMATE, extract_features
from ncutils.transferability.baselines import gbc, leep, nce, nleep, parc, sfda, transrate
from ncutils.transferability.scores import (
    DEFAULT_SCORES,
    NCTI_TERMS,
    SCORES,
    hscore,
    logme,
    nc1_score,
    ncti,
    ncti_components,
)

__all__ = ["rank_models"]


class _TimmPenultimate(nn.Module):
    """A timm network with its classifier exposed as ``fc``, whose input is the penultimate feature.

    That feature is timm's pre-logits output ``forward_head(..., pre_logits=True)``; the
    network's own ``forward`` is not used.
    """

    def __init__(self, net: nn.Module, name: str):
        super().__init__()
        head = net.get_classifier()
        if not isinstance(head, nn.Linear):
            raise TypeError(
                f"timm model {name!r} has a {type(head).__name__} classifier, not a single nn.Linear; pass "
                "it as a (name, module) pair whose classifier is the last nn.Linear (or an `fc` attribute)."
            )
        self.net = net
        self.fc = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.net.forward_head(self.net.forward_features(x), pre_logits=True))


def _model_name(spec: Any) -> str:
    if isinstance(spec, str):
        return spec
    if isinstance(spec, (tuple, list)) and len(spec) == 2 and isinstance(spec[0], str) \
            and isinstance(spec[1], nn.Module):
        return spec[0]
    raise TypeError(
        "each model must be a torchvision model name, a 'timm:<name>' string or a (name, nn.Module) pair; "
        f"got {type(spec).__name__}."
    )


def _build_model(spec: str | tuple[str, nn.Module], pretrained: bool) -> nn.Module:
    if not isinstance(spec, str):
        return spec[1]
    if spec.startswith("timm:"):
        name = spec[len("timm:"):]
        net = timm.create_model(name, pretrained=pretrained)
        return net if ncmodels.is_vit(net) else _TimmPenultimate(net, name)
    if spec not in torchvision.models.list_models(module=torchvision.models):
        raise ValueError(
            f"{spec!r} is not a torchvision classification model; use a name from "
            "torchvision.models.list_models(module=torchvision.models), "
            "'timm:<name>' for a timm model, or a (name, nn.Module) pair."
        )
    return torchvision.models.get_model(spec, weights="DEFAULT" if pretrained else None)


def _loader(dataset: Dataset | DataLoader, batch_size: int) -> Iterable:
    if isinstance(dataset, DataLoader):
        return dataset
    if isinstance(dataset, Dataset):
        return DataLoader(dataset, batch_size=batch_size, shuffle=False)
    raise TypeError(
        f"dataset must be a torch Dataset or DataLoader of (image, label); got {type(dataset).__name__}."
    )


def _cache_path(cache_dir: str | os.PathLike, model: str, dataset_name: str) -> Path:
    def slug(s: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", s)

    return Path(cache_dir) / f"{slug(model)}__{slug(dataset_name)}.pt"


def _load_cache(path: Path, model: str, dataset_name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    fix = f"delete {path} and call rank_models again to extract the features anew."
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unreadable file: truncated, not a torch file, wrong pickle
        reason = (str(exc).strip().splitlines() or [""])[0][:200]
        raise ValueError(
            f"feature cache {path} is corrupt or unreadable ({type(exc).__name__}: {reason}); {fix}"
        ) from exc
    ok = (isinstance(blob, dict) and isinstance(blob.get("features"), torch.Tensor)
          and isinstance(blob.get("labels"), torch.Tensor) and blob["features"].ndim == 2
          and blob["labels"].ndim == 1 and blob["features"].shape[0] == blob["labels"].shape[0])
    if not ok:
        raise ValueError(f"feature cache {path} does not hold (N, d) features and (N,) labels; {fix}")
    if (blob.get("model"), blob.get("dataset")) != (model, dataset_name):
        raise ValueError(
            f"feature cache {path} belongs to model {blob.get('model')!r} on {blob.get('dataset')!r}, not to "
            f"{model!r} on {dataset_name!r} (their file names coincide); use another cache_dir or {fix}"
        )
    logits = blob.get("logits")
    return blob["features"], blob["labels"], logits if isinstance(logits, torch.Tensor) else None


def _save_cache(path: Path, model: str, dataset_name: str, feats: torch.Tensor, labels: torch.Tensor,
                logits: torch.Tensor | None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save({"model": model, "dataset": dataset_name, "features": feats, "labels": labels, "logits": logits},
               tmp)
    os.replace(tmp, path)  # never leave a half-written cache behind


def _module_device(module: nn.Module) -> torch.device | None:
    p = next(iter(module.parameters()), None)
    return None if p is None else p.device


def _source_head(model: nn.Module, dim: int) -> nn.Module | None:
    """The model's source classifier when it is a linear map of the penultimate feature, else ``None``."""
    try:
        head = ncmodels.classifier(model)
    except TypeError:
        return None
    return head if isinstance(head, nn.Linear) and head.in_features == dim else None


def _features_of(spec: str | tuple[str, nn.Module], loader: Iterable, *, dataset_name: str,
                 cache_dir: str | os.PathLike | None, device: str | torch.device, pretrained: bool,
                 progress: bool, need_logits: bool = False) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Penultimate features, labels and the source classifier's outputs (``None`` for a model without one) of
    one model, from the cache when there is one (and holds the outputs, when they are needed)."""
    name = _model_name(spec)
    path = None if cache_dir is None else _cache_path(cache_dir, name, dataset_name)
    if path is not None and path.exists():
        cached = _load_cache(path, name, dataset_name)
        if cached[2] is not None or not need_logits:
            return cached
    model = _build_model(spec, pretrained)
    home = _module_device(model)
    try:
        out = extract_features(model, loader, (PENULTIMATE,), device=device, progress=progress,
                               desc=f"features {name}")
    finally:
        if home is not None and not isinstance(spec, str):
            model.to(home)  # give a caller's module back on its own device
    feats, labels = out[PENULTIMATE].float().cpu(), out["labels"].long().cpu()
    head = _source_head(model, feats.shape[1])
    logits = None
    if head is not None:
        with torch.inference_mode():
            logits = torch.cat([head(chunk.to(_module_device(head) or "cpu")).float().cpu()
                                for chunk in feats.split(4096)])
    if path is not None:
        _save_cache(path, name, dataset_name, feats, labels, logits)
    return feats, labels, logits


def _check_scores(scores: Sequence[str]) -> tuple[str, ...]:
    scores = (scores,) if isinstance(scores, str) else tuple(scores)
    unknown = [s for s in scores if s not in SCORES]
    if unknown or not scores:
        raise ValueError(f"unknown scores {unknown}; choose a non-empty subset of {SCORES}.")
    return tuple(dict.fromkeys(scores))


_BASELINES = {"logme": logme, "hscore": hscore, "nc1": nc1_score, "nleep": nleep, "parc": parc, "sfda": sfda,
              "gbc": gbc, "transrate": transrate}
_FROM_LOGITS = {"leep": lambda z, y: leep(torch.softmax(z.double(), 1), y), "nce": lambda z, y: nce(z.argmax(1), y)}


def rank_models(
    models: Sequence[str | tuple[str, nn.Module]],
    dataset: Dataset | DataLoader,
    *,
    dataset_name: str,
    scores: Sequence[str] = DEFAULT_SCORES,
    batch_size: int = 64,
    cache_dir: str | os.PathLike | None = None,
    device: str | torch.device = "auto",
    pretrained: bool = True,
    progress: bool = True,
) -> pd.DataFrame:
    """Score candidate pre-trained models on a target dataset and rank them by NCTI.

    Parameters
    ----------
    models : sequence
        Candidates, each a torchvision model name (``"resnet50"``, built by
        ``torchvision.models.get_model``), a ``"timm:<name>"`` string (``timm.create_model``), or a
        ``(name, nn.Module)`` pair such as a network trained earlier. Names must be unique.
    dataset : torch Dataset or DataLoader
        ``(image, label)`` pairs, already transformed for the models (the target training set).
    dataset_name : str
        Names the dataset in the feature cache.
    scores : sequence of names from :data:`~ncutils.transferability.scores.SCORES`
        Scores to compute (default NCTI, LogME, H-score and ``"nc1"``, i.e. :func:`nc1_score`, ``-NC1``).
        ``"leep"`` and ``"nce"`` read the outputs of the model's source classifier on the target images
        (its final ``nn.Linear`` applied to the penultimate features): a model without one gets NaN.
    batch_size : int
        Batch size of the DataLoader built when ``dataset`` is a Dataset.
    cache_dir : path, optional
        Directory for one ``.pt`` file of penultimate features (and source-classifier outputs) per
        (model, dataset_name); an existing file is used instead of running (or even building) the model.
    device : str or torch.device
        Where the models run; ``"auto"`` picks CUDA when available.
    pretrained : bool
        Load the default pretrained weights of torchvision and timm models (needs the weights
        in the local cache or network access).
    progress : bool
        Show a progress bar per model.

    Returns
    -------
    pandas.DataFrame
        One row per model (index ``model``) and one column per requested score, higher being
        better for each, plus the raw NCTI terms ``seli``, ``ncc``, ``vc`` when NCTI is requested;
        sorted by NCTI (else by the first requested score), best first. The ``nc1`` column holds
        ``-NC1``.
    """
    scores = _check_scores(scores)
    models = list(models)
    names = [_model_name(spec) for spec in models]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"model names must be unique; {dup} appear more than once.")
    if "ncti" in scores and len(names) < 2:
        raise ValueError(
            "NCTI compares candidate models and needs at least 2; pass more models or drop 'ncti'."
        )
    loader = _loader(dataset, batch_size)
    rows: dict[str, dict[str, float]] = {}
    components: dict[str, tuple[float, float, float]] = {}
    n_samples: dict[str, int] = {}
    for spec, name in zip(models, names):
        feats, labels, logits = _features_of(spec, loader, dataset_name=dataset_name, cache_dir=cache_dir,
                                             device=device, pretrained=pretrained, progress=progress,
                                             need_logits=bool(set(scores) & set(_FROM_LOGITS)))
        n_samples[name] = feats.shape[0]
        if "ncti" in scores:
            components[name] = ncti_components(feats, labels)
        rows[name] = {s: _BASELINES[s](feats, labels) for s in scores if s in _BASELINES}
        rows[name].update({s: float("nan") if logits is None else _FROM_LOGITS[s](logits, labels)
                           for s in scores if s in _FROM_LOGITS})
    if len(set(n_samples.values())) > 1:
        raise ValueError(
            f"the models saw different numbers of samples {n_samples}; a cached file is probably from "
            "another version of the dataset: delete the stale files in cache_dir or use a new dataset_name."
        )
    table = pd.DataFrame(index=pd.Index(names, name="model"))
    if "ncti" in scores:
        table["ncti"] = pd.Series(ncti(components))
    for s in scores:
        if s != "ncti":
            table[s] = pd.Series({m: r[s] for m, r in rows.items()})
    if "ncti" in scores:
        for i, term in enumerate(NCTI_TERMS):
            table[term] = pd.Series({m: c[i] for m, c in components.items()})
    table = table[list(scores) + (list(NCTI_TERMS) if "ncti" in scores else [])]
    return table.sort_values("ncti" if "ncti" in scores else scores[0], ascending=False, kind="stable")

