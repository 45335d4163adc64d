"""The four fine-tuning methods of Section 3.3 (Table 3) and their parameter accounting (Tables 3-7)."""

from __future__ import annotations

import copy
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import ResNet

from ncutils import models

__all__ = [
    "ARCHS",
    "METHODS",
    "PAPER_BLOCK",
    "FineTuneNet",
    "build",
    "prepare",
    "reproduce_percentages",
    "trainable_fraction",
]

#: The four fine-tuning methods of Section 3.3: Linear Probe, Layer FT, SCL FT and Full FT.
METHODS = ("linear", "layer", "scl", "full")
#: The networks whose blocks the paper numbers (Tables 3-7).
ARCHS = ("resnet18", "resnet34", "resnet50", "vit_b_32")
#: The block/layer fine-tuned by Layer FT and SCL FT in Table 3 (footnote 11).
PAPER_BLOCK = {"resnet18": 5, "resnet34": 9, "resnet50": 8, "vit_b_32": 8}


# --------------------------------------------------------------------------- model
def _check_supported(backbone: nn.Module) -> None:
    """``TypeError`` unless ``backbone`` is an architecture the fine-tuning methods know how to split."""
    if not (models.is_vit(backbone) or isinstance(backbone, ResNet)):
        raise TypeError(
            f"fine-tuning supports torchvision ResNets (torchvision.models.ResNet and subclasses, e.g. "
            f"ncutils.models.resnet) and timm Vision Transformers (timm VisionTransformer, e.g. "
            f"ncutils.models.vit); got {type(backbone).__name__}."
        )


