"""The result store: one record per unit, written atomically, safe for many writers and many users.

Layout under the store's root folder::

    <kind>/<key>.json           the unit's record: configuration, result, provenance, checksums
    <kind>/<key>.<sha16>.pt     the network a weight-storing unit trained, named by the first 16 hex digits
                                of its SHA-256; the record names it (stores written before this layout name
                                ``<key>.pt``, which still loads as it is)
    <kind>/<key>.lock           taken while a process computes and writes the unit
    <kind>/<key>.log            the log of a unit run by a fan-out executor (see ncutils.book.runner.executors)
    <kind>/<name>.damaged-*     a damaged record or weight file set aside for inspection

Guarantees:

* **Atomic results.** A file is written under a temporary name in the same folder and renamed into
  place, so a reader sees the whole file or none. Weights are written first, under a name of their own,
  and the record that names them is renamed into place last: that rename is the commit point, and the
  previous result's weight files are removed only after it. A reader therefore pairs a record with the
  weights it was written with, never with an older or newer network; one that finds its record's weights
  just removed reads the newer record instead.
* **Many writers.** Processes writing different units into one store (on one machine or on a cluster's
  shared file system) never lose each other's results; a unit is computed and written under its lock.
* **Many users.** Records, weights and locks are created like any file created with ``open()``: their
  permissions follow the process's umask (and the folder's default ACL), so under ``umask 002`` or ``022``
  the members of a lab's group can read each other's results; to compute into one store (take each other's
  locks, replace each other's records) they need ``umask 002`` and group-writable folders (``chmod g+ws``).
* **Damaged records never stop a run.** A record that cannot be read (permission denied, a folder in its
  place), is not UTF-8 or JSON, is truncated, holds another unit, fails its checksum, or whose weight file
  is missing or altered is **damaged**: it (and its unit's weight files) is renamed to
  ``<name>.damaged-<time>-<random>`` (a unique name: quarantines never overwrite each other), a warning
  names the file and what was wrong, and the unit counts as missing, so it is computed again. A record
  that cannot even be renamed is left in place with a warning saying so. A record is only set aside
  under its unit's lock, after checking that no writer replaced it meanwhile (while another process holds
  the lock, computing the unit, the record is left for that process to replace).
* **A clear error for an unusable folder.** :class:`StoreError` (a ``ValueError``) names the path and the
  fix when the store's root is a file, cannot be created, or cannot be written, or when a write fails.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import secrets
import time
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ncutils.book.engine.units import Unit, canonical

__all__ = ["FRESH_ENV", "DamagedRecord", "Store", "StoreError", "atomic_write", "to_jsonable"]

#: The runner's ``--fresh`` sets this environment variable to the run's start time: every chapter of the run
#: recomputes what was stored before it, and reuses what an earlier chapter of the same run recomputed.
FRESH_ENV = "NCUTILS_FRESH_SINCE"

FORMAT = 1

#: How many times a reader rereads a record that a writer replaced while it was being checked.
_REREADS = 3

_RECORD_FIELDS = {"key", "result", "result_sha256", "provenance"}


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
    """Write ``data`` (text as UTF-8) to ``path`` through a temporary file in the same folder and an atomic
    rename. The file's permissions follow the umask, as a file created with ``open()``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "xb") as f:  # "x": a name no other writer uses
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _result_digest(result: Any) -> str:
    return _sha256(json.dumps(result, sort_keys=True).encode())


def _is_weight_file(u: Unit, name: str) -> bool:
    """Whether ``name`` is a weight file of ``u``: ``<key>.<sha16>.pt``, or ``<key>.pt`` of earlier stores."""
    return re.fullmatch(re.escape(u.key) + r"(\.[0-9a-f]{16})?\.pt", name) is not None


def _why(err: OSError) -> str:
    return err.strerror or type(err).__name__


class DamagedRecord(ValueError):
    """A stored record or weight file is unreadable or does not match its checksum."""


class StoreError(ValueError):
    """The store's folder cannot be used: it is a file, it cannot be created or written, or a write failed."""


def _check_root(root: Path) -> None:
    """Raise :class:`StoreError` unless ``root`` is a writable folder or can be created as one."""
    existing = root
    try:
        while not existing.exists():
            existing = existing.parent
        is_dir = existing.is_dir()
    except OSError as err:
        raise StoreError(f"the store {root} cannot be inspected ({_why(err)}): pass a folder you can read "
                         "and write with --store.") from None
    if not is_dir:
        what = "is a file" if existing == root else f"cannot be created: {existing} is a file"
        raise StoreError(f"the store {root} {what}, not a folder: pass a folder with --store (a missing or "
                         "empty one starts a new store), or move the file away.")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "is not writable" if existing == root else f"cannot be created: {existing} is not writable"
        raise StoreError(f"the store {root} {what} by this user: ask its owner for write access (for a store "
                         "shared by a group: chmod -R g+w and umask 002), or pass another folder with --store.")


