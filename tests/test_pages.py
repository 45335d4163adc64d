"""The book as a reader sees it: one numbering per figure, legible figures, padded tables, no code on the
page, no raw Python values in outputs, and a claims page at a glance.

The page tests read one smoke build per test session: the one under ``_build/smoke`` when it is newer than
every source it is built from, else a fresh ``python -m ncutils.book --profile smoke`` (which itself reuses
the chapters whose notebook, parameters and code are unchanged).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pytest

matplotlib.use("Agg")

from bs4 import BeautifulSoup  # noqa: E402
from htmlcheck import internal_names  # noqa: E402

from ncutils.book import plotting  # noqa: E402
from ncutils.book.claims import CLAIMS  # noqa: E402
from ncutils.book.pages import claims as claims_page  # noqa: E402
from ncutils.book.pages import names  # noqa: E402
from ncutils.book.runner import chapters as book  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = book.chapters(ROOT)
BUILD = ROOT / "_build" / "smoke"
HTML = BUILD / "html" / "book"

#: Two figure numbers in a row, as when Sphinx's running number precedes the paper's ("Fig. 11 Fig. 7").
DOUBLE_NUMBER = re.compile(r"\bFigs?\.\s*\d+\s*[:.]?\s*(?:Paper\s+)?Figs?\.\s*\d+")
#: A printed Python dict ({'a': 1, ...}) or a bare float with many digits (0.8425559364958011).
RAW_DICT = re.compile(r"^\s*\{\s*['\"][^'\"]+['\"]\s*:", re.MULTILINE)
BARE_FLOAT = re.compile(r"^\s*-?\d+\.\d{7,}\s*$")


#: Names of the code a chapter page may show as words (an explicit list; display names are the rule).
ALLOWED_NAMES: frozenset[str] = frozenset()


def _sources() -> list[Path]:
    files = [ROOT / "_config.yml", ROOT / "_toc.yml", *(ROOT / "book").rglob("*"), *(ROOT / "ncutils").rglob("*.py")]
    return [f for f in files if f.is_file() and "__pycache__" not in f.parts and ".ipynb_checkpoints" not in f.parts]


@pytest.fixture(scope="module")
def site() -> Path:
    """The smoke book's HTML folder, built now unless a build newer than every source exists."""
    index = HTML / "intro.html"
    newest = max(f.stat().st_mtime for f in _sources())
    if not index.exists() or index.stat().st_mtime < newest:
        out = subprocess.run([sys.executable, "-m", "ncutils.book", "--profile", "smoke", "--quiet"], cwd=ROOT,
                             capture_output=True, text=True, timeout=1500)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return HTML


def _page(site: Path, name: str) -> BeautifulSoup:
    return BeautifulSoup((site / f"{name}.html").read_text(), "html.parser")


def _chapters(site: Path):
    return [(nb.stem, _page(site, nb.stem)) for nb in NOTEBOOKS]


# --------------------------------------------------------------------------- without a build
def test_the_overlap_check_finds_colliding_panel_titles():
    plotting.style()
    fig, axes = plotting.figure(3, layout=None)  # constrained layout would squeeze the panels apart
    axes[0].set_title("a long panel title that runs on and on and on")
    axes[1].set_title("and another one beside it")
    assert ("a long panel title that runs on and on and on", "and another one beside it") in \
        plotting.text_overlaps(fig)
    fig, axes = plotting.figure(2)
    for ax, title in zip(axes, ("NC1", "rank")):
        ax.loglog([1, 2, 5], [1, 3, 4])
        ax.set_title(title)
        plotting.log_major_only(ax)
    assert plotting.text_overlaps(fig) == []


def test_a_short_log_range_is_labelled_from_end_to_end():
    """NC1 from 0.9 to 6.5 (the ViT's layers in Fig. 14) reads 1, 2, 5, with no minor labels; a range of less than
    a factor 2 still gets two labels or more."""
    plotting.style()
    fig, axes = plotting.figure(2)
    axes[0].semilogy([1, 2, 3], [6.5, 2.0, 0.9])
    axes[1].semilogy([1, 2, 3], [1.3, 1.5, 1.9])
    for ax in axes:
        plotting.log_major_only(ax)
    fig.canvas.draw()
    labels = [[t.get_text() for t in ax.get_yticklabels() if t.get_text()] for ax in axes]
    assert labels[0] == ["1", "2", "5"] and len(labels[1]) >= 2
    assert not any(t.get_text() for ax in axes for t in ax.get_yminorticklabels())


