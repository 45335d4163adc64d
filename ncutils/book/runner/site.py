"""Staging the executed chapters as one Jupyter Book source folder and building the HTML.

Sphinx never reads sources under the source root's ``_build/``, so each profile gets its own staged
folder (config, table of contents, pages, executed notebooks) under ``_build/<profile>/src``, built
with Jupyter Book 1.x (execution off, warnings as errors) into ``_build/<profile>/html``. The generated
pages (runs, claims, rules, a chapter not run yet) are composed by :mod:`ncutils.book.pages` from what
this module reads: the chapters' records, the machine, the verdicts of other replicate builds.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from ncutils.book.pages.claims import claims_page
from ncutils.book.pages.placeholder import placeholder_page
from ncutils.book.pages.runs import runs_page
from ncutils.book.runner.chapters import chapter_number, chapter_title
from ncutils.book.runner.interrupts import CHILDREN

__all__ = ["Record", "build_book", "machine", "replicate_verdicts", "stage"]


@dataclass
class Record:
    """What happened to one notebook in one run of the book."""

    name: str
    status: str = "pending"  # ok | failed | reused | not run | interrupted (never reused)
    seconds: float | None = None
    peak_mib: float | None = None
    fingerprint: str | None = None
    error: str | None = None
    failed_cell: int | None = None
    finished: str | None = None
    finished_at: float | None = None  # Unix time (``finished`` is for people)
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


def replicate_verdicts(builds: dict[str, Path]) -> dict[str, dict[str, str]]:
    """``{build name: {claim key: outcome}}`` of the builds given (``name -> build folder``) that hold chapter
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
          draws: int | None = None, workers: int = 1) -> None:
    """Lay out the book source for this profile: config, toc, pages and executed notebooks (``replicates``: the
    verdicts of the other replicate builds, :func:`replicate_verdicts`; ``store`` caches the rules' calibration,
    simulated with ``draws`` builds per scenario in ``workers`` processes, :mod:`ncutils.book.pages.rules`)."""
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
            md.write_text(placeholder_page(chapter_title(nb), profile, chapter_number(nb)))
    if (root / "book" / "runs.md").exists():  # the book has a build page: fill it in
        (book / "runs.md").write_text(runs_page(profile, records, machine()))
    if (root / "book" / "claims.md").exists():  # and a claims page
        found = []
        for nb in nbs:
            path = (book / nb.name).with_suffix(".json")
            found.append((nb.stem, chapter_title(nb), json.loads(path.read_text()) if path.exists() else None))
        (book / "claims.md").write_text(claims_page(profile, found, replicates, forest=book / "claims_forest.png"))
    if (root / "book" / "rules.md").exists():  # and the page on how the verdicts are decided
        from ncutils.book.pages.rules import DRAWS, calibrations, rules_page

        (book / "rules.md").write_text(rules_page(calibrations(store, draws or DRAWS, workers)))


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
    with CHILDREN.running(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:  # stops on Ctrl-C
        out_text, err_text = proc.communicate()
    text = out_text + err_text
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
