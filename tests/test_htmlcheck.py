"""The HTML audit of a built book, on small hand-written sites (no book build)."""

from pathlib import Path

import pytest
from htmlcheck import VERDICT_TITLE, audit, chapter_summary, internal_names, is_remote, remote_resources, visible_text

from ncutils.book.claims import CLAIMS
from ncutils.book.verdicts import Check, PartResult, Test, verdict
from ncutils.stats import Estimate

CLEAN_PAGE = """<!DOCTYPE html><html><head>
<link rel="stylesheet" type="text/css" href="_static/pygments.css?v=1" />
<link href="_static/styles/theme.css" rel="stylesheet" />
<link rel="preconnect" href="https://fonts.example.org" />
<script src="_static/doctools.js"></script>
<script defer="defer" src="_static/mathjax/tex-chtml.js"></script>
<script>window.MathJax = {"options": {}}; var u = "https://example.org/not-a-src.js";</script>
<style>@import url("_static/local.css"); body {color: black}</style>
</head><body><a href="https://example.org">a link is fine</a></body></html>"""

REMOTE_PAGE = """<html><head>
<script defer src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js"></script>
<script src="//code.example.com/jquery.js"></script>
<link rel="stylesheet" href="http://example.org/theme.css">
<link rel="alternate stylesheet" href="HTTPS://example.org/alt.css">
<style>
  @import url(https://fonts.googleapis.com/css?family=Lato);
  @import "//example.org/b.css";
</style>
</head><body></body></html>"""


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.mark.parametrize("url, remote", [
    ("https://cdn.x/a.js", True), ("http://x/a.css", True), ("//x/a.js", True), ("  HTTPS://x", True),
    ("_static/a.js", False), ("../_static/a.css", False), ("/_static/a.js", False), ("", False), (None, False),
    ("file:///tmp/a.js", False),
])
def test_is_remote(url, remote):
    assert is_remote(url) is remote


def test_remote_resources_of_a_clean_page_are_none():
    assert remote_resources(CLEAN_PAGE) == []


def test_remote_resources_names_scripts_stylesheets_and_imports():
    found = remote_resources(REMOTE_PAGE)
    assert found == [
        "<script src=https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js>",
        "<script src=//code.example.com/jquery.js>",
        "<link rel=stylesheet href=http://example.org/theme.css>",
        "<link rel=stylesheet href=HTTPS://example.org/alt.css>",
        "@import https://fonts.googleapis.com/css?family=Lato",
        "@import //example.org/b.css",
    ]


def test_audit_of_a_clean_site_is_empty(tmp_path):
    site = write(tmp_path, {"index.html": CLEAN_PAGE, "_static/doctools.js": "var x = 1;",
                            "searchindex.js": 'Search.setIndex({"docnames": ["index"]})',
                            "_static/theme.css": "@import url('fonts.css'); p {margin: 0}",
                            "_images/fig.png": "/home/builder/repo"})  # binary outputs are not searched
    assert audit(site, ["/home/builder/repo", "/home/builder", ""]) == []


def test_audit_finds_forbidden_strings_and_names_the_file(tmp_path):
    site = write(tmp_path, {
        "index.html": CLEAN_PAGE,
        "book/ch1.html": "<html><body>\n<p>saved to /home/builder/repo/_build/x.png</p>\n</body></html>",
        "_static/data.json": '{"path": "\\/home\\/builder\\/repo\\/data"}',
        "notes.txt": "one /home/builder/repo\ntwo /home/builder/repo\n",
        "_sources/book/ch1.ipynb": '{"metadata": {"papermill": {"input_path": "/home/builder/repo/book/ch1.ipynb"}}}',
        "_static/app.js": "var home = '/home/builder/.cache';",
    })
    problems = audit(site, ["/home/builder/repo", "/home/builder"])
    text = "\n".join(problems)
    assert "book/ch1.html: contains '/home/builder/repo' once (first on line 2)" in problems
    assert "notes.txt: contains '/home/builder/repo' 2 times (first on line 1)" in problems
    assert "_static/data.json: contains '/home/builder/repo' once" in text  # JSON-escaped slashes
    assert "_sources/book/ch1.ipynb: contains '/home/builder/repo'" in text
    assert "_static/app.js: contains '/home/builder' once" in text
    assert "_static/app.js: contains '/home/builder/repo'" not in text
    assert not any(p.startswith("index.html") for p in problems)


