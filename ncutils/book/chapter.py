"""A chapter notebook's thin view of its settings, its grid of units, the store and its record.

A notebook opens with ``ch = Chapter(5, profile, changes, runner)`` right after its ``parameters`` cell,
and reads its settings as ``params = ch.settings`` (a typed, checked instance of the chapter's declaration in
:mod:`ncutils.book.settings`). ``ch["table3"]`` is ``{label: result}`` for the units of that group of the
chapter's grid (:mod:`ncutils.book.grids`): each result is read from the store or, when missing, computed here
and stored. Every unit the chapter reads, with its configuration and result, and every value the notebook
records with :meth:`Chapter.put` (composed tables, verdicts) are written, as they come, to the chapter's JSON
file beside the executed notebook.

The parameters cell holds three names, which papermill may replace:

``profile``   smoke | cpu | paper: the profile the settings start from (:mod:`ncutils.book.profiles`)
``changes``   the settings changed from the profile's, by name (``{"probe_epochs": 10}``)
``runner``    where and how the chapter runs (:class:`ncutils.book.settings.Run`): the runner sets it
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ncutils.book import grids
from ncutils.book import settings as settings_
from ncutils.book.engine.compute import Context
from ncutils.book.engine.store import FRESH_ENV, Store, atomic_write, to_jsonable
from ncutils.book.engine.units import Unit, canonical

__all__ = ["FRESH_ENV", "STORE_ENV", "Chapter", "default_store"]

#: A notebook run without the runner (in Jupyter) reads and writes this store when the variable is set.
STORE_ENV = "NCUTILS_STORE"


class Chapter:
    """One chapter's settings, grid, execution context and results record (see the module docstring)."""

    def __init__(self, number: int, profile: str = settings_.DEFAULT_PROFILE,
                 changes: Mapping[str, Any] | None = None, runner: Mapping[str, Any] | None = None):
        self.number = number
        self.settings = settings_.resolve(number, profile, changes)
        self.interactive = not runner  # opened in Jupyter (the runner always passes its settings)
        run = settings_.Run(**settings_.checked(settings_.Run, dict(runner or {}), "runner"))
        self.run = replace(run, progress=True) if self.interactive else run
        self.changed = settings_.changed(self.settings)
        self.profile = grids.profile_of(self.settings)
        self.grid = grids.grid(number, self.settings, dry_run=self.run.dry_run)
        r = self.run
        fresh = None if r.reuse_results else float(os.environ.get(FRESH_ENV, time.time()))
        store = r.store_dir or str(default_store())
        self.ctx = Context(Store(store, fresh_since=fresh), device=r.device, data_root=r.data_root,
                           progress=r.progress, compute_missing=r.compute_missing)
        if self.interactive:
            print(self.where())
        self.path = Path(r.results_path) if r.results_path else None
        self._record: dict[str, Any] = {
            "meta": {"chapter": number, "profile": self.settings.profile, "dry_run": r.dry_run or False,
                     "replicate": r.replicate, "parameters": settings_.as_dict(self.settings)},
            "units": {}, "groups": {}, "results": {}}
        self._save()

    # ---- units
    def result(self, u: Unit) -> Any:
        """The result of unit ``u`` (stored, or computed now), recorded in the chapter's JSON."""
        out = self.ctx.result(u)
        if u.key not in self._record["units"]:
            self._record["units"][u.key] = {"kind": u.kind, "config": canonical(u.config), "result": out}
            self._save()
        return out

    def __getitem__(self, group: str) -> dict[Any, Any]:
        """``{label: result}`` for every unit of ``group`` of the chapter's grid."""
        if group not in self.grid:
            raise KeyError(f"chapter {self.number} has no group {group!r}; groups: {sorted(self.grid)}.")
        units = self.grid[group]
        self._record["groups"][group] = {_label(k): u.key for k, u in units.items()}
        return {k: self.result(u) for k, u in units.items()}

    def get(self, group: str, label: Any) -> Any:
        """The result of one unit of ``group``, the one labelled ``label``."""
        units = self.grid.get(group, {})
        if label not in units:
            raise KeyError(f"chapter {self.number} has no unit {label!r} in group {group!r}.")
        return self.result(units[label])

    def units(self, group: str) -> dict[Any, Unit]:
        """The units of ``group`` without computing them."""
        return dict(self.grid[group])

    # ---- composed values
    def put(self, name: str, value: Any) -> Any:
        """Record a value the notebook composed (a table, a statistic, a verdict) in the chapter's JSON."""
        self._record["results"][name] = to_jsonable(value)
        self._save()
        return value

    def verdict(self, v):
        """Record verdict ``v`` (:class:`ncutils.book.verdicts.Verdict`) for the claims page and return it to
        display. In a dry run every claim is inconclusive: stand-ins and random weights test no claim."""
        if self.run.dry_run:
            from ncutils.book.verdicts import INCONCLUSIVE

            v = replace(v, outcome=INCONCLUSIVE, regime_met=False, reason="A dry run cannot test a claim.",
                        regime_evidence="This is a dry run: synthetic stand-ins for the data and random weights.")
        self._record["results"].setdefault("verdicts", [])
        self._record["results"]["verdicts"] = [d for d in self._record["results"]["verdicts"]
                                               if d["claim"]["key"] != v.claim.key] + [v.to_dict()]
        self._save()
        return v

    def claim(self, key: str):
        """Claim ``key`` of :mod:`ncutils.book.claims` with its rule, shown before the numbers that test it."""
        from ncutils.book.rules import RULES

        return RULES[key].show()

    def source_models(self, groups: list[str] | None = None) -> list[dict]:
        """Every source model (``pretrain`` unit) the chapter's ``groups`` (default: all) use, directly or
        through another unit, with its setting, source NC1 and ``train_accuracy`` (the terminal-phase check),
        recorded in the chapter's JSON under ``results["source_models"]``."""
        from ncutils.book.engine.units import closure
        from ncutils.book.evidence import source_model_row

        wanted = [u for g, units in self.grid.items() if groups is None or g in groups for u in units.values()]
        rows = [source_model_row(u, self.result(u)) for u in closure(wanted) if u.kind == "pretrain"]
        return self.put("source_models", rows)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self._record))

    def _save(self) -> None:
        if self.path is not None:
            atomic_write(self.path, json.dumps(self._record, indent=1))

    # ---- text
    def findings(self) -> str:
        """What the chapter found, for the box at its top (MyST Markdown): each of its verdicts as a badge and the
        claim in one plain sentence, linking to where the chapter states the claim."""
        from ncutils.book.pages.claims import findings

        return findings(self._record["results"].get("verdicts") or [])

    def glue_findings(self) -> None:
        """Glue :meth:`findings` as ``ch<N>_findings`` (Markdown) for the summary at the top of the chapter."""
        from IPython.display import Markdown
        from myst_nb import glue

        glue(f"ch{self.number}_findings", Markdown(self.findings()), display=False)

    def title(self, name: str) -> str:
        """The human-readable name of dataset ``name`` in this profile."""
        return self.profile.title(name)

    def short_title(self, name: str) -> str:
        """:meth:`title` without its preprocessing ("MNIST-5k" for "MNIST-5k (16 px, coloured)"), for panel titles
        and table headers."""
        return self.title(name).split(" (")[0]

    def note(self, details: str = "") -> None:
        """Show the note opening the chapter: the scale it was computed at, the settings this run changed from the
        profile's, a dry run's warning, and the folded "Rerun this chapter" box (displayed wherever in its cell the
        call stands)."""
        from IPython.display import Markdown, display

        from ncutils.book.pages.rerun import rerun_box
        from ncutils.book.plotting import scale_note

        display(scale_note(self.profile, details, dry_run=self.run.dry_run or False, overrides=self.changed))
        display(Markdown(rerun_box(self.number, self.settings, _notebook_name(self.number))))

    def where(self) -> str:
        """One line for an interactive run: the store this chapter reads and writes, and how many of its units
        (source models included) are already there, so the reader knows what Run All will compute."""
        units = grids.all_units(self.grid)
        stored = sum(u in self.ctx.store for u in units)
        missing = len(units) - stored
        todo = ("nothing to compute: every result is read from it" if not missing else
                f"{missing} will be computed here and stored (python -m ncutils.book --only {self.number} computes "
                "them in parallel)")
        return (f"Chapter {self.number} ({self.settings.profile} profile): {stored} of {len(units)} units stored in "
                f"{self.ctx.store.root}; {todo}.")


def default_store() -> Path:
    """The store a chapter uses when the runner names none: ``$NCUTILS_STORE``, else the repository's
    ``_build/store`` (the one ``python -m ncutils.book`` fills), found from the current folder or from where
    ``ncutils`` is installed; outside any checkout of the book, ``~/.cache/ncbook/store``."""
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV]).expanduser()
    try:
        return settings_.find_root() / "_build" / "store"
    except SystemExit:
        return Path.home() / ".cache" / "ncbook" / "store"


def _notebook_name(number: int) -> str:
    try:
        found = sorted((settings_.find_root() / "book").glob(f"{number:02d}_*.ipynb"))
    except SystemExit:
        found = []
    return f"book/{found[0].name}" if found else f"chapter {number}'s notebook"


def _label(k: Any) -> str:
    return " / ".join(map(str, k)) if isinstance(k, tuple) else str(k)
