"""Every claim's rule, as code: a function of a tidy evidence table that returns the verdict.

A chapter builds the evidence of a claim as a :class:`pandas.DataFrame` with one row per observation and a
column naming the **independent unit of replication** (a setting whose seeds are averaged, a training seed, a
network's layer, a (network, dataset, method) case), then calls ``RULES[key].judge(evidence)``. The rule checks
the columns, computes its statistics with intervals over that unit (:mod:`ncutils.stats`), reads them as the
module docstring of :mod:`ncutils.book.verdicts` says, checks the claim's regime, and returns a
:class:`~ncutils.book.verdicts.Verdict`. No test logic lives in a notebook.

The words of a rule on the page (:meth:`Rule.describe`) are generated from the same :class:`Test` and
:class:`Part` objects the code reads, so they cannot drift apart. Each rule has a **digest** of its code and
parameters; :mod:`ncutils.book.rule_history` freezes the digests and records every revision after a claim was
first built (a test fails on a rule whose code changed without an entry). How often each rule misleads at the
book's design is measured by simulation in :mod:`ncutils.book.calibration`.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import math
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import pandas as pd

from ncutils import stats
from ncutils.book.claims import CLAIMS
from ncutils.book.verdicts import TERMINAL, Check, Claim, Part, PartResult, Test, Verdict, combine, verdict
from ncutils.stats import Estimate

__all__ = ["RULES", "TERMINAL", "Rule", "halves", "ranking_tau"]


Evaluation = tuple[list[list[Check]], "tuple[bool | None, str] | None", str]


@dataclass(frozen=True)
class Rule:
    """A claim's rule: the evidence it reads (``columns``; ``unit`` names the independent unit of replication,
    ``unit_words`` says what it is), its ``parts`` (sub-claims, each with its tests and combination), the
    regime it checks (``regime``, in words), and ``evaluate``, the code that computes the checks.

    ``split_halves``: whether the build's replication inside itself is shown (the same rule on two halves of
    the independent units, dealt alternately, so a unit never straddles the halves). ``design``: what this
    book's cpu design can and cannot decide, and what deciding it would take (shown with the calibration).
    """

    key: str
    unit: str
    unit_words: str
    columns: tuple[str, ...]
    parts: tuple[Part, ...]
    evaluate: Callable[[pd.DataFrame, Rule], Evaluation]
    regime: str = ""
    split_halves: bool = False
    design: str = ""

    def describe(self) -> str:
        """The rule in words, generated from its parts and tests."""
        out = [f"Independent unit: {self.unit_words}."]
        for p in self.parts:
            lead = f"*{p.name}*: " if len(self.parts) > 1 else ""
            tests = "; ".join(t.describe() for t in p.tests)
            out.append(f"{lead}{tests[0].upper() + tests[1:]}. {p.describe_combination()[0].upper()}"
                       f"{p.describe_combination()[1:]}.")
        if len(self.parts) > 1:
            out.append("The claim is supported when every part is, not supported when any part is not.")
        if self.regime:
            out.append(f"Regime checked: {self.regime}; outside it the verdict is inconclusive.")
        return " ".join(out)

    @property
    def claim(self) -> Claim:
        """The claim this rule decides (:data:`ncutils.book.claims.CLAIMS` under the same key)."""
        return CLAIMS[self.key]

    def show(self):
        """The claim and this rule as a box, for the notebook cell that states them before the experiment."""
        from IPython.display import Markdown

        c = self.claim
        regime = f"\n\n**Regime:** {c.regime}" if c.regime else ""
        note = f"\n\n**Note:** {c.note}" if c.note else ""
        return Markdown(f":::{{admonition}} Claim ({c.where})\n:class: seealso\n\n{c.text}\n\n"
                        f"**Paper:** {c.paper}\n\n**Rule, fixed before the numbers:** {self.describe()}"
                        f"{regime}{note}\n:::")

    def judge(self, evidence: pd.DataFrame, *, details: str = "", split: bool | None = None) -> Verdict:
        """The verdict of this rule on ``evidence`` (with the same rule on two halves of the independent units
        when :attr:`split_halves`, unless ``split`` says otherwise)."""
        ev = self.validate(evidence)
        checks, regime, more = self.evaluate(ev, self)
        parts = []
        for spec, cs in zip(self.parts, checks):
            outcome, reason = combine([c.direction for c in cs], spec.combine)
            parts.append(PartResult(spec.name, spec.combine, outcome, reason, tuple(cs)))
        text = " ".join(x for x in (more, details) if x)
        v = verdict(self.claim, parts, regime=regime, details=text, digest=self.digest())
        if (self.split_halves if split is None else split) and ev[self.unit].nunique() >= 2:
            a, b = halves(ev, self.unit)
            v = v.with_halves(self.judge(a, split=False), self.judge(b, split=False), split=self.unit_words)
        return v

    def validate(self, evidence: pd.DataFrame) -> pd.DataFrame:
        """``evidence`` if it has every column the rule reads; else a clear error naming what is missing."""
        if not isinstance(evidence, pd.DataFrame):
            raise TypeError(f"rule {self.key!r} reads a pandas DataFrame; got {type(evidence).__name__}.")
        missing = [c for c in self.columns if c not in evidence.columns]
        if missing:
            raise ValueError(f"rule {self.key!r} needs the evidence columns {missing}; it has "
                             f"{list(evidence.columns)}.")
        return evidence.reset_index(drop=True)

    def digest(self) -> str:
        """A hash of what decides this rule: its parameters, its ``evaluate`` code with every helper of this
        module it calls, and the statistics and verdict modules it relies on (docstrings and layout do not
        count)."""
        return _digest(self)


def halves(evidence: pd.DataFrame, unit: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``evidence`` split in two by its independent units: the units in sorted order, dealt alternately, so the
    observations of one unit (the seeds of a setting) always stay in the same half."""
    labels = sorted(evidence[unit].unique(), key=str)
    first = set(labels[0::2])
    mask = evidence[unit].isin(first)
    return evidence[mask].reset_index(drop=True), evidence[~mask].reset_index(drop=True)


