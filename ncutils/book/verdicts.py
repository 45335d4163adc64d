"""Verdicts: a claim of the paper, a rule fixed before the numbers, statistics with intervals, an outcome.

This module holds the vocabulary every rule (:mod:`ncutils.book.rules`) speaks and the one renderer of a verdict;
the rules themselves, what they compute from a chapter's evidence, live in :mod:`ncutils.book.rules`.

**How a test reads its interval.** A :class:`Test` predicts a statistic on one side of a threshold (``sign``
+1: above, -1: below) and names **δ, the smallest effect that matters**, in the statistic's own units. Let
``[lo, hi]`` be the 95% interval of the effect *in the predicted direction beyond the threshold* (for a
prediction "below 0", an interval [-0.6, -0.2] of ρ is the effect [0.2, 0.6]). By the claim's wording a
test is one of four kinds:

``better`` ("A is better than B", "falls", "correlates")
    *as predicted* when ``lo > 0`` and ``hi >= δ``: an effect in the predicted direction that may well matter.
    *Against* when ``hi < δ``: the interval rules out every effect that matters, whether it lies below 0, on
    both sides of 0, or inside (0, δ) (a real effect too small to matter counts against a claim that one thing
    is better than another, as precision never turns a negligible effect into support). *Undecided*
    otherwise.
``substantial`` ("substantial gains", "a surrogate of")
    *as predicted* when ``lo > δ``: the whole interval is an effect that matters. *Against* when
    ``hi < δ``: an interval inside (0, δ) is a real but insubstantial effect, and reads against a claim of
    substance. *Undecided* otherwise.
``comparable`` ("comparable or better", "matches or beats")
    *as predicted* when ``lo > -δ`` (at worst δ short of the threshold); *against* when ``hi < -δ``.
``exact`` (a count or a closed form, no sampling error; δ is not used)
    *as predicted* when the value lies on the predicted side of the threshold or on it ("at least", "at
    most"), *against* otherwise.

An interval that is undefined (too few independent units, see :data:`ncutils.stats.MIN_UNITS`) is
*undecided*: a test never decides on an interval that leaves out the variance between the units that were
replicated. Each test also states its **smallest detectable effect**: the distance from the threshold a true
effect must have to be detected with 80% probability, about 1.43 half-widths of its interval.

**How tests combine.** A rule has one or more *parts* (sub-claims judged separately, e.g. "SCL FT beats Layer
FT" and "SCL FT is comparable to full FT"). A part's tests combine as the paper qualifies the claim:

``all`` (a claim stated without qualification)
    supported when every test is as predicted; not supported when any is against; else inconclusive.
``majority`` (the paper admits exceptions: "generally", "on various datasets")
    supported when more than half of the tests are as predicted; not supported when more than half are
    against; else inconclusive (with two tests, one each way is inconclusive).

A verdict is **supported** when every part is, **not supported** when any part is not, and **inconclusive**
otherwise, or whenever the run is not in the regime the claim is about (its precondition, e.g. source models
at the terminal phase of training, fails): then it cannot test the claim.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from ncutils.stats import Estimate

__all__ = ["COMBINE", "INCONCLUSIVE", "KINDS", "NOT_SUPPORTED", "OUTCOMES", "SUPPORTED", "TERMINAL", "Check", "Claim",
           "Part",
           "PartResult", "Test", "Verdict", "combine", "detectable_factor", "verdict"]

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
#: The terminal phase of training, the regime of the claims about pre-trained (source) models (% training accuracy).
TERMINAL = 99.5
OUTCOMES = (SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE)
#: How a part's tests combine into its outcome (see the module docstring).
COMBINE = ("all", "majority")
#: How a test reads its interval (see the module docstring).
KINDS = ("better", "substantial", "comparable", "exact")
_STYLE = {SUPPORTED: "tip", NOT_SUPPORTED: "warning", INCONCLUSIVE: "note"}
_MARK = {1: "as predicted", -1: "against", 0: "undecided"}


def detectable_factor(level: float = 0.95, power: float = 0.8) -> float:
    """(z_(1-α/2) + z_power) / z_(1-α/2): a true effect this many interval half-widths from the threshold is
    detected with probability ``power`` by a two-sided ``level`` interval (about 1.43 for 95% and 80%)."""
    from scipy.stats import norm

    za = float(norm.ppf(0.5 + level / 2))
    return (za + float(norm.ppf(power))) / za


_DETECTABLE = detectable_factor()


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, stated before the numbers: ``text`` in the paper's own qualification, ``where`` the
    paper makes it, what it printed (``paper``), the ``regime`` the claim is about (``""``: none), the chapter
    that tests it, a ``short`` name for tables and plots, and a ``note`` the reader should see beside the
    verdict (``""``: none). How it is decided is its rule, :data:`ncutils.book.rules.RULES` under the same key
    (which shows the claim with the rule's words, :meth:`ncutils.book.rules.Rule.show`)."""

    key: str
    text: str
    where: str
    paper: str
    regime: str = ""
    chapter: int = 0
    short: str = ""
    note: str = ""


