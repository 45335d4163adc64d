"""Verdicts: a claim of the paper, a rule fixed before the numbers, a statistic with its interval, an outcome.

A chapter states each claim as a :class:`Claim` **before** computing anything: the paper's words with
their own qualification ("usually", "on a variety of datasets"), where the paper says it and what it
printed, the regime the claim is about (e.g. source models at the terminal phase of training), and
the rule that will decide it. After the experiments, :func:`judge` applies the rule to intervals
(:class:`ncutils.stats.Estimate`): each test is a statistic whose 95% interval lies on the predicted
side of a threshold (it supports the claim), on the opposite side (it contradicts it), or straddles it.

Three outcomes:

``supported``
    the run is in the claim's regime and the rule's tests come out as the claim predicts;
``not supported``
    the run is in the regime and the tests contradict the claim;
``inconclusive``
    the regime's precondition fails (e.g. a source model below 99% training accuracy), or the
    intervals straddle the thresholds: this run cannot tell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from IPython.display import Markdown

from ncutils.stats import Estimate

__all__ = ["INCONCLUSIVE", "NOT_SUPPORTED", "SUPPORTED", "Claim", "Check", "Verdict", "check", "judge"]

SUPPORTED, NOT_SUPPORTED, INCONCLUSIVE = "supported", "not supported", "inconclusive"
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
    """

    key: str
    text: str
    where: str
    paper: str
    rule: str
    regime: str = ""
    chapter: int = 0

    def show(self) -> Markdown:
        """The claim and its rule as a box, for the notebook cell that states them before the experiment."""
        regime = f"\n\n**Regime:** {self.regime}" if self.regime else ""
        return Markdown(f":::{{admonition}} Claim ({self.where})\n:class: seealso\n\n{self.text}\n\n"
                        f"**Paper:** {self.paper}\n\n**Rule, fixed before the numbers:** {self.rule}{regime}\n:::")


@dataclass(frozen=True)
class Check:
    """One statistic and its predicted side: ``sign`` -1 (below ``threshold``) or +1 (above)."""

    name: str
    estimate: Estimate
    sign: int
    threshold: float = 0.0

    @property
    def direction(self) -> int:
        """+1: the interval lies on the predicted side; -1: on the other side; 0: it straddles the threshold."""
        e, t = self.estimate, self.threshold
        if e.low != e.low or e.high != e.high:  # NaN interval: undefined
            return 0
        if self.sign > 0:
            return 1 if e.low > t else (-1 if e.high < t else 0)
        return 1 if e.high < t else (-1 if e.low > t else 0)

    def describe(self) -> str:
        side = ">" if self.sign > 0 else "<"
        mark = {1: "as predicted", -1: "against the prediction", 0: "undecided"}[self.direction]
        return f"{self.name} = {self.estimate} (predicted {side} {self.threshold:g}; {mark})"


def check(name: str, estimate: Estimate, sign: int, threshold: float = 0.0) -> Check:
    """A :class:`Check`: statistic ``name`` predicted above (``sign=+1``) or below (``-1``) ``threshold``."""
    if sign not in (-1, 1):
        raise ValueError(f"sign must be +1 (above) or -1 (below); got {sign}.")
    return Check(name, estimate, sign, threshold)


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

    def to_dict(self) -> dict[str, Any]:
        return {"claim": asdict(self.claim), "outcome": self.outcome, "reason": self.reason,
                "regime_met": self.regime_met, "regime_evidence": self.regime_evidence, "details": self.details,
                "tests": [{"name": t.name, "sign": t.sign, "threshold": t.threshold, "direction": t.direction,
                           **t.estimate.to_dict()} for t in self.tests]}

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
        lines += [f"**Outcome:** {self.outcome}. {self.reason}".rstrip(), ":::"]
        return "\n".join(lines)


def judge(claim: Claim, tests: Sequence[Check], *, combine: str = "all", regime: tuple[bool, str] | None = None,
          details: str = "") -> Verdict:
    """Apply ``claim``'s rule: combine the tests' directions, after checking the regime.

    ``combine``: ``"all"`` (supported when every test comes out as predicted; not supported when any
    comes out against), ``"most"`` (supported when more than half come out as predicted and none
    against; not supported when more than half come out against), ``"majority"`` (supported when more
    than half come out as predicted, whatever the rest; not supported when more than half against),
    ``"any"`` (supported when at least one
    comes out as predicted; not supported when all come out against). Anything else is inconclusive.
    ``regime`` is ``(met, evidence)``; a regime that is not met makes the verdict inconclusive.
    """
    if combine not in ("all", "most", "majority", "any"):
        raise ValueError(f"combine must be 'all', 'most', 'majority' or 'any'; got {combine!r}.")
    met, evidence = regime if regime is not None else (None, "")
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
                            "intervals do not settle it at this scale."}[outcome]
    return Verdict(claim, outcome, list(tests), reason, met, evidence, details)
