"""The data and networks each profile of the book uses, so that all chapters agree.

Profiles (see ``book/profiles/*.yaml``):

``smoke``
    Synthetic images (:func:`ncutils.data.synthetic`): source = 5 classes, downstream = 5 other
    classes drawn with another seed. Tiny networks. Checks that the chapters run.
``cpu``
    Real handwritten digits that ship with Python packages, with strokes drawn in a random colour
    on black (so that colour augmentations act) at 20 x 20 px. Source: MNIST-5k digits 0-4 (pre-training, as
    CIFAR-100 in the paper). Downstream: MNIST-5k digits 5-9 (``digits5-9``; new classes) and
    the scikit-learn digits 5-9 (``sklearn5-9``; new classes from another dataset, scanned at 8 x 8
    px). Narrow ResNets with the 32-px CIFAR stem.
``paper``
    The paper's data: CIFAR-100 as source at 32 px; CIFAR-10, FGVC-Aircraft, DTD and Oxford-IIIT
    Pets downstream (at 32 px for models pre-trained on CIFAR-100, at 224/384 px for ImageNet
    models); full-width ResNet18/50.

Encoders always take normalised inputs: data pipelines normalise with the source statistics,
except for adversarial pre-training, where the network normalises pixels itself
(:class:`ncutils.pretrain.Normalize`) so that perturbations are measured in pixel space.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torchvision
from torch import nn
from torch.utils.data import Dataset, TensorDataset

from ncutils import data, fewshot, models, pretrain
from ncutils.results import ModelStore, config_key

__all__ = ["PROFILES", "Setup", "downstream", "downstream_names", "get", "imagenet_data", "imagenet_model",
           "model_key", "pretrained_backbone", "source", "source_config", "source_model", "training_data",
           "transfer_eval", "zoo_backbone"]


@dataclass(frozen=True)
class Setup:
    """What one profile runs on."""

    profile: str
    image_size: int            # source and downstream image size for source-trained encoders
    source_title: str
    source_classes: int
    downstream: tuple[str, ...]  # downstream datasets for source-trained encoders
    width: int                 # base width of the narrow ResNets (64 = the standard network)
    description: str


PROFILES: dict[str, Setup] = {
    "smoke": Setup("smoke", 16, "synthetic images, 5 classes", 5, ("synthetic-b", "synthetic-c"), 4,
                   "synthetic 16-px images"),
    "cpu": Setup("cpu", 20, "MNIST-5k digits 0-4 (coloured strokes, 20 px)", 5,
                 ("digits5-9", "sklearn5-9"), 8, "20-px handwritten digits with randomly coloured strokes"),
    "paper": Setup("paper", 32, "CIFAR-100", 100, ("cifar10", "aircraft", "dtd", "pets"), 64,
                   "the paper's datasets"),
}

DOWNSTREAM_TITLES = {
    "synthetic-b": "synthetic, classes B", "synthetic-c": "synthetic, classes C",
    "digits5-9": "MNIST-5k digits 5-9", "sklearn5-9": "sklearn digits 5-9",
    "cifar10": "Cifar-10", "cifar100": "Cifar-100", "aircraft": "FGVC-Aircraft", "dtd": "DTD", "pets": "Pets",
}


def get(profile: str) -> Setup:
    if profile not in PROFILES:
        raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}.")
    return PROFILES[profile]


def downstream_names(profile: str) -> tuple[str, ...]:
    return get(profile).downstream


# --------------------------------------------------------------------------- raw images in [0, 1]
def _raw_cpu(kind: str, split: str, classes: list[int], seed: int) -> TensorDataset:
    load = data.mnist5k if kind == "mnist" else data.sklearn_digits
    base = load(split, classes=classes, image_size=20, channels=1, seed=seed)
    # colours drawn per sample; a different colour seed per split and dataset keeps them independent
    salt = {"train": 0, "test": 1}[split] + (0 if kind == "mnist" else 2) + 4 * (classes[0] >= 5)
    return data.colorize(base, seed=1000 * seed + salt, background=False)


#: Datasets of each profile besides ``source`` and the downstream sets: the 10-class sets on which
#: Chapter 2 trains networks to collapse (the paper: MNIST and FashionMNIST for the MLP, Cifar-10
#: and Cifar-100 for ResNet18).
COLLAPSE_DATA = {
    "smoke": {"mlp": ("synthetic-a", "synthetic-d"), "resnet": ("synthetic-a", "synthetic-d")},
    "cpu": {"mlp": ("mnist10-gray", "sklearn10-gray"), "resnet": ("mnist10", "sklearn10")},
    "paper": {"mlp": ("mnist", "fashionmnist"), "resnet": ("cifar10", "cifar100")},
}
DOWNSTREAM_TITLES.update({
    "synthetic-a": "synthetic, 10 classes", "synthetic-d": "synthetic, 10 other classes",
    "mnist10-gray": "MNIST-5k (28 px, gray)", "sklearn10-gray": "sklearn digits (28 px, gray)",
    "mnist10": "MNIST-5k (20 px, coloured)", "sklearn10": "sklearn digits (20 px, coloured)",
    "mnist": "MNIST", "fashionmnist": "FashionMNIST",
})


def _raw(profile: str, name: str, split: str, seed: int, data_root=None, download=False) -> Dataset:
    """Images in [0, 1] (no normalisation, no augmentation) with labels 0..K-1."""
    if profile == "smoke":
        per = 8 if split == "train" else 4
        seeds = {"source": 0, "synthetic-b": 1, "synthetic-c": 2, "synthetic-a": 3, "synthetic-d": 4}
        classes = 10 if name in ("synthetic-a", "synthetic-d") else 5
        if name not in seeds:
            raise ValueError(f"no dataset {name!r} in the smoke profile; use one of {sorted(seeds)}.")
        raw = data.synthetic(classes, per, image_size=16, channels=3,
                             seed=100 * seeds[name] + (split == "test"))
        return TensorDataset(torch.sigmoid(raw.tensors[0]), raw.tensors[1])  # pixels in [0, 1]
    if profile == "cpu":
        digits, low, high = list(range(10)), [0, 1, 2, 3, 4], [5, 6, 7, 8, 9]
        table = {"source": ("mnist", low, True), "digits5-9": ("mnist", high, True),
                 "sklearn5-9": ("sklearn", high, True), "mnist10": ("mnist", digits, True),
                 "sklearn10": ("sklearn", digits, True), "mnist10-gray": ("mnist", digits, False),
                 "sklearn10-gray": ("sklearn", digits, False)}
        if name not in table:
            raise ValueError(f"no dataset {name!r} in the cpu profile; use one of {sorted(table)}.")
        kind, classes, coloured = table[name]
        if coloured:
            return _raw_cpu(kind, split, classes, seed)
        load = data.mnist5k if kind == "mnist" else data.sklearn_digits
        return load(split, classes=classes, image_size=28, channels=1, seed=seed)
    if profile == "paper":
        ds = "cifar100" if name == "source" else name
        gray = ds in ("mnist", "fashionmnist")
        return data.load(ds, split, root=data_root, download=download, image_size=28 if gray else 32,
                         normalize=False, to_rgb=not gray)
    raise ValueError(f"unknown profile {profile!r}; use one of {sorted(PROFILES)}.")


_PAPER_STATS = {  # per-channel mean and std of the training sets
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "mnist": ((0.1307,), (0.3081,)), "fashionmnist": ((0.2860,), (0.3530,)),
}


@functools.cache
def source_stats(profile: str, seed: int = 0, data_root=None, name: str = "source"
                 ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and standard deviation of the training images of ``name`` (the source set)."""
    if profile == "paper":
        return _PAPER_STATS["cifar100" if name == "source" else name]
    x = _raw(profile, name, "train", seed, data_root).tensors[0]
    return tuple(x.mean((0, 2, 3)).tolist()), tuple(x.std((0, 2, 3)).tolist())