# --------------------------------------------------------------------------- helpers of the rules
def _terminal(ev: pd.DataFrame, what: str, column: str = "train_accuracy") -> tuple[bool | None, str]:
    """The terminal-phase regime over the training accuracies in ``column`` (one per model)."""
    acc = ev[column].astype(float)
    if acc.isna().any():
        return None, f"the training accuracy of {int(acc.isna().sum())} {what} was not recorded."
    low = acc[acc < TERMINAL]
    if len(low):
        return False, (f"{len(low)} of {len(acc)} {what} below {TERMINAL:g}% training accuracy (lowest "
                       f"{acc.min():.2f}%).")
    return True, f"all {len(acc)} {what} at {TERMINAL:g}% training accuracy or more (lowest {acc.min():.2f}%)."


def _welch(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """``mean(a) - mean(b)`` of two groups of independent replicates; with fewer than two in a group there is no
    interval (the variance between replicates cannot be estimated)."""
    a, b = list(a), list(b)
    if len(a) < 2 or len(b) < 2:
        d = float(np.mean(a) - np.mean(b)) if a and b else math.nan
        return Estimate(d, math.nan, math.nan, len(a) + len(b),
                        "no interval: fewer than two replicates in a group")
    return stats.welch_difference(a, b)


def _paired(a: Sequence[float], b: Sequence[float]) -> Estimate:
    """Mean of ``a - b`` over replicates paired by their unit; fewer than two pairs: no interval."""
    if len(a) < 2:
        d = float(np.mean(np.asarray(a) - np.asarray(b))) if len(a) else math.nan
        return Estimate(d, math.nan, math.nan, len(a), "no interval: fewer than two replicates")
    return stats.paired_difference(a, b)


# --------------------------------------------------------------------------- Chapter 1
_NC1_ZERO = Test("NC1 of exactly collapsed features", -1, 1e-12, "exact", units="", measure="NC1")
_NC1_LOW = Test("smallest ratio of measured NC1 to its closed form at noise 0 < σ ≤ 0.3", +1, 0.8, "exact")
_NC1_HIGH = Test("largest ratio of measured NC1 to its closed form at noise 0 < σ ≤ 0.3", -1, 1.25, "exact")


def _nc1_metric(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    out = []
    zero = ev[ev["sigma"] == 0.0]
    if len(zero):
        v = float(zero["nc1"].iloc[0])
        out.append(Check(_NC1_ZERO, "NC1 at σ = 0", Estimate(v, v, v, 1, "exact")))
    precise = ev[(ev["sigma"] > 0) & (ev["sigma"] <= 0.3)]
    if len(precise):
        ratio = precise["nc1"] / precise["closed_form"]
        lo, hi = float(ratio.min()), float(ratio.max())
        how = f"over {len(precise)} noise levels, exact"
        out += [Check(_NC1_LOW, "smallest ratio", Estimate(lo, lo, lo, len(precise), how)),
                Check(_NC1_HIGH, "largest ratio", Estimate(hi, hi, hi, len(precise), how))]
    return [out], None, ""


_SURROGATE = Test("Kendall's τ between NC1 and the surrogate over the feature sets", +1, 0.0, "substantial", 0.5,
                  units="feature sets", interval="delete-one jackknife on Fisher's z, t with n - 1 df",
                  per="each surrogate", measure="Kendall's τ")


def _surrogates(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    out = []
    for col, name in (("cdnv", "CDNV"), ("rank", "the numerical rank")):
        e = stats.correlation(ev["nc1"], ev[col], method="kendall", units=ev[rule.unit])
        out.append(Check(_SURROGATE, f"Kendall τ (NC1, {name}), {e.n} feature sets", e))
    return [out], None, ""


# --------------------------------------------------------------------------- Chapter 2
_PROGRESSIVE = Test("the fraction of its layer-to-layer steps in which NC1 falls", +1, 0.75, "exact",
                    per="each network in the regime (architecture × loss)", units="", measure="fraction of steps")


def _progressive(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    nets = ev.groupby("network", sort=False)
    first = nets[["architecture", "train_accuracy"]].first()
    inside = first[first["train_accuracy"] >= TERMINAL]
    missing = sorted(set(first["architecture"]) - set(inside["architecture"]))
    met = not missing
    evidence = (f"{len(inside)} of {len(first)} networks at {TERMINAL:g}% training accuracy or more (only those "
                "count)" + (f"; no {', no '.join(missing)} reaches it, so the claim cannot be tested across "
                            "architectures." if missing else ", every architecture among them."))
    out = []
    for net, g in nets:
        if net not in inside.index:
            continue
        g = g.sort_values("layer")
        steps = np.diff(np.log(g["nc1"].to_numpy(float)))
        frac = float((steps < 0).mean()) if len(steps) else math.nan
        out.append(Check(_PROGRESSIVE, f"{net}: {int((steps < 0).sum())} of {len(steps)} steps fall",
                         Estimate(frac, frac, frac, len(steps), "exact count")))
    return [out], (met, evidence), ""


# --------------------------------------------------------------------------- Chapter 3
_T1_RHO = Test("Spearman's ρ between source NC1 and transfer accuracy over every model", +1, 0.0, "better", 0.3,
               units="settings (a setting's seeds stay together)",
               interval="delete-one-setting jackknife on Fisher's z, t with G - 1 df (needs 6 settings)",
               measure="correlation")
_T1_DIFF = Test("transfer accuracy of SupCon + MLP head − MSE (the paper's least and most collapsed settings)", +1,
                0.0, "better", 1.0, units="seeds", interval="Welch's t", measure="accuracy points")


def _table1(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    rho = stats.correlation(ev["source_nc1"], ev["transfer_accuracy"], units=ev["setting"])
    out = [Check(_T1_RHO, f"ρ over {len(ev)} models of {rho.n} settings", rho)]
    by = {s: g["transfer_accuracy"].to_list() for s, g in ev.groupby("setting")}
    if "supcon_mlp" in by and "mse_none" in by:
        out.append(Check(_T1_DIFF, "SupCon + MLP head − MSE", _welch(by["supcon_mlp"], by["mse_none"])))
    return [out], _terminal(ev, "models"), ""


_F3_NC1 = Test("log(source NC1 with an h-layer head / without)", +1, 0.0, "better", 0.1, units="seeds",
               interval="Welch's t", per="each loss and head depth h ≥ 1", measure="log NC1 ratio")
_F3_ACC = Test("transfer accuracy with an h-layer head − without", +1, 0.0, "better", 1.0, units="seeds",
               interval="Welch's t", per="each loss and head depth h ≥ 1", measure="accuracy points")


def _fig3(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    out = []
    for loss, g in ev.groupby("loss", sort=False):
        base = g[g["head_layers"] == 0]
        for h in sorted(x for x in g["head_layers"].unique() if x > 0):
            with_h = g[g["head_layers"] == h]
            out.append(Check(_F3_NC1, f"{loss}, {h}-layer head: log NC1 ratio", _welch(
                np.log(with_h["source_nc1"]), np.log(base["source_nc1"]))))
            out.append(Check(_F3_ACC, f"{loss}, {h}-layer head: accuracy gain", _welch(
                with_h["transfer_accuracy"], base["transfer_accuracy"])))
    return [out], _terminal(ev, "models"), ""


_F4_LOW = Test("slope of transfer accuracy against log source NC1 at the most collapsed model", +1, 0.0, "better",
               1.0, units="models", interval="quadratic least squares in log NC1 (scaled to [-1, 1]), t with n - 3 df",
               measure="accuracy points per half-range of log NC1")
_F4_HIGH = Test("slope at the least collapsed model", -1, 0.0, "better", 1.0, units="models",
                interval="the same fit", measure="accuracy points per half-range of log NC1")
#: Fig. 4's models must span source NC1 by at least this factor for a threshold to be visible.
FIG4_SPAN = 2.0
FIG4_MIN_MODELS = 5


def _fig4(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    inside = ev[ev["train_accuracy"] >= TERMINAL]
    x = np.log(inside["source_nc1"].to_numpy(float))
    span = float(np.exp(np.ptp(x))) if len(x) else math.nan
    met = len(inside) >= FIG4_MIN_MODELS and span >= FIG4_SPAN
    evidence = (f"{len(inside)} of {len(ev)} models in the terminal phase (the rule needs {FIG4_MIN_MODELS}); their "
                f"source NC1 spans a factor {span:.2f} (the rule needs {FIG4_SPAN:g}).")
    if len(inside) < 3 or not np.ptp(x) > 0:
        return [[]], (False, evidence), ""
    z = 2 * (x - x.min()) / np.ptp(x) - 1
    X = np.c_[np.ones_like(z), z, z ** 2]
    low, high = stats.linear_contrasts(X, inside["transfer_accuracy"], [[0, 1, -2], [0, 1, 2]])
    out = [Check(_F4_LOW, "slope at the most collapsed end", low),
           Check(_F4_HIGH, "slope at the least collapsed end", high)]
    return [out], (met, evidence), ""


_RF_NC1 = Test("log downstream NC1, random − trained encoders", +1, 0.0, "better", 0.4, units="seeds",
               interval="Welch's t", measure="log NC1 ratio")
_RF_ACC = Test("transfer accuracy, random − trained encoders", -1, 0.0, "better", 1.0, units="seeds",
               interval="Welch's t", measure="accuracy points")


def _random_features(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    r, t = ev[ev["group"] == "random"], ev[ev["group"] == "trained"]
    out = [Check(_RF_NC1, f"log NC1 ratio ({len(r)} random, {len(t)} trained)",
                 _welch(np.log(r["downstream_nc1"]), np.log(t["downstream_nc1"]))),
           Check(_RF_ACC, "accuracy difference", _welch(r["transfer_accuracy"], t["transfer_accuracy"]))]
    return [out], None, ""


# --------------------------------------------------------------------------- Chapter 4
_F5 = Test("Spearman's ρ between downstream NC1 and transfer accuracy over the models", -1, 0.0, "better", 0.3,
           units="settings (a setting's seeds stay together)", per="each downstream set",
           interval="delete-one-setting jackknife on Fisher's z, t with G - 1 df", measure="correlation")


def _fig5(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    out = []
    for d, g in ev.groupby("dataset", sort=False):
        e = stats.correlation(g["downstream_nc1"], g["transfer_accuracy"], units=g["setting"])
        out.append(Check(_F5, f"{d}: ρ over {len(g)} models of {e.n} settings", e))
    models = ev.drop_duplicates("model")
    return [out], _terminal(models, "source models"), ""


_T2 = Test("accuracy of the more collapsed − the less collapsed backbone (neighbours in meta-test NC1, "
           "1- and 5-shot averaged)", +1, 0.0, "better", 1.0, units="backbone training seeds",
           per="each benchmark and each pair of backbones neighbouring in NC1", interval="Welch's t",
           measure="accuracy points")


def _table2(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    out = []
    per_seed = ev.groupby(["benchmark", "backbone", "seed"], sort=False)[["accuracy", "nc1"]].mean().reset_index()
    for bench, g in per_seed.groupby("benchmark", sort=False):
        order = g.groupby("backbone")["nc1"].mean().sort_values().index.tolist()
        for a, b in zip(order, order[1:]):
            acc = {k: g[g["backbone"] == k]["accuracy"].to_list() for k in (a, b)}
            out.append(Check(_T2, f"{bench}: {a} − {b}", _welch(acc[a], acc[b])))
    return [out], _terminal(ev.drop_duplicates(["benchmark", "backbone", "seed"]), "backbones"), ""


_F9 = Test("Spearman's ρ between a layer's downstream NC1 and its probe accuracy over the network's layers", -1,
           -0.8, "exact", per="each network", measure="correlation")


def _fig9(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    """Layers are not independent replicates (NC1 and accuracy are smooth in depth), so no interval over layers
    is valid: a network's ρ is read as an exact description, "nearly linear" as ρ <= -0.8, in every network."""
    out = []
    for net, g in ev.groupby("network", sort=False):
        g = g.sort_values("layer")
        rho = stats._corr("spearman")(g["nc1"].to_numpy(float), g["accuracy"].to_numpy(float)) \
            if len(g) >= 3 else math.nan
        out.append(Check(_F9, f"{net}: ρ over {len(g)} layers", Estimate(rho, rho, rho, len(g), "exact")))
    return [out], None, ""


# --------------------------------------------------------------------------- Chapter 5
_F10 = Test("mean over (network, dataset) cases of the fraction of block pairs where the deeper fine-tuned block "
            "has both lower penultimate NC1 and higher accuracy (Layer FT and SCL FT averaged)", +1, 0.5, "better",
            0.1, units="(network, dataset) cases (both methods fine-tune the same network on the same data)",
            interval="t over cases, within [0, 1]", measure="fraction of block pairs")


def _fig10(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    fractions = []
    for _, case in ev.groupby("case", sort=False):
        per_method = []
        for _, g in case.groupby("method", sort=False):
            g = g.sort_values("block")
            nc, acc = g["nc1"].to_numpy(float), g["accuracy"].to_numpy(float)
            pairs = [(i, j) for i in range(len(g)) for j in range(i + 1, len(g))]
            if pairs:
                per_method.append(np.mean([nc[j] < nc[i] and acc[j] > acc[i] for i, j in pairs]))
        if per_method:
            fractions.append(float(np.mean(per_method)))
    if len(fractions) < 2:
        m = float(np.mean(fractions)) if fractions else math.nan
        e = Estimate(m, math.nan, math.nan, len(fractions), "no interval: fewer than two cases")
    else:
        e = stats.mean_interval(fractions, bounds=(0.0, 1.0))
    return [[Check(_F10, f"mean fraction over {len(fractions)} cases", e)]], None, ""


_T3_LAYER = Test("accuracy of Layer FT − linear probe", +1, 0.0, "substantial", 2.0, units="fine-tuning seeds",
                 per="each (network, dataset)", interval="Welch's t", measure="accuracy points")
_T3_SCL = Test("accuracy of SCL FT − Layer FT", +1, 0.0, "better", 1.0, units="fine-tuning seeds",
               per="each (network, dataset)", interval="Welch's t", measure="accuracy points")
_T3_FULL = Test("accuracy of SCL FT − full FT", +1, 0.0, "comparable", 3.0, units="fine-tuning seeds",
                per="each (network, dataset)", interval="Welch's t", measure="accuracy points")


def _cells(ev: pd.DataFrame, test: Test, a: str, b: str) -> list[Check]:
    out = []
    for cell, g in ev.groupby("cell", sort=False):
        acc = {m: g[g["method"] == m]["accuracy"].to_list() for m in (a, b)}
        if acc[a] and acc[b]:
            out.append(Check(test, f"{cell}: {a} − {b}", _welch(acc[a], acc[b])))
    return out


def _table3_layer(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    return [_cells(ev, _T3_LAYER, "layer", "linear")], None, ""


def _table3_scl(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    return [_cells(ev, _T3_SCL, "scl", "layer"), _cells(ev, _T3_FULL, "scl", "full")], None, ""


_PARAMS_ARXIV = Test("largest percentage of parameters Layer FT or SCL FT trains at Table 3's blocks", -1, 30.0,
                     "exact", measure="percent")
_PARAMS_TMLR = Test("the same, against the TMLR wording (at least 90% fewer)", -1, 10.0, "exact", measure="percent")


def _parameters(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    top = ev.loc[ev["percent"].idxmax()]
    e = Estimate(float(top["percent"]), float(top["percent"]), float(top["percent"]), len(ev),
                 f"exact count over {len(ev)} cells")
    where = str(top["cell"])
    return [[Check(_PARAMS_ARXIV, f"largest ({where})", e), Check(_PARAMS_TMLR, f"largest ({where})", e)]], None, ""


_F11 = Test("accuracy of Layer FT (and of SCL FT) − full FT", +1, 0.0, "better", 1.0,
            units="seeds (each its own source model, subset and run)",
            per="Layer FT and SCL FT at each of the two smallest sizes", interval="paired t", measure="accuracy points")
#: Fig. 11's regime: full fine-tuning overfits (training accuracy at the terminal phase, test this much lower).
OVERFIT_GAP = 10.0


def _fig11(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    out, seen = [], []
    for size in sorted(ev["size"].unique())[:2]:
        g = ev[ev["size"] == size]
        full = g[g["method"] == "full"].set_index("seed")
        for method, name in (("layer", "Layer FT"), ("scl", "SCL FT")):
            m = g[g["method"] == method].set_index("seed")["accuracy"]
            seeds = sorted(set(m.index) & set(full.index))
            if seeds:
                out.append(Check(_F11, f"{size} per class, {name} − full FT, {len(seeds)} seeds", _paired(
                    m[seeds].to_numpy(float), full.loc[seeds, "accuracy"].to_numpy(float))))
        seen.append((size, float(full["train_accuracy"].min()), float(full["accuracy"].mean())))
    if any(math.isnan(tr) for _, tr, _ in seen):
        regime = (None, "Full FT's training accuracy was not recorded.")
    else:
        met = all(tr >= TERMINAL and tr - te >= OVERFIT_GAP for _, tr, te in seen)
        regime = (met, "Full FT at " + "; ".join(f"{n} per class: training {tr:.1f}% (lowest over seeds), test "
                                                 f"{te:.1f}% (mean)" for n, tr, te in seen) + ".")
    return [out], regime, ""


# --------------------------------------------------------------------------- Chapter 6
_NCTI_TAU = Test("weighted Kendall τ between NCTI and transfer accuracy over the candidates", +1, 0.0, "better", 0.3,
                 units="settings (a setting's seeds stay together)", per="each target set",
                 interval="delete-one-setting jackknife on Fisher's z, t with G - 1 df", measure="correlation")
_NCTI_ADV = Test("τ(NCTI) − τ(the strongest baseline, chosen on the other target sets)", +1, 0.0, "better", 0.1,
                 units="settings", per="each target set", interval="delete-one-setting jackknife, t with G - 1 df",
                 measure="difference of τ")


def _tau(g: pd.DataFrame, score: str) -> float:
    """Weighted τ of ``score`` with the accuracy over the candidates it scores (NaN: fewer than two)."""
    g = g[np.isfinite(g[score].astype(float))]
    return float(stats._corr("weighted_kendall")(g[score].to_numpy(float), g["accuracy"].to_numpy(float))) \
        if len(g) >= 2 else math.nan


def ranking_tau(evidence: pd.DataFrame, score: str, dataset: str) -> Estimate:
    """Weighted Kendall τ between ``score``'s values (column ``score_<score>``) and the accuracy over the candidates
    it scores on target ``dataset``, with the jackknife interval over their pre-training settings (a setting's seeds
    are dropped together). ``evidence`` is ``ncti_rank``'s:
    one row per (dataset, candidate) with its ``setting``, ``accuracy`` and scores. The rule reads NCTI's; Chapter
    6's table shows every score's. Fewer than two candidates with the score: a NaN estimate (undecided)."""
    column = f"score_{score}"
    g = evidence[(evidence["dataset"] == dataset) & np.isfinite(evidence[column].astype(float))]
    if g.empty:  # the score rates no candidate here (e.g. LEEP without a source classifier)
        return Estimate(math.nan, math.nan, math.nan, 0, "no candidate has the score")
    return stats.correlation(g[column], g["accuracy"], method="weighted_kendall", units=g["setting"])


def _advantage(ncti: np.ndarray, base: np.ndarray, acc: np.ndarray) -> float:
    tau = stats._corr("weighted_kendall")
    return tau(ncti, acc) - tau(base, acc)


def _ncti(ev: pd.DataFrame, rule: Rule) -> Evaluation:
    baselines = [c for c in ev.columns if c.startswith("score_") and c != "score_ncti"]
    targets = list(dict.fromkeys(ev["dataset"]))
    taus = {(s, d): _tau(ev[ev["dataset"] == d], s) for s in baselines for d in targets}
    part_tau, part_adv = [], []
    for d in targets:
        g = ev[(ev["dataset"] == d) & np.isfinite(ev["score_ncti"].astype(float))]
        e = ranking_tau(ev, "ncti", d)
        part_tau.append(Check(_NCTI_TAU, f"{d}: τ over {len(g)} candidates of {e.n} settings", e))
        others = [t for t in targets if t != d] or [d]
        mean = {s: np.nanmean([taus[(s, t)] for t in others]) if any(np.isfinite(taus[(s, t)]) for t in others)
                else -math.inf for s in baselines}
        if not baselines:
            continue
        strongest = max(baselines, key=mean.get)
        both = g[np.isfinite(g[strongest].astype(float))]
        adv = stats.jackknife_interval(_advantage, both["score_ncti"].to_numpy(float), both[strongest].to_numpy(float),
                                       both["accuracy"].to_numpy(float), units=both["setting"].to_numpy())
        part_adv.append(Check(_NCTI_ADV, f"{d}: advantage over {strongest.removeprefix('score_')}", adv))
    return [part_tau, part_adv], None, ""


# --------------------------------------------------------------------------- the rules
_SETTINGS = "settings (the seeds of one pre-training setting stay together)"
_REGIME_TERMINAL = f"every source model at the terminal phase (at least {TERMINAL:g}% training accuracy)"

RULES: dict[str, Rule] = {r.key: r for r in [
    Rule("nc1_metric", "sigma", "noise levels (exact values, no sampling)", ("sigma", "nc1", "closed_form"),
         (Part("the metric", (_NC1_ZERO, _NC1_LOW, _NC1_HIGH)),), _nc1_metric),
    Rule("surrogates", "feature_set", "random feature sets", ("feature_set", "nc1", "cdnv", "rank"),
         (Part("surrogates", (_SURROGATE,)),), _surrogates, split_halves=True),
    Rule("progressive", "network", "networks (one per architecture and loss)",
         ("network", "architecture", "layer", "nc1", "train_accuracy"), (Part("networks", (_PROGRESSIVE,)),),
         _progressive, regime=f"networks at the terminal phase (at least {TERMINAL:g}% training accuracy) count; "
         "at least one of every architecture must be among them"),
    Rule("table1", "setting", _SETTINGS + " for the correlation, seeds for the difference",
         ("setting", "seed", "source_nc1", "transfer_accuracy", "train_accuracy"),
         (Part("correlation and contrast", (_T1_RHO, _T1_DIFF)),), _table1, regime=_REGIME_TERMINAL),
    Rule("fig3_heads", "seed", "seeds (independent trainings)",
         ("loss", "head_layers", "seed", "source_nc1", "transfer_accuracy", "train_accuracy"),
         (Part("heads", (_F3_NC1, _F3_ACC)),), _fig3, regime=_REGIME_TERMINAL),
    Rule("fig4_threshold", "model", "models (each its own training)",
         ("model", "source_nc1", "transfer_accuracy", "train_accuracy"), (Part("threshold", (_F4_LOW, _F4_HIGH)),),
         _fig4, regime=f"{_REGIME_TERMINAL}, at least {FIG4_MIN_MODELS} models whose source NC1 spans a factor "
         f"{FIG4_SPAN:g} or more"),
    Rule("random_features", "seed", "seeds (each its own encoder)",
         ("group", "seed", "downstream_nc1", "transfer_accuracy"), (Part("random features", (_RF_NC1, _RF_ACC)),),
         _random_features),
    Rule("fig5_downstream", "setting", _SETTINGS,
         ("dataset", "model", "setting", "downstream_nc1", "transfer_accuracy", "train_accuracy"),
         (Part("downstream sets", (_F5,), "majority"),), _fig5, regime=_REGIME_TERMINAL, split_halves=True),
    Rule("table2_fewshot", "seed", "backbone training seeds",
         ("benchmark", "backbone", "seed", "shots", "nc1", "accuracy", "train_accuracy"),
         (Part("backbone pairs", (_T2,), "majority"),), _table2, regime=_REGIME_TERMINAL),
    Rule("fig9_layers", "network", "networks (a network's layers are not independent replicates)",
         ("network", "layer", "nc1", "accuracy"),
         (Part("networks", (_F9,)),), _fig9),
    Rule("fig10_depth", "case", "(network, dataset) cases", ("case", "method", "block", "nc1", "accuracy"),
         (Part("depth", (_F10,)),), _fig10),
    Rule("table3_layer", "seed", "fine-tuning seeds", ("cell", "method", "seed", "accuracy"),
         (Part("cells", (_T3_LAYER,), "majority"),), _table3_layer),
    Rule("table3_scl", "seed", "fine-tuning seeds", ("cell", "method", "seed", "accuracy"),
         (Part("SCL FT vs Layer FT", (_T3_SCL,), "majority"), Part("SCL FT vs full FT", (_T3_FULL,), "majority")),
         _table3_scl),
    Rule("parameters", "cell", "Table 3's cells (exact counts)", ("cell", "percent"),
         (Part("count", (_PARAMS_ARXIV, _PARAMS_TMLR)),), _parameters),
    Rule("fig11_scarce", "seed", "seeds (each its own source model, subset and run)",
         ("size", "method", "seed", "accuracy", "train_accuracy"), (Part("sizes", (_F11,)),), _fig11,
         regime=f"full fine-tuning overfits at those sizes: at least {TERMINAL:g}% training accuracy with test "
         f"accuracy at least {OVERFIT_GAP:g} points lower"),
    Rule("ncti_rank", "setting", _SETTINGS, ("dataset", "candidate", "setting", "accuracy", "score_ncti"),
         (Part("NCTI ranks the models", (_NCTI_TAU,), "majority"),
          Part("NCTI ranks better than the strongest baseline", (_NCTI_ADV,), "majority")), _ncti,
         split_halves=True),
]}

#: What the cpu profile's design can and cannot decide for each rule, and what deciding it would take, from the
#: calibration (ncutils.book.calibration) and the units' times on one core of the 2-core AMD EPYC (shown on the
#: rules page; not part of a rule's digest).
_DESIGN = {
    "nc1_metric": "A check of the code against a closed form: exact, no error rate to calibrate.",
    "surrogates": "40 feature sets: decides whether τ exceeds 0.5 (power about 75% at τ 0.7).",
    "progressive": "Exact counts per network; the simulation assumes each layer's log NC1 scatters by 0.5 around a "
                   "fall of 0.8 per layer, which gives power about 65% over 9 networks.",
    "table1": "The correlation needs at least 6 settings: with Table 1's 4 no valid 95% interval can exclude 0 (an "
              "exact test of a perfect ρ over 4 settings has p = 1/24), so the book adds Fig. 3's two headed "
              "cross-entropy settings. Power at the paper's ρ 0.8 is under a half at 6 settings × 3 seeds; 5 seeds or "
              "8 settings barely raise it: the variation between settings unrelated to NC1 dominates.",
    "fig3_heads": "With 3 seeds a head's gain of 2 points is found about 1 time in 10 (seed sd 1.8 points); 5 seeds: 1"
                  " in 3. Each extra seed is 3 more ResNet18s (about 2 minutes on one core).",
    "fig4_threshold": "The cpu profile trains 4 models (augmentation levels 1-2, radii 2/255 and 8/255), fewer than "
                      "the fit needs: never in the regime. Even all five levels and four radii (9 models, one seed "
                      "each, about 9 more minutes) decide 31% of builds at a 3-point threshold and refute a monotone "
                      "relation 8% of the time: it needs seeds per model.",
    "random_features": "Decides at this design (10 random encoders, 3 trained).",
    "fig5_downstream": "14 settings (26 models) on 3 sets: power about 56% at ρ -0.7.",
    "table2_fewshot": "Episodes share one trained backbone, so the interval is over the backbones' training seeds: "
                      "with one seed per backbone it cannot be formed. 3 seeds per backbone (6 more trainings and "
                      "evaluations, about 3 minutes on one core) give power 4%, 5 seeds 14%: a backbone's accuracy "
                      "varies about 2.5 points between seeds, as much as the differences the paper reports.",
    "fig9_layers": "Layers are not independent replicates (both curves are smooth in depth: two unrelated random walks"
                   " over 17 layers correlate beyond the 95% band of independent points about 15% of the time), so "
                   "each network's ρ is read exactly; with a random-walk null the rule supports under 1% of builds. "
                   "The replication a correlation over layers lacks is over networks and seeds: 2 networks here.",
    "fig10_depth": "3 (network, dataset) cases with both methods inside each: the t interval has 2 df, so an opposite "
                   "trend is called against only about a third of the time; each more downstream set adds a case (8 "
                   "fine-tunings, about a minute on one core).",
    "table3_layer": "3 fine-tuning seeds per cell (24 fine-tunings beyond one run, about 3 minutes on one core): power"
                    " about 70% at a 5-point gain with δ = 2.",
    "table3_scl": "SCL FT's gain over Layer FT (1.5 points in the paper) is within the seed noise at 3 seeds (power "
                  "under 10%); 5 seeds give about 45%, 10 seeds (84 more fine-tunings, about 10 minutes on one core) "
                  "about 80%.",
    "parameters": "An exact count: no error rate to calibrate.",
    "fig11_scarce": "4 tests (Layer FT and SCL FT at two sizes), 5 seeds: power about 33% at a 4-point gain, and an "
                    "opposite effect is called against every time; 10 seeds (5 more source models and 30 fine-tunings,"
                    " about 6 minutes on one core) would raise the power above 70%.",
    "ncti_rank": "τ > 0 is found on most targets; an advantage of δ = 0.1 over the strongest baseline across 16 "
                 "settings is not (power about 10% for the claim as a whole): it needs several times more independent "
                 "candidates.",
}
RULES = {k: replace(r, design=_DESIGN[k]) for k, r in RULES.items()}


# --------------------------------------------------------------------------- digests
def _tree(source: str) -> ast.AST:
    tree = ast.parse(textwrap.dedent(source))
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and \
                isinstance(getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def _helpers(fn: Callable, seen: dict[str, str]) -> None:
    """The source of ``fn`` and of every function and test of this module it names, recursively."""
    if fn.__name__ in seen:
        return
    seen[fn.__name__] = ast.dump(_tree(inspect.getsource(fn)))
    module = globals()
    for node in ast.walk(_tree(inspect.getsource(fn))):
        if isinstance(node, ast.Name) and node.id in module and node.id not in seen:
            obj = module[node.id]
            if inspect.isfunction(obj) and obj.__module__ == __name__:
                _helpers(obj, seen)
            elif isinstance(obj, (Test, float, int)):
                seen[node.id] = repr(obj)


def _module_digest(path: Path) -> str:
    return hashlib.sha256(ast.dump(_tree(path.read_text(encoding="utf-8"))).encode()).hexdigest()


@functools.cache
def _digest(rule: Rule) -> str:
    seen: dict[str, str] = {}
    _helpers(rule.evaluate, seen)
    for method in (Rule.judge, Rule.validate, halves, _terminal):  # how every rule's checks become a verdict
        _helpers(method, seen)
    spec = {f.name: getattr(rule, f.name) for f in fields(rule) if f.name not in ("evaluate", "design")}
    here = Path(__file__).resolve().parent
    parts = [repr(spec), repr(sorted(seen.items())), _module_digest(here.parent / "stats.py"),
             _module_digest(here / "verdicts.py")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:12]

