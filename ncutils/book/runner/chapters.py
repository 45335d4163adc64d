"""The chapter notebooks of the book: which there are (``_toc.yml``), their numbers and titles. (Their settings
are declared in :mod:`ncutils.book.settings`, not read from the notebooks.)"""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

__all__ = ["chapter_number", "chapter_title", "chapters"]


def chapters(root: Path) -> list[Path]:
    """Chapter notebooks listed in ``_toc.yml``, in book order (entries without a ``.md`` page).

    A listed chapter whose notebook does not exist yet is returned too; it gets a placeholder page.
    """
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return [root / f"{f}.ipynb" for f in files
            if not (root / f"{f}.md").exists() and not (root / f"{f}.rst").exists()]


def chapter_number(nb: Path) -> int | None:
    m = re.match(r"(\d+)_", nb.name)
    return int(m.group(1)) if m else None


def chapter_title(nb: Path) -> str:
    """The chapter's title: the first heading of its first markdown cell (else the file's stem)."""
    for cell in json.loads(nb.read_text()).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", [])).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            break
    return nb.stem.replace("_", " ")
