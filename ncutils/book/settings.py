"""Every setting of the book, declared once: its type, its default (the ``cpu`` profile's), what values it
may take and what it means.

A chapter's settings are one frozen dataclass (:data:`CHAPTERS`): the notebook's ``parameters`` cell names
the profile and the settings it changes, and :func:`resolve` turns them into an instance, checked field by
field. The profiles' files (``book/profiles/<name>.yaml``) and the parameter files users pass to
``python -m ncutils.book --profile FILE.yaml`` are checked against the same declarations before anything is
computed (:func:`load`): an unknown key, a value of the wrong type or out of range is one line naming the
file, the key, the value and what is allowed.

Settings that several chapters read are declared once, in the groups the chapters inherit:

=====================  ==========================================================================
:class:`Common`        ``profile``, ``seed``, ``source_recipe`` (every chapter)
:class:`Probing`       ``probe_epochs``: the linear probes of Chapters 3, 4 and 6 (shared units)
:class:`Population`    ``population_seeds``: the pre-trained population of Chapters 4 and 6
=====================  ==========================================================================

A value is resolved in this order: the declaration's default < the profile's file < the changes (a
parameter file's keys, or the notebook's ``settings`` dict). A parameter file that says ``profile: smoke``
starts from the smoke profile's values; one without a ``profile:`` line adjusts :data:`DEFAULT_PROFILE`.

:class:`Run` holds where and how a chapter runs (store, results file, device, ...): the runner sets it and
none of it changes a number.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import os
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import yaml

__all__ = ["CHAPTERS", "DEFAULT_PROFILE", "REPLICATE_STRIDE", "Common", "NCMetrics", "Population", "Probing",
           "ProgressiveCollapse", "Pretraining", "Downstream", "Finetuning", "Transferability", "Run",
           "SettingsError", "Loaded", "changed", "chapter_settings", "declared", "find_root", "load", "profile_values",
           "replicate", "resolve", "seed_fields"]

#: Replicate ``K`` adds ``K`` times this to every seed, so the seeds of two replicates never meet (a chapter's
#: seeds stay below it).
REPLICATE_STRIDE = 1000

#: The profile a parameter file without a ``profile:`` line adjusts (and the declarations' defaults).
DEFAULT_PROFILE = "cpu"

PROFILE_NAMES = ("smoke", "cpu", "paper")


class SettingsError(ValueError):
    """A setting with a value its declaration does not allow (the message names the key, value and rule)."""


# --------------------------------------------------------------------------- declaring a setting
def setting(default: Any, doc: str, *, check: Callable[[Any], str | None] | None = None, seed: bool = False,
            paper: str | None = None):
    """A declared setting: its ``default`` (the cpu profile's), its meaning, a ``check`` of its value (returns
    what is allowed when the value is not), whether it holds seeds (moved by :func:`replicate`) and the
    paper's value."""
    meta = {"doc": doc, "check": check, "seed": seed, "paper": paper}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: copy.deepcopy(default), metadata=meta)
    return field(default=default, metadata=meta)


def _at_least(lo: float) -> Callable[[Any], str | None]:
    def check(v):
        values = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else [v]
        whole = all(isinstance(x, int) for x in values if x is not None)
        return None if all(x is None or x >= lo for x in values) else f"{'integers' if whole else 'numbers'} >= {lo:g}"
    return check


def _above(lo: float) -> Callable[[Any], str | None]:
    def check(v):
        values = v if isinstance(v, list) else list(v.values()) if isinstance(v, dict) else [v]
        return None if all(x is None or x > lo for x in values) else f"numbers > {lo:g}"
    return check


def _seeds(v) -> str | None:
    values = v if isinstance(v, list) else [v]
    if not all(s >= 0 for s in values):
        return "seeds >= 0"
    if len(set(values)) != len(values):
        return "distinct seeds"
    return None


def _one_of(*choices: Any) -> Callable[[Any], str | None]:
    def check(v):
        values = v if isinstance(v, list) else [v]
        return None if all(x in choices for x in values) else "one of " + ", ".join(map(str, choices))
    return check


