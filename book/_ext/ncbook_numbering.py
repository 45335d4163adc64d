"""Sphinx extension of the book: the paper's figure numbers only, and the book's stylesheet and script.

Every figure of the book reproduces (or draws) a figure of the paper, and its caption names that figure
("Paper Fig. 5 analogue — ..."). Sphinx's own running numbers ("Fig. 8") would give each figure a second
number that matches nothing in the paper, so figure numbering is turned off here (Jupyter Book turns it
on by default). The stylesheet ``_static/ncbook.css`` beside this folder pads table cells, lets wide
tables scroll inside the page and keeps prose at a readable width; the script ``_static/ncbook.js``
left-aligns the columns of tables that hold words rather than numbers.

Nothing on a page runs on Binder (the notebooks are rerun in Jupyter from a clone), so the script configuring
thebe for Binder that ``sphinx_thebe`` (loaded by Jupyter Book) appends to every page is not written: without a
thebe repository it would point at the extension's sample repository.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "_static"


def _config_inited(app, config) -> None:
    config.numfig = False
    if STATIC.is_dir() and str(STATIC) not in config.html_static_path:
        config.html_static_path.append(str(STATIC))


def _drop_figure_numbers(app, env):
    """Forget the running figure numbers Sphinx assigned. Jupyter Book passes ``numfig=True`` as a command-line
    override, after the configuration is read, so the numbers are dropped here, after Sphinx's toctree
    collector has assigned them (this handler runs after it)."""
    app.config.numfig = False
    env.toc_fignumbers = {}
    return []


def _no_thebe_config(app) -> None:
    """Disconnect ``sphinx_thebe``'s handler that appends the Binder configuration script to every page."""
    for listener in list(app.events.listeners.get("doctree-resolved", ())):
        handler = listener.handler
        if getattr(handler, "__module__", "") == "sphinx_thebe" and handler.__name__ == "update_thebe_context":
            app.disconnect(listener.id)


def setup(app):
    app.connect("config-inited", _config_inited)
    app.connect("builder-inited", _no_thebe_config)
    app.connect("env-get-updated", _drop_figure_numbers, priority=900)
    app.add_css_file("ncbook.css")
    app.add_js_file("ncbook.js")
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
