"""The layers of the code and the README's map of them, read from the sources (nothing is imported or run).

The research library (``ncutils/`` outside ``ncutils/book/``) imports nothing of the book machinery; in the
book machinery, only the runner (``ncutils/book/runner/``) imports the runner: the pages, chapters, units and
rules are layers that the runner calls, never the other way round. The README's "Layout" table names every
module and package of ``ncutils/`` and ``ncutils/book/``, and only paths that exist.
"""

from __future__ import annotations

import ast
import posixpath
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ncutils"
BOOK = PACKAGE / "book"
RUNNER = BOOK / "runner"

#: Modules outside the runner that may import it, and why.
RUNNER_ENTRY_POINTS = {
    BOOK / "__main__.py": "``python -m ncutils.book`` is the runner's command line",
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, text: str | None = None) -> list[tuple[int, str]]:
    """``(line, dotted name)`` of every module that ``path`` (or ``text`` as if it were at ``path``) imports,
    anywhere in it (inside functions and ``if`` blocks too); relative imports resolved, and ``from package import
    name`` counted as an import of ``package.name`` as well as of ``package`` (``name`` may be a submodule)."""
    tree = ast.parse(path.read_text() if text is None else text, filename=str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)] if node.level - 1 <= len(package) else []
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names if alias.name != "*"]
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def _offenders(files, package: str) -> list[str]:
    return [f"{path.relative_to(ROOT)}:{line} imports {name}" for path in files
            for line, name in _imports(path) if _within(name, package)]


def _sources(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)


def test_imports_are_resolved_relative_to_their_package():
    """The checks below see every spelling of an import of the runner: absolute, relative, inside a function."""
    source = ("import ncutils.book.runner.site\n"
              "from .. import runner\n"
              "from ..runner.site import stage\n"
              "def f():\n"
              "    from ncutils.book.runner import cli\n"
              "from . import claims\n"
              "from .forest import finite\n")
    names = [name for _, name in _imports(BOOK / "pages" / "example.py", source)]
    assert [n for n in names if _within(n, "ncutils.book.runner")] == [
        "ncutils.book.runner.site", "ncutils.book.runner", "ncutils.book.runner.site",
        "ncutils.book.runner.site.stage", "ncutils.book.runner", "ncutils.book.runner.cli"]
    assert {"ncutils.book.pages.claims", "ncutils.book.pages.forest"} <= set(names)
    assert "ncutils.book.runners" not in names and not _within("ncutils.book.runners", "ncutils.book.runner")
    init = [name for _, name in _imports(BOOK / "pages" / "__init__.py", "from .claims import claims_page\n")]
    assert init == ["ncutils.book.pages.claims", "ncutils.book.pages.claims.claims_page"]


def test_only_the_runner_imports_the_runner():
    """Pages, chapters, units, rules and plots are layers the runner calls: none of them imports it."""
    files = [p for p in _sources(BOOK) if RUNNER not in p.parents and p not in RUNNER_ENTRY_POINTS]
    assert _offenders(files, "ncutils.book.runner") == []


def test_the_research_library_imports_nothing_of_the_book():
    """``ncutils`` is usable on its own: outside ``ncutils/book/`` nothing imports ``ncutils.book``."""
    files = [p for p in _sources(PACKAGE) if BOOK not in p.parents]
    assert files and _offenders(files, "ncutils.book") == []


# ---------------------------------------------------------------------------------------------------------------
# the README's Layout table


def _layout_rows() -> list[tuple[str, list[str]]]:
    """``(row's first column, the paths it names)`` of every row of the README's "Layout" table: the first
    backticked path is from the repository root, the others are relative to its folder (``ncutils/probe.py``,
    ``training.py`` names ``ncutils/training.py``)."""
    text = (ROOT / "README.md").read_text()
    section = re.search(r"^## Layout\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    assert section, "README.md has no '## Layout' section"
    rows = [line for line in section.group(1).splitlines() if line.startswith("|")]
    assert len(rows) > 2, "the Layout section has no table"
    header = [c.strip() for c in re.split(r"(?<!\\)\|", rows[0])[1:-1]]
    assert header[0] == "module" and "lines" not in header, header
    out = []
    for row in rows[2:]:  # after the header and its separator
        first = re.split(r"(?<!\\)\|", row)[1].strip()
        named = re.findall(r"`([^`]+)`", first)
        assert named, f"a Layout row names no path: {row}"
        folder = posixpath.dirname(named[0].rstrip("/"))
        out.append((first, [named[0]] + [posixpath.join(folder, n) for n in named[1:]]))
    return out


def test_every_path_the_layout_names_exists():
    missing = [(first, path) for first, paths in _layout_rows() for path in paths
               if not ((ROOT / path).is_dir() if path.endswith("/") else (ROOT / path).is_file())]
    assert missing == []


def test_the_layout_names_every_module_and_package():
    """Every module (other than ``__init__``/``__main__``) and every package directly in ``ncutils/`` and
    ``ncutils/book/`` has its row (a row may name several)."""
    named = {path.rstrip("/") for _, paths in _layout_rows() for path in paths}
    expected = {p.relative_to(ROOT).as_posix() for folder in (PACKAGE, BOOK) for p in folder.iterdir()
                if (p.suffix == ".py" and not p.name.startswith("__")) or (p / "__init__.py").is_file()}
    expected.discard("ncutils/book")  # the book machinery itself: its modules are the rows
    assert sorted(expected - named) == []