def test_audit_finds_remote_resources_in_pages_and_css(tmp_path):
    site = write(tmp_path, {"index.html": CLEAN_PAGE, "book/ch2.html": REMOTE_PAGE,
                            "_static/fonts.css": '@import url("https://fonts.example.org/lato.css");'})
    problems = audit(site, [])
    assert len(problems) == 7
    assert all(p.startswith(("book/ch2.html: needs the network", "_static/fonts.css: needs the network"))
               for p in problems)
    assert "book/ch2.html: needs the network to render: <script src=https://cdn.jsdelivr.net/npm/mathjax@3/es5/" \
           "tex-mml-chtml.js>" in problems


def test_audit_suffixes_can_be_narrowed(tmp_path):
    site = write(tmp_path, {"_sources/ch.ipynb": "/home/builder/repo", "page.txt": "/home/builder/repo"})
    assert len(audit(site, ["/home/builder/repo"])) == 2
    assert audit(site, ["/home/builder/repo"], suffixes=(".txt",)) == [
        "page.txt: contains '/home/builder/repo' once (first on line 1)"]


def test_audit_needs_a_built_site(tmp_path):
    with pytest.raises(FileNotFoundError):
        audit(tmp_path / "missing", [])


CHAPTER = """<html><body>
<div class="bd-sidebar"><img src="_static/logo.png"></div>
<article class="bd-article">
<div class="cell_output docutils container"><img alt="a" src="../_images/aaa.png" /></div>
<figure class="align-default" id="fig-ch5-fig10"><img src="../_images/aaa.png" />
<figcaption><p>Fig. 10</p></figcaption></figure>
<figure class="align-default" id="fig-ch5-fig11"><img src="../_images/bbb.png" /></figure>
<div class="tip admonition"><p class="admonition-title">Claim holds in this run</p><p>...</p></div>
<div class="warning admonition"><p class="admonition-title">Claim does not hold in this run</p></div>
<div class="note admonition"><p class="admonition-title">Verdict: cannot be judged</p></div>
<div class="note admonition"><p class="admonition-title">Note</p><p>Claims are ...</p></div>
<div class="admonition-title">Claim outside an admonition</div>
<div class="tip"><p class="admonition-title">Claim without the admonition class</p></div>
</article></body></html>"""


def test_chapter_summary_counts_figures_and_verdicts():
    s = chapter_summary(CHAPTER)
    assert s["images"] == 3  # the sidebar logo is outside the article
    assert s["unique_images"] == 2
    assert s["figures"] == 2 and s["figure_ids"] == ["fig-ch5-fig10", "fig-ch5-fig11"]
    assert s["verdicts"] == 3
    assert s["verdict_titles"] == ["Claim holds in this run", "Claim does not hold in this run",
                                   "Verdict: cannot be judged"]
    assert s["verdict_kinds"] == {"tip": 1, "warning": 1, "note": 1}


def test_chapter_summary_of_an_empty_page():
    s = chapter_summary("<html><body><p>intro</p></body></html>")
    assert (s["images"], s["figures"], s["verdicts"]) == (0, 0, 0)


def test_remote_resources_names_preloads_and_images_but_not_other_links():
    page = """<html><head>
<link rel="preload" as="font" href="https://fonts.example.org/lato.woff2">
<link rel="modulepreload" href="_static/app.js">
<link rel="icon" href="https://example.org/favicon.ico"><link rel="preconnect" href="https://x.org">
</head><body><img src="https://example.org/fig.png"><img src="../_images/a.png"></body></html>"""
    assert remote_resources(page) == ["<link rel=preload href=https://fonts.example.org/lato.woff2>",
                                      "<img src=https://example.org/fig.png>"]


def test_audit_matches_whole_paths_only_and_skips_base64(tmp_path):
    blob = "iVBORw0KGgo" + "A" * 300 + "/tmp/home/builder" + "B" * 300 + "=="  # an embedded image
    site = write(tmp_path, {
        "_sources/book/ch.ipynb": f'{{"data": {{"image/png": "{blob}"}}, "text": "/var/tmp/x /tmpfs ../tmp/a"}}',
        "book/ch.html": "<p>/home/builderer /home/builder-2</p>",
        "book/url.html": '<p><a href="file:///tmp/report.html">x</a></p>\n<p>(/tmp)</p>',
    })
    assert audit(site, ["/tmp", "/home/builder"]) == [
        "book/url.html: contains '/tmp' 2 times (first on line 1)"]