@dataclass(frozen=True)
class Test:
    """One statistic a rule tests, as the rule states it before the numbers.

    ``statistic`` and ``per`` say what is computed and over what ("Spearman ρ between downstream NC1 and
    transfer accuracy", "each downstream set"); ``units`` the independent unit its interval resamples or
    models, ``interval`` how; ``sign``, ``threshold``, ``kind`` and ``delta`` how the interval reads (module
    docstring); ``measure`` the statistic's units in words.
    """

    __test__ = False  # a rule's test, not a pytest test class

    statistic: str
    sign: int
    threshold: float = 0.0
    kind: str = "better"
    delta: float | None = None
    units: str = ""
    interval: str = ""
    per: str = ""
    measure: str = ""

    def __post_init__(self):
        if self.sign not in (-1, 1):
            raise ValueError(f"a test predicts a side: sign -1 or +1; got {self.sign!r}.")
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {self.kind!r}.")
        if (self.kind == "exact") != (self.delta is None):
            raise ValueError("an exact test has no δ, and every other test needs one.")
        if self.delta is not None and self.delta <= 0:
            raise ValueError(f"δ is a positive effect size; got {self.delta}.")

    def predicted(self) -> str:
        """The prediction in symbols, e.g. "> 0 (δ = 1)" or "> -3, comparable or better"."""
        side = ">" if self.sign > 0 else "<"
        t = self.threshold
        if self.kind == "exact":
            return f"{'≥' if self.sign > 0 else '≤'} {t:g} (exact)"
        if self.kind == "comparable":
            return f"{side} {t - self.sign * self.delta:g} (within δ = {self.delta:g} of {t:g}: comparable or better)"
        if self.kind == "substantial":
            return f"{side} {t + self.sign * self.delta:g} (substantial: beyond δ = {self.delta:g})"
        return f"{side} {t:g} (δ = {self.delta:g})"

    def describe(self) -> str:
        """The test in words, generated from its own parameters."""
        per = f"for {self.per}, " if self.per else ""
        how = "; ".join(x for x in (f"independent unit: {self.units}" if self.units else "",
                                    f"95% interval: {self.interval}" if self.interval else "") if x)
        return f"{per}{self.statistic} {self.predicted()}" + (f" ({how})" if how else "")


