"""Experiment units: one complete configuration, one JSON result, one key.

The book's work is a grid of independent **units** (pre-train a source model, probe an encoder,
fine-tune one configuration, ...). A :class:`Unit` is a kind (the name of the function that runs
it, see :mod:`ncutils.book.experiments`) and a configuration: plain JSON values, and other units
it depends on (a probe names the pre-training unit whose encoder it probes). Its **key** is a hash
of

* the configuration, with every nested unit replaced by that unit's own key, so a change anywhere
  upstream changes every key downstream;
* the fingerprint of the code the kind can run (:mod:`ncutils.book.engine.fingerprint`): the syntax
  trees, without docstrings and comments, of the module defining the kind and of every ``ncutils``
  module whose code it uses, directly or not, plus the versions of the numerical libraries.

So a changed parameter, a fixed bug or an upgraded torch can never return an old number, while a
reworded docstring reuses everything. Execution details (device, data location, progress bars) are
not part of the configuration: a unit computed on a cluster GPU is reused by a notebook on a laptop.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ncutils.book.engine.fingerprint import fingerprint

__all__ = ["KINDS", "Kind", "Unit", "canonical", "closure", "get_kind", "kind", "unit"]


# --------------------------------------------------------------------------- units
@dataclass(frozen=True, eq=False)
class Unit:
    """One experiment: ``kind`` run on ``config``.

    ``config`` holds JSON values (dicts, lists, strings, numbers, booleans, ``None``) and other
    :class:`Unit` objects, its dependencies. Units compare and hash by :attr:`key`.
    """

    kind: str
    config: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        get_kind(self.kind)
        canonical(self.config)  # validates: only JSON values and units

    @functools.cached_property
    def key(self) -> str:
        """``<kind>-<16 hex digits>``: hash of the configuration (dependencies by key) and the code."""
        blob = json.dumps({"kind": self.kind, "config": canonical(self.config, by_key=True),
                           "code": fingerprint(KINDS[self.kind].module)}, sort_keys=True)
        return f"{self.kind}-{hashlib.sha256(blob.encode()).hexdigest()[:16]}"

    @property
    def deps(self) -> tuple[Unit, ...]:
        """The units this one needs, in the order they appear in the configuration."""
        return tuple(dict.fromkeys(_nested_units(self.config)))

    def closure(self) -> list[Unit]:
        """This unit after all its dependencies, each once, dependencies first."""
        return closure([self])

    def to_json(self) -> dict:
        """``{"unit", "key", "config"}`` with nested units written out the same way."""
        return {"unit": self.kind, "key": self.key, "config": canonical(self.config)}

    def describe(self) -> str:
        """A one-line summary: the kind and the configuration's short fields."""
        brief = {k: v for k, v in self.config.items() if isinstance(v, (str, int, float, bool)) or v is None}
        return f"{self.kind}({', '.join(f'{k}={v}' for k, v in list(brief.items())[:8])})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unit) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    def __repr__(self) -> str:
        return f"Unit({self.key})"


def unit(kind: str, **config: Any) -> Unit:
    """``Unit(kind, config)`` with the configuration given as keyword arguments."""
    return Unit(kind, config)


def canonical(value: Any, *, by_key: bool = False) -> Any:
    """``value`` as plain JSON: tuples become lists, numpy scalars numbers, units ``{"unit", ...}``.

    With ``by_key`` a nested unit is written as ``{"unit": kind, "key": key}`` (what the key of a
    dependent unit hashes), else with its whole configuration. Non-finite floats and values of other
    types raise ``TypeError``: a configuration must be exact and reproducible.
    """
    if isinstance(value, Unit):
        if by_key:
            return {"unit": value.kind, "key": value.key}
        return {"unit": value.kind, "key": value.key, "config": canonical(value.config)}
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"configuration keys must be strings; got {k!r}.")
            out[k] = canonical(v, by_key=by_key)
        return out
    if isinstance(value, (list, tuple)):
        return [canonical(v, by_key=by_key) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (str, int)):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TypeError(f"configurations hold finite numbers only; got {value}.")
        return value
    if hasattr(value, "item") and callable(value.item):  # numpy / torch scalars
        return canonical(value.item(), by_key=by_key)
    raise TypeError(f"a unit configuration holds JSON values and units only; got {type(value).__name__} "
                    f"({value!r}).")


def _nested_units(value: Any) -> Iterator[Unit]:
    if isinstance(value, Unit):
        yield value
    elif isinstance(value, Mapping):
        for v in value.values():
            yield from _nested_units(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _nested_units(v)


def closure(units) -> list[Unit]:
    """``units`` and all their dependencies, each once, every unit after the units it needs."""
    order: dict[Unit, None] = {}

    def visit(u: Unit, path: tuple[str, ...]) -> None:
        if u in order:
            return
        if u.key in path:
            raise ValueError(f"dependency cycle through {u.key}.")
        for d in u.deps:
            visit(d, (*path, u.key))
        order[u] = None

    for u in units:
        visit(u, ())
    return list(order)


# --------------------------------------------------------------------------- kinds
@dataclass(frozen=True)
class Kind:
    """A unit kind: ``fn(config, ctx) -> JSON result`` defined in ``module``.

    ``stores_weights`` kinds also save a network with the result (``ctx.save_weights``), which
    dependent units load (``ctx.load_weights``).
    """

    name: str
    fn: Callable[..., Any]
    module: str
    doc: str
    stores_weights: bool = False


KINDS: dict[str, Kind] = {}

#: Modules that define unit kinds (imported on first use). Each is fingerprinted on its own, so a
#: change to the fine-tuning experiments leaves pre-training results valid.
KIND_MODULES = (
    "ncutils.book.experiments.metrics",
    "ncutils.book.experiments.sources",
    "ncutils.book.experiments.probing",
    "ncutils.book.experiments.fewshot",
    "ncutils.book.experiments.finetuning",
    "ncutils.book.experiments.scores",
)


def kind(name: str, *, stores_weights: bool = False) -> Callable[[Callable], Callable]:
    """Register the decorated function ``fn(config, ctx)`` as unit kind ``name``."""

    def register(fn: Callable) -> Callable:
        if name in KINDS and KINDS[name].fn is not fn:
            raise ValueError(f"unit kind {name!r} is defined twice ({KINDS[name].module} and {fn.__module__}).")
        doc = (fn.__doc__ or "").strip().splitlines()
        KINDS[name] = Kind(name, fn, fn.__module__, doc[0] if doc else "", stores_weights)
        return fn

    return register


def _load_kinds() -> None:
    for m in KIND_MODULES:
        importlib.import_module(m)


def get_kind(name: str) -> Kind:
    """The registered :class:`Kind` called ``name``."""
    if name not in KINDS:
        _load_kinds()
    if name not in KINDS:
        raise ValueError(f"unknown unit kind {name!r}; known kinds: {sorted(KINDS)}.")
    return KINDS[name]