def source(profile: str, split: str = "train", *, level: int = 1, normalize: bool = True, views: int = 1,
           seed: int = 0, data_root=None, download: bool = False, name: str = "source") -> Dataset:
    """Pre-training data (the source set, or another set ``name`` of the profile) with augmentation
    ``level`` 1-5 (Fig. 4) and ``views`` augmented views per image."""
    dataset, batch_transform = training_data(profile, split, level=level, normalize=normalize, views=views,
                                             seed=seed, data_root=data_root, download=download, name=name)
    if batch_transform is None:
        return dataset
    if level == 1 and views == 1:  # deterministic: normalise the whole tensor once
        return _transformed(dataset, batch_transform)
    return data.TransformDataset(dataset, batch_transform)


def _transformed(raw: Dataset, transform) -> Dataset:
    """``raw`` with a deterministic ``transform``: applied once to an in-memory tensor (which keeps its
    ``classes``), else to every image as it is loaded."""
    if not isinstance(raw, TensorDataset):
        return data.TransformDataset(raw, transform)
    out = TensorDataset(transform(raw.tensors[0]), raw.tensors[1])
    out.classes = getattr(raw, "classes", None)
    return out


def training_data(profile: str, split: str = "train", *, level: int = 1, normalize: bool = True,
                  views: int = 1, seed: int = 0, data_root=None, download: bool = False,
                  name: str = "source") -> tuple[Dataset, Any]:
    """``(dataset, batch_transform)`` for pre-training: in-memory images in [0, 1] and the augmentation to
    apply to each batch in the training loop, or (for image files) a dataset that augments every
    image as it is loaded and ``None``."""
    raw = _raw(profile, name, split, seed, data_root, download)
    mean, std = source_stats(profile, seed, data_root, name)
    t = pretrain.augmentation(level, tuple(raw[0][0].shape[-2:]), mean, std, normalize=normalize)
    t = pretrain.TwoViews(t, views) if views > 1 else t
    if isinstance(raw, TensorDataset):
        return raw, t
    return data.TransformDataset(raw, t), None


