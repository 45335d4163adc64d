"""Architectures used in the book, and the paper's numbering of their fine-tuning units.

The paper fine-tunes and probes networks unit by unit (Section 3.3, Appendix B.2, Fig. 12):

* torchvision ResNets: every residual block, numbered consecutively from the input.
  ResNet18/34 have Blocks 1-8 / 1-16 (``layer1[0]`` is Block 1, ``layer4[1]`` of ResNet18 is
  Block 8); ResNet50 has Blocks 1-16 (``layer3[0]`` is Block 8, ``layer4[0]`` is Block 14).
* timm Vision Transformers: every encoder layer, Layers 1-12 for ViT-B/32.
* the small networks of this package (:class:`MLP`, and the few-shot backbones): the items
  of their ``blocks`` attribute.

:func:`blocks` returns these units in order, so ``blocks(model)[k - 1]`` is the paper's Block
(or Layer) ``k``.
"""

from __future__ import annotations

import copy

import timm
import torch
import torchvision
from torch import nn
from torchvision.models.resnet import BasicBlock, Bottleneck, ResNet

__all__ = [
    "MLP",
    "RESNETS",
    "VITS",
    "block",
    "block_index",
    "blocks",
    "classifier",
    "count_parameters",
    "feature_dim",
    "is_vit",
    "linear_path",
    "replace_classifier",
    "resnet",
    "vit",
    "without_classifier",
]

#: The torchvision ResNets :func:`resnet` builds: name -> (block type, blocks per stage).
RESNETS: dict[str, tuple[type[nn.Module], list[int]]] = {
    "resnet18": (BasicBlock, [2, 2, 2, 2]),
    "resnet34": (BasicBlock, [3, 4, 6, 3]),
    "resnet50": (Bottleneck, [3, 4, 6, 3]),
    "resnet101": (Bottleneck, [3, 4, 23, 3]),
    "resnet152": (Bottleneck, [3, 8, 36, 3]),
}

#: ViT names of the book -> (timm architecture, timm pretrained tag). The paper's ViT-B/32 runs at
#: 384 px: 12 x 12 = 144 patches + 1 class token = 145 tokens (Appendix B); its checkpoint was
#: pre-trained on ImageNet-21k.
VITS: dict[str, tuple[str, str]] = {
    "vit_b_32": ("vit_base_patch32_384", "augreg_in21k_ft_in1k"),
    "vit_b_16": ("vit_base_patch16_384", "augreg_in21k_ft_in1k"),
}


