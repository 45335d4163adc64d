"""The chapter notebooks of the book: which there are (``_toc.yml``), their numbers and titles, and the
parameters each declares in its ``parameters`` cell."""

from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

__all__ = ["chapter_number", "chapter_title", "chapters", "declared_defaults", "declared_parameters", "find_root"]


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository holding ``_config.yml``, ``_toc.yml`` and ``book/`` (searching upwards)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "book").is_dir():
            return folder
    pkg_parent = Path(__file__).resolve().parents[2]  # an editable install inside the repository
    if (pkg_parent / "_toc.yml").exists():
        return pkg_parent
    raise SystemExit(f"no book found: neither {here} nor its parents hold _toc.yml and book/. Run this command "
                     "inside the ncbook repository, or pass --root PATH.")


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


def declared_defaults(nb: Path) -> dict[str, Any]:
    """The ``parameters`` cell of ``nb`` as ``{name: default value}``."""
    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(str(nb)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def declared_parameters(nb: Path) -> set[str]:
    return set(declared_defaults(nb))
