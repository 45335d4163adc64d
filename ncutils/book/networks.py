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

This module is the one place that reads backbone specs: :func:`form`, :func:`source_of` and
:func:`architecture` answer what a spec is; :func:`backbone`, :func:`encoder`, :func:`untrained` and
:func:`num_blocks` build it. Planning, the dry run and the pages ask these functions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ncutils import fewshot, hub, models, pretrain
from ncutils.book.engine.units import Unit

__all__ = ["FORMS", "architecture", "backbone", "build_net", "build_network", "encoder", "encoder_and_source_head",
           "form", "num_blocks", "source_of", "trained_backbone", "trained_net", "untrained"]

#: The forms of a backbone spec, by the key that holds its weights' origin.
FORMS = ("source", "public", "random")


def form(spec: Mapping[str, Any]) -> str:
    """Which of :data:`FORMS` backbone spec ``spec`` is."""
    found = [k for k in FORMS if k in spec]
    if len(found) != 1:
        raise ValueError(f"a backbone spec has exactly one of the keys {', '.join(FORMS)}; got {dict(spec)!r}.")
    return found[0]


def source_of(spec: Mapping[str, Any] | None) -> Unit | None:
    """The ``pretrain`` unit whose network the spec reads, or ``None`` (public or random weights, no spec)."""
    return spec["source"] if spec and form(spec) == "source" else None


def architecture(spec: Mapping[str, Any]) -> Mapping[str, Any] | str:
    """The spec's architecture: an in-book network spec, or the name of a public network."""
    f = form(spec)
    return spec["source"].config["network"] if f == "source" else spec[f]


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


def _in_shape(cfg: Mapping[str, Any]) -> tuple[int, int, int]:
    s = cfg["data"]
    return (s["channels"], s["image_size"], s["image_size"])


def build_net(cfg: Mapping[str, Any]) -> pretrain.PretrainNet:
    """The untrained :class:`~ncutils.pretrain.PretrainNet` of a ``pretrain`` configuration (seeded)."""
    adversarial = cfg.get("adv_eps") is not None
    norm = cfg["data"]["normalize"]
    torch.manual_seed(cfg["seed"])
    back = build_network(cfg["network"], cfg["num_classes"], _in_shape(cfg))
    return pretrain.PretrainNet.from_backbone(
        back, cfg["num_classes"], loss=cfg["loss"], head_layers=cfg["head_layers"],
        mean=norm["mean"] if adversarial else None, std=norm["std"] if adversarial else None)


def trained_net(u: Unit, ctx) -> pretrain.PretrainNet:
    """The network a ``pretrain`` unit trained (computed first when missing), in eval mode."""
    if u.kind != "pretrain":
        raise ValueError(f"expected a pretrain unit, got {u.kind}.")
    net = build_net(u.config)
    net.load_state_dict(ctx.load_weights(u))
    return net.eval()


def trained_backbone(u: Unit, ctx) -> nn.Module:
    """The pre-trained backbone of a ``pretrain`` unit with a (source) classifier slot, ready for
    :func:`ncutils.finetune.build`, which replaces the classifier."""
    cfg = u.config
    back = build_network(cfg["network"], cfg["num_classes"], _in_shape(cfg))
    encoder = trained_net(u, ctx).encoder
    missing, unexpected = back.load_state_dict(encoder.state_dict(), strict=False)
    if unexpected or any(not k.startswith(("fc.", "head.")) for k in missing):
        raise ValueError(f"the stored encoder of {u.key} does not fit its network spec: missing {missing}, "
                         f"unexpected {unexpected}.")
    return back


def backbone(spec: Mapping[str, Any], ctx) -> nn.Module:
    """The whole network of a backbone spec (with a classifier), on the CPU, in eval mode."""
    f = form(spec)
    if f == "source":
        return trained_backbone(spec["source"], ctx).eval()
    if f == "public":
        return hub.load_pretrained(spec["public"]).eval()
    torch.manual_seed(spec["seed"])
    inner = spec["random"]
    if isinstance(inner, str):
        return hub.load_pretrained(inner, weights=False, num_classes=spec["num_classes"]).eval()
    return build_network(inner, spec["num_classes"], tuple(spec["in_shape"])).eval()


def encoder(spec: Mapping[str, Any], ctx) -> nn.Module:
    """The frozen feature extractor of a backbone spec: the network without its classifier."""
    if form(spec) == "source":
        return trained_net(spec["source"], ctx).encoder.eval()
    return models.without_classifier(backbone(spec, ctx))


def encoder_and_source_head(spec: Mapping[str, Any], ctx) -> tuple[nn.Module, nn.Module | None]:
    """The frozen feature extractor of a backbone spec and its **source head**: the map from the penultimate
    feature to the logits of the task the network was trained on (LEEP and NCE read them), or ``None`` where
    there is none (SupCon models have no classifier; random weights were trained on no task)."""
    f = form(spec)
    if f == "source":
        net = trained_net(spec["source"], ctx)
        head = None if net.classifier is None else nn.Sequential(net.head, net.classifier).eval()
        return net.encoder.eval(), head
    if f == "public":
        model = backbone(spec, ctx)
        head = models.classifier(model)
        return models.without_classifier(model), head.eval() if isinstance(head, nn.Linear) else None
    return encoder(spec, ctx), None


def untrained(spec: Mapping[str, Any]) -> nn.Module:
    """The spec's architecture with random weights and nothing downloaded (for timing and counting blocks)."""
    if form(spec) == "source":
        cfg = spec["source"].config
        return build_network(cfg["network"], cfg["num_classes"], _in_shape(cfg))
    name = architecture(spec)
    if isinstance(name, str):
        return hub.load_pretrained(name, weights=False)
    return build_network(name, spec["num_classes"], tuple(spec["in_shape"]))


def num_blocks(spec: Mapping[str, Any]) -> int:
    """Number of blocks (the paper's numbering, :func:`ncutils.models.blocks`) of the spec's network."""
    return len(models.blocks(untrained(spec)))
