"""Layer-wise features of a network over a dataset (paper Figs. 7, 9, 10, 14; Appendix B).

The output of every residual block of a ResNet is average-pooled to one value per channel
(adaptive average pooling to 1x1, Appendix B, Fig. 9); the tokens of every ViT encoder layer are
average-pooled (all 145 tokens of ViT-B/32 at 384 px, Appendix B) or reduced to the class token
(``pool="cls"``, Fig. 14). ``"penultimate"`` is the input of the classifier.

Layers are named in the paper's numbering (``1`` or ``"block1"`` is Block/Layer 1, see
:func:`ncutils.models.blocks`) or by module path (``"layer3.0"``, ``"blocks.7"``). Extraction
uses torchvision's :func:`~torchvision.models.feature_extraction.create_feature_extractor` for
traceable networks and timm's ``forward_intermediates`` for Vision Transformers: only the
requested outputs are kept and nothing after the deepest requested layer is computed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch import nn
from torchvision.models.feature_extraction import create_feature_extractor
from tqdm.auto import tqdm

from ncutils import models
from ncutils.metrics import NCAccumulator
from ncutils.runtime import autocast, resolve_device

__all__ = ["PENULTIMATE", "EncoderFeatures", "encoder_feature_model", "extract_features", "feature_extractor",
           "iter_features", "layer_names", "layerwise_nc", "pool_features"]

#: The name of the penultimate feature (the classifier's input) among the layers of a network.
PENULTIMATE = "penultimate"
Layers = Sequence[int | str] | None


class EncoderFeatures(nn.Module):
    """``pre -> encoder -> feature``: exposes the encoder output as the module ``feature``.

    Lets :mod:`ncutils.features` read the output of any encoder (whose own classifier is gone)
    by module path, through torch.fx like every other layer.
    """

    def __init__(self, encoder: nn.Module, pre: nn.Module | None = None):
        super().__init__()
        self.pre = pre if pre is not None else nn.Identity()
        self.encoder = encoder
        self.feature = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.feature(self.encoder(self.pre(x)))


def encoder_feature_model(encoder: nn.Module, pre: nn.Module | None = None) -> tuple[nn.Module, str]:
    """``(model, layer)`` under which :func:`extract_features` and :func:`layerwise_nc` yield the output of
    ``encoder`` (a network whose classifier is gone), after ``pre`` (e.g. input normalisation) if given."""
    if models.is_vit(encoder) and (pre is None or isinstance(pre, nn.Identity)):
        return encoder, PENULTIMATE  # timm's own path; its head is the identity in an encoder
    return EncoderFeatures(encoder, pre), "feature"


def layer_names(model: nn.Module, layers: Layers = None) -> dict[str, str]:
    """Map output names to module paths; ``None`` means every block plus the penultimate feature.

    Integers and ``"block{k}"`` become ``"block{k}"`` (the paper's 1-based numbering).
    """
    if layers is None:
        layers = list(range(1, len(models.blocks(model)) + 1)) + [PENULTIMATE]
    if isinstance(layers, (str, int)):
        layers = [layers]
    out: dict[str, str] = {}
    for layer in layers:
        if layer == PENULTIMATE:
            out[PENULTIMATE] = PENULTIMATE
            continue
        if isinstance(layer, int) or (layer.startswith("block") and layer[5:].isdigit()):
            k = models.block_index(model, layer)
            out[f"block{k + 1}"] = models.blocks(model)[k][0]
            continue
        try:
            model.get_submodule(layer)
        except AttributeError:
            raise ValueError(
                f"{layer!r} is neither a block number, 'penultimate', nor a module of "
                f"{type(model).__name__}; its blocks are {[n for n, _ in models.blocks(model)]}."
            ) from None
        out[layer] = layer
    return out


def pool_features(t: torch.Tensor, pool: str = "avg") -> torch.Tensor:
    """Reduce one layer's output to ``(B, C)``.

    ``(B, C, H, W)`` maps are averaged over space (one value per channel); ``(B, T, C)`` token
    sequences are averaged over tokens (``"avg"``) or reduced to the first, class token (``"cls"``).
    """
    if pool not in ("avg", "cls"):
        raise ValueError(f"pool must be 'avg' or 'cls'; got {pool!r}.")
    if t.ndim == 4:
        return t.mean(dim=(2, 3))
    if t.ndim == 3:
        return t[:, 0] if pool == "cls" else t.mean(dim=1)
    if t.ndim == 2:
        return t
    return torch.flatten(t, 1)


def _vit_extractor(model: nn.Module, names: dict[str, str], pool: str) -> Callable:
    index = {name: int(path.split(".")[1]) for name, path in names.items() if path != PENULTIMATE}
    wanted = sorted(set(index.values()))
    need_final = PENULTIMATE in names

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        if wanted:
            res = model.forward_intermediates(
                x, indices=wanted, return_prefix_tokens=True, norm=False, stop_early=not need_final,
                output_fmt="NLC", intermediates_only=not need_final,
            )
            final, inter = res if need_final else (None, res)
            by_block = {}
            for i, item in zip(wanted, inter):
                spatial, prefix = item if isinstance(item, tuple) else (item, None)
                tokens = spatial if prefix is None else torch.cat([prefix, spatial], dim=1)
                by_block[i] = pool_features(tokens, pool)
            out = {name: by_block[i] for name, i in index.items()}
        else:
            final = model.forward_features(x) if need_final else None
        if need_final:
            out[PENULTIMATE] = model.forward_head(final, pre_logits=True)
        return out

    return run


def feature_extractor(model: nn.Module, layers: Layers = None, *, pool: str = "avg") -> Callable:
    """A function mapping an input batch to ``{name: (B, C) pooled features}`` for ``layers``."""
    names = layer_names(model, layers)
    if models.is_vit(model):
        return _vit_extractor(model, names, pool)
    source = model
    return_nodes = {path: name for name, path in names.items() if path != PENULTIMATE}
    if PENULTIMATE in names:
        head = models.linear_path(model)
        source = models.without_classifier(model)
        return_nodes[head] = PENULTIMATE  # the Identity standing in for the classifier
    fx = create_feature_extractor(source, return_nodes=return_nodes)

    def run(x: torch.Tensor) -> dict[str, torch.Tensor]:
        return {name: pool_features(t, pool) for name, t in fx(x).items()}

    return run


def iter_features(
    model: nn.Module,
    loader: Iterable,
    layers: Layers = None,
    *,
    pool: str = "avg",
    device: str | torch.device = "auto",
    amp: bool = False,
    progress: bool = True,
    desc: str = "features",
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """Yield ``({name: (B, C) float32 features}, labels)`` batch by batch, on ``device``.

    The model runs in eval mode under ``torch.inference_mode`` (its training flag is restored
    afterwards); ``amp`` enables bfloat16 autocast on CUDA.
    """
    dev = resolve_device(device)
    was_training = model.training
    model.to(dev).eval()
    run = feature_extractor(model, layers, pool=pool)
    try:
        with torch.inference_mode():
            for batch in tqdm(loader, desc=desc, disable=not progress, leave=False):
                x, y = batch[0].to(dev, non_blocking=True), batch[1].to(dev, non_blocking=True)
                with autocast(dev, amp):
                    feats = run(x)
                yield {k: v.float() for k, v in feats.items()}, y
    finally:
        model.train(was_training)


def extract_features(
    model: nn.Module,
    loader: Iterable,
    layers: Layers = ("penultimate",),
    *,
    out_device: str = "cpu",
    **kwargs,
) -> dict[str, torch.Tensor]:
    """Features of every sample for each requested layer, plus ``"labels"``, stacked on ``out_device``.

    Keyword arguments are those of :func:`iter_features`.
    """
    parts: dict[str, list[torch.Tensor]] = {}
    for feats, y in iter_features(model, loader, layers, **kwargs):
        for k, v in {**feats, "labels": y}.items():
            parts.setdefault(k, []).append(v.to(out_device))
    if not parts:
        raise ValueError("the loader yielded no batches.")
    return {k: torch.cat(v) for k, v in parts.items()}


def layerwise_nc(
    model: nn.Module, loader: Iterable, layers: Layers = None, **kwargs
) -> dict[str, dict[str, float]]:
    """Streaming NC metrics (:class:`~ncutils.metrics.NCAccumulator`) of every requested layer.

    Features never leave the device and are never stored; memory is ``O(d^2)`` per layer.
    Returns ``{layer name: {"nc1": ..., "cdnv": ..., "nc2": ...}}`` in network order.
    """
    accs: dict[str, NCAccumulator] = {}
    for feats, y in iter_features(model, loader, layers, **kwargs):
        for k, v in feats.items():
            accs.setdefault(k, NCAccumulator()).update(v, y)
    if not accs:
        raise ValueError("the loader yielded no batches.")
    return {k: acc.compute() for k, acc in accs.items()}