def test_ticks_a_chapter_sets_on_a_log_axis_stay():
    """Fig. 11's sizes (3, 10, 30) are labelled as set, not replaced by the powers of ten alone."""
    plotting.style()
    fig, axes = plotting.figure(1)
    axes[0].plot([3, 10, 30], [1, 2, 3])
    axes[0].set(xscale="log", xticks=[3, 10, 30], xticklabels=["3", "10", "30"])
    plotting.log_major_only(axes[0])
    fig.canvas.draw()
    assert [t.get_text() for t in axes[0].get_xticklabels()] == ["3", "10", "30"]
    assert not any(t.get_text() for t in axes[0].get_xminorticklabels())


def _png_width(png: bytes) -> int:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(png[16:20], "big")


def test_every_figure_is_drawn_at_the_columns_width():
    from matplotlib.figure import Figure

    column_px = round(plotting.COLUMN_WIDTH * plotting.DPI)
    fig, axes = plotting.figure(5)
    assert len(axes) == 5 and fig.get_figwidth() == plotting.COLUMN_WIDTH
    assert len(fig.axes) == 5  # the sixth slot of the wrapped 2 x 3 grid is removed
    assert _png_width(plotting.column_png(fig)) == column_px
    narrow = Figure(figsize=(3.0, 2.0))  # a diagram narrower than the column: centred, not enlarged
    narrow.add_subplot().set_title("narrow")
    assert _png_width(plotting.column_png(narrow)) == column_px
    wide, ax = plt.subplots(figsize=(11.0, 2.0), layout="constrained")  # wider: its panels narrow, not its text
    ax.set_xlabel("a label", fontsize=9)
    assert _png_width(plotting.column_png(wide)) == column_px
    assert wide.get_figwidth() < plotting.COLUMN_WIDTH + 0.1 and ax.xaxis.label.get_fontsize() == 9
    too_long, ax = plt.subplots(layout="constrained")
    ax.set_xlabel("a label far longer than the column can hold " * 3)
    with pytest.raises(ValueError, match="wrap its longest label"):
        plotting.column_png(too_long)
    plt.close("all")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_code_cell_is_folded_or_removed(nb):
    cells = json.loads(nb.read_text())["cells"]
    shown = [i for i, c in enumerate(cells) if c["cell_type"] == "code"
             and not {"hide-input", "remove-input", "remove-cell"} & set(c.get("metadata", {}).get("tags", []))]
    assert not shown, f"{nb.stem}: code cells {shown} would show their source on the page"


def test_the_scale_note_names_the_settings_a_run_changed_from_its_profile():
    assert plotting.parameter_table({}) == ""
    from ncutils.book import settings

    changed = settings.changed(settings.resolve(3, "smoke", {"probe_epochs": 7}, root=ROOT))
    assert changed == {"probe_epochs": (7, 2)}
    table = plotting.parameter_table(changed, "smoke")
    assert "from the smoke profile's" in table and "| `probe_epochs` | `7` | `2` |" in table


def _cells(nb: Path) -> list[dict]:
    return json.loads(nb.read_text())["cells"]


def _verdict_record(key: str, outcome: str, regime_met: bool | None = True) -> dict:
    """A chapter record holding one verdict, as :meth:`ncutils.book.chapter.Chapter.verdict` writes it."""
    from dataclasses import asdict

    return {"meta": {"profile": "cpu"}, "results": {"verdicts": [
        {"claim": asdict(CLAIMS[key]), "outcome": outcome, "reason": "", "parts": [], "regime_met": regime_met}]}}


def test_a_claim_reads_as_one_plain_sentence():
    assert claims_page.gist("Less collapse transfers better: larger NC1 goes with accuracy.") == \
        "Less collapse transfers better."
    assert claims_page.gist("Few-shot learning too ('a similar phenomenon also happens').") == "Few-shot learning too."
    assert all(claims_page.gist(c.text).endswith(".") and ": " not in claims_page.gist(c.text) for c in CLAIMS.values())


