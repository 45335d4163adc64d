"""Staging the executed chapters as one Jupyter Book source folder and building the HTML.

Sphinx never reads sources under the source root's ``_build/``, so each profile gets its own staged
folder (config, table of contents, pages, executed notebooks) under ``_build/<profile>/src``, built
with Jupyter Book 1.x (execution off, warnings as errors) into ``_build/<profile>/html``.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from ncutils.book.runner.chapters import chapter_number, chapter_title

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


def _effect(test: dict) -> str:
    """`` (δ …, power …)`` of a judged test: the smallest effect that matters and the smallest this build sees."""
    if test.get("delta") is None:
        return ""
    power = test.get("power")
    return f" (δ {test['delta']:g}, power {power:.2g})" if power is not None else f" (δ {test['delta']:g})"


def claims_page(profile: str, chapters: list[tuple[str, str, dict | None]],
                replicates: dict[str, dict[str, str]] | None = None) -> str:
    """Every claim the chapters judged, with its verdict, statistic and interval, and the paper's number.

    ``chapters``: ``(file stem, title, chapter record or None)`` of every chapter, in order; ``replicates``:
    ``{build label: {claim key: outcome}}`` of other replicate builds, shown in a column of their own.
    """
    replicates = replicates or {}
    lines = ["# Claims at a glance", "",
             f"Every claim of the paper (and of the NCTI write-up) that the chapters test, with the verdict in this "
             f"build (profile **{profile}**). Each rule was fixed before the numbers and is stated beside the claim "
             "in its chapter; intervals are 95%. Each test names δ, the smallest effect that matters, and its power, "
             "the smallest effect this build would detect (80% of the time); a test comes out against the claim when "
             "its interval rules out an effect of δ in the predicted direction. *Inconclusive* means the run was not "
             "in the regime the claim is about, or its intervals are too wide to decide at this scale.", ""]
    totals_at = len(lines)
    if any((record or {}).get("meta", {}).get("dry_run") for _, _, record in chapters):
        lines += [":::{warning}", "This build is a **dry run**: synthetic stand-ins for the datasets and random "
                  "weights, a step or two per unit. It shows that the code runs; its numbers test no claim, so "
                  "every verdict is *inconclusive*.", ":::", ""]
    from ncutils.book.claims import CLAIMS

    judged: dict[str, tuple[str, dict]] = {}
    for name, _, record in chapters:
        for v in ((record or {}).get("results") or {}).get("verdicts") or []:
            judged[v["claim"]["key"]] = (name, v)
    names = {int(n[:2]): (n, title) for n, title, _ in chapters if n[:2].isdigit()}
    counts: dict[str, int] = {}
    current = None
    for claim in CLAIMS.values():
        if claim.chapter != current:
            current = claim.chapter
            name, title = names.get(claim.chapter, (None, None))
            title = f"[{title}]({name})" if name else f"Chapter {claim.chapter}"
            head = ["claim", "where", "paper", "this run (95% interval)", "verdict"]
            head += ["other replicates"] if replicates else []
            lines += ["", f"## {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        if claim.key in judged:
            v = judged[claim.key][1]
            stats = [f"{t['name']} = {t['value']:.3g} [{t['low']:.3g}, {t['high']:.3g}]" + _effect(t)
                     for t in v["tests"]]
            stat = "; ".join(stats) or v.get("details", "")
            outcome = v["outcome"]
            if v.get("regime_met") is False:
                stat = f"regime not met: {v.get('regime_evidence', '')} " + stat
        else:
            stat, outcome = "not run in this build", "not run"
        counts[outcome] = counts.get(outcome, 0) + 1
        cell = [claim.text, claim.where, claim.paper, stat, f"**{outcome}**"]
        if replicates:
            cell.append("; ".join(f"{label}: {r.get(claim.key, 'not run')}" for label, r in replicates.items()))
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cell) + " |")
    lines.insert(totals_at, "Totals: " + ", ".join(f"{n} {k}" for k, n in sorted(counts.items())) + ".\n")
    return "\n".join(lines) + "\n"


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
          replicates: dict[str, dict[str, str]] | None = None) -> None:
    """Lay out the book source for this profile: config, toc, pages and executed notebooks (``replicates``: the
    verdicts of the other replicate builds, :func:`replicate_verdicts`)."""
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
        (book / "claims.md").write_text(claims_page(profile, found, replicates))


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
