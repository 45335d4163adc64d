"""The result store: one file per unit, written atomically, safe for many writers.

Layout under the store's root folder::

    <kind>/<key>.json   the unit's record: configuration, result, provenance, checksums
    <kind>/<key>.pt     the network a weight-storing unit trained (pre-training units)
    <kind>/<key>.log    the log of a unit run by a fan-out executor (see ncutils.book.runner.executors)

A record is written to a temporary file in the same folder and renamed into place, so a reader
sees either the whole record or none, and processes writing different units into one store (on one
machine or on a cluster's shared file system) never lose each other's results. A record whose JSON
does not parse, whose key or checksum does not match, or whose weight file is missing or altered
is **damaged**: it is renamed to ``*.damaged`` (kept for inspection), a warning names it, and the
unit counts as missing, so it is computed again.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncutils.book.engine.units import Unit, canonical

__all__ = ["FRESH_ENV", "DamagedRecord", "Store", "atomic_write", "to_jsonable"]

#: The runner's ``--fresh`` sets this environment variable to the run's start time: every chapter of the run
#: recomputes what was stored before it, and reuses what an earlier chapter of the same run recomputed.
FRESH_ENV = "NCUTILS_FRESH_SINCE"

FORMAT = 1


def to_jsonable(value: Any) -> Any:
    """Convert numpy/torch scalars and arrays, tuples and paths to plain JSON types (NaN -> None)."""
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, torch.Tensor):
        return to_jsonable(value.detach().cpu().numpy())
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        return to_jsonable(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    raise TypeError(f"cannot store a {type(value).__name__} in a result; convert it to numbers, "
                    "strings, lists or dicts first.")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _result_digest(result: Any) -> str:
    return _sha256(json.dumps(result, sort_keys=True).encode())


class DamagedRecord(ValueError):
    """A stored record or weight file is unreadable or does not match its checksum."""


class Store:
    """Unit results under ``root`` (see the module docstring).

    Parameters
    ----------
    root : path
        The store's folder (created on first write).
    fresh_since : float, optional
        A Unix time: records finished before it count as missing (``--fresh`` recomputes every unit
        of a run once, and later units of the same run reuse what it recomputed).
    """

    def __init__(self, root: str | os.PathLike, *, fresh_since: float | None = None):
        self.root = Path(root)
        self.fresh_since = fresh_since

    # ---- paths
    def path(self, u: Unit, suffix: str = ".json") -> Path:
        return self.root / u.kind / f"{u.key}{suffix}"

    def weights_path(self, u: Unit) -> Path:
        return self.path(u, ".pt")

    def log_path(self, u: Unit) -> Path:
        return self.path(u, ".log")

    # ---- reading
    def _quarantine(self, u: Unit, reason: str) -> None:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        for p in (self.path(u), self.weights_path(u)):
            if p.exists():
                os.replace(p, p.with_name(f"{p.name}.damaged-{stamp}"))
        warnings.warn(f"damaged result {self.path(u)} ({reason}); it was renamed *.damaged-{stamp} and the "
                      "unit will be computed again.", stacklevel=3)

    def read(self, u: Unit) -> dict | None:
        """The unit's whole record, or ``None`` when it is missing, stale or damaged (see the module doc)."""
        path = self.path(u)
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        try:
            self._check(u, text)
        except DamagedRecord as err:
            self._quarantine(u, str(err))
            return None
        record = json.loads(text)
        if self.fresh_since is not None and record["provenance"].get("finished_at", 0) < self.fresh_since:
            return None
        return record

    def _check(self, u: Unit, text: str) -> None:
        try:
            record = json.loads(text)
        except json.JSONDecodeError as err:
            raise DamagedRecord(f"not valid JSON: {err}") from None
        if not isinstance(record, dict) or {"key", "result", "result_sha256", "provenance"} - set(record):
            raise DamagedRecord("not a unit record")
        if record["key"] != u.key:
            raise DamagedRecord(f"holds unit {record['key']}, not {u.key}")
        if _result_digest(record["result"]) != record["result_sha256"]:
            raise DamagedRecord("the result does not match its checksum")
        weights = record.get("weights")
        if weights:
            wpath = self.weights_path(u)
            if not wpath.exists():
                raise DamagedRecord(f"its weight file {wpath.name} is missing")
            if wpath.stat().st_size != weights["bytes"] or _sha256(wpath.read_bytes()) != weights["sha256"]:
                raise DamagedRecord(f"its weight file {wpath.name} does not match its checksum")

    def get(self, u: Unit) -> Any | None:
        """The stored result of ``u``, or ``None``."""
        record = self.read(u)
        return None if record is None else record["result"]

    def __contains__(self, u: Unit) -> bool:
        return self.read(u) is not None

    def load_weights(self, u: Unit) -> dict[str, torch.Tensor]:
        """The state dict saved with ``u``'s result."""
        record = self.read(u)
        if record is None or not record.get("weights"):
            raise FileNotFoundError(f"no stored network for {u.key} in {self.root}; compute the unit first.")
        return torch.load(self.weights_path(u), map_location="cpu", weights_only=True)

    # ---- writing
    def write(self, u: Unit, result: Any, *, provenance: Mapping[str, Any],
              state_dict: Mapping[str, torch.Tensor] | None = None) -> dict:
        """Store ``result`` (and a network's ``state_dict``) for ``u``; returns the record written."""
        result = to_jsonable(result)
        weights = None
        if state_dict is not None:
            tmp = self.weights_path(u).with_name(f".{u.key}.pt.tmp-{os.getpid()}")
            tmp.parent.mkdir(parents=True, exist_ok=True)
            torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, tmp)
            data = tmp.read_bytes()
            os.replace(tmp, self.weights_path(u))
            weights = {"file": self.weights_path(u).name, "sha256": _sha256(data), "bytes": len(data)}
        record = {
            "format": FORMAT, "unit": u.kind, "key": u.key, "config": canonical(u.config),
            "result": result, "result_sha256": _result_digest(result), "weights": weights,
            "provenance": {**to_jsonable(dict(provenance)), "finished_at": time.time()},
        }
        atomic_write(self.path(u), json.dumps(record, indent=1))
        return record

    def records(self, kind: str | None = None):
        """Every readable record in the store (of one ``kind``), without checking checksums."""
        folders = [self.root / kind] if kind else sorted(p for p in self.root.glob("*") if p.is_dir())
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                try:
                    yield json.loads(path.read_text())
                except (OSError, json.JSONDecodeError):
                    continue