def _all(*checks: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    def check(v):
        for c in checks:
            why = c(v)
            if why:
                return why
        return None
    return check


def _nonempty(v) -> str | None:
    return None if v is None or len(v) > 0 else "a non-empty list"


def _distinct(v) -> str | None:
    return None if v is None or len(set(map(str, v))) == len(v) else "a list without repeats"


POSITIVE = _at_least(1)
NONNEGATIVE = _at_least(0)
SEEDS = _all(_nonempty, _seeds)
SEED = _seeds
COUNTS = _all(_nonempty, _distinct, POSITIVE)


def _recipe(v) -> str | None:
    """``source_recipe``: changes to the profile's pre-training recipe, field by field."""
    if v is None:
        return None
    allowed = {"epochs": (int, 1), "lr": (float, 0), "min_lr": (float, 0), "momentum": (float, 0),
               "weight_decay": (float, 0), "batch_size": (int, 1), "level": (int, 1), "pgd_steps": (int, 1),
               "padding": (int, 0), "nc_every": (int, 1)}
    for k, x in v.items():
        if k in ("loss_options", "until"):
            if x is not None and not isinstance(x, dict):
                return f"{k}: a mapping or null"
            continue
        if k not in allowed:
            return f"fields among {', '.join(sorted([*allowed, 'loss_options', 'until']))} (not {k!r})"
        typ, lo = allowed[k]
        ok = isinstance(x, int) and not isinstance(x, bool) if typ is int else \
            isinstance(x, (int, float)) and not isinstance(x, bool)
        if k == "nc_every" and x is None:
            continue
        if not ok or x < lo:
            return f"{k}: {'an integer' if typ is int else 'a number'} >= {lo} (got {x!r})"
    return None


# --------------------------------------------------------------------------- the declarations
@dataclass(frozen=True)
class Common:
    """What every chapter reads."""

    profile: str = setting("cpu", "the profile the chapter runs at: smoke | cpu | paper (ncutils.book.profiles)",
                           check=_one_of(*PROFILE_NAMES))
    seed: int = setting(0, "the chapter's seed: source models, probes, subsets, episodes", check=SEED, seed=True)
    source_recipe: dict | None = setting(None, "changes to the profile's shared pre-training recipe (epochs, lr, "
                                         "...), for every chapter alike", check=_recipe)


@dataclass(frozen=True)
class Probing:
    """The linear probe on frozen features (Section 3.2), shared by Chapters 3, 4 and 6."""

    probe_epochs: int = setting(50, "linear-probe epochs on frozen features", check=POSITIVE, paper="200")


@dataclass(frozen=True)
class Population:
    """The population of pre-trained networks the correlation claims range over (Chapters 4 and 6)."""

    population_seeds: list[int] | None = setting(
        [0, 1, 2], "the Table 1 and Fig. 3 source models of these seeds join the population (in-book networks)",
        check=_seeds, seed=True)


@dataclass(frozen=True)
class NCMetrics(Common):
    """Chapter 1: the NC metrics on constructed features (Section 2.3, Appendix A)."""

    nc_classes: int = setting(10, "K of the constructed features", check=_at_least(2))
    nc_dim: int = setting(64, "feature dimension d", check=POSITIVE)
    nc_per_class: int = setting(100, "samples per class", check=_at_least(2))
    nc_noise_levels: list[float] = setting([0.0, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0], "within-class standard "
                                           "deviations", check=_all(_nonempty, NONNEGATIVE))
    nc_population: int = setting(40, "random feature sets for the metric-agreement check", check=_at_least(3))
    bench_n: int = setting(5000, "samples for the cost comparison", check=POSITIVE)
    bench_d: int = setting(512, "feature dimension for the cost comparison", check=POSITIVE)
    bench_classes: list[int] = setting([10, 100], "K for the cost comparison", check=_all(COUNTS, _at_least(2)))


@dataclass(frozen=True)
class ProgressiveCollapse(Common):
    """Chapter 2: NC1 layer by layer (Fig. 2)."""

    pc_losses: list[str] = setting(["ce", "mse", "supcon"], "pre-training losses",
                                   check=_all(_nonempty, _distinct, _one_of("ce", "mse", "supcon")))
    pc_mlp: str = setting("mlp-w256-d8", "the MLP: 8 hidden layers and a classifier", paper="width 784")
    pc_mlp_epochs: int = setting(60, "the MLPs' epochs", check=POSITIVE, paper="150")
    pc_resnet: str = setting("resnet18", "the ResNet (the profile's shared recipe, without augmentation)")
    pc_lr: float = setting(0.05, "the MLPs' learning rate", check=_above(0))
    pc_batch_size: int = setting(128, "the MLPs' batch size", check=POSITIVE)


@dataclass(frozen=True)
class Pretraining(Probing, Common):
    """Chapter 3: pre-training and transfer (Table 1, Figs. 3-4)."""

    pt_arch: str = setting("resnet18", "Table 1's network", paper="ResNet18")
    pt_seeds: list[int] = setting([0, 1, 2], "Table 1's seed replicates", check=SEEDS, seed=True)
    pt_losses: list[str] = setting(["ce"], "Fig. 3's losses", check=_all(_nonempty, _distinct,
                                   _one_of("ce", "mse", "supcon")), paper="MSE, CE, SupCon")
    pt_head_layers: list[int] = setting([0, 1, 2], "Fig. 3's projection-head layers (0: no head)",
                                        check=_all(_nonempty, _distinct, NONNEGATIVE), paper="0-3")
    pt_fig_seeds: list[int] = setting([0, 1, 2], "Fig. 3's seed replicates", check=SEEDS, seed=True)
    pt_random_seeds: list[int] | None = setting(list(range(10)), "randomly initialised encoders (after Fig. 4)",
                                                check=_seeds, seed=True)
    pt_transfer_sets: list[str] | None = setting(None, "transfer accuracy: the mean probe accuracy over these "
                                                 "downstream sets (None: every downstream set of the profile)",
                                                 check=_all(_nonempty, _distinct))


@dataclass(frozen=True)
class Downstream(Population, Probing, Common):
    """Chapter 4: downstream collapse, few-shot and layer-wise probes (Figs. 5-9, Table 2)."""

    ds_population: list[str] = setting(["resnet18", "resnet18-w16", "resnet34", "convnet4", "resnet12", "mlp"],
                                       "Fig. 6's pre-trained networks (paper profile: public ImageNet models)",
                                       check=_all(_nonempty, _distinct))
    fs_backbones: list[str] = setting(["convnet4", "resnet12", "resnet18"], "Table 2's backbones",
                                      check=_all(_nonempty, _distinct), paper="ConvNet4, ResNet12, SEResNet12")
    fs_ways: int = setting(5, "classes per episode", check=_at_least(2))
    fs_shots: list[int] = setting([1, 5], "labelled samples per class per episode", check=COUNTS)
    fs_queries: int = setting(15, "query samples per class per episode", check=POSITIVE)
    fs_episodes: int = setting(1000, "episodes per setting", check=POSITIVE, paper="600")
    lw_archs: list[str] = setting(["resnet18", "resnet34", "vit"], "Fig. 9's networks",
                                  check=_all(_nonempty, _distinct), paper="ImageNet ResNet34 and ViT-B/32")


@dataclass(frozen=True)
class Finetuning(Common):
    """Chapter 5: fine-tuning one block (Tables 3-7, Figs. 10, 11, 14)."""

    ft_archs: list[str] = setting(["resnet18", "vit"], "networks", check=_all(_nonempty, _distinct),
                                  paper="resnet18, resnet50, vit_b_32")
    ft_datasets: list[str] = setting(["mnist10", "sklearn10", "fashion10"], "downstream sets of the ResNets",
                                     check=_all(_nonempty, _distinct), paper="cifar10, cifar100, aircraft, dtd, pets")
    ft_vit_datasets: list[str] = setting(["mnist10"], "downstream sets of the ViTs", check=_distinct,
                                         paper="aircraft, dtd, pets")
    ft_methods: list[str] = setting(["linear", "layer", "scl", "full"], "fine-tuning methods",
                                    check=_all(_nonempty, _distinct, _one_of("linear", "layer", "scl", "full")))
    ft_block: dict[str, int] | None = setting({"vit": 4}, "the block Layer and SCL FT fine-tune, per network (a "
                                              "network not named: the paper's, Table 3; the in-book ViT: Layer 4, "
                                              "where ViT-B/32's Layer 8 of 12 sits in the cpu profile's six "
                                              "layers)", check=POSITIVE)
    ft_blocks: dict[str, list[int]] = setting({"resnet18": [1, 3, 5, 7], "resnet50": [1, 4, 8, 14],
                                               "vit": [1, 2, 4, 5], "vit_b_32": [2, 5, 8, 11]},
                                              "blocks compared per network (Tables 5-7, Figs. 10 and 14)")
    ft_per_class: int | None = setting(100, "training samples per class of Tables 3-7 (None: the whole set)",
                                       check=POSITIVE)
    ft_epochs: int = setting(15, "fine-tuning epochs", check=POSITIVE, paper="200")
    ft_lr: dict[str, float] = setting({"resnet": 0.05, "vit": 0.01}, "learning rate per family (resnet, vit)",
                                      check=_above(0), paper="{0.1, 0.05} ResNet, {1e-2, 1e-3} ViT")
    ft_weight_decay: dict[str, float] = setting({"resnet": 1e-4, "vit": 1e-4}, "weight decay per family",
                                                check=NONNEGATIVE)
    ft_batch_size: int = setting(64, "batch size", check=POSITIVE)
    ft_sizes: list[int] = setting([3, 10, 30, 100, 400], "Fig. 11 (arXiv): samples per class, log-spaced up to the "
                                  "whole training set (400 per class of MNIST-5k)", check=COUNTS,
                                  paper="10, 24, ..., 4898")
    ft_sizes_tmlr: list[int] | None = setting([3, 10, 32], "Fig. 8 (TMLR): samples per class", check=COUNTS,
                                              paper="3, 10, 32, 100, 316")
    ft_scarce_seeds: list[int] | None = setting([0, 1, 2, 3, 4], "Fig. 11's verdict: seed replicates at the two "
                                                "smallest sizes", check=_seeds, seed=True)
    ft_table3_seeds: list[int] | None = setting([0, 1, 2], "Table 3's verdicts: seed replicates of every cell",
                                                check=_seeds, seed=True)


@dataclass(frozen=True)
class Transferability(Population, Probing, Common):
    """Chapter 6: ranking pre-trained networks by NCTI and ten other scores."""

    tf_hub: list[str] = setting(["resnet18-w4", "resnet18", "resnet18-w16", "resnet34", "convnet4", "resnet12",
                                 "mlp"], "candidate networks (paper profile: 11 supervised ImageNet models)",
                                check=_all(_nonempty, _distinct))
    tf_hub_short: list[str] = setting(["resnet18"], "also included after only tf_short_epochs of pre-training",
                                      check=_distinct)
    tf_short_epochs: int = setting(2, "epochs of the stopped-early candidates", check=POSITIVE)
    tf_pairwise_per_class: int | None = setting(100, "N-LEEP and PARC (quadratic in the samples) on this many "
                                                "samples per class (None: all)", check=_at_least(2))
    tf_datasets: list[str] = setting(["mnist10", "sklearn10", "fashion10"], "target datasets",
                                     check=_all(_nonempty, _distinct))
    tf_scores: list[str] = setting(["ncti", "logme", "hscore", "nc1", "leep", "nce", "nleep", "parc", "sfda", "gbc",
                                    "transrate"], "scores compared", check=_all(_nonempty, _distinct))


#: Each chapter's declaration, by chapter number.
CHAPTERS: dict[int, type[Common]] = {1: NCMetrics, 2: ProgressiveCollapse, 3: Pretraining, 4: Downstream,
                                     5: Finetuning, 6: Transferability}


@dataclass(frozen=True)
class Run:
    """Where and how a chapter runs; the runner sets these, and none of them changes a result."""

    results_path: str | None = setting(None, "the chapter's JSON file (None: keep it in memory)")
    store_dir: str | None = setting(None, "the unit store (None: _build/store of the repository)")
    reuse_results: bool = setting(True, "False: recompute every unit finished before this run started")
    compute_missing: bool = setting(True, "False: fail on a unit that a fan-out run did not store")
    dry_run: str | None = setting(None, "the paper-shaped dry run on stand-ins: minimal | batch",
                                  check=_one_of(None, "minimal", "batch"))
    device: str = setting("auto", "auto | cpu | cuda | cuda:N")
    data_root: str | None = setting(None, "where the paper profile's datasets live (default: $NCUTILS_DATA)")
    progress: bool = setting(False, "show progress bars")
    replicate: int = setting(0, "the replicate whose seeds the settings hold (0: the book's own)",
                             check=NONNEGATIVE)


# --------------------------------------------------------------------------- checking values
def declared(cls: type | None = None) -> dict[str, dataclasses.Field]:
    """``{name: field}`` of a declaration, or of every chapter's (a name shared by several chapters is one
    declaration, inherited)."""
    if cls is not None:
        return {f.name: f for f in fields(cls)}
    out: dict[str, dataclasses.Field] = {}
    for c in CHAPTERS.values():
        out.update({f.name: f for f in fields(c)})
    return out


def seed_fields(cls: type | None = None) -> list[str]:
    """The settings that hold seeds (what :func:`replicate` moves)."""
    return [n for n, f in declared(cls).items() if f.metadata.get("seed")]


def _type_name(t: Any) -> str:
    origin = typing.get_origin(t)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        return " or ".join(_type_name(a) for a in args) + " or null"
    if origin is list:
        (a,) = typing.get_args(t)
        return f"a list of {_type_name(a).removeprefix('an ').removeprefix('a ')}s"
    if origin is dict:
        k, v = typing.get_args(t)
        value = _type_name(v).removeprefix("an ").removeprefix("a ")
        return f"a mapping of {_type_name(k).removeprefix('a ')} to {value}"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
            list: "a list"}.get(t, getattr(t, "__name__", str(t)))


