"""Public pre-trained networks: which weights, at which input size and normalisation, and where they are.

The paper transfers public ImageNet-1k ResNets, DenseNets and MobileNetV2 (Figs. 6, 9, 10, 11,
Tables 3-7), a ViT-B/32 pre-trained on ImageNet-21k (Table 3, Fig. 9), and, in its TMLR version,
CLIP's image encoder; the NCTI evaluation ranks eleven supervised ImageNet models. :data:`PRETRAINED`
names each of them and **states the weight version**, because torchvision's ``"DEFAULT"`` silently
means different weights for different models (``IMAGENET1K_V2`` for ResNet50/101/152 and MobileNetV2,
``V1`` elsewhere): every torchvision model here uses ``IMAGENET1K_V1``, the original weights that the
paper (2022) and the NCTI benchmark used. Each entry carries the model's own input size (299 px for
Inception-v3, 384 px for the paper's ViT-B/32, 224 px otherwise) and normalisation.

Weights are downloaded on first use into torchvision's cache (``$TORCH_HOME/hub/checkpoints``) or
the Hugging Face cache (``$HF_HOME/hub``) for timm models. :func:`cached_weights` says whether a file
is there without touching the network; ``python -m ncutils.hub download NAME [NAME ...]`` fetches
them ahead of a run (on a machine with internet access).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import timm
import torch
import torchvision
from torch import nn

from ncutils.models import replace_classifier
from ncutils.transforms import NORMALIZATION

__all__ = ["PRETRAINED", "Pretrained", "WeightsUnavailable", "cached_weights", "load_pretrained", "main",
           "weights_location"]


@dataclass(frozen=True)
class Pretrained:
    """One public pre-trained network: ``source`` (torchvision or timm), the architecture, the weight
    version, its input size and normalisation, and what it was trained on."""

    name: str
    source: str
    arch: str
    weights: str
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    trained_on: str


def _tv(name: str, size: int = 224) -> Pretrained:
    mean, std = NORMALIZATION["imagenet"]
    return Pretrained(name, "torchvision", name, "IMAGENET1K_V1", size, tuple(mean), tuple(std), "ImageNet-1k")


#: The public networks of the book, by name.
PRETRAINED: dict[str, Pretrained] = {p.name: p for p in [
    *(_tv(n) for n in ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet121",
                       "densenet169", "densenet201", "mobilenet_v2", "mnasnet1_0", "googlenet")),
    _tv("inception_v3", 299),
    # the paper's ViT-B/32 at 384 px: 144 patches + the class token (Appendix B)
    Pretrained("vit_b_32", "timm", "vit_base_patch32_384", "augreg_in21k_ft_in1k", 384, (0.5,) * 3, (0.5,) * 3,
               "ImageNet-21k, fine-tuned on ImageNet-1k"),
    # CLIP's image encoder as a frozen feature extractor (TMLR version)
    Pretrained("clip_vit_b_32", "timm", "vit_base_patch32_clip_224", "openai", 224,
               tuple(NORMALIZATION["clip"][0]), tuple(NORMALIZATION["clip"][1]),
               "400M image-caption pairs (CLIP, OpenAI)"),
]}


class WeightsUnavailable(RuntimeError):
    """A public network's weights are neither in the cache nor downloadable here."""


def _info(name: str) -> Pretrained:
    if name not in PRETRAINED:
        raise ValueError(f"unknown pre-trained network {name!r}; known: {', '.join(sorted(PRETRAINED))}.")
    return PRETRAINED[name]


def _tv_weights(p: Pretrained):
    return torchvision.models.get_model_weights(p.arch)[p.weights]


def _timm_tag(p: Pretrained) -> str:
    return f"{p.arch}.{p.weights}"


def weights_location(name: str) -> str:
    """Where the weights of ``name`` are (or would be) cached."""
    p = _info(name)
    if p.source == "torchvision":
        return str(Path(torch.hub.get_dir()) / "checkpoints" / _tv_weights(p).url.rsplit("/", 1)[-1])
    from huggingface_hub import constants

    repo = timm.models.get_pretrained_cfg(_timm_tag(p)).hf_hub_id
    return f"{constants.HF_HUB_CACHE} (Hugging Face repository {repo})"


def cached_weights(name: str) -> Path | None:
    """The cached weight file of ``name``, or ``None`` when it is not on disk (no network access)."""
    p = _info(name)
    if p.source == "torchvision":
        path = Path(weights_location(name))
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    repo = timm.models.get_pretrained_cfg(_timm_tag(p)).hf_hub_id
    for filename in ("model.safetensors", "open_clip_pytorch_model.bin", "pytorch_model.bin"):
        found = try_to_load_from_cache(repo, filename)
        if isinstance(found, str):
            return Path(found)
    return None


def load_pretrained(name: str, *, weights: bool = True, num_classes: int | None = None) -> nn.Module:
    """Public network ``name`` with its stated weights (``weights=False``: the architecture, random weights).

    ``num_classes`` replaces the classifier by a new one of that size. A network whose weights are
    not cached and cannot be downloaded raises :class:`WeightsUnavailable`, which says where the
    file was looked for and how to fetch it; an unknown name raises ``ValueError``.
    """
    p = _info(name)
    try:
        if p.source == "torchvision":
            model = torchvision.models.get_model(p.arch, weights=_tv_weights(p) if weights else None)
        else:
            model = timm.create_model(_timm_tag(p) if weights else p.arch, pretrained=weights,
                                      **({"img_size": p.input_size} if not weights else {}))
    except (OSError, RuntimeError, ValueError) as err:  # URLError, HTTP errors, offline hub
        if not weights:
            raise
        raise WeightsUnavailable(
            f"the {p.weights} weights of {name} are not in the cache ({weights_location(name)}) and could not be "
            f"downloaded ({type(err).__name__}: {str(err).splitlines()[0][:200]}). Fetch them on a machine with "
            f"internet access with `python -m ncutils.hub download {name}` (set TORCH_HOME / HF_HOME to share "
            "the cache), or use weights=False for random weights.") from err
    if num_classes is not None:
        model = replace_classifier(model, num_classes)
    return model


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ncutils.hub download NAME [NAME ...] | all``: fetch weights into the caches."""
    parser = argparse.ArgumentParser(prog="python -m ncutils.hub", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    dl = sub.add_parser("download", help="download the weights of public pre-trained networks")
    dl.add_argument("names", nargs="+", help=f"names, or 'all': {', '.join(sorted(PRETRAINED))}")
    sub.add_parser("list", help="list the networks, their weight versions and whether they are cached")
    args = parser.parse_args(argv)
    if args.command == "list":
        for p in PRETRAINED.values():
            where = cached_weights(p.name)
            print(f"{p.name:14s} {p.source:11s} {p.weights:22s} {p.input_size:3d} px  "
                  f"{'cached' if where else 'missing'}")
        return 0
    names = sorted(PRETRAINED) if args.names == ["all"] else args.names
    failed = []
    for name in names:
        try:
            load_pretrained(name)
            print(f"{name}: {cached_weights(name) or weights_location(name)}")
        except (WeightsUnavailable, ValueError) as err:
            print(f"{name}: FAILED: {err}")
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
