"""Experiment units: one complete configuration, one JSON result, one key.

The book's work is a grid of independent **units** (pre-train a source model, probe an encoder,
fine-tune one configuration, ...). A :class:`Unit` is a kind (the name of the function that runs
it, see :mod:`ncutils.book.experiments`) and a configuration: plain JSON values, and other units
it depends on (a probe names the pre-training unit whose encoder it probes).

**The signature is the schema** (scikit-learn's rule). A kind is a function ``fn(ctx, *, name: type =
default, ...)``: after the context, keyword-only, annotated arguments whose names are the configuration's
keys. :func:`kind` records the signature, and :class:`Unit` checks a configuration against it when the
unit is made: an unknown (misspelt) key, a missing argument or a value of the wrong type raises
``ValueError`` naming the kind, the argument and what it allows. Defaults live in the signature only, and
a unit's :attr:`~Unit.config` is the complete set of arguments, defaults applied, so its key covers every
value the kind is called with (``kind.fn(ctx, **unit.config)``).

A unit's **key** is a hash of

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

import difflib
import functools
import hashlib
import importlib
import inspect
import json
import math
import types
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ncutils.book.engine.fingerprint import fingerprint

__all__ = ["KINDS", "Kind", "Unit", "canonical", "closure", "get_kind", "kind", "unit"]


# --------------------------------------------------------------------------- units
@dataclass(frozen=True, eq=False)
class Unit:
    """One experiment: ``kind`` run on ``config``.

    ``config`` holds JSON values (dicts, lists, strings, numbers, booleans, ``None``) and other
    :class:`Unit` objects, its dependencies. It is checked against the kind's signature when the unit
    is made (``ValueError`` for an unknown key, a missing argument or a value of the wrong type), and
    stored complete: every argument of the kind, its default where the configuration leaves it out.
    Units compare and hash by :attr:`key`.
    """

    kind: str
    config: Mapping[str, Any] = field(repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "config", get_kind(self.kind).bind(self.config))
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
    """``Unit(kind, config)`` with the configuration given as keyword arguments (checked the same way)."""
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
    """A unit kind: ``fn(ctx, *, argument: type = default, ...) -> JSON result`` defined in ``module``.

    ``signature`` is ``fn``'s (annotations evaluated): its keyword-only arguments after ``ctx`` are the
    configuration's keys, their annotations the values each allows, their defaults the only defaults
    (:meth:`bind`). ``stores_weights`` kinds also save a network with the result (``fn`` returns
    ``(result, network)``), which dependent units load (``ctx.load_weights``).
    """

    name: str
    fn: Callable[..., Any]
    module: str
    doc: str
    stores_weights: bool = False
    signature: inspect.Signature | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.signature is None:
            object.__setattr__(self, "signature", _kind_signature(self.name, self.fn))

    @property
    def arguments(self) -> dict[str, inspect.Parameter]:
        """The configuration's arguments by name, in the signature's order (``ctx`` left out)."""
        return dict(list(self.signature.parameters.items())[1:])

    def bind(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` checked against the signature and completed with its defaults, in the signature's order.

        Raises ``ValueError`` (one line naming the kind, the argument and what it allows) for a key that is
        not an argument, a required argument left out, or a value its annotation does not allow.
        """
        if not isinstance(config, Mapping):
            raise ValueError(f"unit kind {self.name!r} takes its configuration as a mapping of argument names to "
                             f"values; got {type(config).__name__}.")
        args = self.arguments
        listing = f"its arguments are {', '.join(args)}."
        unknown = [k for k in config if k not in args]
        if unknown:
            named = []
            for k in unknown:
                close = difflib.get_close_matches(str(k), list(args), n=1)
                named.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
            what = "argument" if len(unknown) == 1 else "arguments"
            raise ValueError(f"unit kind {self.name!r} has no {what} {', '.join(named)}; {listing}")
        missing = [n for n, p in args.items() if n not in config and p.default is inspect.Parameter.empty]
        if missing:
            what = "argument" if len(missing) == 1 else "arguments"
            named = ", ".join(f"{n!r} ({_allowed(args[n].annotation)})" for n in missing)
            raise ValueError(f"unit kind {self.name!r} is missing required {what} {named}; {listing}")
        out = {}
        for n, p in args.items():
            if n not in config:
                out[n] = _fresh(p.default)
                continue
            value = config[n]
            if not _allows(p.annotation, value):
                note = "; a bool is not a number here" if isinstance(value, bool) and _allows(p.annotation, 1) else ""
                raise ValueError(f"unit kind {self.name!r}: argument {n!r} must be {_allowed(p.annotation)}; got "
                                 f"{value!r} ({type(value).__name__}{note}).")
            out[n] = value
        return out


