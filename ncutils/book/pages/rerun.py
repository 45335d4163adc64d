"""The "Rerun this chapter" box: what a reader may change in a chapter, how, and what each change recomputes.

Every setting of a chapter is declared in :mod:`ncutils.book.settings`. For each one the box shows its value in
this build, its meaning, and what changing it recomputes, found by building the chapter's grid again with a
nearby value (:func:`nearby`) and counting the units whose key changes; every other unit is read from the store.
A setting whose type gives no nearby value (a list of names, a choice) shows the units that read it only as
"depends on the value". The counts are exact for the nearby value; another value of the same setting changes the
same units, except for list settings (seeds, sizes), where each element owns its own units.
"""

from __future__ import annotations

import dataclasses
import re
from collections import Counter
from typing import Any

from ncutils.book import grids
from ncutils.book import settings as settings_

__all__ = ["nearby", "reach", "rerun_box"]


def nearby(name: str, value: Any) -> Any | None:
    """A valid-looking value close to ``value`` of setting ``name``, or None when its type gives none: an
    integer +1, a number doubled, a flag flipped, a list of integers each +1."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value * 2 if value else 0.1
    if isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [v + 1 for v in value]
    return None


def _keys(number: int, s: settings_.Common) -> dict[str, str]:
    return {u.key: u.kind for u in grids.all_units(grids.grid(number, s))}


def reach(number: int, s: settings_.Common, name: str) -> Counter | None:
    """``{kind: count}`` of the units of chapter ``number`` (dependencies included) whose key changes when setting
    ``name`` of ``s`` takes its :func:`nearby` value; None when there is no nearby value or it is not allowed."""
    if name == "source_recipe":  # the shared pre-training recipe with one more epoch
        value = {**(s.source_recipe or {}), "epochs": grids.profile_of(s).recipe["epochs"] + 1}
    else:
        value = nearby(name, getattr(s, name))
    if value is None:
        return None
    try:
        settings_.checked(type(s), {name: value}, "nearby value")
    except settings_.SettingsError:
        return None
    before = _keys(number, s)
    after = _keys(number, dataclasses.replace(s, **{name: value}))
    return Counter(kind for key, kind in after.items() if key not in before)


def _counts(c: Counter | None, total: int) -> str:
    if c is None:
        return "depends on the value"
    if not c:
        return "nothing in this chapter"
    n = sum(c.values())
    kinds = ", ".join(f"{k.replace('_', ' ')} ×{v}" for k, v in sorted(c.items(), key=lambda kv: -kv[1]))
    return f"{n} of {total} units ({kinds})"


def _show(value: Any) -> str:
    """A setting's value as a reader writes it: ``0, 1, 2`` for a list, ``resnet18: 1, 7; vit: 2, 11`` for a
    mapping, ``none`` for None (a value's exact Python form is in the chapter's parameters cell)."""
    if value is None:
        return "none"
    if isinstance(value, dict):
        text = "; ".join(f"{k}: {_show(v)}" for k, v in value.items())
    elif isinstance(value, list):
        text = ", ".join(map(_show, value)) if value else "(empty)"
    else:
        text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _code_names(doc: str) -> str:
    """``doc`` with the code's snake_case names (another setting, a unit kind) set as code."""
    return re.sub(r"(?<![`\w])([a-z][a-z0-9]*(?:_[a-z0-9]+)+)(?![`\w])", r"`\1`", doc)


def rerun_box(number: int, s: settings_.Common, notebook: str) -> str:
    """The MyST Markdown of chapter ``number``'s folded "Rerun this chapter" box for settings ``s``."""
    total = len(_keys(number, s))
    rows = []
    for f in dataclasses.fields(s):
        if f.name == "profile":
            continue
        doc = _code_names(f.metadata.get("doc", "").replace("|", "/"))
        recomputes = _counts(reach(number, s, f.name), total)
        rows.append(f"| `{f.name}` | `{_show(getattr(s, f.name))}` | {doc} | {recomputes} |")
    example = next((f.name for f in dataclasses.fields(s) if f.name not in ("profile", "seed", "source_recipe")
                    and nearby(f.name, getattr(s, f.name)) is not None), "seed")
    value = nearby(example, getattr(s, example))
    return "\n".join([
        ":::{admonition} Rerun this chapter",
        ":class: dropdown",
        f"**In Jupyter**: from the repository, `jupyter lab book/`, open `{notebook}`, set for example "
        f"`changes = {{\"{example}\": {value!r}}}` in its first cell and *Run All*. **From a terminal**: put "
        f"`{example}: {value!r}` in a parameter file `my.yaml` and run "
        f"`python -m ncutils.book --profile my.yaml --only {number}`. Either way every result already stored for "
        f"the same configuration and code is read from the store (`_build/store`), so a change computes only the "
        f"units it touches: the last column counts them for a nearby value of each setting "
        f"({total} units in this chapter, with the source models it reads).",
        "",
        "| setting | here | meaning | a change recomputes |",
        "|---|---|---|---|",
        *rows,
        ":::",
    ])
