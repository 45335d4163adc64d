"""How often each rule misleads at the book's design, measured by simulation.

For every claim with a statistical rule, :data:`SIMULATORS` holds a function that draws one build's evidence
table at the ``cpu`` profile's design (:data:`CPU_DESIGN`: its numbers of seeds, settings, models, layers,
cases, candidates) under one of three scenarios:

``null``
    no effect: the relation the claim asserts is absent (for a *comparable or better* claim, the method exactly
    δ worse; for a *substantial* one, an effect of exactly δ); for a claim of several parts, each part false in
    turn while the others hold (:data:`NULLS`), and the rate reported is the largest;
``paper``
    the effect the paper reports, translated into the book's units (each simulator's docstring says how);
``opposite``
    the opposite effect (for a threshold claim: a monotone relation, which refutes a threshold).

Every draw redraws every seed-level, setting-level and model-level deviation, so the distribution of
verdicts over draws is the distribution over independent replicate builds; the noise levels are those the
book's builds measured (:data:`NOISE`). :func:`calibrate` applies the claim's own rule
(:data:`ncutils.book.rules.RULES`) to many draws and returns the probability of each outcome. A rule is
calibrated when P(supported | null) <= 5% (its false-support rate), and it can come out against the claim
when P(not supported | opposite) >= 80%; P(supported | paper) is its power at the paper's effect, and
``1 - sum(p_i^2)`` over the outcomes the chance that two independent builds disagree.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ncutils.book.rules import RULES
from ncutils.book.verdicts import NOT_SUPPORTED, OUTCOMES, SUPPORTED

__all__ = ["CPU_DESIGN", "NOISE", "SCENARIOS", "SIMULATORS", "Calibration", "calibrate", "disagreement"]

SCENARIOS = ("null", "paper", "opposite")
class _Scale(dict):
    """The effect of a scenario as a multiple of the paper's: a named scenario, or a number (``0.5``: half the
    paper's effect), so that a rule can be calibrated at the effect a build estimates."""

    def __missing__(self, scenario):
        if isinstance(scenario, str) and scenario.startswith("null"):  # a partial null: this effect vanishes
            return 0.0
        return float(scenario)


_EFFECT = _Scale(null=0.0, paper=1.0, opposite=-1.0)

def _at(named: dict, scenario, paper: float) -> float:
    """A simulator's effect: ``named[scenario]`` for a named scenario, else ``scenario`` times ``paper``."""
    return named[scenario] if isinstance(scenario, str) else float(scenario) * paper

#: The cpu profile's design, as the rules see it (``tests/test_calibration.py`` checks it against the chapters'
#: parameters and grids).
CPU_DESIGN = {
    "surrogate_sets": 40,            # Chapter 1: nc_population
    "progressive_networks": 9,       # Chapter 2: MLPs on two sets and a ResNet18 on one, three losses each
    "progressive_layers": 9,         # layers measured per network
    "table1_settings": 6,            # Table 1's four and Fig. 3's two headed cross-entropy settings
    "seeds": 3,                      # pt_seeds, pt_fig_seeds, population_seeds
    "fig3_heads": (1, 2),            # pt_head_layers beyond 0
    "fig4_models": 4,                # augmentation levels 1-2, radii 2/255 and 8/255
    "random_seeds": 10,              # pt_random_seeds
    "downstream_sets": 3,            # the downstream sets of Figs. 5-6 and Chapter 6
    "population_single": 8,          # Figs. 5-6: settings of one model (architectures, Fig. 4 models)
    "population_triplets": 6,        # Table 1 and Fig. 3 settings at three seeds each
    "fewshot_backbones": 3,          # fs_backbones, one benchmark at cpu scale
    "fewshot_seeds": 1,              # training seeds per backbone
    "fig9_networks": 3,              # lw_archs (ResNet18, ResNet34 and the ViT)
    "fig9_layers": 9,                # layers probed per network
    "fig10_cases": 4,                # ResNet18 x 3 datasets and the ViT x 1 (Layer FT and SCL FT within each)
    "fig10_blocks": 4,               # ft_blocks of each network
    "table3_cells": 4,               # the same (network, dataset) pairs
    "table3_seeds": 3,               # ft_table3_seeds: fine-tuning seeds per cell
    "fig11_seeds": 5,                # ft_scarce_seeds
    "ncti_single": 10,               # Chapter 6: settings of one candidate
    "ncti_triplets": 6,              # candidates that are seed triplets of one setting
}

