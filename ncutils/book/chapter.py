"""What a chapter notebook holds: its parameters, its grid of units, and the record of what it used.

A notebook opens its chapter with ``ch = Chapter(5, globals())`` after its ``parameters`` cell.
``ch["table3"]`` is ``{label: result}`` for the units of that group of the chapter's grid
(:mod:`ncutils.book.grids`): each result is read from the store or, when missing, computed here and
stored. Every unit the chapter reads, with its configuration and result, and every value the
notebook records with :meth:`Chapter.put` (composed tables, verdicts) are written, as they come, to
the chapter's JSON file beside the executed notebook.

Parameters the notebooks share (the plumbing, set by the runner):

``profile``          smoke | cpu | paper (:mod:`ncutils.book.profiles`)
``results_path``     the chapter's JSON file (``None``: keep it in memory)
``store_dir``        the unit store (:class:`ncutils.book.engine.store.Store`)
``reuse_results``    ``False`` recomputes every unit finished before this run started
``compute_missing``  ``False`` fails on a unit that is not stored (after a fan-out run)
``dry_run``          the paper-shaped dry run: synthetic stand-ins, random weights (:mod:`ncutils.book.runner.dryrun`)
``device``, ``data_root``, ``progress``, ``seed``
"""

from __future__ import annotations

import ast
import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ncutils.book import grids
from ncutils.book.engine.compute import Context
from ncutils.book.engine.store import FRESH_ENV, Store, atomic_write, to_jsonable
from ncutils.book.engine.units import Unit, canonical

__all__ = ["FRESH_ENV", "PLUMBING", "Chapter", "describe_backbone", "parameters"]

#: Parameters that say where and how a chapter runs, not what it computes.
PLUMBING = ("profile", "results_path", "store_dir", "reuse_results", "compute_missing", "dry_run", "device",
            "data_root", "progress")


def _assignments(source: str) -> dict[str, Any]:
    """``{name: value}`` of the literal assignments in a cell's source (others are skipped)."""
    out = {}
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            try:
                out[node.targets[0].id] = ast.literal_eval(node.value)
            except ValueError:
                continue
    return out


