"""Staging the executed chapters as one Jupyter Book source folder and building the HTML.

Sphinx never reads sources under the source root's ``_build/``, so each profile gets its own staged
folder (config, table of contents, pages, executed notebooks) under ``_build/<profile>/src``, built
with Jupyter Book 1.x (execution off, warnings as errors) into ``_build/<profile>/html``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ncutils.book.runner.chapters import chapter_number, chapter_title
from ncutils.book.verdicts import Verdict

__all__ = ["Record", "build_book", "machine", "stage"]


@dataclass
class Record:
    """What happened to one notebook in one run of the book."""

    name: str
    status: str = "pending"  # ok | failed | reused | not run
    seconds: float | None = None
    peak_mib: float | None = None
    fingerprint: str | None = None
    error: str | None = None
    failed_cell: int | None = None
    finished: str | None = None
    extra: dict = field(default_factory=dict)


def machine() -> dict:
    """What the numbers of this build were computed on (no paths, no host names)."""
    info = {"python": platform.python_version(), "cpus": os.cpu_count(), "processor": _cpu_model(),
            "system": platform.system()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["threads"] = torch.get_num_threads()
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _placeholder(title: str, text: str) -> str:
    return f"# {title}\n\n{text}\n"


def runs_page(profile: str, records: list[Record], info: dict) -> str:
    lines = [
        "# About this build", "",
        f"Profile **{profile}**, built {time.strftime('%Y-%m-%d %H:%M')} on {info.get('device', '?')} "
        f"({info.get('processor', '?')}, {info.get('cpus')} CPU cores, {info.get('threads', '?')} torch threads; "
        f"Python {info.get('python')}, torch {info.get('torch', '?')}).",
        "Times are wall-clock seconds of each notebook's own execution and memory is the peak resident "
        "memory of its kernel. Reused chapters were not executed again: their figures are from the run "
        "recorded on the date shown.", "",
        "| chapter | status | time (s) | peak memory (MiB) | executed |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        sec = f"{r.seconds:.1f}" if r.seconds is not None else "-"
        mem = f"{r.peak_mib:.0f}" if r.peak_mib is not None else "-"
        lines.append(f"| {r.name} | {r.status} | {sec} | {mem} | {r.finished or '-'} |")
    failed = [r for r in records if r.status == "failed"]
    if failed:
        lines += ["", "Failed chapters:", ""]
        lines += [f"- {r.name}" + (f": cell In [{r.failed_cell}]" if r.failed_cell is not None else "")
                  + f": {r.error}" for r in failed]
    return "\n".join(lines) + "\n"


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
    parts += [f"{_replicate_name(label)}: {_badge(r.get(key, 'not run'))}" for label, r in replicates.items()]
    return "<br>".join(parts) or "—"


def _replicate_name(label: str) -> str:
    """A build's label as the claims page names it: ``cpu-replicate-2`` -> "replicate 2", ``cpu`` -> "default"."""
    head, sep, k = label.rpartition("-replicate-")
    return f"replicate {k}" if sep and k.isdigit() else "default"


def _finite(*xs) -> bool:
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def _direction(check) -> str:
    """Which way a check's estimate went, relative to its threshold and predicted side, whatever the verdict."""
    v, t, sign = check.estimate.value, check.test.threshold, check.test.sign
    if not _finite(v):
        return "no estimate"
    side = "predicted" if (v - t) * sign > 0 else "other"
    arrow = "↑" if v > t else "↓" if v < t else "="
    decided = {1: "as predicted", -1: "against", 0: "undecided"}[check.direction]
    return f"{arrow} {side} side of {t:g}; {decided}"


def _statistic(check) -> str:
    """A check's estimate with its 95% interval (or why it has none), and its δ and smallest detectable effect."""
    test, shown = check.test, check.shown()
    if test.kind == "exact" or "[" not in shown:
        return shown
    return shown + f" (δ {test.delta:g}" + (f"; smallest detectable effect {check.detectable:.2g})"
                                            if _finite(check.detectable) else ")")


