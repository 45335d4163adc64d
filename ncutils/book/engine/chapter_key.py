"""A chapter's cache key: what a rerun must match to reuse an executed chapter.

The key hashes the notebook's cells, the fingerprint of the ``ncutils`` code its cells can run (and of every
unit kind, :mod:`ncutils.book.engine.fingerprint`), the chapter's complete settings (the profile's values
with every change applied: a changed profile file changes the key as a changed parameter file does), the run
settings that change what the chapter shows (dry run, replicate, where its results and units live) and the
paper's printed numbers the chapter shows. It is the same rule as a unit's key, one level up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ncutils.book.engine.fingerprint import fingerprint, used_by
from ncutils.book.engine.units import KIND_MODULES

__all__ = ["chapter_key"]

#: Run settings that never change what a chapter shows.
NOT_KEYED = ("reuse_results", "progress", "compute_missing", "device", "data_root")


def chapter_key(notebook: Path, settings: Mapping[str, Any], run: Mapping[str, Any]) -> str:
    """16 hex digits: the hash of ``notebook``'s cells, the code they can run, the chapter's complete
    ``settings`` and the keyed fields of ``run``, and the paper's numbers (``ncutils/book/paper/*.json``)."""
    cells = json.loads(notebook.read_text())["cells"]
    h = hashlib.sha256()
    for cell in cells:
        src = cell.get("source", "")
        h.update(("".join(src) if isinstance(src, list) else src).encode())
    code = "\n".join(line for c in cells if c.get("cell_type") == "code"
                     for line in "".join(c.get("source", "")).splitlines() if not line.lstrip().startswith(("%", "!")))
    h.update(fingerprint(*sorted(used_by(code)), *KIND_MODULES).encode())
    h.update(json.dumps(dict(settings), sort_keys=True, default=str).encode())
    h.update(json.dumps({k: v for k, v in run.items() if k not in NOT_KEYED}, sort_keys=True, default=str).encode())
    paper = Path(__file__).resolve().parents[1] / "paper"
    for f in sorted(paper.glob("*.json")):
        h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()[:16]