@functools.cache
def _shape_and_classes(profile: str, name: str = "source", seed: int = 0, data_root=None
                       ) -> tuple[tuple[int, ...], int]:
    """(channels, height, width) of the images of dataset ``name`` and its number of classes."""
    raw = _raw(profile, name, "train", seed, data_root)
    if profile == "paper":
        classes = data.DATASETS["cifar100" if name == "source" else name].num_classes
    else:
        classes = int(data.labels_of(raw).max()) + 1
    return tuple(raw[0][0].shape), classes


def num_classes(profile: str, name: str = "source", seed: int = 0, data_root=None) -> int:
    """Number of classes of dataset ``name`` of ``profile``."""
    return _shape_and_classes(profile, name, seed, data_root)[1]


@functools.cache
def downstream(profile: str, name: str, split: str = "train", *, seed: int = 0, data_root=None,
               download: bool = False) -> Dataset:
    """Downstream data for source-trained encoders, normalised with the source statistics."""
    raw = _raw(profile, name, split, seed, data_root, download)
    mean, std = source_stats(profile, seed, data_root)
    shape = _shape_and_classes(profile, name, seed, data_root)[0]
    return _transformed(raw, pretrain.augmentation(1, shape[-2:], mean, std))  # level 1: normalisation


# --------------------------------------------------------------------------- networks
def zoo_backbone(name: str, profile: str, num_classes: int, in_shape: tuple[int, int, int] | None = None
                 ) -> nn.Module:
    """A network of the book's model zoo, sized for ``profile``.

    Names: ``resnet18``, ``resnet34``, ``resnet50`` (optionally ``-w<width>``, CIFAR stem),
    ``convnet4``, ``resnet12``, ``seresnet12`` (few-shot backbones), ``vit`` (a small ViT with
    12 layers, patch 4) and ``mlp`` (``mlp-w<width>-d<depth>`` sets its size). ``in_shape`` is the
    (channels, height, width) of the inputs (default: the profile's source images).
    """
    s = get(profile)
    C, H, W = in_shape or (3, s.image_size, s.image_size)
    if name.startswith("mlp"):
        opts = {p[0]: int(p[1:]) for p in name.split("-")[1:]}  # e.g. mlp-w256-d8
        return models.MLP(C * H * W, num_classes, width=opts.get("w", 8 * s.width), depth=opts.get("d", 4))
    base, _, w = name.partition("-w")
    width = int(w) if w else s.width
    small = width / 64
    if base in ("resnet18", "resnet34", "resnet50"):
        return models.resnet(base, num_classes, cifar_stem=True, width=width, in_channels=C)
    if base == "convnet4":
        return fewshot.ConvNet4(num_classes, in_channels=C, hidden=max(8, int(64 * small * 2)))
    if base in ("resnet12", "seresnet12"):
        widths = tuple(max(4, int(c * small)) for c in (64, 160, 320, 640))
        return fewshot.backbone(base, num_classes, widths=widths, in_channels=C)
    if base == "vit":
        dim = 192 if profile == "paper" else (64 if profile == "cpu" else 16)
        return models.vit("vit_tiny_patch16_224", num_classes, img_size=H, patch_size=4, in_chans=C,
                          embed_dim=dim, depth=12, num_heads=4 if dim >= 64 else 2)
    raise ValueError(f"unknown zoo network {name!r}.")