def _normalised(check) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of a check on the forest plot's common scale: the distance from the threshold in
    the predicted direction, in units of δ (or of the threshold's size for an exact check)."""
    t, sign, e = check.test.threshold, check.test.sign, check.estimate
    unit = check.test.delta or (abs(t) if t else 1.0)
    f = [(x - t) * sign / unit if _finite(x) else math.nan for x in (e.value, e.low, e.high)]
    lo, hi = sorted(f[1:]) if _finite(*f[1:]) else (math.nan, math.nan)
    return f[0], lo, hi


_COLOUR = {"supported": "#1a7f37", "not supported": "#c62828", "inconclusive": "#b08800", "not run": "#6e7781"}


def forest_plot(rows: list[tuple[str, str, dict | None, bool]], path: Path) -> None:
    """The claims page's forest plot: one row per claim (``(label, outcome, headline test or None, regime not
    met)``), its estimate and 95% interval on a common scale, coloured by verdict, written as PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    lim = 4.0
    fig = Figure(figsize=(7.2, 0.3 * len(rows) + 1.5), dpi=200, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axvspan(-lim - 1, 0, color="0.95", zorder=0)
    ax.axvline(0, color="0.3", lw=1, zorder=1)
    ax.axvline(1, color="0.5", lw=0.8, ls="--", zorder=1)
    for i, (_label, outcome, test, out_of_regime) in enumerate(rows):
        y = len(rows) - 1 - i
        colour = _COLOUR.get(outcome, "#6e7781")
        if test is None:
            ax.text(0.05, y, "not run" if outcome == "not run" else
                    "no test computed" + (": not in the regime" if out_of_regime else ""),
                    va="center", fontsize=8, color=colour)
            continue
        v, lo, hi = _normalised(test)
        if _finite(lo, hi) and lo != hi:
            ax.plot([max(lo, -lim), min(hi, lim)], [y, y], color=colour, lw=2, solid_capstyle="butt")
            for end, x in ((lo, -lim), (hi, lim)):
                if (end < -lim and x < 0) or (end > lim and x > 0):
                    ax.annotate("", (x, y), (x - 0.35 * (1 if x > 0 else -1), y),
                                arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})
        if _finite(v):
            ax.plot([min(max(v, -lim), lim)], [y], "o", ms=6, color=colour if not out_of_regime else "white",
                    mec=colour, mew=1.5, zorder=3)
    ax.set(yticks=range(len(rows)), yticklabels=[r[0] for r in reversed(rows)], xlim=(-lim - 0.3, lim + 0.3),
           ylim=(-0.7, len(rows) - 0.3),
           xlabel="estimate − threshold, in units of δ (the smallest effect that matters); right = the predicted "
           "direction\n(checks without δ: in units of the threshold; bars: 95% intervals, arrows: off the scale)")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    handles = [Line2D([], [], marker="o", ls="-", color=c, label=o) for o, c in _COLOUR.items() if o != "not run"]
    handles.append(Line2D([], [], marker="o", ls="", color="0.3", mfc="white", label="not in the regime"))
    handles.append(Line2D([], [], ls="--", color="0.5", label="threshold + δ"))
    fig.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=200, bbox_inches="tight")


def _verdicts(chapters: list[tuple[str, str, dict | None]]) -> dict[str, tuple[str, Verdict | None]]:
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


def claims_page(profile: str, chapters: list[tuple[str, str, dict | None]],
                replicates: dict[str, dict[str, str]] | None = None, forest: Path | None = None) -> str:
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


def replicate_verdicts(builds: dict[str, Path]) -> dict[str, dict[str, str]]:
    """``{build label: {claim key: outcome}}`` of the builds given (``label -> build folder``) that hold chapter
    records: the verdicts of other replicates of the same profile, for the claims page."""
    out: dict[str, dict[str, str]] = {}
    for label, folder in builds.items():
        found = {}
        for path in sorted((folder / "src" / "book").glob("*.json")):
            try:
                record = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            for v in (record.get("results") or {}).get("verdicts") or []:
                found[v["claim"]["key"]] = v["outcome"]
        if found:
            out[label] = found
    return out


def stage(root: Path, stage_dir: Path, profile: str, records: list[Record], nbs: list[Path],
          replicates: dict[str, dict[str, str]] | None = None, store: Path | None = None,
          draws: int | None = None) -> None:
    """Lay out the book source for this profile: config, toc, pages and executed notebooks (``replicates``: the
    verdicts of the other replicate builds, :func:`replicate_verdicts`; ``store`` caches the rules' calibration,
    simulated with ``draws`` builds per scenario, :mod:`ncutils.book.rules_page`)."""
    book = stage_dir / "book"
    book.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage_dir / name)
    for f in (root / "book").rglob("*"):
        rel = f.relative_to(root / "book")
        if f.is_dir() or rel.parts[0] in ("profiles", ".ipynb_checkpoints") or f.suffix == ".ipynb":
            continue
        (book / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, book / rel)
    for nb in nbs:
        executed = book / nb.name
        md = executed.with_suffix(".md")
        if executed.exists():
            md.unlink(missing_ok=True)
        else:
            md.write_text(_placeholder(chapter_title(nb), (
                f"This chapter has not been run in the `{profile}` profile yet. Run\n\n"
                f"    python -m ncutils.book --profile {profile} --only {chapter_number(nb)}\n")))
    if (root / "book" / "runs.md").exists():  # the book has a build page: fill it in
        (book / "runs.md").write_text(runs_page(profile, records, machine()))
    if (root / "book" / "claims.md").exists():  # and a claims page
        found = []
        for nb in nbs:
            path = (book / nb.name).with_suffix(".json")
            found.append((nb.stem, chapter_title(nb), json.loads(path.read_text()) if path.exists() else None))
        (book / "claims.md").write_text(claims_page(profile, found, replicates, forest=book / "claims_forest.png"))
    if (root / "book" / "rules.md").exists():  # and the page on how the verdicts are decided
        from ncutils.book.rules_page import DRAWS, calibrations, rules_page

        (book / "rules.md").write_text(rules_page(calibrations(store, draws or DRAWS)))


def jupyter_book_command() -> list[str]:
    """Jupyter Book's command line, run by this very interpreter (no ``PATH`` lookup: a virtualenv's
    python called directly, without activating the environment, works too)."""
    return [sys.executable, "-c", "import sys; from jupyter_book.cli.main import main; sys.exit(main())"]


def build_book(stage_dir: Path, html_dir: Path, log: Path) -> tuple[bool, str]:
    """``jupyter-book build`` of the staged source with warnings as errors; HTML ends in ``html_dir``.

    Returns ``(built, why)``: on failure, the lines of the build's output that say what went wrong.
    """
    out = stage_dir.parent / "jupyter-book"
    cmd = [*jupyter_book_command(), "build", str(stage_dir), "--path-output", str(out), "-W", "--keep-going"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    text = proc.stdout + proc.stderr
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(text)
    built = out / "_build" / "html"
    if proc.returncode == 0 and built.exists():
        if html_dir.exists():
            shutil.rmtree(html_dir)
        shutil.move(str(built), str(html_dir))
        return True, ""
    lines = re.sub(r"\x1b\[[0-9;]*m", "", text).strip().splitlines()
    why = [ln for ln in lines if any(w in ln for w in ("WARNING", "ERROR", "Error", "error:", "Traceback"))]
    tail = (why[-15:] if why else lines[-15:]) or [f"jupyter-book exited with code {proc.returncode} and printed "
                                                   "nothing."]
    return False, "\n".join(tail)