def _conform(value: Any, t: Any) -> tuple[bool, Any]:
    """``(ok, value)``: ``value`` against type ``t`` (an int is a float; a bool is not a number; no strings are
    parsed)."""
    origin = typing.get_origin(t)
    if origin in (types.UnionType, typing.Union):
        if value is None and type(None) in typing.get_args(t):
            return True, None
        for a in typing.get_args(t):
            if a is not type(None):
                ok, v = _conform(value, a)
                if ok:
                    return True, v
        return False, value
    if origin is list:
        (a,) = typing.get_args(t)
        if not isinstance(value, (list, tuple)):
            return False, value
        out = []
        for x in value:
            ok, v = _conform(x, a)
            if not ok:
                return False, value
            out.append(v)
        return True, out
    if origin is dict:
        k, a = typing.get_args(t)
        if not isinstance(value, Mapping):
            return False, value
        out = {}
        for key, x in value.items():
            ok, v = _conform(x, a)
            okk, kk = _conform(key, k)
            if not (ok and okk):
                return False, value
            out[kk] = v
        return True, out
    if t is bool:
        return isinstance(value, bool), value
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    if t is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if t is str:
        return isinstance(value, str), value
    if t is dict:
        return isinstance(value, Mapping), dict(value) if isinstance(value, Mapping) else value
    return isinstance(value, t), value