def test_the_verdict_summary_gives_every_claim_a_badge_a_sentence_and_a_link():
    chapters = [("03_pretraining", "3. Pre-training", _verdict_record("fig4_threshold", "inconclusive", False)),
                ("04_downstream", "4. Downstream", None)]
    text = claims_page.verdict_summary(chapters)
    items = [line for line in text.splitlines() if line.startswith("- ")]
    assert text.startswith(":::{container} verdict-summary") and len(items) == len(CLAIMS)
    fig4 = next(line for line in items if "claim-fig4_threshold" in line)
    assert 'class="verdict verdict-inconclusive"' in fig4 and "not in the regime" in fig4
    assert claims_page.gist(CLAIMS["fig4_threshold"].text) in fig4 and "{ref}`Chapter 3: Section 3.1, Fig. 4" in fig4
    table2 = next(line for line in items if claims_page.gist(CLAIMS["table2_fewshot"].text) in line)
    assert "verdict-not-run" in table2 and "](04_downstream))" in table2  # no record: the chapter, not a label
    assert "1 inconclusive" in text and f"{len(CLAIMS) - 1} not run" in text and "profile **cpu**" in text


def test_a_chapter_opens_with_its_verdicts_linking_to_its_claims():
    record = _verdict_record("table1", "supported")
    text = claims_page.findings(record["results"]["verdicts"])
    assert "1 supported" in text and 'verdict-supported' in text and "<claim-table1>`" in text
    assert "tests no claim" in claims_page.findings([])


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_verdicts_come_first_and_every_claim_has_its_label(nb):
    cells = _cells(nb)
    first = "".join(cells[0]["source"])
    assert f"```{{glue:md}} ch{int(nb.stem[:2])}_findings" in first, f"{nb.stem}: the verdicts do not open the chapter"
    assert "|---" not in first, f"{nb.stem}: a table comes before the verdicts"
    for i, cell in enumerate(cells):
        m = re.fullmatch(r'ch\.claim\("(\w+)"\)\s*', "".join(cell["source"])) if cell["cell_type"] == "code" else None
        if m:
            before = "".join(cells[i - 1]["source"]).strip()
            assert before == f"({claims_page.claim_label(m.group(1))})=", \
                f"{nb.stem}: the claim {m.group(1)!r} has no label right before it (the verdicts link to it)"


def test_display_names():
    assert names.network("mlp-w256-d8") == "MLP (8 layers, width 256)"
    assert names.network("resnet18-w4 (seed 1)") == "ResNet18 (width 4, seed 1)"
    assert names.network("mobilenet_v2") == "MobileNetV2" and names.network("seresnet12") == "SE-ResNet12"
    assert names.network("MSE, seed 2") == "MSE, seed 2"  # not an architecture id: unchanged
    assert names.method("scl") == "SCL FT" and names.method("new") == "new"


def test_the_stylesheet_fixes_the_layout():
    css = " ".join((ROOT / "book" / "_static" / "ncbook.css").read_text().split())
    assert re.search(r"\.admonition > p\.admonition-title \{ max-width: none; \}", css), \
        "an admonition's title bar is capped by the prose width"
    assert ".bd-header .navbar-persistent--container" in css, "the header repeats the sidebar's search box"
    assert re.search(r"\.cell_output table th, \.cell_output table td \{ white-space: normal;", css), \
        "table cells do not wrap: wide tables run past the column"
    assert re.search(r"\.bd-article figure img \{ width: 100%;", css), \
        "figures are not all shown at the column's width: their type sizes differ"
    caption = re.search(r"figure figcaption p \{([^}]*)\}", css)
    assert caption and "color: #1f2328" in caption.group(1) and "font-weight: 400" in caption.group(1), \
        "captions are light: the theme draws them muted and thin"


def test_the_book_links_to_its_repository_and_launches_nothing():
    import yaml

    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"].startswith("https://") and config["html"]["use_repository_button"]
    assert not config.get("launch_buttons", {}).get("binderhub_url")
    assert "sphinx.ext.viewcode" in config["sphinx"]["extra_extensions"]