def source_model(cfg: Mapping[str, Any], store: ModelStore, *, progress: bool = False,
                 data_root=None, device: str = "auto", nc_every: int | None = None
                 ) -> tuple[pretrain.PretrainNet, dict]:
    """Pre-train (or load from ``store``) a network on the profile's source data.

    ``cfg`` keys: ``profile``, ``data`` (default ``"source"``), ``arch`` (a :func:`zoo_backbone`
    name), ``loss`` (ce, mse, supcon),
    ``head_layers``, ``level`` (augmentation 1-5), ``adv_eps`` (None or a radius), ``pgd_steps``,
    ``epochs``, ``lr``, ``batch_size``, ``seed``. Returns the trained :class:`PretrainNet` and
    its info: the per-epoch ``history`` (loss, accuracy, source NC1) and the final ``source_nc1``.
    ``nc_every`` (not part of the configuration) measures the source NC1 every that many epochs
    while training; ``None`` only after the last one.
    """
    cfg = dict(cfg)
    profile, name = cfg["profile"], cfg.get("data", "source")
    key = model_key(cfg)
    adversarial = cfg.get("adv_eps") is not None
    mean, std = source_stats(profile, cfg["seed"], data_root, name)
    in_shape, classes = _shape_and_classes(profile, name, cfg["seed"], data_root)

    def build():
        torch.manual_seed(cfg["seed"])
        back = zoo_backbone(cfg["arch"], profile, classes, in_shape)
        return pretrain.PretrainNet.from_backbone(
            back, classes, loss=cfg["loss"], head_layers=cfg["head_layers"],
            mean=mean if adversarial else None, std=std if adversarial else None)

    def train(net):
        views = 2 if cfg["loss"] == "supcon" else 1
        train_set, batch_transform = training_data(
            profile, "train", level=cfg["level"], normalize=not adversarial, views=views, seed=cfg["seed"],
            data_root=data_root, name=name)
        plain = source(profile, "train", level=1, normalize=not adversarial, seed=cfg["seed"],
                       data_root=data_root, name=name)
        loader = data.make_loader(train_set, cfg["batch_size"], shuffle=True, seed=cfg["seed"],
                                  drop_last=True)
        nc_loader = data.make_loader(plain, 512)
        history = pretrain.pretrain(
            net, loader, loss=cfg["loss"], epochs=cfg["epochs"], lr=cfg["lr"], seed=cfg["seed"],
            batch_transform=batch_transform,
            adversarial_eps=cfg.get("adv_eps"), pgd_steps=cfg.get("pgd_steps") or 10,
            nc_loader=nc_loader, nc_every=nc_every or cfg["epochs"],
            checkpoint=store.checkpoint_path(key), progress=progress, device=device)
        info = {"history": history, "config": cfg, "key": key}
        if history and history[-1].get("nc1") is not None:
            info["source_nc1"] = history[-1]["nc1"]
        else:
            info["source_nc1"] = pretrain.source_nc1(net.encoder, nc_loader, normalize=net.normalize,
                                                     progress=False, device=device)
        return info

    net, info = store.get(key, build, train)
    return net.eval(), info