def test_verdict_titles_are_those_the_book_writes():
    def title(markdown: str) -> str:
        first = markdown.splitlines()[0]
        assert first.startswith(":::{admonition} ")
        return first.removeprefix(":::{admonition} ")

    claim = CLAIMS["table1"]
    check = Check(Test("d", +1, 0.0, "better", 1.0), "d", Estimate(0.5, 0.1, 0.9, 10, "t"))
    v = verdict(claim, [PartResult("p", "all", "supported", "1 of 1", (check,))])
    assert VERDICT_TITLE.match(title(v._repr_markdown_()))
    from ncutils.book.rules import RULES

    assert not VERDICT_TITLE.match(title(RULES["table1"].show().data))  # the claim stated before the numbers
    assert not VERDICT_TITLE.match("Claims at a glance") and not VERDICT_TITLE.match("Note")


def page(article: str) -> str:
    return f'<html><body><nav><img src="_static/logo.png"></nav><article>{article}</article></body></html>'


VERDICT = '<div class="tip admonition"><p class="admonition-title">Verdict: supported (Table 1)</p></div>'
CLAIM = '<div class="seealso admonition"><p class="admonition-title">Claim (Section 3.1, Table 1)</p></div>'


def test_chapter_summary_counts_inline_svg_figures():
    s = chapter_summary(page('<div class="cell_output"><svg><g><svg></svg></g></svg></div>'
                             '<a class="headerlink"><svg></svg></a>' + CLAIM))
    assert (s["images"], s["svgs"], s["verdicts"]) == (0, 1, 0)  # a stated claim is not a verdict


def test_audit_checks_every_chapter_page(tmp_path):
    site = write(tmp_path, {
        "book/01_ok.html": page('<img src="../_images/a.png">' + VERDICT),
        "book/02_svg.html": page('<svg width="10"></svg>' + VERDICT.replace("Verdict: supported (Table 1)",
                                                                           "Claim holds in this run")),
        "book/03_no_figure.html": page(VERDICT),
        "book/04_no_verdict.html": page('<img src="../_images/b.png">' + CLAIM),
        "index.html": page("<p>no figure, no verdict: not a chapter</p>"),
    })
    problems = audit(site, [], chapters=["book/01_ok.html", "book/02_svg", "book/03_no_figure.html",
                                         "book/04_no_verdict.html", "book/05_missing.html"])
    assert problems == [
        "book/03_no_figure.html: chapter page shows no figure (no <img> or <svg> in the article)",
        "book/04_no_verdict.html: chapter page states no verdict (no admonition titled 'Verdict: ...' or "
        "'Claim holds/does not hold/cannot be judged in this run')",
        "book/05_missing.html: chapter page missing",
    ]
    assert audit(site, []) == []  # no chapters named: none checked


NAMED_PAGE = """<html><body><nav>train_accuracy in the navigation is not the article</nav><article>
<h1>Chapter<a class="headerlink" href="#x">#</a></h1>
<p>The S_seli term of resnet18 and unit 3fa94c0b12d4 (key 3fa94c0b12d4 again); 2026, deadbeef and 1_000 are words.</p>
<table><caption>train_accuracy by model</caption><tr><td>0.5</td></tr></table>
<pre>probe_epochs = 3</pre><p>Set <code>probe_epochs</code>; see book/03_pretraining.ipynb; math
<span class="math notranslate">\\(S_{vc}\\)</span>.</p>
<div class="cell_input"><div class="highlight">x_y = 1</div></div>
</article></body></html>"""


def test_visible_text_leaves_out_code_math_and_navigation():
    text = visible_text(NAMED_PAGE)
    assert "The S_seli term" in text and "train_accuracy by model" in text
    assert not any(s in text for s in ("probe_epochs", "x_y", "S_{vc}", "navigation", "#"))


def test_internal_names_finds_snake_case_and_unit_keys_once_each_in_page_order():
    assert internal_names(NAMED_PAGE) == ["S_seli", "3fa94c0b12d4", "train_accuracy"]
    assert internal_names(NAMED_PAGE, allowed={"S_seli", "train_accuracy"}) == ["3fa94c0b12d4"]
    clean = "<article><p>ResNet18 (width 8), S<sub>seli</sub>, Fashion-MNIST, τ = 0.50</p></article>"
    assert internal_names(clean) == []