def _show(value: Any) -> str:
    """A value as the parameter file wrote it (``null`` for None)."""
    return "null" if value is None else repr(value)


def _check(name: str, value: Any, f: dataclasses.Field, hints: Mapping[str, Any], where: str) -> Any:
    t = hints[name]
    ok, v = _conform(value, t)
    if not ok:
        raise SettingsError(f"{where}: {name}: {_show(value)} is not allowed; {name} is {_type_name(t)} "
                            f"({f.metadata.get('doc', '')}).")
    check = f.metadata.get("check")
    why = check(v) if check and v is not None else None
    if why:
        raise SettingsError(f"{where}: {name}: {_show(value)} is not allowed; {name} takes {why} "
                            f"({f.metadata.get('doc', '')}).")
    return v


def _unknown(key: str, known: list[str], where: str, what: str) -> SettingsError:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return SettingsError(f"{where}: {key!r} is not {what}{hint}; see ncutils.book.settings for every setting.")


def checked(cls: type, values: Mapping[str, Any], where: str) -> dict[str, Any]:
    """``values`` checked against declaration ``cls`` (every chapter's when ``cls`` is None): types conformed
    (an integer where a number is declared becomes a float), unknown keys and bad values rejected."""
    fs = declared(cls)
    owners = [cls] if cls is not None else list(dict.fromkeys(CHAPTERS.values()))
    hints: dict[str, Any] = {}
    for c in owners:
        hints.update(typing.get_type_hints(c))
    out = {}
    for k, v in values.items():
        if k not in fs:
            raise _unknown(k, sorted(fs), where, "a setting of any chapter" if cls is None else
                           f"a setting of {cls.__name__}")
        out[k] = _check(k, v, fs[k], hints, where)
    return out


