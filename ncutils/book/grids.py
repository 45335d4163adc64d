"""Each chapter's grid of units, as a function of the chapter's settings.

``grid(n, settings)`` returns the units chapter ``n`` reads, in named groups: ``{group: {label: Unit}}``
(labels are tuples of plain values, or :class:`Network` labels that carry their parts as fields; pages
format them, nothing parses them back). The runner, a test or
another machine can enumerate a chapter's work from its parameters alone (``python -m ncutils.book
--plan``), and the notebook composes its tables and figures from the same groups. Units shared by
several chapters (a source model probed in Chapters 3, 4 and 6) are built by the same functions,
so they have the same key and are computed once.

``settings`` is the chapter's typed settings (:mod:`ncutils.book.settings`): each grid reads its fields by
name, and the shared ones (``profile``, ``seed``, ``source_recipe``, ``probe_epochs``, ``population_seeds``)
come from one declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ncutils.book import networks, profiles, published
from ncutils.book.engine.dryrun import dry_grid
from ncutils.book.engine.units import Unit, closure
from ncutils.book.profiles import Profile
from ncutils.book.settings import Common
from ncutils.finetune.methods import PAPER_BLOCK

__all__ = ["GRIDS", "LABEL_FREE_LEVEL", "LOSS_TITLES", "PAPER_ARCH", "SETTING_TITLES", "TABLE1_SETTINGS", "Network",
           "all_units",
           "family", "fig4_models", "finetune_sets", "grid", "population", "probe", "profile_of", "table3_block"]

Grid = dict[str, dict[Any, Unit]]


def profile_of(q: Common) -> Profile:
    """The chapter's profile, with its shared pre-training recipe adjusted by ``source_recipe``."""
    return profiles.get(q.profile, q.source_recipe)


def probe(p: Profile, backbone: Mapping[str, Any], name: str, epochs: int, seed: int) -> Unit:
    """Linear probe of ``backbone``'s frozen features on downstream set ``name`` (Section 3.2); the classifier's
    learning rate and batch sizes are the ``probe`` kind's defaults (its signature,
    :func:`ncutils.book.experiments.probing.run_probe`)."""
    return Unit("probe", {"backbone": dict(backbone), "train": p.downstream(name, "train", backbone),
                          "test": p.downstream(name, "test", backbone), "epochs": int(epochs), "seed": int(seed)})


#: The augmentation level of the label-free contrastive encoder (the CLIP stand-in): every step of Fig. 4's
#: levels (crop, flip, colour jitter, grayscale), as SimCLR needs views that differ.
LABEL_FREE_LEVEL = 5

#: Table 1's pre-training settings: name -> (loss, layers of the projection head).
TABLE1_SETTINGS = {"mse_none": ("mse", 0), "ce_none": ("ce", 0), "supcon_linear": ("supcon", 1),
                   "supcon_mlp": ("supcon", 2)}
#: The pre-training losses as a page names them.
LOSS_TITLES = {"ce": "CE", "mse": "MSE", "supcon": "SupCon", "simclr": "label-free contrastive"}
#: Table 1's settings as a page names them.
SETTING_TITLES = {"mse_none": "MSE", "ce_none": "CE", "supcon_linear": "SupCon + linear head",
                  "supcon_mlp": "SupCon + MLP head"}


