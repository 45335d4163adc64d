"""Verdicts: a claim of the paper, a rule fixed before the numbers, a statistic with its interval, an outcome.

A chapter states each claim as a :class:`Claim` **before** computing anything: the paper's words with
their own qualification ("usually", "on a variety of datasets"), where the paper says it and what it
printed, the regime the claim is about (e.g. source models at the terminal phase of training), and
the rule that will decide it, with the **smallest effect that matters** for each kind of statistic
(``Claim.deltas``: δ in the statistic's own units, e.g. 1 accuracy point, 0.3 of a correlation). After the
experiments, :func:`judge` applies the rule to 95% intervals (:class:`ncutils.stats.Estimate`). A test
predicts a statistic on one side of a threshold and reads its interval in one of two ways:

*better* (the default)
    as predicted when the whole interval lies beyond the threshold on the predicted side; **against** when it
    lies short of threshold + δ (on the predicted side), i.e. any effect is smaller than what would matter or
    points the other way; undecided otherwise. An interval beyond the threshold but within δ of it reads
    *as predicted*: the effect is there, smaller than δ, and the test says so.
*comparable or better* (``comparable=True``, an equivalence test)
    as predicted when the interval lies beyond threshold − δ; against when it lies short of threshold − δ;
    undecided otherwise.

Each test also states its **power**: the smallest true effect this build would detect with 80%
probability, (z₀.₉₇₅ + z₀.₈₀) / z₀.₉₇₅ ≈ 1.43 times the interval's half-width. A test whose interval is
narrower than δ always decides (as predicted or against); so *undecided* means "this build cannot tell",
never "the effect is small".

Three outcomes:

``supported``
    the run is in the claim's regime and the rule's tests come out as the claim predicts;
``not supported``
    the run is in the regime and the tests contradict the claim;
``inconclusive``
    the regime's precondition fails (e.g. a source model below 99.5% training accuracy), or the
    intervals are too wide to decide: this run cannot tell (its power says what it could have seen).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from IPython.display import Markdown

from ncutils.stats import Estimate

__all__ = ["COMBINE", "INCONCLUSIVE", "NOT_SUPPORTED", "POWER_FACTOR", "SUPPORTED", "Claim", "Check", "Verdict",
           "check", "halves_of", "judge"]

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
#: The ways a rule's tests combine into a verdict (see :func:`judge`).
COMBINE = ("all", "most", "majority", "any")
_STYLE = {SUPPORTED: "tip", NOT_SUPPORTED: "warning", INCONCLUSIVE: "note"}


@dataclass(frozen=True)
class Claim:
    """A claim of the paper, stated before the numbers.

    Attributes
    ----------
    key : short identifier, unique in the book (e.g. ``"table1"``)
    text : the claim in the paper's own qualification
    where : where the paper makes it (``"Section 3.1, Table 1"``)
    paper : what the paper printed in support (numbers, or the figure's shape in words)
    rule : how this book decides it: the statistics, their thresholds, and how tests combine
    regime : the conditions the claim is about, checked in the run (``""``: none)
    deltas : the smallest effect that matters, by the measure a test names (``check(..., measure=...)``), e.g.
        ``{"accuracy": 1.0, "correlation": 0.3}``; empty for claims checked exactly (no sampling error)
    short : a name of a few words, for the claims page's forest plot and the chapters' opening summaries
        (``""``: the claim is named by ``where``)
    combine : how the rule's tests combine into a verdict (:func:`judge`), read from the paper's qualification:
        ``"all"`` for a claim stated without one, ``"majority"`` where the paper admits exceptions
        ("generally", "on various datasets"), ``"most"`` (as predicted in most tests, none against)
    """

    key: str
    text: str
    where: str
    paper: str
    rule: str
    regime: str = ""
    chapter: int = 0
    deltas: Mapping[str, float] = field(default_factory=dict)
    short: str = ""
    combine: str = "all"

    def __post_init__(self):
        if self.combine not in COMBINE:
            raise ValueError(f"claim {self.key!r}: combine must be one of {COMBINE}; got {self.combine!r}.")

    def delta(self, measure: str | None) -> float | None:
        """δ of ``measure`` (``None``: the claim's only measure, if it has exactly one)."""
        if measure is None:
            return next(iter(self.deltas.values())) if len(self.deltas) == 1 else None
        if measure not in self.deltas:
            raise ValueError(f"claim {self.key!r} names no smallest effect for {measure!r}; it has "
                             f"{sorted(self.deltas) or 'none'}.")
        return self.deltas[measure]

    def effects(self) -> str:
        """The smallest effects that matter, in words (``""`` when the claim is checked exactly)."""
        return "; ".join(f"{m} {d:g}" for m, d in self.deltas.items())

    def show(self) -> Markdown:
        """The claim and its rule as a box, for the notebook cell that states them before the experiment."""
        regime = f"\n\n**Regime:** {self.regime}" if self.regime else ""
        delta = (f"\n\n**Smallest effect that matters (δ):** {self.effects()}. A test comes out against the claim "
                 "when its interval rules out any effect of at least δ in the predicted direction.") \
            if self.deltas else ""
        return Markdown(f":::{{admonition}} Claim ({self.where})\n:class: seealso\n\n{self.text}\n\n"
                        f"**Paper:** {self.paper}\n\n**Rule, fixed before the numbers:** {self.rule}{delta}{regime}"
                        "\n:::")


#: (z_0.975 + z_0.80) / z_0.975: a true effect this many interval half-widths from the threshold is detected
#: with 80% probability by a two-sided 95% interval.
POWER_FACTOR = (1.959963984540054 + 0.8416212335729143) / 1.959963984540054


@dataclass(frozen=True)
class Check:
    """One statistic and its predicted side: ``sign`` -1 (below ``threshold``) or +1 (above), read with the
    smallest effect that matters ``delta`` (``None``: the threshold alone decides) as *better* or, with
    ``comparable``, as *comparable or better* (see the module docstring)."""

    name: str
    estimate: Estimate
    sign: int
    threshold: float = 0.0
    delta: float | None = None
    comparable: bool = False
    measure: str | None = None

    def _oriented(self) -> tuple[float, float]:
        """The interval as effects in the predicted direction beyond the threshold: ``(low, high)``."""
        e, t = self.estimate, self.threshold
        a, b = self.sign * (e.low - t), self.sign * (e.high - t)
        return min(a, b), max(a, b)

    @property
    def direction(self) -> int:
        """+1: as predicted; -1: against (beyond the other side, or short of δ); 0: undecided."""
        e = self.estimate
        if e.low != e.low or e.high != e.high:  # NaN interval: undefined
            return 0
        lo, hi = self._oriented()
        d = self.delta or 0.0
        if self.comparable:
            return 1 if lo > -d else (-1 if hi < -d else 0)
        if lo > 0:
            return 1
        return -1 if hi < d or (self.delta is None and hi < 0) else 0

    @property
    def smaller_than_delta(self) -> bool:
        """As predicted, but the whole interval lies within δ of the threshold: a real effect, smaller than δ."""
        return bool(self.direction == 1 and not self.comparable and self.delta is not None
                    and self._oriented()[1] < self.delta)

    @property
    def power(self) -> float:
        """The smallest effect (from the threshold, in the statistic's units) this build detects with 80%
        probability: :data:`POWER_FACTOR` times the interval's half-width (``inf`` for an undefined interval)."""
        e = self.estimate
        half = (e.high - e.low) / 2
        return float(POWER_FACTOR * half) if math.isfinite(half) else math.inf

    @property
    def decisive(self) -> bool:
        """Whether this build decides a *better* test whatever the truth: its interval is narrower than δ (an
        interval that narrow cannot both reach below the threshold and beyond threshold + δ)."""
        e = self.estimate
        return bool(self.delta is not None and not self.comparable and math.isfinite(e.high - e.low)
                    and e.high - e.low < self.delta)

    def describe(self) -> str:
        side = ">" if self.sign > 0 else "<"
        mark = {1: "as predicted", -1: "against the prediction", 0: "undecided"}[self.direction]
        if self.smaller_than_delta:
            mark += ", smaller than δ"
        rule = f"{side} {self.threshold - self.sign * (self.delta or 0):g}, comparable or better" \
            if self.comparable else f"{side} {self.threshold:g}"
        extra = "" if self.delta is None else f", δ = {self.delta:g}, power {self.power:.2g}"
        e = self.estimate
        exact = math.isfinite(e.low) and math.isfinite(e.high) and math.isclose(e.low, e.high, rel_tol=1e-9,
                                                                                abs_tol=1e-12)
        shown = f"{e.value:.3g} (exact)" if exact else str(e)  # a zero-width interval is no interval
        return f"{self.name} = {shown} (predicted {rule}{extra}; {mark})"


def halves_of(items: Sequence) -> tuple[list, list]:
    """``items`` (in a fixed order) dealt into two disjoint halves, alternately: the odd and the even ones. The
    same rule applied to each gives a verdict's replication inside the build (:meth:`Verdict.with_halves`)."""
    items = list(items)
    return items[0::2], items[1::2]


def check(name: str, estimate: Estimate, sign: int, threshold: float = 0.0, *, measure: str | None = None,
          comparable: bool = False, delta: float | None = None) -> Check:
    """A :class:`Check`: statistic ``name`` predicted above (``sign=+1``) or below (``-1``) ``threshold``.

    ``measure`` names the claim's smallest effect that applies (:attr:`Claim.deltas`; :func:`judge` fills
    ``delta`` from it, or from the claim's only one); ``comparable`` reads it as *comparable or better*.
    """
    if sign not in (-1, 1):
        raise ValueError(f"sign must be +1 (above) or -1 (below); got {sign}.")
    if delta is not None and not delta > 0:
        raise ValueError(f"the smallest effect that matters is positive; got {delta}.")
    return Check(name, estimate, sign, threshold, delta, comparable, measure)


@dataclass
class Verdict:
    """The outcome of a claim in this run, with its evidence."""

    claim: Claim
    outcome: str
    tests: list[Check] = field(default_factory=list)
    reason: str = ""
    regime_met: bool | None = None
    regime_evidence: str = ""
    details: str = ""
    #: replication inside the build: the outcomes of the same rule on two disjoint halves of what the tests range
    #: over (``split`` names it: "models", "episodes", ...); empty where the claim is not split
    halves: tuple[str, ...] = ()
    split: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"claim": asdict(self.claim), "outcome": self.outcome, "reason": self.reason,
                "regime_met": self.regime_met, "regime_evidence": self.regime_evidence, "details": self.details,
                "halves": list(self.halves), "split": self.split,
                "tests": [{"name": t.name, "sign": t.sign, "threshold": t.threshold, "direction": t.direction,
                           "delta": t.delta, "comparable": t.comparable, "measure": t.measure,
                           "power": t.power if math.isfinite(t.power) else None, "decisive": t.decisive,
                           "smaller_than_delta": t.smaller_than_delta, **t.estimate.to_dict()}
                          for t in self.tests]}

    def with_halves(self, first: Verdict, second: Verdict, split: str) -> Verdict:
        """This verdict with the outcomes of the same rule on two disjoint halves of the ``split`` (e.g. the odd and
        the even models): whether the verdict replicates inside the build, on half the evidence each."""
        for h in (first, second):
            if h.claim.key != self.claim.key:
                raise ValueError(f"a half of claim {self.claim.key!r} is judged by the rule of {h.claim.key!r}.")
        if not split:
            raise ValueError("name what the halves split (e.g. 'models', 'episodes').")
        return replace(self, halves=(first.outcome, second.outcome), split=split)

    def summary(self) -> str:
        """The first test's statistic and interval, for the claims page."""
        return self.tests[0].describe() if self.tests else self.details

    def _repr_markdown_(self) -> str:
        lines = [f":::{{admonition}} Verdict: {self.outcome} ({self.claim.where})", f":class: {_STYLE[self.outcome]}",
                 "", f"**Claim:** {self.claim.text}", "", f"**Paper:** {self.claim.paper}", "",
                 f"**Rule:** {self.claim.rule}", ""]
        if self.claim.regime:
            met = {True: "met", False: "not met", None: "not measured"}[self.regime_met]
            lines += [f"**Regime** ({met}): {self.claim.regime} {self.regime_evidence}".rstrip(), ""]
        if self.tests:
            lines += ["**This run:**", ""] + [f"- {t.describe()}" for t in self.tests] + [""]
        if self.details:
            lines += [self.details, ""]
        if self.halves:
            lines += [f"**Inside this build:** the same rule on each half of the {self.split}: "
                      + " and ".join(self.halves) + ".", ""]
        lines += [f"**Outcome:** {self.outcome}. {self.reason}".rstrip(), ":::"]
        return "\n".join(lines)


def judge(claim: Claim, tests: Sequence[Check], *, combine: str | None = None,
          regime: tuple[bool, str] | None = None, details: str = "") -> Verdict:
    """Apply ``claim``'s rule: combine the tests' directions, after checking the regime.

    ``combine`` (default: the claim's own, :attr:`Claim.combine`):

    * ``"all"``: supported when every test comes out as predicted; not supported when any comes out against;
    * ``"most"``: supported when more than half come out as predicted and none against; not supported when
      more than half come out against;
    * ``"majority"``: supported when more than half come out as predicted, whatever the rest; not supported
      when more than half come out against;
    * ``"any"``: supported when at least one comes out as predicted; not supported when all come out against.

    Anything else is inconclusive.
    ``regime`` is ``(met, evidence)``; a regime that is not met makes the verdict inconclusive.
    """
    combine = claim.combine if combine is None else combine
    if combine not in COMBINE:
        raise ValueError(f"combine must be one of {COMBINE}; got {combine!r}.")
    met, evidence = regime if regime is not None else (None, "")
    tests = [t if t.delta is not None else replace(t, delta=claim.delta(t.measure)) for t in tests]
    dirs = [t.direction for t in tests]
    n = len(dirs)
    if met is False:
        return Verdict(claim, INCONCLUSIVE, list(tests), "The run is not in the regime the claim is about, so it "
                       "cannot test it.", False, evidence, details)
    if n == 0:
        return Verdict(claim, INCONCLUSIVE, [], "No test could be computed.", met, evidence, details)
    pos, neg = dirs.count(1), dirs.count(-1)
    if combine == "all":
        outcome = SUPPORTED if pos == n else NOT_SUPPORTED if neg else INCONCLUSIVE
    elif combine == "most":
        outcome = SUPPORTED if pos > n / 2 and not neg else NOT_SUPPORTED if neg > n / 2 else INCONCLUSIVE
    elif combine == "majority":
        outcome = SUPPORTED if pos > n / 2 else NOT_SUPPORTED if neg > n / 2 else INCONCLUSIVE
    else:
        outcome = SUPPORTED if pos else NOT_SUPPORTED if neg == n else INCONCLUSIVE
    reason = {SUPPORTED: f"{pos} of {n} tests as predicted, none against." if not neg else
              f"{pos} of {n} tests as predicted, {neg} against.",
              NOT_SUPPORTED: f"{neg} of {n} tests against the prediction.",
              INCONCLUSIVE: f"{pos} of {n} tests as predicted, {neg} against, {n - pos - neg} undecided: the "
                            "intervals are too wide to decide at this scale."}[outcome]
    return Verdict(claim, outcome, list(tests), reason, met, evidence, details)