#: Noise levels of one build (standard deviations), measured on the cpu builds: the seed-to-seed spread of a
#: transfer accuracy (Table 1's and Fig. 3's triplets), of a log source NC1, of a fine-tuning accuracy at 100
#: samples per class, of a few-shot backbone's accuracy, and the spread between settings that is unrelated to
#: NC1.
NOISE = {"seed_accuracy": 1.8, "seed_log_nc1": 0.15, "setting_accuracy": 3.0, "layer_log_nc1": 0.5,
         "finetune_accuracy": 1.0, "fewshot_accuracy": 2.5, "fig11_difference": 2.5, "probe_accuracy": 1.0}


def _frame(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)


def _correlated(rng: np.random.Generator, x: np.ndarray, r: float) -> np.ndarray:
    """Standard normal values with correlation ``r`` to the standardised ``x``."""
    z = (x - x.mean()) / (x.std() or 1.0)
    return r * z + math.sqrt(max(1 - r * r, 0.0)) * rng.normal(size=len(x))


# --------------------------------------------------------------------------- simulators, one per claim
def _surrogates(rng, scenario, design):
    """Paper: no number (Appendix A); assumed Kendall τ 0.7 between NC1 and each surrogate over feature sets
    (Pearson r = sin(πτ/2) of the latent logs). Null: the claim's boundary, τ = δ = 0.5 (a *substantial*
    agreement is claimed). Opposite: τ = -0.3."""
    tau = _at({"null": 0.5, "paper": 0.7, "opposite": -0.3}, scenario, 0.7)
    r = math.sin(math.pi * tau / 2)
    n = design["surrogate_sets"]
    log_nc1 = rng.normal(0, 1.5, n)
    rows = {"feature_set": np.arange(n), "nc1": np.exp(log_nc1),
            "cdnv": np.exp(_correlated(rng, log_nc1, r)), "rank": np.exp(_correlated(rng, log_nc1, r))}
    return pd.DataFrame(rows)


def _progressive(rng, scenario, design):
    """Paper (Fig. 2): NC1 falls about a decade every three layers (0.8 in log per layer); each layer's log NC1
    scatters around the trend with sd 0.5. Null: no trend; opposite: NC1 rises as fast."""
    b = 0.8 * _EFFECT[scenario]
    rows = []
    for net in range(design["progressive_networks"]):
        for layer in range(design["progressive_layers"]):
            rows.append({"network": f"net{net}", "architecture": "MLP" if net < 2 * design["progressive_networks"] // 3
                         else "ResNet", "layer": layer, "train_accuracy": 100.0,
                         "nc1": math.exp(2 - b * layer + rng.normal(0, NOISE["layer_log_nc1"]))})
    return _frame(rows)


def _table1(rng, scenario, design):
    """Paper (Table 1): Spearman ρ 0.8 between source NC1 and transfer accuracy over settings. Here: settings at
    evenly spread log NC1, mean accuracy 4 points per sd of log NC1 plus a setting effect unrelated to NC1 (sd
    3; ρ about 0.8 over settings), seed noise sd 1.8. The least collapsed setting is SupCon + MLP head, the
    most collapsed MSE. Null: no relation; opposite: 4 points per sd the other way."""
    g, s = design["table1_settings"], design["seeds"]
    x = np.linspace(-1.3, 1.3, g)
    names = ["mse_none"] + [f"s{i}" for i in range(1, g - 1)] + ["supcon_mlp"]
    rows = []
    for i in range(g):
        # null-contrast-true: no relation over the settings, but SupCon + MLP head 10 points above MSE
        boost = 10.0 if scenario == "null-contrast-true" and names[i] == "supcon_mlp" else 0.0
        mean = 70 + boost + 4.0 * _EFFECT[scenario] * x[i] + rng.normal(0, NOISE["setting_accuracy"])
        for seed in range(s):
            rows.append({"setting": names[i], "seed": seed, "train_accuracy": 100.0,
                         "source_nc1": math.exp(x[i] + rng.normal(0, NOISE["seed_log_nc1"])),
                         "transfer_accuracy": mean + rng.normal(0, NOISE["seed_accuracy"])})
    return _frame(rows)