# --------------------------------------------------------------------------- profiles and parameter files
def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository holding ``_config.yml``, ``_toc.yml`` and ``book/`` (searching upwards)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "book").is_dir():
            return folder
    pkg_parent = Path(__file__).resolve().parents[2]  # an editable install inside the repository
    if (pkg_parent / "_toc.yml").exists():
        return pkg_parent
    raise SystemExit(f"no book found: neither {here} nor its parents hold _toc.yml and book/. Run this command "
                     "inside the ncbook repository, or pass --root PATH.")


def _read_yaml(path: Path) -> dict:
    try:
        values = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SettingsError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(values, dict):
        raise SettingsError(f"{path}: a parameter file is a mapping of setting names to values; got "
                            f"{type(values).__name__}.")
    return values


def profile_values(name: str, root: Path | None = None) -> dict[str, Any]:
    """The settings profile ``name``'s file (``book/profiles/<name>.yaml``) sets, checked, with ``profile``."""
    if name not in PROFILE_NAMES:
        raise SettingsError(f"profile: {name!r} is not a profile; use one of {', '.join(PROFILE_NAMES)}.")
    path = (root or find_root()) / "book" / "profiles" / f"{name}.yaml"
    values = _read_yaml(path) if path.exists() else {}
    if values.get("profile", name) != name:
        raise SettingsError(f"{path}: the file of profile {name!r} may not name another profile.")
    values.pop("profile", None)
    return {"profile": name, **checked(None, values, str(path))}


