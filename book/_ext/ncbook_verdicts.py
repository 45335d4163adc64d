"""Sphinx extension of the book: the directive ``verdict-summary``, the build's verdicts at the top of a page.

The book's first page opens with the answer: every claim's verdict in this build, as a badge and one plain
sentence linking to the claim in its chapter. The runner stages each executed chapter beside its record
(``book/<chapter>.json``, written by :class:`ncutils.book.chapter.Chapter`); this directive reads those records
when Sphinx reads the page and renders :func:`ncutils.book.pages.claims.verdict_summary` of them, the same
records and the same verdicts as the claims page. Usage, in a MyST page of the book's folder::

    ```{verdict-summary}
    ```

Every record is a dependency of the page, so a rebuild with new records (or a chapter run since) reads the page
again instead of serving the verdicts of the previous build from Sphinx's cache.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from docutils.statemachine import StringList
from sphinx.util.docutils import SphinxDirective


def _records(folder: Path, stems: list[str]) -> list[tuple[str, str, dict | None]]:
    """``(stem, title, record or None)`` of each chapter: a chapter counts as run when its executed notebook is in
    ``folder`` (a chapter not run has a placeholder page instead, with no claim to link to)."""
    from ncutils.book.runner.chapters import chapter_title

    found = []
    for stem in stems:
        nb, record = folder / f"{stem}.ipynb", folder / f"{stem}.json"
        data = None
        if nb.is_file() and record.is_file():
            try:
                data = json.loads(record.read_text())
            except (OSError, json.JSONDecodeError):  # a damaged record reads as not run, like the claims page
                data = None
        found.append((stem, chapter_title(nb) if nb.is_file() else stem, data))
    return found


class VerdictSummary(SphinxDirective):
    """The verdicts of every chapter staged in this page's folder (see the module docstring)."""

    has_content = False

    def run(self) -> list[nodes.Node]:
        from ncutils.book.pages.claims import verdict_summary
        from ncutils.book.runner.chapters import chapters

        here = Path(self.env.doc2path(self.env.docname)).parent
        stems = [nb.stem for nb in chapters(Path(self.env.srcdir))]
        for stem in stems:  # missing files count as changed: the page is read again once the chapter has run
            self.env.note_dependency(str(here / f"{stem}.json"))
            self.env.note_dependency(str(here / f"{stem}.ipynb"))
        text = verdict_summary(_records(here, stems))
        box = nodes.container()
        self.state.nested_parse(StringList(text.splitlines(), source=self.env.docname), self.content_offset, box)
        return box.children


def setup(app):
    app.add_directive("verdict-summary", VerdictSummary)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