def pretrained_backbone(cfg: Mapping[str, Any], store: ModelStore, **kwargs) -> nn.Module:
    """The backbone of a stored source model with its pre-trained encoder weights and a (source)
    classifier slot, ready for :func:`ncutils.finetune.build` (which replaces the classifier)."""
    net, _ = source_model(cfg, store, **kwargs)
    in_shape, classes = _shape_and_classes(cfg["profile"], cfg.get("data", "source"), cfg["seed"],
                                           kwargs.get("data_root"))
    back = zoo_backbone(cfg["arch"], cfg["profile"], classes, in_shape)
    missing, unexpected = back.load_state_dict(net.encoder.state_dict(), strict=False)
    if unexpected or any(not k.startswith(("fc.", "head.")) for k in missing):
        raise ValueError(f"stored encoder does not fit {cfg['arch']}: missing {missing}, "
                         f"unexpected {unexpected}.")
    return back


def source_config(profile: str, arch: str = "resnet18", *, loss: str = "ce", head_layers: int = 0,
                  level: int = 3, adv_eps: float | None = None, pgd_steps: int = 2, epochs: int = 200,
                  lr: float = 0.1, batch_size: int = 128, seed: int = 0, data: str = "source"
                  ) -> dict[str, Any]:
    """A :func:`source_model` configuration. Chapters build theirs with this function so that the
    same network (e.g. the CE-trained ResNet18 with augmentation level 3) is trained once and
    shared by every chapter through the model store."""
    cfg = {"profile": profile, "arch": arch, "loss": loss, "head_layers": int(head_layers),
            "level": int(level), "adv_eps": None if adv_eps is None else float(adv_eps),
            "pgd_steps": int(pgd_steps) if adv_eps is not None else None, "epochs": int(epochs),
            "lr": float(lr), "batch_size": int(batch_size), "seed": int(seed)}
    if data != "source":  # keeps the keys of source-data models unchanged
        cfg["data"] = data
    return cfg


def transfer_eval(encoder: nn.Module, profile: str, name: str, *, probe_epochs: int = 200, seed: int = 0,
                  data_root=None, device: str = "auto") -> dict[str, Any]:
    """Linear-probe transfer of a frozen ``encoder`` to downstream set ``name`` (Section 3.2):
    test accuracy, train accuracy and the NC1 of the downstream training features."""
    train = data.make_loader(downstream(profile, name, "train", seed=seed, data_root=data_root), 256)
    test = data.make_loader(downstream(profile, name, "test", seed=seed, data_root=data_root), 256)
    return pretrain.transfer(encoder, train, test, epochs=probe_epochs, seed=seed, progress=False,
                             device=device)


def model_key(cfg: Mapping[str, Any]) -> str:
    """The :class:`~ncutils.results.ModelStore` key of a source-model configuration."""
    return config_key(f"{cfg['profile']}-{cfg['arch']}-{cfg['loss']}", dict(cfg))


# --------------------------------------------------------------------------- public ImageNet models
def imagenet_model(name: str) -> nn.Module:
    """A public ImageNet-pre-trained classifier: a torchvision name, or ``vit_b_32`` (timm, 384 px).

    The weights are downloaded on first use (internet needed once; torchvision caches them under
    ``TORCH_HOME``, timm under the Hugging Face cache).
    """
    try:
        if name.startswith("vit"):
            return models.vit(name, pretrained=True)
        return torchvision.models.get_model(name, weights="DEFAULT")
    except Exception as err:
        raise RuntimeError(
            f"could not load the ImageNet weights of {name} ({type(err).__name__}: {err}). They are "
            "downloaded on first use and need internet access once; the paper profile needs them."
        ) from err


def imagenet_data(name: str, split: str, arch: str, *, data_root=None, download: bool = False) -> Dataset:
    """A paper dataset preprocessed for an ImageNet model: 224 px (299 for Inception-v3, 384 for
    ViT-B/32) and ImageNet normalisation (Appendix B)."""
    size = 299 if arch == "inception_v3" else data.image_size_for(arch)
    return data.load(name, split, root=data_root, download=download, image_size=size)