@dataclass(frozen=True)
class Loaded:
    """What a ``--profile`` argument resolves to: the build's ``label``, the ``profile`` it starts from, the
    settings its file changes from that profile (``changes``) and all of them (``values``)."""

    label: str
    profile: str
    changes: dict[str, Any]
    values: dict[str, Any]
    path: Path | None = None


def load(spec: str, root: Path | None = None) -> Loaded:
    """A profile name (``smoke``, ``cpu``, ``paper``) or a YAML parameter file, checked against the
    declarations before anything is computed (:class:`SettingsError` names the file, key, value and rule)."""
    root = root or find_root()
    path = Path(spec)
    if not path.suffix:
        if spec not in PROFILE_NAMES:
            known = ", ".join(PROFILE_NAMES)
            raise SettingsError(f"--profile {spec}: no such profile; use one of {known}, or a YAML parameter file "
                                "(a path ending in .yaml).")
        return Loaded(spec, spec, {}, profile_values(spec, root), root / "book" / "profiles" / f"{spec}.yaml")
    if not path.exists():
        raise SettingsError(f"--profile {spec}: no such file {path.resolve()} (a parameter file's path is relative "
                            f"to the current folder, {Path.cwd()}).")
    changes = _read_yaml(path)
    name = changes.pop("profile", DEFAULT_PROFILE)
    if name not in PROFILE_NAMES:
        raise SettingsError(f"{path}: profile: {name!r} is not a profile; use one of {', '.join(PROFILE_NAMES)} (or "
                            f"leave the line out: a parameter file adjusts {DEFAULT_PROFILE!r}).")
    base = profile_values(name, root)
    changes = checked(None, changes, str(path))
    return Loaded(path.stem, name, changes, {**base, **changes}, path.resolve())