def _two_effects(scenario) -> tuple[float, float]:
    """The effects on NC1 and on accuracy: both the scenario's, or one true while the other vanishes."""
    if scenario in ("null-nc1-true", "null-acc-true"):
        return (1.0, 0.0) if scenario == "null-nc1-true" else (0.0, 1.0)
    return _EFFECT[scenario], _EFFECT[scenario]


def _fig3(rng, scenario, design):
    """Paper (Fig. 3, Table 1): a head raises source NC1 (log ratio 0.7 per layer; SupCon: 1.33 from a linear
    to an MLP head) and transfer accuracy (2 points per layer). Seed noise: log NC1 sd 0.15, accuracy sd 1.8."""
    e_nc1, e_acc = _two_effects(scenario)
    rows = []
    for h in (0, *design["fig3_heads"]):
        for seed in range(design["seeds"]):
            rows.append({"loss": "ce", "head_layers": h, "seed": seed, "train_accuracy": 100.0,
                         "source_nc1": math.exp(0.7 * e_nc1 * h + rng.normal(0, NOISE["seed_log_nc1"])),
                         "transfer_accuracy": 70 + 2.0 * e_acc * h + rng.normal(0, NOISE["seed_accuracy"])})
    return _frame(rows)


def _fig4(rng, scenario, design):
    """Paper (Fig. 4): transfer accuracy rises about 3 points with source NC1 and falls as much beyond the
    threshold (an inverted U over the models' range). Null: flat. Opposite: a monotone rise of 3 points over the
    range (no threshold). The models span a factor 3 of NC1; each has seed noise sd 1.8."""
    n = design["fig4_models"]
    z = np.linspace(-1, 1, n)
    shape = {"null": 0 * z, "paper": 3.0 * (1 - z ** 2), "opposite": 1.5 * (z + 1)}[scenario] \
        if isinstance(scenario, str) else float(scenario) * 3.0 * (1 - z ** 2)
    return pd.DataFrame({"model": [f"m{i}" for i in range(n)], "source_nc1": np.exp(0.55 * z),
                         "transfer_accuracy": 70 + shape + rng.normal(0, NOISE["seed_accuracy"], n),
                         "train_accuracy": 100.0})


def _random_features(rng, scenario, design):
    """Paper (after Fig. 4): random encoders have larger downstream NC1 (log ratio 1) and transfer far worse (20
    points). Random encoders: log NC1 sd 0.2, accuracy sd 1; trained: sd 0.15 and 1.8."""
    e_nc1, e_acc = _two_effects(scenario)
    rows = [{"group": "random", "seed": s, "downstream_nc1": math.exp(1.0 * e_nc1 + rng.normal(0, 0.2)),
             "transfer_accuracy": 70 - 20 * e_acc + rng.normal(0, 1.0)} for s in range(design["random_seeds"])]
    rows += [{"group": "trained", "seed": s, "downstream_nc1": math.exp(rng.normal(0, NOISE["seed_log_nc1"])),
              "transfer_accuracy": 70 + rng.normal(0, NOISE["seed_accuracy"])} for s in range(design["seeds"])]
    return _frame(rows)


def _population(design, prefix):
    """Settings of a population: ``single`` settings of one model and ``triplets`` of three seeds."""
    return [(f"{prefix}{i}", 1) for i in range(design[f"{prefix}_single"])] + \
        [(f"{prefix}t{i}", design["seeds"]) for i in range(design[f"{prefix}_triplets"])]