# --------------------------------------------------------------------------- the smoke book
def test_no_figure_carries_two_numbers(site):
    for name, page in [*_chapters(site), ("claims", _page(site, "claims"))]:
        assert not page.select("span.caption-number"), f"{name}: Sphinx numbers a figure"
        for el in page.select("figcaption, h1, h2, h3, h4"):
            text = " ".join(el.get_text(" ").split())
            assert not DOUBLE_NUMBER.search(text), f"{name}: two figure numbers in {text[:120]!r}"
        for cap in page.select("figcaption") if name != "claims" else []:  # the claims page's own plot aside
            text = " ".join(cap.get_text(" ").split())
            assert re.match(r"^(?:(?:NCTI )?paper (?:Figs?\.|Table)|No figure in)", text, re.IGNORECASE), \
                f"{name}: a caption that does not name the paper's figure: {text[:100]!r}"


def test_no_figure_has_overlapping_texts(site):
    """Every glued figure went through plotting.glue_figure, which measures its texts after drawing."""
    for nb in NOTEBOOKS:
        executed = json.loads((BUILD / "src" / "book" / nb.name).read_text())
        for cell in executed["cells"]:
            for out in cell.get("outputs", []):
                meta, data = out.get("metadata", {}), out.get("data", {})
                name = meta.get("scrapbook", {}).get("name")
                if not name or not any("image/png" in k for k in data):
                    continue
                png = meta.get("image/png", {})
                assert "ncbook_overlaps" in png, f"{nb.stem}: figure {name} was not glued by plotting.glue_figure"
                assert not png["ncbook_overlaps"], f"{nb.stem}: figure {name}: texts overlap: {png['ncbook_overlaps']}"


#: A figure's alt text says what it shows: a sentence, not a file name.
FILE_LIKE = re.compile(r"(?:/|\.png\b|^[0-9a-f]{16,})")


def test_every_figure_is_column_wide_with_alt_text_that_describes_it(site):
    column_px = round(plotting.COLUMN_WIDTH * plotting.DPI)
    for name, page in [*_chapters(site), ("claims", _page(site, "claims"))]:
        images = page.select("figure img")
        assert images or name == "claims", f"{name}: no figure"
        for img in images:
            path = (site / img["src"]).resolve()
            width = _png_width(path.read_bytes())
            assert width == column_px, f"{name}: {img['src']} is {width} px wide, not the column's {column_px}"
            alt = " ".join(img.get("alt", "").split())
            assert len(alt.split()) >= 8 and not FILE_LIKE.search(alt), \
                f"{name}: figure {img['src']} has alt text {alt[:60]!r}: say what the figure shows (`:alt:`)"


#: A number format written in a chapter: an f-string or str.format spec ({x:.2f}, "{:.3g}", {v:g}), a pandas
#: rounding or display precision, or a glued number's format in the text ({glue:text}`key:.2f`).
FORMAT_SPEC = re.compile(r"""\{[^{}\n]*:[<>^=+\- #0]*\d*[,_]?(?:\.\d+)?[fFgGeE%]\}|\.round\(|float_format|precision=|"""
                         r"""\{glue:text\}`[^`]*:[^`]*`|na_rep=["']""")


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_numbers_are_formatted_by_quantity_only(nb):
    """One format per quantity: a chapter formats a number through ncutils.book.pages.formats (accuracy, collapse,
    share, correlation, ...), never with a format of its own."""
    found = [line.strip() for cell in json.loads(nb.read_text())["cells"]
             for line in "".join(cell["source"]).splitlines() if FORMAT_SPEC.search(line)]
    assert not found, f"{nb.stem}: number formats of its own (use ncutils.book.pages.formats): {found[:5]}"


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_figure_directive_has_alt_text(nb):
    for cell in json.loads(nb.read_text())["cells"]:
        text = "".join(cell["source"])
        for directive in re.findall(r"```\{glue:figure\}[^\n]*\n(?::[^\n]*\n)*", text):
            assert re.search(r"^:alt: \S.{40,}$", directive, re.MULTILINE), \
                f"{nb.stem}: {directive.splitlines()[0]} has no `:alt:` saying what the figure shows"