class Network(str):
    """The label of a pre-trained network of the population, as data: its ``kind`` and parts as fields, and
    the text a page shows as its string value (so it sorts, prints and serialises as that text).

    ``kind`` is one of ``"architecture"`` (``name``, ``seed``), ``"setting"`` (Table 1's setting ``name``,
    ``seed``), ``"head"`` (cross-entropy with a ``value``-layer head, ``seed``), ``"augmentation"`` (level
    ``value``), ``"adversarial"`` (radius ``value``/255) or ``"stopped"`` (``name`` after ``value`` epochs)."""

    KINDS = ("architecture", "setting", "head", "augmentation", "adversarial", "stopped")
    kind: str
    name: str
    seed: int | None
    value: float | None

    def __new__(cls, kind: str, name: str = "", seed: int | None = None, value: float | None = None):
        if kind not in cls.KINDS:
            raise ValueError(f"a network label's kind is one of {cls.KINDS}; got {kind!r}.")
        text = {"architecture": lambda: name if not seed else f"{name} (seed {seed})",
                "setting": lambda: f"{SETTING_TITLES[name]}, seed {seed}",
                "head": lambda: f"CE + {value}-layer head, seed {seed}",
                "augmentation": lambda: f"augmentation level {value}",
                "adversarial": lambda: f"adversarial ε = {value}/255",
                "stopped": lambda: f"{name} ({value} ep.)"}[kind]()
        self = super().__new__(cls, text)
        self.kind, self.name, self.seed, self.value = kind, name, seed, value
        return self

    def __getnewargs__(self):
        return self.kind, self.name, self.seed, self.value

    @property
    def fig4(self) -> bool:
        """A Fig. 4 model (an augmentation level or an adversarial radius)."""
        return self.kind in ("augmentation", "adversarial")


def fig4_models(p: Profile, q: Common) -> dict[Network, Unit]:
    """The source models of Figs. 4 and 5: augmentation levels and adversarial radii (Chapters 3, 4), as
    the profile declares them once (:attr:`Profile.fig4`)."""
    f, seed = p.fig4, q.seed
    out = {Network("augmentation", value=lvl): p.source_model(f["arch"], level=lvl, seed=seed) for lvl in f["levels"]}
    out.update({Network("adversarial", value=e): p.source_model(f["arch"], adv_eps=e / 255, seed=seed)
                for e in f["eps_255"]})
    return out


def population(p: Profile, q: Common, archs: list[str]) -> dict[Network, dict]:
    """The population of pre-trained networks the correlation claims range over (Figs. 5-6, NCTI), as backbone
    specs by label: the networks ``archs`` (seed ``q.seed``) and, where the book pre-trains its own models,
    every other source model of Chapters 3-4 as well: Table 1's settings and the cross-entropy models with
    one- and two-layer heads (Fig. 3) of :attr:`Profile.fig4`'s encoder at the seeds ``q.population_seeds``,
    and the Fig. 4 models. A network reached twice (the same unit) is listed once, under its first label."""
    seed = q.seed
    nets = {Network("architecture", name, seed): p.pretrained(name, seed=seed) for name in archs}
    if not p.public_weights:
        arch = p.fig4["arch"]
        for s in q.population_seeds or []:
            for name, (loss, h) in TABLE1_SETTINGS.items():
                nets[Network("setting", name, s)] = {
                    "source": p.source_model(arch, loss=loss, head_layers=h, seed=s)}
            for h in (1, 2):
                nets[Network("head", "ce", s, h)] = {
                    "source": p.source_model(arch, loss="ce", head_layers=h, seed=s)}
        nets.update({label: {"source": m} for label, m in fig4_models(p, q).items()})
    out, seen = {}, set()
    for label, back in nets.items():
        key = back["source"].key if "source" in back else str(back)
        if key not in seen:
            seen.add(key)
            out[label] = back
    return out


# --------------------------------------------------------------------------- chapters
def chapter1(p: Profile, q: Common) -> Grid:
    seed, common = q.seed, {"classes": q.nc_classes, "dim": q.nc_dim, "per_class": q.nc_per_class}
    return {
        "constructed": {"etf": Unit("nc_constructed", {**common, "sigmas": list(q.nc_noise_levels),
                                                       "seed": seed})},
        "surrogates": {"population": Unit("nc_surrogates", {**common, "population": q.nc_population,
                                                            "seed": seed + 1})},
        "cost": {k: Unit("nc1_cost", {"classes": k, "dim": q.bench_d, "samples": q.bench_n, "seed": seed + 2})
                 for k in q.bench_classes},
        "streaming": {"etf": Unit("nc_streaming", {**common, "sigma": 0.5, "batch_size": 64, "seed": seed + 3})},
    }


