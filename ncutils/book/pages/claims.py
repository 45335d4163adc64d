"""The book's page "Claims at a glance": every claim the chapters judged, with its verdict in this build, the
check that decided it, its direction, its replication (halves of this build and other replicate builds) and the
rule's digest and revisions; the forest plot (:mod:`ncutils.book.pages.forest`) above them all."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ncutils.book.pages.forest import finite, forest_plot
from ncutils.book.verdicts import Check, Claim, Verdict

__all__ = ["ChapterRecord", "claim_label", "claims_page", "findings", "gist", "verdict_summary"]

#: A chapter as the page reads it: ``(file stem, title, its record as read from its JSON, or None)``.
ChapterRecord = tuple[str, str, dict | None]

#: The claims page's verdict badges (CSS classes of ``book/_static/ncbook.css``).
_BADGE = {"supported": "verdict-supported", "not supported": "verdict-not-supported",
          "inconclusive": "verdict-inconclusive", "not run": "verdict-not-run"}


def _badge(outcome: str) -> str:
    return f'<span class="verdict {_BADGE.get(outcome, "verdict-not-run")}">{outcome}</span>'


def _replication(v: Verdict | None, key: str, replicates: Mapping[str, Mapping[str, str]]) -> str:
    """The claims page's replication cell: the verdict on each half of this build's independent units (where the
    rule splits them) and the verdicts of the other replicate builds."""
    parts = []
    if v is not None and v.halves:
        parts.append(f"halves of the {v.split}: " + " ".join(_badge(o) for o in v.halves))
    parts += [f"{name}: {_badge(r.get(key, 'not run'))}" for name, r in replicates.items()]
    return "<br>".join(parts) or "—"


def _direction(check: Check) -> str:
    """Which way a check's estimate went, relative to its threshold and predicted side, whatever the verdict."""
    v, t, sign = check.estimate.value, check.test.threshold, check.test.sign
    if not finite(v):
        return "no estimate"
    side = "predicted" if (v - t) * sign > 0 else "other"
    arrow = "↑" if v > t else "↓" if v < t else "="
    decided = {1: "as predicted", -1: "against", 0: "undecided"}[check.direction]
    return f"{arrow} {side} side of {t:g}; {decided}"


def _statistic(check: Check) -> str:
    """A check's estimate with its 95% interval (or why it has none), and its δ and smallest detectable effect."""
    test, shown = check.test, check.shown()
    if test.kind == "exact" or "[" not in shown:
        return shown
    return shown + f" (δ {test.delta:g}" + (f"; smallest detectable effect {check.detectable:.2g})"
                                            if finite(check.detectable) else ")")


def _verdicts(chapters: Sequence[ChapterRecord]) -> dict[str, tuple[str, Verdict | None]]:
    """``{claim key: (chapter file stem, verdict)}`` from the chapters' records; a record of an older rule format
    (no ``parts``) is read as not run, since its verdict was decided by a rule no longer in force."""
    judged: dict[str, tuple[str, Verdict | None]] = {}
    for name, _, record in chapters:
        for d in ((record or {}).get("results") or {}).get("verdicts") or []:
            try:
                judged[d["claim"]["key"]] = (name, Verdict.from_dict(d))
            except (KeyError, TypeError):
                judged[d["claim"]["key"]] = (name, None)
    return judged