def test_tables_are_padded(site):
    css = (site.parent / "_static" / "ncbook.css").read_text()
    assert re.search(r"table td[^{]*\{[^}]*padding:\s*0\.\d+rem", css.replace("\n", " ")), "no cell padding rule"
    for name, page in _chapters(site):
        assert any("ncbook.css" in (link.get("href") or "") for link in page.select("link[rel=stylesheet]")), name
        for style in page.select("style"):  # a pandas Styler may not take the padding away
            assert not re.search(r"padding:\s*0(?:px)?\s*[;}]", style.get_text()), f"{name}: a table without padding"


def test_no_code_input_is_visible(site):
    for name, page in _chapters(site):
        for cell_input in page.select("div.cell_input"):
            assert cell_input.find_parent("details") is not None, \
                f"{name}: a code cell shows its source: {cell_input.get_text()[:80]!r}"


def test_no_raw_python_values_in_outputs(site):
    for name, page in _chapters(site):
        for out in page.select("div.cell_output pre, div.cell_output code"):
            text = out.get_text()
            assert not RAW_DICT.search(text), f"{name}: a raw dict on the page: {text[:80]!r}"
            assert not BARE_FLOAT.search(text), f"{name}: a bare float on the page: {text[:80]!r}"


def test_the_claims_page_reads_at_a_glance(site):
    page = _page(site, "claims")
    assert page.select_one("figure img[src*=claims_forest]"), "no forest plot"
    assert (site / "claims_forest.png").exists() or list((site.parent / "_images").glob("claims_forest*.png"))
    badges = page.select("span.verdict")
    assert badges and all(any(c.startswith("verdict-") for c in b["class"]) for b in badges)
    text = page.get_text(" ")
    assert "direction" in text and "not in the regime" in text
    assert not re.search(r"(\S+) \[\1, \1\]", text), "a degenerate interval printed as an interval"
    for nb in NOTEBOOKS:  # every chapter's claims link to the chapter
        assert page.select_one(f'a[href^="{nb.stem}.html"]'), nb.stem


def test_every_claim_has_a_short_name():
    from ncutils.book.claims import CLAIMS

    assert all(claim.short for claim in CLAIMS.values())


def _before(element, article, tags: list[str]) -> list:
    """The elements named ``tags`` that come before ``element`` inside ``article`` (the theme's sidebars aside)."""
    return [e for e in element.find_all_previous(tags) if article in e.parents]


def test_the_book_opens_with_every_verdict(site):
    page = _page(site, "intro")
    box = page.select_one("article div.verdict-summary")
    assert box is not None, "the intro does not open with the verdicts"
    assert not _before(box, page.select_one("article"), ["h2", "table"]), "the verdicts come after a section"
    items = box.select("li")
    assert len(items) == len(CLAIMS)
    for li in items:
        assert li.select_one("span.verdict"), li.get_text()[:80]
        link = li.select_one("a[href]")
        assert link is not None and re.match(r"0\d_\w+\.html#claim-", link["href"]), li.get_text()[:80]


def test_every_chapter_opens_with_its_verdicts(site):
    for name, page in _chapters(site):
        article = page.select_one("article")
        box = article.select_one("div.verdict-summary")
        assert box is not None, f"{name}: no verdicts at the top"
        assert not _before(box, article, ["table", "figure", "h2"]), f"{name}: a table or figure before the verdicts"
        for link in box.select("a[href^='#claim-']"):
            assert article.select_one(f"[id='{link['href'][1:]}']"), f"{name}: {link['href']} links to nothing"


def test_no_internal_names_on_the_chapter_pages(site):
    for name, page in _chapters(site):
        found = internal_names(str(page), ALLOWED_NAMES)
        assert not found, f"{name}: the code's names reach the page text (use display names): {found[:10]}"


def test_no_page_points_at_a_sample_binder_repository(site):
    for name, page in [*_chapters(site), ("intro", _page(site, "intro"))]:
        assert "binder-examples" not in str(page), f"{name}: thebe's configuration names its sample repository"
        assert page.select_one("a[href^='https://github.com/']"), f"{name}: no link to the book's repository"