def chapter2(p: Profile, q: Common) -> Grid:
    trained, layers = {}, {}
    for family in ("mlp", "resnet"):
        for name in p.collapse[family]:
            for loss in q.pc_losses:
                if family == "mlp":
                    m = p.source_model(q.pc_mlp, loss=loss, level=1, data=name, epochs=q.pc_mlp_epochs,
                                       lr=q.pc_lr, batch_size=q.pc_batch_size, nc_every=None, seed=q.seed)
                else:  # the shared recipe without augmentation: the source models of Chapter 3 where they coincide
                    m = p.source_model(q.pc_resnet, loss=loss, level=1, data=name, seed=q.seed)
                ds = m.config["data"]
                n = networks.num_blocks({"source": m})
                # every block; an MLP's last hidden layer is its penultimate feature, a ResNet's is pooled
                wanted = list(range(1, n + 1)) + ([] if family == "mlp" else ["penultimate"])
                trained[(family, name, loss)] = m
                layers[(family, name, loss)] = Unit("layer_nc", {"backbone": {"source": m}, "data": ds,
                                                                 "layers": wanted, "loader_batch": 512,
                                                                 "pool": "avg"})
    return {"models": trained, "layer_nc": layers}


def chapter3(p: Profile, q: Common) -> Grid:
    """Table 1 over the seeds ``pt_seeds``, Fig. 3 over ``pt_fig_seeds``, Fig. 4 at ``seed``; every model
    probed on every downstream set, and the randomly initialised encoders (Section 3.1, after Fig. 4)."""
    sets = list(q.pt_transfer_sets or p.downstream_names)  # transfer accuracy: the mean over these sets
    target, arch = sets[0], q.pt_arch
    table1 = {(name, s): p.source_model(arch, loss=loss, head_layers=h, seed=s)
              for s in q.pt_seeds for name, (loss, h) in TABLE1_SETTINGS.items()}
    fig3 = {(loss, h, s): p.source_model(p.fig4["arch"], loss=loss, head_layers=h, seed=s)
            for loss in q.pt_losses for h in q.pt_head_layers for s in q.pt_fig_seeds}
    fig4 = fig4_models(p, q)
    models_ = {**{("table1", *k): v for k, v in table1.items()}, **{("fig3", *k): v for k, v in fig3.items()},
               **{("fig4", k): v for k, v in fig4.items()}}
    probes = {k: probe(p, {"source": m}, target, q.probe_epochs, q.seed) for k, m in models_.items()}
    # transfer is measured on every downstream set (the first above; the others here, shared with Chapter 4's probes)
    transfer = {(*k, d): probe(p, {"source": m}, d, q.probe_epochs, q.seed) for k, m in models_.items()
                for d in sets[1:]}
    # randomly initialised encoders of Table 1's network, one per seed of pt_random_seeds (cheap: no training)
    random = {s: probe(p, p.random_encoder(arch, seed=s), target, q.probe_epochs, q.seed)
              for s in q.pt_random_seeds or [q.seed]}
    return {"table1": table1, "fig3": fig3, "fig4": fig4, "probes": probes, "transfer": transfer, "random": random}


def chapter4(p: Profile, q: Common) -> Grid:
    seed, epochs = q.seed, q.probe_epochs
    fig5 = {(label, d): probe(p, {"source": m}, d, epochs, seed) for label, m in fig4_models(p, q).items()
            for d in p.downstream_names}
    fig6 = {(name, d): probe(p, p.pretrained(name, seed=seed), d, epochs, seed) for name in q.ds_population
            for d in p.downstream_names}
    # the verdict's population: every distinct network pre-trained for Chapters 3-4 (probes shared with fig5/fig6)
    pop = {(label, d): probe(p, back, d, epochs, seed)
           for label, back in population(p, q, q.ds_population).items() for d in p.downstream_names}
    table2 = {}
    for bench, setup in p.fewshot_benchmarks().items():
        for arch in q.fs_backbones:
            table2[(bench, arch)] = Unit("fewshot_eval", {
                "backbone": p.fewshot_backbone(bench, arch, seed=seed), "data": setup["meta_test"],
                "shots": list(q.fs_shots), "ways": q.fs_ways, "queries": q.fs_queries,
                "episodes": q.fs_episodes, "seed": seed, "loader_batch": 256})
    fig9 = {}
    first = p.downstream_names[0]
    for name in q.lw_archs:
        back = p.pretrained(name, seed=seed)
        fig9[name] = Unit("layerwise_probe", {"backbone": back, "train": p.downstream(first, "train", back),
                                              "test": p.downstream(first, "test", back),
                                              "layers": list(range(1, networks.num_blocks(back) + 1)), "pool": "avg",
                                              "epochs": epochs, "loader_batch": 256, "seed": seed})
    # TMLR version: CLIP's image encoder as a frozen feature extractor (the paper profile); without public
    # weights, what sets CLIP apart, training without labels: the Fig. 4 network trained on the source images
    # with the label-free contrastive loss, two strongly augmented views per image (SimCLR's recipe)
    clip_back = {"public": "clip_vit_b_32"} if p.public_weights else \
        {"source": p.source_model(p.fig4["arch"], loss="simclr", head_layers=2, level=LABEL_FREE_LEVEL, seed=seed)}
    clip = {d: probe(p, clip_back, d, epochs, seed) for d in p.downstream_names}
    return {"fig5": fig5, "fig6": fig6, "population": pop, "table2": table2, "fig9": fig9, "clip": clip}


