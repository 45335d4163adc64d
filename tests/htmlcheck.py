"""Audit of a built Jupyter Book: no machine paths leak into it, and nothing on a page needs the network.

:func:`audit` returns the problems of a whole build (an empty list when it is clean):

* an occurrence of a forbidden path (the build machine's absolute paths: the repository root, the
  build folder, the home folder, the temporary folder) in any text file the site serves, the pages and
  the downloadable sources (``_sources/*.ipynb``, ``.md``, ``.txt``) alike, named with its line;
* a ``<script src=...>``, ``<link rel="stylesheet|preload|modulepreload" href=...>``, ``<img src=...>``
  or ``@import`` (in a page's ``<style>`` or in a served ``.css`` file) that points to an ``http(s)://``
  or protocol-relative ``//`` URL: a resource the page needs from the network to render (MathJax from a
  CDN is the usual culprit);
* with ``chapters``: a chapter page that is missing, shows no figure (``<img>`` or inline ``<svg>``), or
  states no verdict.

:func:`chapter_summary` counts what a chapter page shows: its images, its figures (glued figures are
``<figure>`` elements) and its verdict admonitions: those titled "Verdict: ..." (written by
:class:`ncutils.book.verdicts.Verdict`) or "Claim holds / does not hold / cannot be judged in this run"
(written by :func:`ncutils.book.plotting.verdict`); a claim stated before the numbers ("Claim (Section
3.1)", :meth:`ncutils.book.verdicts.Claim.show`) is not a verdict.

:func:`internal_names` finds the code's names that reached a page's prose, tables and captions: snake_case
identifiers (``train_accuracy``, ``S_seli``) and unit keys (hexadecimal hashes), outside code (``<pre>``,
``<code>``, a code cell's source) and math; a reader should see display names instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from bs4 import BeautifulSoup

__all__ = ["SUFFIXES", "VERDICT_TITLE", "audit", "chapter_summary", "internal_names", "is_remote", "remote_resources",
           "visible_text"]

#: Files searched for forbidden strings: the pages, their scripts and data, and the sources the site
#: offers for download (``_sources/*.ipynb``, ``*.md``), which carry a notebook's metadata and outputs.
SUFFIXES: tuple[str, ...] = (".html", ".js", ".json", ".txt", ".ipynb", ".md", ".css")

#: Titles of the admonitions that state a verdict on one of the paper's claims: ``Verdict: <outcome> (<where>)``
#: (:class:`ncutils.book.verdicts.Verdict`) and ``Claim holds in this run`` and its siblings
#: (:func:`ncutils.book.plotting.verdict`).
VERDICT_TITLE = re.compile(r"^(?:Verdict\b|Claim (?:holds|does not hold|cannot be judged) in this run\b)")

#: ``<link rel=...>`` kinds whose target the page needs to render.
RENDER_RELS = frozenset({"stylesheet", "preload", "modulepreload"})

_REMOTE = re.compile(r"^\s*(?:https?:)?//", re.IGNORECASE)
# @import url("x"), @import url(x), @import "x", @import 'x'
_IMPORT = re.compile(r"""@import\s+(?:url\(\s*)?["']?([^"')\s;]+)""", re.IGNORECASE)
# Long runs of base64 (images embedded in notebooks and data: URIs) are not searched for paths: any short
# string, "/tmp" included, turns up in a few megabytes of it by chance.
_BASE64 = re.compile(r"[A-Za-z0-9+/\\]{200,}={0,2}")


def is_remote(url: str | None) -> bool:
    """Whether ``url`` is fetched from the network: ``http://``, ``https://`` or protocol-relative ``//``."""
    return bool(url) and bool(_REMOTE.match(url))


def _css_imports(css: str) -> list[str]:
    """The URLs of the ``@import`` rules in a style sheet's text."""
    return _IMPORT.findall(css)


def remote_resources(page_html: str) -> list[str]:
    """What one page needs from the network to render, each as a short description.

    Parameters
    ----------
    page_html : str
        The page's HTML.

    Returns
    -------
    list of str
        ``'<script src=URL>'``, ``'<link rel=KIND href=URL>'`` (style sheets, preloads), ``'<img src=URL>'``
        or ``'@import URL'`` for each remote script, style sheet, preloaded resource, image and
        inline-style import, in document order. Links the page does not need (``preconnect``, ``icon``,
        ``<a href>``) are not listed.
    """
    soup = BeautifulSoup(page_html, "html.parser")
    found: list[str] = []
    for tag in soup.find_all(["script", "link", "style", "img"]):
        if tag.name in ("script", "img") and is_remote(tag.get("src")):
            found.append(f"<{tag.name} src={tag['src'].strip()}>")
        elif tag.name == "link":
            rel = tag.get("rel") or []
            rels = {r.lower() for r in (rel.split() if isinstance(rel, str) else rel)}
            needed = sorted(rels & RENDER_RELS)
            if needed and is_remote(tag.get("href")):
                found.append(f"<link rel={needed[-1]} href={tag['href'].strip()}>")
        elif tag.name == "style":
            found += [f"@import {url}" for url in _css_imports(tag.get_text()) if is_remote(url)]
    return found


def _whole_path(form: str) -> re.Pattern:
    """``form`` as a whole path: not inside a longer name (``/tmp`` matches neither ``/tmpfs`` nor ``/var/tmp``),
    but inside a ``file://`` URL."""
    return re.compile(r"(?:(?<=://)|(?<![\w./\\-]))" + re.escape(form) + r"(?![\w-])")


def _occurrences(text: str, needle: str) -> tuple[int, int]:
    """How often the path ``needle`` occurs in ``text`` (also JSON-escaped, ``/`` as ``\\/``), and the first line.

    Only whole paths count (see :func:`_whole_path`) and long base64 runs are skipped.
    """
    count, first = 0, None
    for form in dict.fromkeys([needle, needle.replace("/", "\\/")]):
        hits = [m.start() for m in _whole_path(form).finditer(text)]
        if hits:
            count += len(hits)
            line = text.count("\n", 0, hits[0]) + 1
            first = line if first is None else min(first, line)
    return count, first or 0


def audit(html_dir: Path, forbidden: list[str], *, suffixes: tuple[str, ...] = SUFFIXES,
          chapters: Iterable[str] | None = None) -> list[str]:
    """The problems of a built book: leaked machine paths, resources fetched from the network, and chapter
    pages without a figure or a verdict.

    Parameters
    ----------
    html_dir : Path
        The built site (``_build/html`` or a profile's ``_build/<profile>/html``).
    forbidden : list of str
        Paths that must appear nowhere in the site, typically the build machine's absolute paths
        (repository root, build folder, home folder, temporary folder). A path counts only whole: ``/tmp``
        is not found in ``/var/tmp`` or ``/tmpfs``, and long base64 runs (embedded images) are not
        searched. Empty strings are ignored.
    suffixes : tuple of str, optional
        File name endings searched for ``forbidden`` (default :data:`SUFFIXES`: ``.html``, ``.js``,
        ``.json``, ``.txt`` and the downloadable sources ``.ipynb``/``.md``, and ``.css``).
    chapters : iterable of str, optional
        The chapter pages, relative to ``html_dir`` (``book/01_nc_metrics.html``; the ``.html`` may be
        left out). Each must exist, show at least one figure (an ``<img>`` or an inline ``<svg>``) and
        state at least one verdict (see :func:`chapter_summary`). Default: no chapter is checked.

    Returns
    -------
    list of str
        One line per problem, naming the file relative to ``html_dir``; empty when the build is clean.

    Raises
    ------
    FileNotFoundError
        If ``html_dir`` is not a folder.
    """
    root = Path(html_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder: build the book first.")
    needles = [f for f in dict.fromkeys(forbidden) if f]
    ends = tuple(s.lower() for s in suffixes)
    problems: list[str] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        name = path.name.lower()
        is_page, is_css = name.endswith((".html", ".htm")), name.endswith(".css")
        if not (name.endswith(ends) or is_page or is_css):
            continue
        rel = path.relative_to(root).as_posix()
        text = path.read_bytes().decode("utf-8", errors="replace")
        if name.endswith(ends) and needles:
            searched = _BASE64.sub("", text)  # runs hold no newline: line numbers are kept
            for needle in needles:
                count, line = _occurrences(searched, needle)
                if count:
                    times = "once" if count == 1 else f"{count} times"
                    problems.append(f"{rel}: contains {needle!r} {times} (first on line {line})")
        if is_page:
            problems += [f"{rel}: needs the network to render: {r}" for r in remote_resources(text)]
        elif is_css:
            problems += [f"{rel}: needs the network to render: @import {url}"
                         for url in _css_imports(text) if is_remote(url)]
    for chapter in chapters or ():
        page = chapter if chapter.endswith((".html", ".htm")) else f"{chapter}.html"
        if not (root / page).is_file():
            problems.append(f"{page}: chapter page missing")
            continue
        summary = chapter_summary((root / page).read_bytes().decode("utf-8", errors="replace"))
        if not summary["images"] + summary["svgs"]:
            problems.append(f"{page}: chapter page shows no figure (no <img> or <svg> in the article)")
        if not summary["verdicts"]:
            problems.append(f"{page}: chapter page states no verdict (no admonition titled 'Verdict: ...' or "
                            "'Claim holds/does not hold/cannot be judged in this run')")
    return problems


def _title(admonition) -> str:
    title = admonition.find(class_="admonition-title")
    return " ".join(title.get_text(" ").split()) if title is not None else ""


def chapter_summary(page_html: str) -> dict:
    """What a chapter page shows: its images, figures and verdicts.

    Parameters
    ----------
    page_html : str
        One built chapter page.

    Returns
    -------
    dict
        ``images``: number of ``<img>`` tags (cell outputs and figures alike);
        ``svgs``: number of inline ``<svg>`` figures (outermost ``<svg>`` elements, outside the theme's
        header links and buttons);
        ``unique_images``: number of distinct image sources (a glued figure whose cell output is also
        shown counts once here, twice in ``images``);
        ``figures``: number of ``<figure>`` elements (glued figures, ``{figure}`` directives);
        ``figure_ids``: their ids, in page order;
        ``verdicts``: number of admonitions (class ``admonition``) titled "Verdict: ..." or "Claim holds /
        does not hold / cannot be judged in this run" (:data:`VERDICT_TITLE`);
        ``verdict_titles``: those titles, in page order;
        ``verdict_kinds``: a count of the verdicts' admonition kinds (``tip``, ``warning``, ``note``, ...).
    """
    soup = BeautifulSoup(page_html, "html.parser")
    article = soup.find("article") or soup.find("main") or soup  # the page body, not the theme's navigation
    images = article.find_all("img")
    figures = article.find_all("figure")
    svgs = [svg for svg in article.find_all("svg")
            if svg.find_parent("svg") is None and svg.find_parent(["a", "button"]) is None]
    verdicts = [a for a in article.find_all(class_="admonition") if VERDICT_TITLE.match(_title(a))]
    kinds = Counter(c for a in verdicts for c in a.get("class", []) if c != "admonition")
    return {
        "images": len(images),
        "svgs": len(svgs),
        "unique_images": len({img.get("src") or id(img) for img in images}),
        "figures": len(figures),
        "figure_ids": [f.get("id") for f in figures if f.get("id")],
        "verdicts": len(verdicts),
        "verdict_titles": [_title(a) for a in verdicts],
        "verdict_kinds": dict(kinds),
    }


#: Elements whose text is code or math, not prose: code blocks and inline code, a code cell's source, math
#: (raw TeX until MathJax typesets it), scripts and styles, and the theme's header links ("#").
NOT_PROSE = ("pre", "code", "kbd", "script", "style", "svg", ".cell_input", ".math", ".headerlink",
             "div.highlight")

#: A snake_case identifier: letters or digits joined by at least one underscore (``train_accuracy``, ``S_vc``,
#: ``ce_none``), not a bare ``_`` and not a number group such as ``1_000``.
SNAKE_CASE = re.compile(r"(?<![\w./-])[A-Za-z][A-Za-z0-9]*(?:_[A-Za-z0-9]+)+(?![\w/-])")
#: A unit key or other hash: eight or more hexadecimal digits mixing letters and digits (``3fa94c0b``).
HEX_KEY = re.compile(r"(?<![\w-])(?=[0-9a-f]*[a-f])(?=[0-9a-f]*[0-9])[0-9a-f]{8,}(?![\w-])")


def visible_text(page_html: str) -> str:
    """The text of a page's article a reader reads as prose, tables and captions: without code, math, scripts and
    the theme's navigation (see :data:`NOT_PROSE`)."""
    soup = BeautifulSoup(page_html, "html.parser")
    article = soup.find("article") or soup.find("main") or soup
    for el in article.select(", ".join(NOT_PROSE)):
        el.decompose()
    return " ".join(article.get_text(" ").split())


def internal_names(page_html: str, allowed: Iterable[str] = ()) -> list[str]:
    """The code's names in a page's visible text (:func:`visible_text`): snake_case identifiers
    (:data:`SNAKE_CASE`) and hexadecimal keys (:data:`HEX_KEY`), each once, in page order, except those in
    ``allowed`` (an explicit allow-list of names that are the reader's words, e.g. a dataset's official name)."""
    text, allow = visible_text(page_html), set(allowed)
    found = [m.group(0) for pattern in (SNAKE_CASE, HEX_KEY) for m in pattern.finditer(text)]
    order = {name: text.find(name) for name in found}
    return [name for name in sorted(dict.fromkeys(found), key=order.get) if name not in allow]
