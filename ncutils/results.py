"""Results written as they are produced, so that a rerun resumes instead of starting over.

Every chapter of the book keeps what it measures in a :class:`Results` file (JSON, next to the
executed notebook): each entry is saved the moment it is computed, atomically, so an
interrupted notebook loses nothing already computed and a rerun with ``reuse=True`` picks up
where it stopped. Trained networks go to a :class:`ModelStore`, keyed by the configuration that
produced them, which chapters share (Chapter 4 reuses the models pre-trained in Chapter 3).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["ModelStore", "Results", "config_key", "to_jsonable"]


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
    raise TypeError(f"cannot store a {type(value).__name__} in a results file; convert it to numbers, "
                    "strings, lists or dicts first.")


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def config_key(name: str, config: Mapping[str, Any]) -> str:
    """A readable, stable key: ``name`` plus a short hash of the JSON-normalised ``config``."""
    blob = json.dumps(to_jsonable(config), sort_keys=True)
    return f"{name}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"


class Results:
    """A JSON file of named results, rewritten (atomically) after every new entry.

    Parameters
    ----------
    path : path or None
        The JSON file; ``None`` keeps results in memory only.
    reuse : bool
        Load entries an earlier run stored in ``path`` and return them instead of recomputing.
        With ``False`` the file is started afresh.
    meta : dict, optional
        Stored under the ``"meta"`` key (e.g. the profile and parameters of the run).
    """

    def __init__(self, path: str | os.PathLike | None, *, reuse: bool = True, meta: Mapping | None = None):
        self.path = Path(path) if path is not None else None
        self._data: dict[str, Any] = {}
        if reuse and self.path is not None and self.path.exists():
            try:
                self._data = json.loads(self.path.read_text()).get("results", {})
            except (json.JSONDecodeError, AttributeError) as err:
                raise ValueError(
                    f"results file {self.path} is not valid JSON ({err}); delete it or run with "
                    "reuse_results=False to start afresh."
                ) from err
        self.meta = to_jsonable(dict(meta or {}))
        self._save()

    def _save(self) -> None:
        if self.path is not None:
            _atomic_write(self.path, json.dumps({"meta": self.meta, "results": self._data}, indent=1))

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def keys(self):
        return self._data.keys()

    def put(self, key: str, value: Any) -> Any:
        """Store ``value`` under ``key`` and write the file; returns the stored (JSON) value."""
        self._data[key] = to_jsonable(value)
        self._save()
        return self._data[key]

    def get_or_compute(self, key: str, fn: Callable[..., Any], *args, **kwargs) -> Any:
        """The stored value of ``key``, or ``fn(*args, **kwargs)`` computed now and stored."""
        if key not in self._data:
            self.put(key, fn(*args, **kwargs))
        return self._data[key]

    def to_dict(self) -> dict:
        return {"meta": self.meta, "results": dict(self._data)}


class ModelStore:
    """Trained networks on disk, keyed by the configuration that produced them.

    ``store.get(key, build, train)`` returns ``(model, info)``: the weights and the JSON ``info``
    saved under ``key`` when present (and ``reuse`` is on), else ``build()`` trained by
    ``train(model) -> info`` and saved. ``train`` may checkpoint into :meth:`checkpoint_path`
    so that an interrupted training resumes.
    """

    def __init__(self, folder: str | os.PathLike | None, *, reuse: bool = True):
        self.folder = Path(folder) if folder is not None else None
        self.reuse = reuse

    def _paths(self, key: str) -> tuple[Path, Path]:
        return self.folder / f"{key}.pt", self.folder / f"{key}.json"

    def checkpoint_path(self, key: str) -> Path | None:
        """Where ``train`` may keep a resumable checkpoint for ``key`` (``None`` without a folder)."""
        return None if self.folder is None else self.folder / f"{key}.ckpt"

    def __contains__(self, key: str) -> bool:
        return self.folder is not None and all(p.exists() for p in self._paths(key))

    def get(
        self, key: str, build: Callable[[], nn.Module], train: Callable[[nn.Module], Mapping] | None = None
    ) -> tuple[nn.Module, dict]:
        model = build()
        if self.folder is not None and self.reuse and key in self:
            weights, info = self._paths(key)
            try:
                model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
                return model, json.loads(info.read_text())
            except (RuntimeError, ValueError, json.JSONDecodeError) as err:
                raise ValueError(
                    f"stored model {weights} does not match this configuration or is damaged ({err}); "
                    "delete it (and its .json) or run with reuse_results=False."
                ) from err
        if self.folder is not None and not self.reuse:
            ckpt = self.checkpoint_path(key)
            if ckpt.exists():
                ckpt.unlink()
        info = to_jsonable(dict(train(model) if train is not None else {}))
        if self.folder is not None:
            weights, meta = self._paths(key)
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=weights.name, suffix=".tmp")
            os.close(fd)
            torch.save({k: v.cpu() for k, v in model.state_dict().items()}, tmp)
            os.replace(tmp, weights)
            _atomic_write(meta, json.dumps(info, indent=1))
            ckpt = self.checkpoint_path(key)
            if ckpt.exists():
                ckpt.unlink()
        return model, info