#: The paper's network that each architecture of the book stands for (block numbering, Tables 3-7).
PAPER_ARCH = {"resnet18": "resnet18", "resnet50": "resnet50", "vit": "vit_b_32", "vit_b_32": "vit_b_32"}


def table3_block(q: Common, arch: str) -> int:
    """The block Layer FT and SCL FT fine-tune in Table 3 and Fig. 11: the chapter's ``ft_block`` where it
    names one, else the paper's (:data:`ncutils.finetune.PAPER_BLOCK`, typed once there)."""
    if q.ft_block and arch in q.ft_block:
        return int(q.ft_block[arch])
    return PAPER_BLOCK[PAPER_ARCH.get(arch, arch)]


def family(arch: str) -> str:
    """``"vit"`` or ``"resnet"``: the family whose fine-tuning recipe and datasets an architecture uses."""
    return "vit" if arch.startswith("vit") else "resnet"


def finetune_unit(p: Profile, q: Common, arch: str, method: str, name: str, *, block: int | None,
                  per_class: int | None = None, layerwise: bool = False, seed: int | None = None) -> Unit:
    """One fine-tuning configuration of Chapter 5 (Tables 3-7, Figs. 10, 11, 14). ``seed`` (default: the
    chapter's) seeds the source model of ``arch``, the training subset and the fine-tuning run alike."""
    seed = int(q.seed if seed is None else seed)
    back = p.pretrained(arch, seed=seed)
    per_class = q.ft_per_class if per_class is None else per_class  # Tables 3-7: all (None) or a subset
    subset = {"per_class": int(per_class), "seed": seed} if per_class is not None else None
    train = p.downstream(name, "train", back, subset=subset)
    fam = family(arch)
    return Unit("finetune", {
        "backbone": back, "method": method, "block": block if method in ("layer", "scl") else None,
        "num_classes": train["num_classes"], "train": train, "test": p.downstream(name, "test", back),
        "epochs": int(q.ft_epochs), "lr": float(q.ft_lr[fam]), "weight_decay": float(q.ft_weight_decay[fam]),
        "batch_size": int(q.ft_batch_size), "seed": seed, "layerwise": layerwise,
        "pool": "cls" if fam == "vit" else "avg"})


def finetune_sets(q: Common, arch: str) -> list[str]:
    """The downstream sets Chapter 5 fine-tunes ``arch`` on, from the chapter's parameters ``q``."""
    return list(q.ft_vit_datasets if family(arch) == "vit" else q.ft_datasets)