class FineTuneNet(nn.Module):
    """A backbone prepared for one fine-tuning method.

    ``forward(x) = forward_from(forward_prefix(x))``: :meth:`forward_prefix` is the frozen part
    before the first trained unit, :meth:`forward_from` the rest (trained block, later frozen
    blocks, optional skip connection, classifier). :meth:`features` returns the classifier's
    input, the penultimate feature ``h^{L-1}`` at which Table 3 measures NC1.
    """

    def __init__(self, backbone: nn.Module, method: str, block: int | None):
        super().__init__()
        self.backbone = backbone
        self.method = method
        self.block = block  # 1-based paper numbering, None for linear/full
        _check_supported(backbone)
        self.is_vit = models.is_vit(backbone)
        self.units = [m for _, m in models.blocks(backbone)]
        self.feature_dim = models.feature_dim(backbone)

    # ---- the pieces of the network
    def stem(self, x: torch.Tensor) -> torch.Tensor:
        b = self.backbone
        if self.is_vit:
            return b.norm_pre(b.patch_drop(b._pos_embed(b.patch_embed(x))))
        return b.maxpool(b.relu(b.bn1(b.conv1(x))))

    def reduce(self, h: torch.Tensor) -> torch.Tensor:
        """Reduce a block output to a vector the way the network reduces its last block."""
        if self.is_vit:
            return self.backbone.forward_head(self.backbone.norm(h), pre_logits=True)
        return torch.flatten(self.backbone.avgpool(h), 1)

    def skip(self, h: torch.Tensor) -> torch.Tensor:
        """SCL skip feature: the reduced block output, zero-padded to the penultimate width."""
        z = self.reduce(h)
        return F.pad(z, (0, self.feature_dim - z.shape[1])) if z.shape[1] < self.feature_dim else z

    def head(self) -> nn.Linear:
        return models.classifier(self.backbone)

    # ---- split forward
    def _prefix_units(self) -> list[nn.Module]:
        """The blocks/layers of the frozen prefix."""
        return self.units if self.method == "linear" else self.units[: self.block - 1]

    def prefix_modules(self) -> list[nn.Module]:
        """The modules :meth:`forward_prefix` runs (none for full FT).

        :func:`ncutils.finetune.fit` re-estimates their BatchNorm statistics on the downstream
        training data once, then keeps them in evaluation mode.
        """
        if self.method == "full":
            return []
        b = self.backbone
        names = (("patch_embed", "pos_drop", "patch_drop", "norm_pre") if self.is_vit
                 else ("conv1", "bn1", "relu", "maxpool"))
        if self.method == "linear":
            names += ("norm", "attn_pool", "fc_norm", "head_drop") if self.is_vit else ("avgpool",)
        stem = [getattr(b, n) for n in names if isinstance(getattr(b, n, None), nn.Module)]
        return stem + self._prefix_units()

    def forward_prefix(self, x: torch.Tensor) -> torch.Tensor:
        """Frozen computation before the first trained unit (identity for full FT)."""
        if self.method == "full":
            return x
        h = self.stem(x)
        for unit in self._prefix_units():
            h = unit(h)
        return self.reduce(h) if self.method == "linear" else h

    def features_from(self, h: torch.Tensor) -> torch.Tensor:
        """Penultimate feature (classifier input) from the prefix output."""
        if self.method == "linear":
            return h
        if self.method == "full":
            h = self.stem(h)
        start = 0 if self.method == "full" else self.block - 1
        skip = None
        for i, unit in enumerate(self.units[start:], start):
            h = unit(h)
            if self.method == "scl" and i == self.block - 1:
                skip = self.skip(h)
        feat = self.reduce(h)
        return feat + skip if skip is not None else feat

    def forward_from(self, h: torch.Tensor) -> torch.Tensor:
        return self.head()(self.features_from(h))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.features_from(self.forward_prefix(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_from(self.forward_prefix(x))

    @property
    def has_frozen_prefix(self) -> bool:
        return self.method != "full"

    def extra_repr(self) -> str:
        return f"method={self.method!r}, block={self.block}"


def _load_backbone(arch: str, num_classes: int, pretrained: bool) -> nn.Module:
    try:
        if arch.startswith("vit"):
            return models.vit(arch, num_classes, pretrained=pretrained)
        return models.resnet(arch, num_classes, pretrained=pretrained)
    except (OSError, RuntimeError, ValueError) as err:
        if not pretrained:
            raise
        raise RuntimeError(
            f"could not load the pretrained weights of {arch} ({type(err).__name__}: {err}). They are "
            "downloaded on first use (torchvision: TORCH_HOME, timm: the Hugging Face cache) and need "
            "internet access once; or pass pretrained=False for random weights."
        ) from err


def build(
    arch: str | nn.Module,
    method: str,
    num_classes: int,
    block: int | None = None,
    pretrained: bool = False,
) -> FineTuneNet:
    """A network ready for fine-tuning with ``method`` (Section 3.3, Table 3).

    Parameters
    ----------
    arch : str or nn.Module
        ``resnet18``, ``resnet34``, ``resnet50`` (torchvision) or ``vit_b_32`` (timm, the paper's
        ViT-B/32 at 384 px with 145 tokens); or an already built/pre-trained torchvision ResNet or
        timm ViT, which is copied (the original is left untouched) and given a new classifier. An
        encoder whose classifier was removed (:func:`ncutils.models.without_classifier`, e.g.
        ``PretrainNet.encoder``) works too.
    method : {"linear", "layer", "scl", "full"}
    num_classes : int
        Classes of the downstream task (a new, randomly initialised classifier).
    block : int, optional
        Block/layer to fine-tune for ``layer``/``scl``, 1-based in the paper's numbering; defaults
        to :data:`PAPER_BLOCK` (Table 3).
    pretrained : bool
        Load the ImageNet-1k (ResNet) / ImageNet-21k (ViT) weights through torchvision/timm.

    Only the intended parameters have ``requires_grad``: the classifier, plus the chosen block for
    ``layer``/``scl``, plus everything for ``full``.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}.")
    if isinstance(arch, str):
        if arch not in ARCHS and not arch.startswith(("resnet", "vit")):
            raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHS} or pass a model.")
        if method in ("layer", "scl") and block is None and arch not in PAPER_BLOCK:
            raise ValueError(f"pass block=... for {method!r} fine-tuning of {arch}.")
        backbone = _load_backbone(arch, num_classes, pretrained)
        block = PAPER_BLOCK.get(arch) if (method in ("layer", "scl") and block is None) else block
    else:
        if pretrained:
            raise ValueError("pretrained=True only applies to architecture names; this model is used as is.")
        _check_supported(arch)
        backbone = models.replace_classifier(copy.deepcopy(arch), num_classes)
    return prepare(backbone, method, block)


def prepare(backbone: nn.Module, method: str, block: int | None = None) -> FineTuneNet:
    """Wrap ``backbone`` (its classifier already sized for the task) for ``method``, in place.

    Sets ``requires_grad`` on exactly the parameters the method trains; the same backbone can be
    prepared again for another method.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}.")
    _check_supported(backbone)
    if method in ("layer", "scl"):
        if block is None:
            raise ValueError(f"pass block=... for {method!r} fine-tuning.")
        block = models.block_index(backbone, block) + 1
    elif block is not None:
        raise ValueError(f"block applies to 'layer' and 'scl' only, not to {method!r}.")
    net = FineTuneNet(backbone, method, block)
    for p in backbone.parameters():
        p.requires_grad_(method == "full")
    for p in net.head().parameters():
        p.requires_grad_(True)
    if block is not None:
        for p in net.units[block - 1].parameters():
            p.requires_grad_(True)
    return net


def reproduce_percentages(cells: Iterable[dict]) -> list[dict]:
    """Compute the "percentage of parameters fine-tuned" of each cell with real networks.

    ``cells`` are dicts with ``arch``, ``method``, ``block`` and ``num_classes`` (as yielded by
    :func:`ncutils.book.published.percentage_cells`). Each (architecture, classes) backbone is built
    once with random weights and prepared for every method in turn. Returns the cells with
    ``fraction`` (trainable / all parameters) and ``formatted`` (as the paper prints it) added.
    """
    backbones: dict[tuple[str, int], nn.Module] = {}
    out = []
    for cell in cells:
        key = (cell["arch"], cell["num_classes"])
        if key not in backbones:
            backbones[key] = _load_backbone(cell["arch"], cell["num_classes"], pretrained=False)
        net = prepare(backbones[key], cell["method"], cell.get("block"))
        frac = trainable_fraction(net)
        out.append({**cell, "fraction": frac, "formatted": "100%" if frac == 1 else f"{100 * frac:.2f}%"})
    return out


def trainable_fraction(model: nn.Module) -> float:
    """Trainable parameters divided by all parameters (the "percentage fine-tuned" of Tables 3-7)."""
    total = models.count_parameters(model)
    return models.count_parameters(model, trainable_only=True) / total