def _fig5(rng, scenario, design):
    """Paper (Figs. 5-6): Spearman ρ about -0.7 between downstream NC1 and transfer accuracy over models. Here a
    setting's downstream log NC1 (a latent shared by the sets, plus a per-set part) drives its accuracy by 3.5
    points per sd, with a setting effect unrelated to NC1 (sd 3) and seed noise (sd 1.8)."""
    settings = _population(design, "population")
    latent = rng.normal(size=len(settings))
    rows = []
    for d in range(design["downstream_sets"]):
        x = 0.8 * latent + 0.6 * rng.normal(size=len(settings))
        for (name, seeds), xs in zip(settings, x):
            mean = 70 - 3.5 * _EFFECT[scenario] * xs + rng.normal(0, NOISE["setting_accuracy"])
            for s in range(seeds):
                rows.append({"dataset": f"set{d}", "model": f"{name}/{s}", "setting": name, "train_accuracy": 100.0,
                             "downstream_nc1": math.exp(xs + rng.normal(0, NOISE["seed_log_nc1"])),
                             "transfer_accuracy": mean + rng.normal(0, NOISE["seed_accuracy"])})
    return _frame(rows)


def _table2(rng, scenario, design):
    """Paper (Table 2): neighbours in meta-test NC1 differ by about 3 points of few-shot accuracy in the predicted
    order. A backbone's accuracy varies between training seeds with sd 2.5 (what made replicate builds
    disagree), its NC1 ordering is fixed."""
    rows = []
    for b in range(design["fewshot_backbones"]):
        for seed in range(design["fewshot_seeds"]):
            acc = 60 - 3.0 * _EFFECT[scenario] * b + rng.normal(0, NOISE["fewshot_accuracy"])
            for shots in (1, 5):
                rows.append({"benchmark": "bench", "backbone": f"b{b}", "seed": seed, "shots": shots,
                             "nc1": float(b + 1), "accuracy": acc + (10 if shots == 5 else 0), "train_accuracy": 100.0})
    return _frame(rows)


def _fig9(rng, scenario, design):
    """Paper (Fig. 9): a layer's downstream NC1 falls and its probe accuracy rises towards the output, nearly
    linearly. Layers are not independent: both curves are smooth in depth, so the noise here is a random walk
    over the layers (steps of sd 0.3 in log NC1 and 1 point of accuracy), and the null is two unrelated random
    walks, which correlate spuriously far more often than independent points do."""
    e = _EFFECT[scenario]
    rows = []
    for net in range(design["fig9_networks"]):
        walk_nc = np.cumsum(rng.normal(0, 0.3, design["fig9_layers"]))
        walk_acc = np.cumsum(rng.normal(0, NOISE["probe_accuracy"], design["fig9_layers"]))
        for layer in range(design["fig9_layers"]):
            rows.append({"network": f"net{net}", "layer": layer, "accuracy": 50 + 2.0 * e * layer + walk_acc[layer],
                         "nc1": math.exp(-0.5 * abs(e) * layer + walk_nc[layer])})
    return _frame(rows)


def _fig10(rng, scenario, design):
    """Paper (Fig. 10): the deeper the fine-tuned block, the lower the penultimate NC1 (0.5 in log per block, sd
    0.3) and the higher the accuracy (1.5 points per block, sd 1). Both methods of one (network, dataset) case
    share its deviations from that trend (half their variance). Null: neither depends on the block."""
    e = _EFFECT[scenario]
    rows = []
    for c in range(design["fig10_cases"]):
        shared_nc, shared_acc = rng.normal(0, 0.3, design["fig10_blocks"]), rng.normal(0, 1.0, design["fig10_blocks"])
        for m in ("layer", "scl"):
            for b in range(design["fig10_blocks"]):
                rows.append({"case": f"case{c}", "method": m, "block": b,
                             "nc1": math.exp(-0.5 * e * b + (shared_nc[b] + rng.normal(0, 0.3)) / math.sqrt(2)),
                             "accuracy": 70 + 1.5 * e * b + (shared_acc[b] + rng.normal(0, 1.0)) / math.sqrt(2)})
    return _frame(rows)