def chapter5(p: Profile, q: Common) -> Grid:
    table3, blocks = {}, {}
    for arch in q.ft_archs:
        for name in finetune_sets(q, arch):
            for m in q.ft_methods:
                table3[(arch, name, m)] = finetune_unit(p, q, arch, m, name, block=table3_block(q, arch),
                                                        layerwise=True)
            for b in q.ft_blocks[arch]:
                for m in ("layer", "scl"):
                    blocks[(arch, name, m, b)] = finetune_unit(p, q, arch, m, name, block=b, layerwise=True)
    arch, name = q.ft_archs[0], q.ft_datasets[0]
    fig11 = {(m, n): finetune_unit(p, q, arch, m, name, block=table3_block(q, arch), per_class=n)
             for n in q.ft_sizes for m in q.ft_methods}
    # the TMLR version's sizes (Fig. 8 there); sizes shared with ft_sizes are the same units
    fig11_tmlr = {(m, n): finetune_unit(p, q, arch, m, name, block=table3_block(q, arch), per_class=n)
                  for n in q.ft_sizes_tmlr or [] for m in q.ft_methods}
    # Fig. 11's verdict: Layer FT, SCL FT and full FT at the two smallest sizes, replicated over ft_scarce_seeds
    # (each seed its own source model, subset and fine-tuning run; the chapter's seed gives the fig11 units)
    smallest = sorted(q.ft_sizes)[:2]
    fig11_seeds = {(m, n, s): finetune_unit(p, q, arch, m, name, block=table3_block(q, arch), per_class=n, seed=s)
                   for n in smallest for m in ("layer", "scl", "full") if m in q.ft_methods
                   for s in q.ft_scarce_seeds or [q.seed]}
    # Table 3's verdicts: every cell replicated over ft_table3_seeds (each seed its own source model, subset and
    # run); the chapter's seed is the table3 unit itself
    table3_seeds = {(arch, name, m, s): table3[(arch, name, m)] if s == q.seed else
                    finetune_unit(p, q, arch, m, name, block=table3_block(q, arch), seed=s)
                    for arch, name, m in table3 for s in q.ft_table3_seeds or [q.seed]}
    cells = Unit("param_percentages", {"cells": list(published.percentage_cells())})
    return {"percentages": {"cells": cells}, "table3": table3, "table3_seeds": table3_seeds, "blocks": blocks,
            "fig11": fig11, "fig11_tmlr": fig11_tmlr, "fig11_seeds": fig11_seeds}


def chapter6(p: Profile, q: Common) -> Grid:
    seed = q.seed
    candidates = population(p, q, q.tf_hub)
    # a model stopped after a few epochs, far from the terminal phase (the schedule's target is not applied)
    candidates.update({Network("stopped", name, value=q.tf_short_epochs): p.pretrained(
                           name, epochs=q.tf_short_epochs, until=None, seed=seed)
                       for name in q.tf_hub_short})
    per_class = q.tf_pairwise_per_class
    share = {"scores": ["nleep", "parc"], "per_class": int(per_class), "seed": int(seed)} if per_class else None
    scores, truth = {}, {}
    for d in q.tf_datasets:
        for label, back in candidates.items():
            scores[(label, d)] = Unit("transfer_scores", {"backbone": back, "data": p.downstream(d, "train", back),
                                                          "loader_batch": 64,
                                                          **({"subsample": share} if share else {})})
            if not p.public_weights:  # public models: the published fine-tuning accuracies are the truth
                truth[(label, d)] = probe(p, back, d, q.probe_epochs, seed)
    return {"scores": scores, "truth": truth}


GRIDS: dict[int, Callable[[Profile, Common], Grid]] = {
    1: chapter1, 2: chapter2, 3: chapter3, 4: chapter4, 5: chapter5, 6: chapter6}


def grid(number: int, settings: Common, *, dry_run: str | None = None) -> Grid:
    """The units of chapter ``number`` for its ``settings`` (:mod:`ncutils.book.settings`), in named groups;
    with ``dry_run`` (``"minimal"`` or ``"batch"``) rewritten by the engine for the paper-shaped dry run
    (:mod:`ncutils.book.engine.dryrun`)."""
    if number not in GRIDS:
        raise ValueError(f"no chapter {number}; chapters are {sorted(GRIDS)}.")
    g = GRIDS[number](profile_of(settings), settings)
    return dry_grid(g, dry_run) if dry_run else g


def all_units(g: Grid) -> list[Unit]:
    """Every unit of a grid and its dependencies, each once, dependencies first."""
    return closure(u for group in g.values() for u in group.values())