@dataclass(frozen=True)
class Check:
    """A :class:`Test` computed on this run's evidence: ``name`` (what exactly, e.g. which set) and its estimate."""

    test: Test
    name: str
    estimate: Estimate

    def _oriented(self) -> tuple[float, float]:
        """The interval as effects in the predicted direction beyond the threshold: ``(lo, hi)``."""
        e, t, s = self.estimate, self.test.threshold, self.test.sign
        a, b = s * (e.low - t), s * (e.high - t)
        return min(a, b), max(a, b)

    @property
    def direction(self) -> int:
        """+1: as predicted; -1: against; 0: undecided (module docstring)."""
        kind, d = self.test.kind, self.test.delta
        if kind == "exact":
            v = self.test.sign * (self.estimate.value - self.test.threshold)
            return 0 if v != v else (1 if v >= 0 else -1)
        e = self.estimate
        if not (math.isfinite(e.low) and math.isfinite(e.high)) and (e.low != e.low or e.high != e.high):
            return 0
        lo, hi = self._oriented()
        if kind == "comparable":
            return 1 if lo > -d else (-1 if hi < -d else 0)
        if kind == "substantial":
            return 1 if lo > d else (-1 if hi < d else 0)
        return -1 if hi < d else (1 if lo > 0 else 0)

    @property
    def negligible(self) -> bool:
        """A *better* test against because its whole interval lies inside (0, δ): an effect too small to matter."""
        lo, hi = self._oriented()
        return bool(self.test.kind == "better" and lo > 0 and hi < self.test.delta)

    @property
    def detectable(self) -> float:
        """The smallest effect (from the threshold, in the statistic's units) this run detects with 80%
        probability: about 1.43 times the interval's half-width (``inf`` without an interval, 0 for an exact
        test)."""
        if self.test.kind == "exact":
            return 0.0
        half = (self.estimate.high - self.estimate.low) / 2
        return float(_DETECTABLE * half) if math.isfinite(half) else math.inf

    def shown(self) -> str:
        """The estimate with its 95% interval, or what stands in its place (exact; no spread; no interval)."""
        e = self.estimate
        if not math.isfinite(e.value):
            return "not computed"
        if self.test.kind == "exact":
            return f"{e.value:.4g} (exact)"
        if not (math.isfinite(e.low) and math.isfinite(e.high)):
            return f"{e.value:.3g} (no interval: {e.method.split(': ', 1)[-1]})"
        if math.isclose(e.low, e.high, rel_tol=1e-6, abs_tol=1e-9):
            return f"{e.value:.3g} (no spread over its {e.n} independent units: an interval of zero width)"
        return f"{e.value:.3g} [{e.low:.3g}, {e.high:.3g}]"

    def describe(self) -> str:
        """One line for a verdict box: the statistic, its interval, the prediction and how it came out."""
        shown = self.shown()
        mark = _MARK[self.direction] + (" (negligible: the whole interval lies inside (0, δ))" if self.negligible
                                        else "")
        extra = "" if self.test.kind == "exact" or not math.isfinite(self.detectable) else \
            f"; smallest detectable effect {self.detectable:.2g}"
        return f"{self.name} = {shown}: predicted {self.test.predicted()}{extra}; **{mark}**"

    def to_dict(self) -> dict[str, Any]:
        return {"test": asdict(self.test), "name": self.name, "estimate": self.estimate.to_dict(),
                "direction": self.direction, "negligible": self.negligible,
                "detectable": self.detectable if math.isfinite(self.detectable) else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Check:
        return cls(Test(**d["test"]), d["name"], Estimate(**d["estimate"]))


@dataclass(frozen=True)
class Part:
    """A sub-claim of a rule, judged on its own: its ``tests`` (specs) and how their checks ``combine``."""

    name: str
    tests: tuple[Test, ...]
    combine: str = "all"

    def __post_init__(self):
        if self.combine not in COMBINE:
            raise ValueError(f"part {self.name!r}: combine must be one of {COMBINE}; got {self.combine!r}.")

    def describe_combination(self) -> str:
        if self.combine == "all":
            return "supported when every test is as predicted; not supported when any is against"
        return ("supported when more than half of the tests are as predicted, whatever the rest (the paper admits "
                "exceptions); not supported when more than half are against")


def combine(directions: Sequence[int], how: str) -> tuple[str, str]:
    """The outcome of one part from its checks' directions, and the reason in words."""
    if how not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}; got {how!r}.")
    n = len(directions)
    if n == 0:
        return INCONCLUSIVE, "no test could be computed"
    pos, neg = list(directions).count(1), list(directions).count(-1)
    if how == "all":
        outcome = SUPPORTED if pos == n else NOT_SUPPORTED if neg else INCONCLUSIVE
    else:
        outcome = SUPPORTED if pos > n / 2 else NOT_SUPPORTED if neg > n / 2 else INCONCLUSIVE
    return outcome, f"{pos} of {n} as predicted, {neg} against, {n - pos - neg} undecided"


@dataclass(frozen=True)
class PartResult:
    """A part's outcome on this run: its checks and why it came out so."""

    name: str
    combine: str
    outcome: str
    reason: str
    checks: tuple[Check, ...]

    def decisive(self) -> Check | None:
        """The check that speaks for the part's outcome: the first against it when not supported, the first
        as predicted when supported, else the first undecided one."""
        want = {SUPPORTED: 1, NOT_SUPPORTED: -1, INCONCLUSIVE: 0}[self.outcome]
        return next((c for c in self.checks if c.direction == want), self.checks[0] if self.checks else None)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "combine": self.combine, "outcome": self.outcome, "reason": self.reason,
                "checks": [c.to_dict() for c in self.checks]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PartResult:
        return cls(d["name"], d["combine"], d["outcome"], d["reason"], tuple(Check.from_dict(c) for c in d["checks"]))