# --------------------------------------------------------------------------- builders
class _ResNet(ResNet):
    """torchvision's ResNet with a width multiplier, input channels and the 32-px CIFAR stem.

    Module names (``conv1``, ``bn1``, ``layer1``..``layer4``, ``avgpool``, ``fc``) are those of
    torchvision, so every function of this package treats both alike.
    """

    def __init__(self, block, layers, num_classes: int, width: int, in_channels: int, cifar_stem: bool):
        nn.Module.__init__(self)
        self._norm_layer = nn.BatchNorm2d
        self.inplanes, self.dilation, self.groups, self.base_width = width, 1, 1, 64
        if cifar_stem:  # 3x3 stride-1 first conv and no max-pool, the usual stem for 32-px images
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
            self.maxpool = nn.Identity()
        else:
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._make_layer(block, width, layers[0])
        self.layer2 = self._make_layer(block, 2 * width, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, layers[3], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(8 * width * block.expansion, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)


def resnet(
    arch: str = "resnet18",
    num_classes: int = 1000,
    *,
    pretrained: bool = False,
    cifar_stem: bool = False,
    in_channels: int = 3,
    width: int = 64,
) -> ResNet:
    """A torchvision ResNet (``pretrained=True`` loads the ImageNet-1k ``IMAGENET1K_V1`` weights).

    ``cifar_stem`` gives the 3x3 stride-1 first convolution without max-pool used for 32-px
    pre-training (Section 3.1); ``width`` scales every stage (64 is the standard network) and
    ``in_channels`` the input, for the small networks of the ``cpu`` profile.
    """
    if arch not in RESNETS:
        raise ValueError(f"unknown ResNet {arch!r}; choose one of {sorted(RESNETS)}.")
    standard = width == 64 and in_channels == 3 and not cifar_stem
    if pretrained and not standard:
        raise ValueError("pretrained ImageNet weights exist only for the standard network "
                         "(width=64, in_channels=3, cifar_stem=False).")
    if standard:
        model = getattr(torchvision.models, arch)(weights="IMAGENET1K_V1" if pretrained else None)
        if num_classes != model.fc.out_features:
            model.fc = nn.Linear(model.fc.in_features, num_classes)
        return model
    block_type, layers = RESNETS[arch]
    return _ResNet(block_type, layers, num_classes, width, in_channels, cifar_stem)


def vit(arch: str = "vit_b_32", num_classes: int = 1000, *, pretrained: bool = False, **kwargs) -> nn.Module:
    """A timm Vision Transformer: ``vit_b_32`` is the paper's ViT-B/32 at 384 px (145 tokens).

    ``pretrained=True`` loads its ImageNet-21k pre-trained checkpoint through timm (needs the
    Hugging Face hub or a local timm cache). Any other timm model name is passed through, and
    ``kwargs`` go to :func:`timm.create_model` (e.g. ``img_size``, ``depth``, ``embed_dim`` for
    a small transformer). CLIP's image encoder is ``vit_base_patch32_clip_224``, a timm
    ``VisionTransformer`` with a pre-norm (``norm_pre``) that every function of the package runs;
    its OpenAI weights are named in :data:`ncutils.hub.PRETRAINED` (``clip_vit_b_32``).
    """
    name, tag = VITS.get(arch, (arch, None))
    full = f"{name}.{tag}" if (pretrained and tag) else name
    return timm.create_model(full, pretrained=pretrained, num_classes=num_classes, **kwargs)


class MLP(nn.Module):
    """Fully connected network of Fig. 2: ``depth`` hidden layers of equal ``width``.

    Each hidden layer is Linear -> BatchNorm1d -> ReLU (an item of ``blocks``); ``fc`` is the
    linear classifier. Inputs of any shape are flattened.
    """

    def __init__(self, in_features: int = 784, num_classes: int = 10, width: int = 784, depth: int = 8):
        super().__init__()
        dims = [in_features] + [width] * depth
        self.blocks = nn.Sequential(*[
            nn.Sequential(nn.Linear(a, b, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True))
            for a, b in zip(dims[:-1], dims[1:])
        ])
        self.fc = nn.Linear(width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(torch.flatten(x, 1)))


# --------------------------------------------------------------------------- structure
def is_vit(model: nn.Module) -> bool:
    """Whether ``model`` is a timm Vision Transformer."""
    return isinstance(model, timm.models.vision_transformer.VisionTransformer)


def blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The fine-tuning units in the paper's order: ``blocks(model)[k - 1]`` is Block/Layer ``k``.

    Returns ``(module path, module)`` pairs, e.g. ``("layer3.0", BasicBlock)`` for Block 5 of
    ResNet18 or ``("blocks.7", Block)`` for Layer 8 of ViT-B/32.
    """
    if isinstance(model, ResNet):
        return [
            (f"layer{s}.{i}", b)
            for s in range(1, 5)
            for i, b in enumerate(getattr(model, f"layer{s}"))
        ]
    seq = getattr(model, "blocks", None)
    if isinstance(seq, (nn.Sequential, nn.ModuleList)):
        return [(f"blocks.{i}", b) for i, b in enumerate(seq)]
    raise TypeError(
        f"{type(model).__name__} has no known block structure; supported: torchvision ResNets, timm "
        "Vision Transformers, and modules with a `blocks` Sequential/ModuleList."
    )


def block_index(model: nn.Module, unit: int | str) -> int:
    """0-based position in :func:`blocks` of a paper unit (1-based int or ``'block5'``) or module path."""
    units = blocks(model)
    if isinstance(unit, str) and unit.startswith("block") and unit[5:].isdigit():
        unit = int(unit[5:])
    if isinstance(unit, int):
        if not 1 <= unit <= len(units):
            raise ValueError(
                f"block {unit} does not exist: {type(model).__name__} has blocks 1-{len(units)} "
                "(the paper numbers them from 1 at the input)."
            )
        return unit - 1
    names = [n for n, _ in units]
    if unit in names:
        return names.index(unit)
    raise ValueError(f"{unit!r} is not a block of this model; blocks are {names}.")


def block(model: nn.Module, unit: int | str) -> tuple[str, nn.Module]:
    """``(module path, module)`` of paper Block/Layer ``unit`` (1-based)."""
    return blocks(model)[block_index(model, unit)]


def _is_removed_classifier(m: nn.Module) -> bool:
    """The :class:`~torch.nn.Identity` that :func:`without_classifier` leaves in a classifier's place."""
    return isinstance(m, nn.Identity) and hasattr(m, "in_features")


def linear_path(model: nn.Module) -> str:
    """Module path of the final linear classifier: ``fc`` (ResNets, ncutils nets), ``head`` (timm ViTs),
    else the last ``nn.Linear``. The Identity left by :func:`without_classifier` stands for the
    classifier it removed (so the functions below also work on the view)."""
    if isinstance(model, ResNet):
        return "fc"
    if is_vit(model):
        return "head"
    if isinstance(getattr(model, "fc", None), (nn.Linear, nn.Identity)):
        return "fc"  # an Identity stands for a classifier removed by without_classifier()
    last = [n for n, m in model.named_modules() if isinstance(m, nn.Linear) or _is_removed_classifier(m)]
    if not last:
        raise TypeError(f"{type(model).__name__} has no nn.Linear classifier.")
    return last[-1]


def classifier(model: nn.Module) -> nn.Module:
    """The final linear classifier (``fc`` of a ResNet, ``head`` of a ViT, else the last Linear)."""
    return model.get_submodule(linear_path(model))


def feature_dim(model: nn.Module) -> int:
    """Dimension ``d`` of the penultimate feature (input of the classifier).

    Read from the classifier; when that is the :class:`~torch.nn.Identity` left by
    :func:`without_classifier`, from the width it remembers, else from a ``num_features``
    attribute (timm) or, for a ResNet, the width of its last block.
    """
    if is_vit(model):
        return model.num_features
    head = classifier(model)
    d = getattr(head, "in_features", None)
    if d is None:
        d = getattr(model, "num_features", None)
    if d is None and isinstance(model, ResNet):
        d = [m for m in model.layer4.modules() if isinstance(m, nn.BatchNorm2d)][-1].num_features
    if not isinstance(d, int):
        raise TypeError(f"cannot tell the penultimate feature size of {type(model).__name__}: its classifier "
                        f"{type(head).__name__} has no in_features.")
    return d


def _set_submodule(root: nn.Module, path: str, new: nn.Module, *, copy_parents: bool) -> nn.Module:
    """Set ``root.<path> = new``; with ``copy_parents`` the originals are left untouched (shallow copies
    of the modules on the path share every parameter with the original)."""
    parts = path.split(".")
    if copy_parents:
        root = copy.copy(root)
        root._modules = dict(root._modules)
    parent = root
    for name in parts[:-1]:
        child = parent._modules[name]
        if copy_parents:
            child = copy.copy(child)
            child._modules = dict(child._modules)
            parent._modules[name] = child
        parent = child
    parent._modules[parts[-1]] = new
    return root


def replace_classifier(model: nn.Module, num_classes: int) -> nn.Module:
    """Replace the classifier by a freshly initialised ``Linear(d, num_classes)`` (in place).

    Also works on the output of :func:`without_classifier`, whose classifier is an Identity.
    """
    if is_vit(model):
        model.reset_classifier(num_classes)
        return model
    device = next(model.parameters()).device
    new = nn.Linear(feature_dim(model), num_classes).to(device)
    return _set_submodule(model, linear_path(model), new, copy_parents=False)


def without_classifier(model: nn.Module) -> nn.Module:
    """A view of ``model`` whose output is the penultimate feature; parameters are shared.

    The classifier is replaced by :class:`~torch.nn.Identity` in a shallow copy, so the original
    model is unchanged and no weights are copied. The Identity keeps the classifier's
    ``in_features``, so :func:`feature_dim` and :func:`replace_classifier` work on the view.
    """
    if is_vit(model):
        view = copy.copy(model)
        view._modules = dict(model._modules)
        view._modules["head"] = nn.Identity()
        return view
    removed = nn.Identity()
    d = getattr(classifier(model), "in_features", None)
    if d is not None:
        removed.in_features = d
    return _set_submodule(model, linear_path(model), removed, copy_parents=True)


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of parameters (only those with ``requires_grad`` when ``trainable_only``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)