def overridden(namespace: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{name: (value in this run, notebook default)}`` for the parameters papermill changed.

    Read from the kernel's input history: papermill's injected cell (it starts with ``# Parameters``)
    follows the notebook's own parameters cell. Empty when the notebook runs with its defaults.
    """
    history = list(namespace.get("In") or [])
    for i in range(len(history) - 1, 0, -1):
        if history[i].lstrip().startswith("# Parameters"):
            injected, defaults = _assignments(history[i]), _assignments(history[i - 1])
            return {k: (v, defaults.get(k)) for k, v in injected.items() if defaults.get(k) != v}
    return {}


def parameters(namespace: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON-able public variables of a notebook namespace (its parameters and little else)."""
    out = {}
    for k, v in namespace.items():
        if k.startswith("_") or k in ("In", "Out", "exit", "quit", "get_ipython"):
            continue
        try:
            out[k] = canonical(v)
        except TypeError:
            continue
    return out


def describe_backbone(spec: Mapping[str, Any]) -> str:
    """A backbone spec (see :mod:`ncutils.book.networks`) in words, for a page (Markdown)."""
    from ncutils.book import networks

    f, arch = networks.form(spec), networks.architecture(spec)
    name = arch if isinstance(arch, str) else arch["arch"]
    if f == "public":
        return f"public weights `{name}`"
    if f == "random":
        return f"`{name}` with random weights"
    return f"`{name}` pre-trained here ({networks.source_of(spec).config['epochs']} epochs)"


class Chapter:
    """One chapter's grid, execution context and results record (see the module docstring)."""

    def __init__(self, number: int, namespace: Mapping[str, Any]):
        p = parameters(namespace)
        missing = [k for k in ("profile", "seed", "store_dir") if k not in p]
        if missing:
            raise ValueError(f"chapter {number} needs the parameters {missing}; define them in the parameters cell.")
        self.number, self.params = number, p
        self.overrides = {k: v for k, v in overridden(namespace).items() if k not in PLUMBING}
        self.profile = grids.profile_of(p)
        self.grid = grids.grid(number, p)
        fresh = None
        if not p.get("reuse_results", True):
            fresh = float(os.environ.get(FRESH_ENV, time.time()))
        self.ctx = Context(Store(p["store_dir"], fresh_since=fresh), device=p.get("device", "auto"),
                           data_root=p.get("data_root"), progress=bool(p.get("progress", False)),
                           compute_missing=bool(p.get("compute_missing", True)))
        self.path = Path(p["results_path"]) if p.get("results_path") else None
        self._record: dict[str, Any] = {
            "meta": {"chapter": number, "profile": p["profile"], "dry_run": p.get("dry_run") or False,
                     "parameters": {k: v for k, v in p.items() if k not in PLUMBING or k == "profile"}},
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
        if self.params.get("dry_run"):
            from dataclasses import replace

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

        wanted = [u for g, units in self.grid.items() if groups is None or g in groups for u in units.values()]
        rows = []
        for u in closure(wanted):
            if u.kind != "pretrain":
                continue
            c, r = u.config, self.result(u)
            net = c["network"]
            rows.append({"network": net.get("arch", "?") + (f"-w{net['width']}" if "width" in net else ""),
                         "data": c["data"]["source"], "classes": c["num_classes"], "loss": c["loss"],
                         "head layers": c["head_layers"], "level": c["level"],
                         "adv. ε (/255)": None if c["adv_eps"] is None else round(c["adv_eps"] * 255, 3),
                         # the schedule's epochs and those the recipe's training-accuracy target added
                         "epochs": c["epochs"] + int(r.get("extra_epochs") or 0), "lr": c["lr"], "seed": c["seed"],
                         "source NC1": r["source_nc1"], "train_accuracy": r["train_accuracy"], "key": u.key})
        return self.put("source_models", rows)

    def to_dict(self) -> dict:
        return json.loads(json.dumps(self._record))

    def _save(self) -> None:
        if self.path is not None:
            atomic_write(self.path, json.dumps(self._record, indent=1))

    # ---- text
    def findings(self) -> str:
        """What the chapter found, in one sentence built from its verdicts (Markdown), for its opening summary."""
        verdicts = self._record["results"].get("verdicts") or []
        if not verdicts:
            return "It tests no claim of the paper by a rule; the figures and tables below show what it measured."
        parts = []
        for v in verdicts:
            name = v["claim"].get("short") or v["claim"]["where"].split(";")[0]
            outcome = v["outcome"]
            if v.get("regime_met") is False:
                outcome += " (not in the claim's regime)"
            parts.append(f"{name}: **{outcome}**")
        if len(verdicts) == 1:
            return f"It tests one claim of the paper; in this build: {parts[0]}."
        return f"Of the {len(verdicts)} claims it tests, the verdicts in this build are: " + "; ".join(parts) + "."

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

    def note(self, details: str = ""):
        """The note opening the chapter: the scale it was computed at, the parameters this run changed from the
        notebook's defaults, and a dry run's warning."""
        from ncutils.book.plotting import scale_note

        return scale_note(self.profile, details, dry_run=self.params.get("dry_run") or False,
                          overrides=self.overrides)


def setting_of(unit: Unit, label: str) -> str:
    """The pre-training setting of the network a probe, few-shot or score unit reads: its source model's
    configuration without the seed, so that models which differ only by their seed share it (the independent
    unit of the correlation rules); a public network (no source model) is its own setting, ``label``."""
    from ncutils.book import networks

    src = networks.source_of(unit.config.get("backbone"))
    if src is None:
        return label
    return json.dumps({k: v for k, v in canonical(src.config).items() if k != "seed"}, sort_keys=True, default=str)


def _label(k: Any) -> str:
    return " / ".join(map(str, k)) if isinstance(k, tuple) else str(k)