@dataclass(frozen=True)
class Verdict:
    """The outcome of a claim's rule on one run's evidence: the parts and their checks, the regime, a short
    ``details`` line, the same rule's outcomes on the two halves of the independent units (``halves``, split by
    ``split``), and the ``digest`` of the rule that decided it (:mod:`ncutils.book.rule_history`)."""

    claim: Claim
    outcome: str
    reason: str
    parts: tuple[PartResult, ...] = ()
    regime_met: bool | None = None
    regime_evidence: str = ""
    details: str = ""
    halves: tuple[str, ...] = ()
    split: str = ""
    digest: str = ""

    def __post_init__(self):
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}; got {self.outcome!r}.")

    @property
    def checks(self) -> list[Check]:
        return [c for p in self.parts for c in p.checks]

    def headline(self) -> Check | None:
        """The check that decided the verdict: of the part that decided it (the first not supported one when
        the claim is not supported, the first inconclusive one when it is inconclusive)."""
        for p in self.parts:
            if p.outcome == self.outcome or self.outcome == SUPPORTED:
                return p.decisive()
        return self.parts[0].decisive() if self.parts else None

    def with_halves(self, first: Verdict, second: Verdict, split: str) -> Verdict:
        if not split:
            raise ValueError("name the independent units the halves split (e.g. 'settings').")
        return replace(self, halves=(first.outcome, second.outcome), split=split)

    def to_dict(self) -> dict[str, Any]:
        return {"claim": asdict(self.claim), "outcome": self.outcome, "reason": self.reason,
                "parts": [p.to_dict() for p in self.parts], "regime_met": self.regime_met,
                "regime_evidence": self.regime_evidence, "details": self.details, "halves": list(self.halves),
                "split": self.split, "digest": self.digest}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Verdict:
        return cls(Claim(**d["claim"]), d["outcome"], d["reason"], tuple(PartResult.from_dict(p) for p in d["parts"]),
                   d.get("regime_met"), d.get("regime_evidence", ""), d.get("details", ""), tuple(d.get("halves", ())),
                   d.get("split", ""), d.get("digest", ""))

    def markdown(self) -> str:
        """The verdict as a MyST admonition (the one renderer of a verdict: chapters and the claims page use it)."""
        c = self.claim
        lines = [f":::{{admonition}} Verdict: {self.outcome} ({c.short or c.where})", f":class: {_STYLE[self.outcome]}",
                 ""]
        head = self.headline()
        if head is not None:
            lines += [f"**Decided by:** {head.describe()}", ""]
        if c.regime:
            met = {True: "met", False: "not met", None: "not measured"}[self.regime_met]
            lines += [f"**Regime** ({met}): {self.regime_evidence or c.regime}", ""]
        for p in self.parts:
            title = f"**{p.name}**: {p.outcome} ({p.reason})" if len(self.parts) > 1 else \
                f"**Tests** ({p.reason}):"
            lines += [title, ""] + [f"- {ch.describe()}" for ch in p.checks] + [""]
        if self.details:
            lines += [self.details, ""]
        if self.halves:
            lines += [f"**Inside this build:** the same rule on each half of the {self.split}: "
                      + " and ".join(self.halves) + ".", ""]
        if c.note:
            lines += [f"**Note:** {c.note}", ""]
        lines += [f"**Outcome:** {self.outcome}. {self.reason}".rstrip(), ":::"]
        return "\n".join(lines)

    def _repr_markdown_(self) -> str:
        return self.markdown()


def verdict(claim: Claim, parts: Sequence[PartResult], *, regime: tuple[bool | None, str] | None = None,
            details: str = "", digest: str = "") -> Verdict:
    """Combine parts into a verdict (module docstring); a regime that is not met makes it inconclusive."""
    met, evidence = regime if regime is not None else (None, "")
    outcomes = [p.outcome for p in parts]
    if met is False:
        return Verdict(claim, INCONCLUSIVE, "The run is not in the regime the claim is about, so it cannot test it.",
                       tuple(parts), False, evidence, details, digest=digest)
    if not parts:
        return Verdict(claim, INCONCLUSIVE, "No test could be computed.", (), met, evidence, details, digest=digest)
    if all(o == SUPPORTED for o in outcomes):
        outcome = SUPPORTED
    elif NOT_SUPPORTED in outcomes:
        outcome = NOT_SUPPORTED
    else:
        outcome = INCONCLUSIVE
    if len(parts) == 1:
        reason = parts[0].reason[0].upper() + parts[0].reason[1:] + "."
    else:
        reason = "; ".join(f"{p.name}: {p.outcome}" for p in parts) + "."
    if outcome == INCONCLUSIVE and met is not False:
        reason += " The intervals are too wide, or too few independent units were replicated, to decide."
    return Verdict(claim, outcome, reason, tuple(parts), met, evidence, details, digest=digest)