def _table3(gains: dict[str, float]) -> Callable:
    def simulate(rng, scenario, design):
        rows = []
        for c in range(design["table3_cells"]):
            cell_mean = 70 + rng.normal(0, 5)
            for m, gain in gains.items():
                effect = gain(scenario) if callable(gain) else gain * _EFFECT[scenario]
                for s in range(design["table3_seeds"]):
                    rows.append({"cell": f"cell{c}", "method": m, "seed": s,
                                 "accuracy": cell_mean + effect + rng.normal(0, NOISE["finetune_accuracy"])})
        return _frame(rows)
    return simulate


_table3_layer = _table3({"linear": 0.0, "layer": lambda sc: _at({"null": 2.0, "paper": 5.0, "opposite": -5.0}, sc,
                                                                 5.0)})
_table3_layer.__doc__ = ("Paper (Table 3): Layer FT beats linear probing by a median of about 5 points; "
                         "fine-tuning seeds vary with sd 1. Null: the claim's boundary, a gain of δ = 2 points "
                         "(a *substantial* gain is claimed).")
#: SCL FT vs Layer FT (+1.5 in the paper's cells) and vs full FT (comparable: its null is the boundary, δ = 3
#: points worse; the paper's median is about 1 point worse; opposite: 6 points worse).
_table3_scl = _table3({"layer": 0.0,
                       "scl": lambda sc: _at({"null": 0.0, "null-a": 0.0, "null-b": 1.5, "paper": 1.5,
                                              "opposite": -1.5}, sc, 1.5),
                       "full": lambda sc: _at({"null": 3.0, "null-a": 2.5, "null-b": 4.5, "paper": 2.5,
                                               "opposite": 7.5}, sc, 2.5)})
_table3_scl.__doc__ = ("Paper (Table 3): SCL FT beats Layer FT by about 1.5 points and is about 1 point below "
                       "full FT; the null puts SCL FT at both boundaries (equal to Layer FT, 3 points below full "
                       "FT).")


def _fig11(rng, scenario, design):
    """Paper (Fig. 11): at the smallest sizes Layer FT and SCL FT beat full FT, by about 4 points. Null: no
    difference; opposite: 4 points worse. Each paired difference varies between seeds with sd 2.5."""
    diff = 4.0 * _EFFECT[scenario]
    rows = []
    for size in (3, 10):
        for s in range(design["fig11_seeds"]):
            full = 40 + rng.normal(0, 3)
            rows.append({"size": size, "method": "full", "seed": s, "accuracy": full, "train_accuracy": 100.0})
            for m in ("layer", "scl"):
                rows.append({"size": size, "method": m, "seed": s, "train_accuracy": 100.0,
                             "accuracy": full + diff + rng.normal(0, NOISE["fig11_difference"])})
    return _frame(rows)


def _ncti(rng, scenario, design):
    """Paper (NCTI Table 1): weighted τ 0.84 for NCTI, lower for the baselines; here NCTI correlates 0.9 with the
    latent accuracy of a setting, the two baselines 0.6 and 0.48. Null: every score unrelated to accuracy.
    Opposite: NCTI correlates -0.6, the baselines as in the paper."""
    r_ncti = max(-1.0, min(1.0, _at({"null": 0.0, "null-a": 0.0, "null-b": 0.6, "paper": 0.9, "opposite": -0.6},
                                    scenario, 0.9)))
    r_base = _at({"null": 0.0, "null-a": 0.6, "null-b": 0.6, "paper": 0.6, "opposite": 0.6}, scenario, 0.0) \
        if isinstance(scenario, str) else 0.6
    settings = _population(design, "ncti")
    rows = []
    for d in range(design["downstream_sets"]):
        acc = rng.normal(size=len(settings))
        ncti, base1, base2 = (_correlated(rng, acc, r) for r in (r_ncti, r_base, r_base * 0.8))
        for (name, seeds), a, n, b1, b2 in zip(settings, acc, ncti, base1, base2):
            for s in range(seeds):
                rows.append({"dataset": f"set{d}", "candidate": f"{name}/{s}", "setting": name,
                             "accuracy": 70 + 5 * a + rng.normal(0, NOISE["seed_accuracy"]),
                             "score_ncti": n + rng.normal(0, 0.2), "score_b1": b1 + rng.normal(0, 0.2),
                             "score_b2": b2 + rng.normal(0, 0.2)})
    return _frame(rows)


