"""Display names: what a reader sees for the code's names of networks, fine-tuning methods and NCTI's terms.

The code names a network by its architecture id and width (``resnet18-w8``, ``mlp-w256-d8``, torchvision's
``mobilenet_v2``), a fine-tuning method by a key (``scl``) and NCTI's terms by theirs (``seli``); tables and
captions show the names below instead. Names this module does not know are returned unchanged, so a mapping
never hides a value. ``tests/test_pages.py`` fails on snake_case identifiers and unit keys left in the text of
the built chapter pages (:func:`tests.htmlcheck.internal_names`).

>>> network("mlp-w256-d8"), network("resnet18-w8"), network("seresnet12"), network("mobilenet_v2")
('MLP (8 layers, width 256)', 'ResNet18 (width 8)', 'SE-ResNet12', 'MobileNetV2')
>>> method("scl"), term("seli")
('SCL FT', 'S<sub>seli</sub>')
"""

from __future__ import annotations

import re

__all__ = ["METHODS", "TERMS", "method", "network", "term"]

#: Architecture families as the papers write them (the id's letters, without its depth).
_FAMILIES = {"resnet": "ResNet", "seresnet": "SE-ResNet", "resnext": "ResNeXt", "wide_resnet": "Wide ResNet",
             "convnet": "ConvNet", "mlp": "MLP", "vit": "ViT", "densenet": "DenseNet", "googlenet": "GoogLeNet",
             "inception": "Inception", "mnasnet": "MNASNet", "mobilenet": "MobileNet", "efficientnet": "EfficientNet",
             "vgg": "VGG", "regnet": "RegNet", "alexnet": "AlexNet"}
#: torchvision ids whose published names do not follow from the family and depth.
_PUBLISHED = {"mobilenet_v2": "MobileNetV2", "mobilenet_v3_large": "MobileNetV3-Large",
              "mobilenet_v3_small": "MobileNetV3-Small", "mnasnet1_0": "MNASNet 1.0", "inception_v3": "Inception-v3",
              "googlenet": "GoogLeNet", "vit_b_32": "ViT-B/32", "vit_b_16": "ViT-B/16"}
_ID = re.compile(r"^(?P<family>[a-z_]+?)(?P<depth>\d+)?(?P<suffix>(?:-[wd]\d+)*)$")

#: Fine-tuning methods (Table 3's column names).
METHODS = {"linear": "Linear Probe", "layer": "Layer FT", "scl": "SCL FT", "full": "Full FT"}
#: NCTI's three terms (HTML: a table or caption shows them as S with a subscript).
TERMS = {"seli": "S<sub>seli</sub>", "ncc": "S<sub>ncc</sub>", "vc": "S<sub>vc</sub>"}


def network(name: str) -> str:
    """A network's display name: ``resnet18-w8`` -> "ResNet18 (width 8)", ``mlp-w256-d8`` -> "MLP (8 layers,
    width 256)", ``seresnet12`` -> "SE-ResNet12", torchvision's ``mobilenet_v2`` -> "MobileNetV2". Anything after
    the id (`` (seed 1)``, `` (2 ep.)``) is kept; a name that is not an architecture id is returned unchanged."""
    head, sep, rest = str(name).partition(" ")
    if head in _PUBLISHED:
        return _PUBLISHED[head] + sep + rest
    m = _ID.match(head)
    if m is None or m["family"] not in _FAMILIES:
        return str(name)
    parts = dict(re.findall(r"-([wd])(\d+)", m["suffix"]))
    shown = _FAMILIES[m["family"]] + (m["depth"] or "")
    details = ([f"{parts['d']} layers"] if "d" in parts else []) + ([f"width {parts['w']}"] if "w" in parts else [])
    if details and rest.startswith("(") and rest.endswith(")"):  # "resnet18-w16 (seed 1)": one parenthesis
        return f"{shown} ({', '.join(details)}, {rest[1:-1]})"
    return shown + (f" ({', '.join(details)})" if details else "") + sep + rest


def method(key: str) -> str:
    """A fine-tuning method's name: ``scl`` -> "SCL FT" (a key it does not know is returned unchanged)."""
    return METHODS.get(key, key)


def term(key: str) -> str:
    """One of NCTI's terms as HTML, S with its subscript: ``seli`` -> "S<sub>seli</sub>"."""
    return TERMS.get(key, key)