#: Annotations a kind's argument may have, besides ``X | None``, ``list[...]``, ``dict[...]`` and ``Mapping[...]``.
_SCALARS = {int: ("an int",), float: ("a float", "an int"), str: ("a string",), bool: ("a bool",)}


def _allows(annotation: Any, value: Any) -> bool:
    """Whether an argument annotated ``annotation`` may take ``value`` (strict on scalars: a bool is not an int)."""
    if annotation is Any:
        return True
    if annotation is None or annotation is type(None):
        return value is None
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_allows(a, value) for a in typing.get_args(annotation))
    base = origin or annotation
    if base is bool:
        return isinstance(value, bool)
    if base is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if base is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base is str:
        return isinstance(value, str)
    if base in (dict, Mapping):
        return isinstance(value, (Mapping, Unit))
    if base is Unit:
        return isinstance(value, Unit)
    if base in (list, tuple, Sequence):
        return isinstance(value, (list, tuple))
    raise TypeError(f"unsupported annotation {annotation!r}")


def _allowed(annotation: Any) -> str:
    """What an annotation allows, in words (``a float, an int or None``)."""
    words = _alternatives(annotation)
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


def _alternatives(annotation: Any) -> list[str]:
    if annotation is Any:
        return ["any JSON value or unit"]
    if annotation is None or annotation is type(None):
        return ["None"]
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return [w for a in typing.get_args(annotation) for w in _alternatives(a)]
    base = origin or annotation
    if base in _SCALARS:
        return list(_SCALARS[base])
    if base in (dict, Mapping):
        return ["a dict", "a unit"]
    if base is Unit:
        return ["a unit"]
    if base in (list, tuple, Sequence):
        return ["a list"]
    raise TypeError(f"unsupported annotation {annotation!r}")


def _fresh(default: Any) -> Any:
    """A default as a new plain JSON value (a read-only mapping in a signature becomes a dict of its own)."""
    if isinstance(default, Mapping):
        return {k: _fresh(v) for k, v in default.items()}
    if isinstance(default, (list, tuple)):
        return [_fresh(v) for v in default]
    return default


def _kind_signature(name: str, fn: Callable) -> inspect.Signature:
    """``fn``'s signature, checked: ``ctx`` first, then keyword-only arguments with supported annotations."""
    sig = inspect.signature(fn, eval_str=True)
    params = list(sig.parameters.values())
    where = f"unit kind {name!r} ({getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', fn)})"
    if not params or params[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                            inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise TypeError(f"{where} must take the context first: fn(ctx, *, argument: type = default, ...).")
    for p in params[1:]:
        if p.kind is not inspect.Parameter.KEYWORD_ONLY:
            raise TypeError(f"{where}: its configuration arguments are keyword-only (after `*`); {p.name!r} is not.")
        if p.annotation is inspect.Parameter.empty:
            raise TypeError(f"{where}: argument {p.name!r} has no annotation; the signature is the schema.")
        try:
            _allowed(p.annotation)
        except TypeError:
            raise TypeError(f"{where}: argument {p.name!r} has annotation {p.annotation!r}; use int, float, str, bool, "
                            "dict, Mapping, list, Unit, Any, or X | None.") from None
        if p.default is not inspect.Parameter.empty and not _allows(p.annotation, p.default):
            raise TypeError(f"{where}: the default {p.default!r} of {p.name!r} is not {_allowed(p.annotation)}.")
    return sig


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
    """Register the decorated function ``fn(ctx, *, argument: type = default, ...)`` as unit kind ``name``.

    Its signature is the kind's schema (checked here, recorded in :attr:`Kind.signature`): the context first,
    then keyword-only arguments, each annotated with int, float (an int is accepted), str, bool, dict /
    Mapping, list, :class:`Unit`, ``Any`` or ``X | None``, named as the configuration's keys.
    """

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