def claims_page(profile: str, chapters: Sequence[ChapterRecord],
                replicates: Mapping[str, Mapping[str, str]] | None = None, forest: Path | None = None) -> str:
    """Every claim the chapters judged: a forest plot of them all (written to ``forest`` when given), then per
    chapter one compact row per claim (verdict badge, the check that decided it with its interval, its direction,
    the regime mark, a link to the chapter, its replication: halves of this build and other replicate builds,
    and the rule's digest and revisions) and, folded under it, the paper's number and the verdict in full.

    ``chapters``: ``(file stem, title, chapter record or None)`` of every chapter, in order; ``replicates``:
    ``{build label: {claim key: outcome}}`` of other replicate builds, shown in the replication column beside
    each verdict's halves.
    """
    from ncutils.book.claims import CLAIMS
    from ncutils.book.rule_history import HISTORY
    from ncutils.book.rules import RULES

    replicates = replicates or {}
    lines = ["# Claims at a glance", "",
             f"Every claim of the paper (and of the NCTI write-up) that the chapters test, with the verdict in this "
             f"build (profile **{profile}**): "
             + ", ".join(f"{_badge(o)}" for o in ("supported", "not supported", "inconclusive"))
             + ". Each claim's rule is code, fixed before the numbers and stated in its chapter; the "
             "[page on the verdicts](rules) says how a rule reads its 95% intervals and δ, the smallest effect "
             "that matters, and how often each rule misleads at this book's design. *Inconclusive* has two causes, "
             "marked apart: <span class=\"regime-not-met\">not in the regime</span> (the run does not meet the "
             "claim's precondition, so it cannot test it) or evidence too weak to decide (intervals too wide, or too "
             "few independent units replicated). The *decided by* column shows the check that decided the verdict; "
             "the *replication* column the same rule on each half of this build's independent units and the "
             "verdicts of the other replicate builds (`--replicate K`: every seed drawn anew).", ""]
    totals_at = len(lines)
    if any((record or {}).get("meta", {}).get("dry_run") for _, _, record in chapters):
        lines += [":::{warning}", "This build is a **dry run**: synthetic stand-ins for the datasets and random "
                  "weights, a step or two per unit. It shows that the code runs; its numbers test no claim, so "
                  "every verdict is *inconclusive*.", ":::", ""]
    judged = _verdicts(chapters)
    names = {int(n[:2]): (n, title) for n, title, _ in chapters if n[:2].isdigit()}
    counts: dict[str, int] = {}
    rows = []
    body: list[str] = []
    current = None
    head = ["claim", "verdict", "decided by [95% interval]", "direction", "replication", "rule"]
    for claim in CLAIMS.values():
        name, title = names.get(claim.chapter, (None, None))
        if claim.chapter != current:
            current = claim.chapter
            heading = f"[{title}]({name})" if name else f"Chapter {claim.chapter}"
            body += ["", f"## {heading}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        where = f"[{claim.where}]({name})" if name else claim.where
        v = judged.get(claim.key, (None, None))[1]
        test = None
        if v is not None:
            outcome, test, out_of_regime = v.outcome, v.headline(), v.regime_met is False
            stat = f"{test.name} = {_statistic(test)}" if test else (v.details or "—")
            direction = _direction(test) if test else "—"
            if test and len(v.checks) > 1:
                stat += f" (1 of {len(v.checks)} checks)"
        else:
            outcome, out_of_regime, stat, direction = "not run", False, "not run in this build", "—"
        counts[outcome] = counts.get(outcome, 0) + 1
        verdict = _badge(outcome) + (' <span class="regime-not-met">not in the regime</span>' if out_of_regime
                                     else "")
        revisions = HISTORY.get(claim.key, ())
        rule = f"`{RULES[claim.key].digest()}`" + (f", {len(revisions)} revision{'s' * (len(revisions) > 1)}"
                                             if revisions else "")
        short = claim.text if len(claim.text) <= 140 else claim.text[:137].rsplit(" ", 1)[0] + " …"
        cell = [f"{short} ({where})", verdict, stat, direction, _replication(v, claim.key, replicates), rule]
        body.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cell) + " |")
        rows.append((claim.short or claim.where, outcome, test, out_of_regime))
    # the details of every claim, folded, after the tables
    body += ["", "## The claims in full", "",
             "The paper's words, what it printed, the rule, the verdict with every check in this build, and every "
             "revision of the rule after the claim was first built."]
    for claim in CLAIMS.values():
        v = judged.get(claim.key, (None, None))[1]
        body += ["", f"::::{{admonition}} {claim.short or claim.key}: {claim.where}", ":class: dropdown", "",
                 f"{claim.text}", "", f"**Paper:** {claim.paper}", "",
                 f"**Rule** (digest `{RULES[claim.key].digest()}`): {RULES[claim.key].describe()}", ""]
        body += [v.markdown() if v is not None else "Not run in this build.", ""]
        body += [_history(claim.key), "::::"]
    if forest is not None:
        forest_plot(rows, forest)
        lines += ["```{figure} " + forest.name, ":name: claims-forest",
                  ":alt: every claim's deciding estimate and 95% interval, in units of δ from its threshold, "
                  "coloured by verdict", "", "The check that decided each claim (dot) and its 95% interval (bar), "
                  "on one scale: its distance from the rule's threshold in the predicted direction, in units of δ, "
                  "the smallest effect that matters (claims in different units become comparable this way). Right of "
                  "0: the predicted side; the dashed line is threshold + δ. Colour: the verdict; a hollow dot: the "
                  "run is not in the claim's regime.", "```", ""]
    lines += body
    lines.insert(totals_at, "Totals: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ".\n")
    return "\n".join(lines) + "\n"


def _history(key: str) -> str:
    """The revisions of claim ``key``'s rule after the claim was first built, as a list (or a line saying none)."""
    from ncutils.book.rule_history import HISTORY

    revisions = HISTORY.get(key, ())
    if not revisions:
        return "**Revisions of the rule:** none since the claim was first built."
    out = ["**Revisions of the rule** (each recorded with the verdict of the default cpu build under the rule it "
           "replaced):", ""]
    for r in revisions:
        out.append(f"- {r.date}{f' ({r.commit})' if r.commit else ''}: {r.change} *Why:* {r.reason} *Verdict "
                   f"under the rule before:* {r.previous_verdict}.")
    return "\n".join(out)


def gist(text: str) -> str:
    """A claim's statement as one plain sentence: its first clause (the part before a colon that elaborates it),
    without a closing parenthetical quotation, ending in a full stop."""
    head = text.split(": ", 1)[0].strip()
    head = re.sub(r"\s*\(['\"“‘][^()]*\)\.?$", "", head).rstrip(" .")
    return head + "."


def claim_label(key: str) -> str:
    """The cross-reference label of claim ``key`` in its chapter: a MyST target ``(claim-<key>)=`` right before the
    cell that states the claim (``tests/test_pages.py`` checks every chapter notebook carries its claims' labels)."""
    return f"claim-{key}"


def _where(claim: Any) -> str:
    """Where the paper makes a claim, short enough for a link: its first part and any other part of a few words
    ("Abstract; Section 3.3; Table 3", not the NCTI write-up's note on how its numbers were obtained)."""
    first, *more = [part.strip() for part in claim.where.split(";")]
    return "; ".join([first, *(part for part in more if len(part) <= 40)])


def _outcome_marks(outcome: str, regime_met: bool | None) -> str:
    """A verdict's badge, with the mark "not in the regime" when the run does not meet the claim's precondition."""
    return _badge(outcome) + (' <span class="regime-not-met">not in the regime</span>' if regime_met is False
                              else "")


def _verdict_line(claim: Any, outcome: str, regime_met: bool | None, link: str) -> str:
    """One list item of a verdict summary: badge, the claim in one plain sentence, and ``link`` to it."""
    return f"- {_outcome_marks(outcome, regime_met)} {gist(claim.text)} {link}"


def _totals(outcomes: Sequence[str]) -> str:
    order = ("supported", "not supported", "inconclusive", "not run")
    return ", ".join(f"{outcomes.count(o)} {o}" for o in order if outcomes.count(o))


def verdict_summary(chapters: Sequence[ChapterRecord]) -> str:
    """The verdicts of the whole build for the top of the book's first page (MyST): the totals, then every claim of
    :data:`ncutils.book.claims.CLAIMS` in chapter order as a badge and one plain sentence, linking to the claim in
    its chapter (to the chapter itself when it has no record: a placeholder page has no claim to link to).

    ``chapters``: ``(file stem, title, chapter record or None)`` of every chapter, as for :func:`claims_page`.
    """
    from ncutils.book.claims import CLAIMS

    judged = _verdicts(chapters)
    names = {int(n[:2]): (n, record) for n, _, record in chapters if n[:2].isdigit()}
    profile = next((r["meta"].get("profile") for _, _, r in chapters if r and r.get("meta")), None)
    items, outcomes = [], []
    for claim in CLAIMS.values():
        name, record = names.get(claim.chapter, (None, None))
        v = judged.get(claim.key, (None, None))[1]
        outcome, met = (v.outcome, v.regime_met) if v is not None else ("not run", None)
        outcomes.append(outcome)
        where = f"Chapter {claim.chapter}: {_where(claim)}"
        if record is not None:
            link = f"({{ref}}`{where} <{claim_label(claim.key)}>`)"
        else:
            link = f"([{where}]({name}))" if name else f"({where})"
        items.append(_verdict_line(claim, outcome, met, link))
    scale = f" (profile **{profile}**)" if profile else ""
    dry = any((r or {}).get("meta", {}).get("dry_run") for _, _, r in chapters)
    lead = (f"**The verdicts of this build**{scale}: {_totals(outcomes)}. Each claim is judged by a rule fixed "
            "before the numbers; [Claims at a glance](claims) gives each verdict's statistic and interval.")
    if dry:
        lead += " This build is a **dry run**: its numbers test no claim, so every verdict is *inconclusive*."
    return "\n".join([":::{container} verdict-summary", lead, "", *items, ":::", ""])


def findings(verdicts: Sequence[Mapping[str, Any]]) -> str:
    """What a chapter found, for the box at the top of the chapter (MyST): each verdict of its record (the
    records of :meth:`ncutils.book.verdicts.Verdict.to_dict`) as a badge and the claim in one plain sentence,
    linking to where the chapter states the claim."""
    if not verdicts:
        return ("This chapter tests no claim of the paper by a rule; the figures and tables below show what it "
                "measured.")
    items = []
    for d in verdicts:
        claim = Claim(**d["claim"])
        link = f"({{ref}}`{_where(claim)} <{claim_label(claim.key)}>`)"
        items.append(_verdict_line(claim, d["outcome"], d.get("regime_met"), link))
    one = len(verdicts) == 1
    lead = (f"**In this build**, the {'claim' if one else f'{len(verdicts)} claims'} this chapter tests "
            f"{'is' if one else 'are'} judged: {_totals([d['outcome'] for d in verdicts])}.")
    return "\n".join([":::{container} verdict-summary", lead, "", *items, ":::", ""])
