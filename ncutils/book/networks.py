"""Network and backbone specifications of the book's units.

A **network spec** says how to build an untrained architecture: ``{"arch": "resnet18", "width": 8}``
(torchvision ResNet, CIFAR stem), ``{"arch": "mlp", "width": 256, "depth": 8}``,
``{"arch": "convnet4", "hidden": 64}``, ``{"arch": "resnet12", "widths": [...]}`` /
``"seresnet12"`` (few-shot backbones), ``{"arch": "vit", "embed_dim": 64, "depth": 12, "num_heads": 4,
"patch_size": 4}`` (a small timm ViT).

A **backbone spec** says which trained weights a unit starts from, one of

``{"source": <pretrain unit>}``
    the network a pre-training unit of this book trained (its encoder, or the whole backbone);
``{"public": <name>}``
    a public pre-trained model of :data:`ncutils.hub.PRETRAINED` (ImageNet weights through
    torchvision or timm, or CLIP's image encoder), with the weight version the registry states;
``{"random": <network spec or public name>, "num_classes": K, "seed": s}``
    the same architecture with random weights (random features, Section 3.1; dry runs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ncutils import fewshot, hub, models

__all__ = ["backbone", "build_network", "encoder", "input_shape_of", "public_names"]


def build_network(net: Mapping[str, Any], num_classes: int, in_shape: tuple[int, int, int]) -> nn.Module:
    """An untrained network from its spec, with a ``num_classes``-way classifier, for ``in_shape`` inputs."""
    arch = net["arch"]
    C, H, W = in_shape
    if arch == "mlp":
        return models.MLP(C * H * W, num_classes, width=net["width"], depth=net["depth"])
    if arch in models.RESNETS:
        return models.resnet(arch, num_classes, cifar_stem=net.get("cifar_stem", True), width=net["width"],
                             in_channels=C)
    if arch == "convnet4":
        return fewshot.ConvNet4(num_classes, in_channels=C, hidden=net["hidden"])
    if arch in ("resnet12", "seresnet12"):
        return fewshot.backbone(arch, num_classes, widths=tuple(net["widths"]), in_channels=C)
    if arch == "vit":
        return models.vit("vit_tiny_patch16_224", num_classes, img_size=H, patch_size=net["patch_size"],
                          in_chans=C, embed_dim=net["embed_dim"], depth=net["depth"], num_heads=net["num_heads"])
    raise ValueError(f"unknown network spec {dict(net)!r}; archs: mlp, {', '.join(models.RESNETS)}, convnet4, "
                     "resnet12, seresnet12, vit.")


def public_names() -> list[str]:
    """Names usable in ``{"public": name}`` backbone specs."""
    return sorted(hub.PRETRAINED)


def input_shape_of(spec: Mapping[str, Any]) -> tuple[int, int, int] | None:
    """(channels, height, width) the backbone expects, when the spec fixes it."""
    if "public" in spec:
        size = hub.PRETRAINED[spec["public"]].input_size
        return (3, size, size)
    return None


def backbone(spec: Mapping[str, Any], ctx) -> nn.Module:
    """The whole network of a backbone spec (with a classifier), on the CPU, in eval mode."""
    if "source" in spec:
        from ncutils.book.experiments.sources import trained_backbone

        return trained_backbone(spec["source"], ctx).eval()
    if "public" in spec:
        return hub.load_pretrained(spec["public"]).eval()
    if "random" in spec:
        torch.manual_seed(spec["seed"])
        inner = spec["random"]
        if isinstance(inner, str):
            return hub.load_pretrained(inner, weights=False, num_classes=spec["num_classes"]).eval()
        return build_network(inner, spec["num_classes"], tuple(spec["in_shape"])).eval()
    raise ValueError(f"a backbone spec has one of the keys 'source', 'public', 'random'; got {dict(spec)!r}.")


def encoder(spec: Mapping[str, Any], ctx) -> nn.Module:
    """The frozen feature extractor of a backbone spec: the network without its classifier."""
    if "source" in spec:
        from ncutils.book.experiments.sources import trained_net

        return trained_net(spec["source"], ctx).encoder.eval()
    return models.without_classifier(backbone(spec, ctx))