#: The simulator of every claim whose rule has sampling error (the exact ones, ``nc1_metric`` and
#: ``parameters``, have no error rate to calibrate).
SIMULATORS: dict[str, Callable[[np.random.Generator, str, dict], pd.DataFrame]] = {
    "surrogates": _surrogates, "progressive": _progressive, "table1": _table1, "fig3_heads": _fig3,
    "fig4_threshold": _fig4, "random_features": _random_features, "fig5_downstream": _fig5,
    "table2_fewshot": _table2, "fig9_layers": _fig9, "fig10_depth": _fig10, "table3_layer": _table3_layer,
    "table3_scl": _table3_scl, "fig11_scarce": _fig11, "ncti_rank": _ncti}


#: The null scenarios of each claim whose parts can be false separately: each makes one part's effect vanish (or
#: sit at its boundary) while the others hold, and the rule's false-support rate is the largest over them.
NULLS = {"table1": ("null", "null-contrast-true"), "fig3_heads": ("null", "null-nc1-true", "null-acc-true"),
         "random_features": ("null", "null-nc1-true", "null-acc-true"),
         "table3_scl": ("null", "null-a", "null-b"), "ncti_rank": ("null", "null-a", "null-b")}


@dataclass(frozen=True)
class Calibration:
    """The probability of each outcome of one rule under each scenario, over ``draws`` simulated builds."""

    key: str
    draws: int
    probabilities: dict[str, dict[str, float]]  # scenario -> outcome -> probability
    digest: str

    @property
    def false_support(self) -> float:
        """P(supported | null)."""
        return self.probabilities["null"][SUPPORTED]

    @property
    def refutes(self) -> float:
        """P(not supported | opposite)."""
        return self.probabilities["opposite"][NOT_SUPPORTED]

    @property
    def power(self) -> float:
        """P(supported | the paper's effect)."""
        return self.probabilities["paper"][SUPPORTED]

    def to_dict(self) -> dict:
        return {"key": self.key, "draws": self.draws, "probabilities": self.probabilities, "digest": self.digest}

    @classmethod
    def from_dict(cls, d: dict) -> Calibration:
        return cls(d["key"], d["draws"], d["probabilities"], d["digest"])


def disagreement(probabilities: dict[str, float]) -> float:
    """The chance that two independent builds with these outcome probabilities reach different verdicts."""
    return 1.0 - sum(p * p for p in probabilities.values())


def calibrate(key: str, draws: int = 400, seed: int = 0, design: dict | None = None,
              scenarios: tuple = SCENARIOS) -> Calibration:
    """Apply claim ``key``'s rule to ``draws`` simulated builds under each scenario (without the halves, which
    do not enter the verdict) and count the outcomes. A scenario is ``"null"``, ``"paper"``, ``"opposite"`` or
    a number: that multiple of the paper's effect (e.g. the effect a build estimates)."""
    if key not in SIMULATORS:
        raise ValueError(f"no simulator for {key!r}: exact rules have no error rate; simulated claims: "
                         f"{sorted(SIMULATORS)}.")
    design = {**CPU_DESIGN, **(design or {})}
    rule = RULES[key]
    rng = np.random.default_rng([seed, sum(map(ord, key))])
    probs = {}
    for scenario in scenarios:
        variants = NULLS.get(key, ("null",)) if scenario == "null" else (scenario,)
        worst = None
        for variant in variants:
            counts = dict.fromkeys(OUTCOMES, 0)
            for _ in range(draws):
                counts[rule.judge(SIMULATORS[key](rng, variant, design), split=False).outcome] += 1
            p = {o: c / draws for o, c in counts.items()}
            if worst is None or p[SUPPORTED] > worst[SUPPORTED]:
                worst = p
        probs[str(scenario)] = worst
    return Calibration(key, draws, probs, rule.digest())