class Store:
    """Unit results under ``root`` (see the module docstring).

    Parameters
    ----------
    root : path
        The store's folder (created on first write). It must be a folder, or a path where one can be
        created, writable by this user: else :class:`StoreError`.
    fresh_since : float, optional
        A Unix time: records finished before it count as missing (``--fresh`` recomputes every unit
        of a run once, and later units of the same run reuse what it recomputed).
    """

    def __init__(self, root: str | os.PathLike, *, fresh_since: float | None = None):
        self.root = Path(root)
        self.fresh_since = fresh_since
        _check_root(self.root)
        self._locks: dict[str, Any] = {}

    # ---- paths
    def path(self, u: Unit, suffix: str = ".json") -> Path:
        return self.root / u.kind / f"{u.key}{suffix}"

    def log_path(self, u: Unit) -> Path:
        return self.path(u, ".log")

    def _weight_files(self, u: Unit) -> list[Path]:
        """Every weight file of ``u`` in the store: the current layout's and the earlier ``<key>.pt``."""
        return [p for p in self.path(u).parent.glob(f"{u.key}*.pt") if _is_weight_file(u, p.name)]

    # ---- locking
    def lock(self, u: Unit):
        """The lock a process holds while it computes and writes ``u`` (a reentrant ``filelock.FileLock``);
        :class:`StoreError` when its file cannot be created.

        The lock file is created here, like any file (umask, default ACL), and kept at that mode: other
        users sharing the store must be able to take it.
        """
        try:
            return self._lock(u)
        except OSError as err:
            raise self._unwritable(u, err) from err

    def _lock(self, u: Unit):
        if u.key not in self._locks:
            from filelock import FileLock

            path = self.path(u, ".lock")
            path.parent.mkdir(parents=True, exist_ok=True)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))
            self._locks[u.key] = FileLock(str(path), mode=path.stat().st_mode & 0o777)
        return self._locks[u.key]

    # ---- reading
    def read(self, u: Unit) -> dict | None:
        """The unit's whole record, or ``None`` when it is missing, stale or damaged (see the module doc)."""
        found = self._verified(u)
        if found is None:
            return None
        record = found[0]
        if self.fresh_since is not None and record["provenance"].get("finished_at", 0) < self.fresh_since:
            return None
        return record

    def get(self, u: Unit) -> Any | None:
        """The stored result of ``u``, or ``None``."""
        record = self.read(u)
        return None if record is None else record["result"]

    def __contains__(self, u: Unit) -> bool:
        return self.read(u) is not None

    def load_weights(self, u: Unit) -> dict[str, torch.Tensor]:
        """The state dict saved with ``u``'s result (the very bytes its record's checksum was checked on)."""
        found = self._verified(u)
        if found is None or found[1] is None:
            raise FileNotFoundError(f"no stored network for {u.key} in {self.root}; compute the unit first.")
        return torch.load(io.BytesIO(found[1]), map_location="cpu", weights_only=True)

    def _verified(self, u: Unit) -> tuple[dict, bytes | None] | None:
        """``u``'s checked record and weight bytes; ``None`` when missing or damaged (then set aside)."""
        for _ in range(_REREADS):
            raw = None
            try:
                raw = self._raw(u)
                if raw is None:
                    return None
                return self._check(u, raw)
            except DamagedRecord as err:
                if self._set_aside(u, raw, err):
                    return None
        return None  # replaced by writers on every reread: count it as missing for now

    def _raw(self, u: Unit) -> bytes | None:
        """The record's bytes, ``None`` when there is none; :class:`DamagedRecord` when it cannot be read."""
        try:
            return self.path(u).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as err:
            raise DamagedRecord(f"it cannot be read ({_why(err)})") from None

    def _check(self, u: Unit, raw: bytes) -> tuple[dict, bytes | None]:
        """The record parsed from ``raw`` and its weight bytes, or :class:`DamagedRecord` saying what is wrong."""
        try:
            record = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise DamagedRecord(f"it is not UTF-8 text (byte {err.start})") from None
        except json.JSONDecodeError as err:
            raise DamagedRecord(f"it is not valid JSON ({err}); it may be truncated") from None
        if not isinstance(record, dict) or _RECORD_FIELDS - set(record):
            raise DamagedRecord("it is not a unit record (fields missing)")
        if record["key"] != u.key:
            raise DamagedRecord(f"it holds unit {record['key']}, not {u.key}")
        provenance = record["provenance"]
        if not isinstance(provenance, dict) or not isinstance(provenance.get("finished_at", 0), (int, float)):
            raise DamagedRecord("its provenance is not a mapping with a numeric finished_at")
        if _result_digest(record["result"]) != record["result_sha256"]:
            raise DamagedRecord("its result does not match its checksum")
        return record, self._checked_weights(u, record)

    def _checked_weights(self, u: Unit, record: dict) -> bytes | None:
        weights = record.get("weights")
        if not weights:
            return None
        name = weights.get("file", f"{u.key}.pt") if isinstance(weights, dict) else None
        if not isinstance(name, str) or not _is_weight_file(u, name):
            raise DamagedRecord(f"it names no weight file of this unit ({weights!r:.80})")
        try:
            data = (self.path(u).parent / name).read_bytes()
        except FileNotFoundError:
            raise DamagedRecord(f"its weight file {name} is missing") from None
        except OSError as err:
            raise DamagedRecord(f"its weight file {name} cannot be read ({_why(err)})") from None
        if len(data) != weights.get("bytes") or _sha256(data) != weights.get("sha256"):
            raise DamagedRecord(f"its weight file {name} does not match its checksum")
        return data

    def records(self, kind: str | None = None) -> Iterator[dict]:
        """Every readable record in the store (of one ``kind``), without checking checksums."""
        folders = [self.root / kind] if kind else sorted(p for p in self.root.glob("*") if p.is_dir())
        for folder in folders:
            for path in sorted(folder.glob("*.json")):
                try:
                    yield json.loads(path.read_bytes().decode("utf-8"))
                except (OSError, ValueError):  # unreadable, not UTF-8, not JSON
                    continue

    # ---- setting damaged records aside
    def _set_aside(self, u: Unit, raw: bytes | None, err: DamagedRecord) -> bool:
        """Quarantine ``u``'s damaged record, which held ``raw`` (``None``: unreadable); False when a writer
        replaced it meanwhile, so that the caller reads it again."""
        from filelock import Timeout

        if self._replaced(u, raw):
            return False
        where = self.path(u)
        try:
            with self._lock(u).acquire(timeout=0):
                if self._replaced(u, raw):
                    return False
                moved = [self._move_aside(p) for p in (where, *self._weight_files(u)) if os.path.lexists(p)]
        except Timeout:
            warnings.warn(f"damaged result {where}: {err}; another process is computing this unit now and will "
                          "replace it, so it counts as missing here.", stacklevel=4)
            return True
        except OSError as os_err:
            warnings.warn(f"damaged result {where}: {err}; it could not be set aside ({_why(os_err)}), so it "
                          "stays in place and counts as missing: remove it, or give this user write access to "
                          f"{where.parent}.", stacklevel=4)
            return True
        warnings.warn(f"damaged result {where}: {err}; set aside as {', '.join(p.name for p in moved)}, and the "
                      "unit will be computed again.", stacklevel=4)
        return True

    def _replaced(self, u: Unit, raw: bytes | None) -> bool:
        """Whether ``u``'s record no longer holds ``raw`` (``None``: it could not be read)."""
        try:
            now = self._raw(u)
        except DamagedRecord:
            return raw is not None
        return now is None or now != raw

    @staticmethod
    def _move_aside(p: Path) -> Path:
        """Rename ``p`` to a ``.damaged-<time>-<random>`` name no other quarantine uses."""
        stamp = time.strftime("%Y%m%d-%H%M%S")
        while True:
            target = p.with_name(f"{p.name}.damaged-{stamp}-{secrets.token_hex(4)}")
            if not os.path.lexists(target):
                os.replace(p, target)
                return target

    # ---- writing
    def write(self, u: Unit, result: Any, *, provenance: Mapping[str, Any],
              state_dict: Mapping[str, torch.Tensor] | None = None) -> dict:
        """Store ``result`` (and a network's ``state_dict``) for ``u``; returns the record written.

        Call it under :meth:`lock` when other processes may write ``u`` (:func:`~ncutils.book.engine.compute.
        compute` does). Weights are written first, the record last (the commit point), and the previous
        result's weight files are removed after it. Raises :class:`StoreError` when the store cannot be written.
        """
        result = to_jsonable(result)
        try:
            weights = None if state_dict is None else self._write_weights(u, state_dict)
            record = {
                "format": FORMAT, "unit": u.kind, "key": u.key, "config": canonical(u.config),
                "result": result, "result_sha256": _result_digest(result), "weights": weights,
                "provenance": {**to_jsonable(dict(provenance)), "finished_at": time.time()},
            }
            atomic_write(self.path(u), json.dumps(record, indent=1))
        except OSError as err:
            raise self._unwritable(u, err) from err
        self._remove_stale_weights(u, keep=weights["file"] if weights else None)
        return record

    def _unwritable(self, u: Unit, err: OSError) -> StoreError:
        return StoreError(f"cannot write unit {u.key} into the store {self.root} ({_why(err)}: "
                          f"{err.filename or self.path(u)}): free disk space, or give this user write access to "
                          "the store's folders (or move away a file that stands where a folder should be).")

    def _write_weights(self, u: Unit, state_dict: Mapping[str, torch.Tensor]) -> dict:
        buffer = io.BytesIO()
        torch.save({k: v.detach().cpu() for k, v in state_dict.items()}, buffer)
        data = buffer.getvalue()
        digest = _sha256(data)
        name = f"{u.key}.{digest[:16]}.pt"
        atomic_write(self.path(u).parent / name, data)
        return {"file": name, "sha256": digest, "bytes": len(data)}

    def _remove_stale_weights(self, u: Unit, keep: str | None) -> None:
        """Remove ``u``'s weight files other than ``keep`` (after the record naming ``keep`` is in place)."""
        for p in self._weight_files(u):
            if p.name != keep:
                try:
                    p.unlink(missing_ok=True)
                except OSError:
                    pass  # an orphan file costs disk space only: no record names it