def chapter_settings(number: int, values: Mapping[str, Any], *, replicate: int = 0) -> Common:
    """Chapter ``number``'s settings from ``values`` (already checked; keys it does not declare are ignored;
    the others keep their declared defaults), with every seed setting moved to replicate ``replicate``'s set."""
    cls = CHAPTERS[number]
    names = declared(cls)
    s = cls(**{k: copy.deepcopy(v) for k, v in values.items() if k in names})
    return cls(**_replicated(as_dict(s), replicate)) if replicate else s


def resolve(number: int, profile: str = DEFAULT_PROFILE, changes: Mapping[str, Any] | None = None,
            root: Path | None = None, *, replicate: int = 0) -> Common:
    """Chapter ``number``'s settings: its declaration's defaults < profile ``profile``'s file < ``changes``
    (a key the chapter does not declare is an error), with the seeds of replicate ``replicate``."""
    if number not in CHAPTERS:
        raise SettingsError(f"no chapter {number}; chapters are {sorted(CHAPTERS)}.")
    cls = CHAPTERS[number]
    changes = dict(changes or {})
    where = f"chapter {number} ({cls.__name__}) settings"
    if "profile" in changes and changes["profile"] != profile:
        raise SettingsError(f"{where}: profile is given twice ({profile!r} and {changes['profile']!r}).")
    base = profile_values(profile, root)
    return chapter_settings(number, {**base, **checked(cls, changes, where), "profile": profile}, replicate=replicate)


def changed(s: Common, root: Path | None = None) -> dict[str, tuple[Any, Any]]:
    """``{name: (value, the profile's value)}`` for the settings of ``s`` that differ from its profile's."""
    base = chapter_settings(_number(s), profile_values(s.profile, root))
    return {f.name: (getattr(s, f.name), getattr(base, f.name)) for f in fields(s)
            if getattr(s, f.name) != getattr(base, f.name)}


def _number(s: Common) -> int:
    return next(n for n, c in CHAPTERS.items() if type(s) is c)


def _replicated(values, k):
    return replicate(values, k)


def replicate(values: Mapping[str, Any], k: int) -> dict[str, Any]:
    """``values`` with every declared seed setting moved to replicate ``k``'s own set (``k = 0``: unchanged).

    Every random choice of a chapter flows from its seed settings (pre-training, probes, subsets, episodes), so
    replicate ``k`` redraws them all from seeds no other replicate uses; the datasets stay the same."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        raise SettingsError(f"a replicate is a number >= 0; got {k!r}.")
    shift, seeds = REPLICATE_STRIDE * k, set(seed_fields())

    def moved(name, value):
        if value is None:
            return value
        if isinstance(value, list):
            return [moved(name, v) for v in value]
        if not 0 <= value < REPLICATE_STRIDE:
            raise SettingsError(f"{name}: seeds must lie in [0, {REPLICATE_STRIDE}) to replicate; got {value}.")
        return value + shift

    return {n: moved(n, v) if n in seeds else v for n, v in values.items()}


def as_dict(s: Any) -> dict[str, Any]:
    """A declaration's instance as ``{name: value}`` (plain JSON values)."""
    return {f.name: copy.deepcopy(getattr(s, f.name)) for f in fields(s)}


def describe(cls: type) -> list[dict[str, Any]]:
    """One row per setting of ``cls``: name, type, default, meaning, paper's value (for a page or ``--help``)."""
    hints = typing.get_type_hints(cls)
    return [{"setting": f.name, "type": _type_name(hints[f.name]), "default": getattr(cls(), f.name),
             "meaning": f.metadata.get("doc", ""), "paper": f.metadata.get("paper")} for f in fields(cls)]
