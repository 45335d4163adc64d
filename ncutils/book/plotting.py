"""Figure style and the pieces every chapter uses to set its results beside the paper's.

Chapters end each experiment with :func:`verdict`: the paper's claim, whether it holds in this
run (decided by a test computed from the results, never typed in), and the evidence; and they
state the scale they ran at with :func:`scale_note`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import matplotlib.pyplot as plt
from IPython.display import Markdown

from ncutils.book.engine import dryrun

__all__ = ["COLUMN_WIDTH", "DPI", "column_png", "figure", "figure_legend", "glue_figure", "integer_ticks",
           "legend_outside", "log_major_only", "scale_note", "style", "text_overlaps"]

#: Resolution of every figure of the book (the PNG's pixels per inch).
DPI = 200
#: The width, in inches, of every figure of the book. The page scales each PNG to the text column (756 px at a
#: 1400-px window), so one width for all means one scale: 9-pt text shows at about 13 px on every figure.
COLUMN_WIDTH = 7.2
#: Most panels side by side; more wrap onto further rows.
MAX_COLUMNS = 3


def style() -> None:
    """The book's matplotlib defaults: one style for every figure (dpi 200, constrained layout, 9-pt text)."""
    plt.rcParams.update({
        "figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight",
        "font.size": 9, "axes.titlesize": 9, "axes.labelsize": 9, "xtick.labelsize": 9, "ytick.labelsize": 9,
        "legend.fontsize": 9, "figure.titlesize": 9, "axes.spines.top": False,
        "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3, "legend.frameon": False,
    })


def figure(ncols: int = 1, nrows: int = 1, *, height: float = 2.6, **kw):
    """``plt.subplots`` at the column's width, in constrained layout; returns ``(fig, axes)`` with axes a flat
    array.

    Every figure of the book is :data:`COLUMN_WIDTH` wide: its panels share the column, so that the page shows
    every figure at one scale and its text at one size (``height`` is a panel's, in inches). A single row of
    more than :data:`MAX_COLUMNS` panels wraps onto further rows (the axes returned are still the
    ``ncols * nrows`` panels, in order).
    """
    n = ncols * nrows
    if nrows == 1 and ncols > MAX_COLUMNS:
        ncols, nrows = MAX_COLUMNS, -(-ncols // MAX_COLUMNS)
    kw.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(COLUMN_WIDTH, height * nrows), squeeze=False, **kw)
    axes = axes.ravel()
    for ax in axes[n:]:
        fig.delaxes(ax)
    return fig, axes[:n]


def log_major_only(ax, axis: str = "both") -> None:
    """On the log-scaled axes of ``ax`` (``"x"``, ``"y"`` or ``"both"``), label the major ticks only: the powers of
    ten, or within two decades 1, 2 and 5 times them (the minor labels that matplotlib adds to a short log range
    collide, and leave the low end of the range unlabelled). An axis whose ticks the chapter
    set itself (``set_xticks``: the sizes of Fig. 11, say) keeps them, without minor labels."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    for name in ("x", "y") if axis == "both" else (axis,):
        a = ax.xaxis if name == "x" else ax.yaxis
        if a.get_scale() != "log":
            continue
        if isinstance(a.get_major_locator(), FixedLocator):
            a.set_minor_formatter(NullFormatter())
            continue
        lo, hi = sorted(ax.get_xlim() if name == "x" else ax.get_ylim())
        a.set_minor_formatter(NullFormatter())
        if lo > 0 and hi / lo < 100:  # up to two decades: 1, 2 and 5 times the powers of ten, labelled plainly
            ticks = [m * 10.0 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
                     for m in (1, 2, 5) if lo <= m * 10.0 ** e <= hi]
            # fewer than two of them in a short range: a few evenly spaced ticks
            a.set_major_locator(FixedLocator(ticks) if len(ticks) >= 2 else MaxNLocator(nbins=3, min_n_ticks=2))
            a.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:.3g}"))
        else:
            a.set_major_locator(LogLocator(base=10, numticks=6))


def legend_outside(ax, **kw) -> None:
    """The legend of ``ax`` to the right of its panel, off the data (constrained layout makes room for it)."""
    kw = {"loc": "upper left", "bbox_to_anchor": (1.02, 1.0), "borderaxespad": 0.0, **kw}
    ax.legend(**kw)


def figure_legend(fig, axes=None, *, ncols: int | None = None, **kw) -> None:
    """One legend for the whole figure, below the panels: the distinct labels of ``axes`` (default: all)."""
    handles: dict = {}
    for ax in (fig.axes if axes is None else axes):
        for h, label in zip(*ax.get_legend_handles_labels()):
            if not label.startswith("_"):
                handles.setdefault(label, h)
    if handles:
        fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                   ncols=ncols or min(len(handles), 4), **kw)


def integer_ticks(ax, axis: str = "x") -> None:
    """Ticks at whole numbers only on ``axis`` of ``ax`` (counts: epochs, layers, samples)."""
    from matplotlib.ticker import MaxNLocator

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))


def _texts(fig) -> list:
    """The visible, non-empty texts of ``fig`` that must not overlap: titles, axis labels, the tick labels
    matplotlib draws, annotations and the figure's own texts."""
    from matplotlib.text import Text

    out = list(fig.texts)
    if getattr(fig, "_suptitle", None) is not None:
        out.append(fig._suptitle)
    for ax in fig.axes:
        if not ax.get_visible():
            continue
        out += [ax.title, ax._left_title, ax._right_title]
        for axis in (ax.xaxis, ax.yaxis):
            if not axis.get_visible():  # e.g. the shared axis of a twin
                continue
            out.append(axis.label)
            try:
                ticks = axis._update_ticks()  # the ticks in view: the only ones drawn
            except AttributeError:  # pragma: no cover - older matplotlib
                ticks = axis.get_major_ticks()
            for tick in ticks:
                if tick.get_visible():
                    out += [tick.label1, tick.label2]
        out += [c for c in ax.get_children() if isinstance(c, Text)]
    return [t for t in dict.fromkeys(out) if t.get_visible() and t.get_text().strip()]


def _with_canvas(fig) -> None:
    """Give a bare :class:`~matplotlib.figure.Figure` (the diagrams, made without pyplot) an Agg canvas to draw on."""
    if not hasattr(fig.canvas, "get_renderer"):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(fig)


def text_overlaps(fig, *, tolerance: float = 1.0) -> list[tuple[str, str]]:
    """The pairs of texts of ``fig`` (titles, axis and tick labels, annotations, whole legends) whose boxes
    overlap after drawing by more than ``tolerance`` pixels each way: ``[(text, text), ...]``; empty when
    every text can be read."""
    _with_canvas(fig)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = []
    for t in _texts(fig):
        try:
            bb = t.get_window_extent(renderer)
        except (RuntimeError, ValueError):
            continue
        boxes.append((t.get_text(), bb))
    for ax in fig.axes:
        leg = ax.get_legend()
        if leg is not None and leg.get_visible():
            boxes.append(("(legend)", leg.get_window_extent(renderer)))
    boxes = [(n, bb) for n, bb in boxes if bb.width > 0 and bb.height > 0 and all(map(math.isfinite, bb.extents))]
    out = []
    for i, (a, ba) in enumerate(boxes):
        for b, bb in boxes[i + 1:]:
            w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
            h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
            if w > tolerance and h > tolerance:
                out.append((a, b))
    return out


def column_png(fig, *, dpi: int = DPI, pad: float = 0.05) -> bytes:
    """``fig`` as a PNG exactly :data:`COLUMN_WIDTH` inches wide (``COLUMN_WIDTH * dpi`` pixels).

    The page scales every figure to the column, so a PNG of any other width would show its text larger or
    smaller than the others'. A figure in constrained layout is resized until its drawn content (its tight box
    plus ``pad`` inches) fills the column: its panels grow or shrink, its text keeps its size. Any other figure
    (a diagram drawn in inches) is centred in the column's width. Raises :class:`ValueError` when a figure cannot
    fit (a label longer than the column).
    """
    import io

    from matplotlib.layout_engine import ConstrainedLayoutEngine
    from matplotlib.transforms import Bbox

    _with_canvas(fig)
    # a figure in constrained layout is resized until its content fills the column (its panels grow or shrink,
    # never its text); a figure drawn in inches (the diagrams) is only centred
    resizable = isinstance(fig.get_layout_engine(), ConstrainedLayoutEngine)
    for attempt in range(8):
        fig.canvas.draw()
        box = fig.get_tightbbox(fig.canvas.get_renderer())
        width = box.width + 2 * pad
        gap = COLUMN_WIDTH - width
        if (gap >= -1e-6 and (gap < 0.05 or not resizable)) or attempt == 7:
            break
        fig_w, fig_h = fig.get_size_inches()
        if fig_w + gap < 1.0:  # its text alone is wider than the column
            break
        fig.set_size_inches(fig_w + gap - (0.02 if gap < 0 else 0), fig_h)
    if width > COLUMN_WIDTH + 1e-6:
        raise ValueError(f"a figure {width:.2f} in wide at its narrowest does not fit the column "
                         f"({COLUMN_WIDTH} in): wrap its longest label or put fewer panels in a row")
    x0 = box.x0 - pad - (COLUMN_WIDTH - width) / 2
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches=Bbox.from_bounds(x0, box.y0 - pad, COLUMN_WIDTH,
                                                                          box.height + 2 * pad))
    return buf.getvalue()


def glue_figure(name: str, fig, *, dpi: int = DPI) -> None:
    """Glue ``fig`` under ``name`` as a PNG at the column's width (:func:`column_png`) for a ``{glue:figure}``
    directive, and close it.

    The PNG is rendered here, so a bare :class:`~matplotlib.figure.Figure` made without pyplot (the
    diagrams of :mod:`ncutils.book.diagrams`) is glued as an image whatever the notebook's backend. The texts
    that overlap (:func:`text_overlaps`) are recorded in the image's metadata (``ncbook_overlaps``), where
    the book's tests look for them.
    """
    from IPython.display import Image
    from myst_nb import glue

    for ax in fig.axes:
        log_major_only(ax)
    png = column_png(fig, dpi=dpi)
    overlaps = text_overlaps(fig)
    glue(name, Image(png, metadata={"ncbook_overlaps": [list(p) for p in overlaps]}), display=False)
    plt.close(fig)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parameter_table(overrides: Mapping[str, tuple], profile: str = "the") -> str:
    """A Markdown table of the settings a run changed from its profile's: name, value in this run, the profile's
    value (:func:`ncutils.book.settings.changed`)."""
    if not overrides:
        return ""
    rows = "\n".join(f"| `{k}` | `{_short(v)}` | `{_short(d)}` |" for k, (v, d) in sorted(overrides.items()))
    return (f"Settings this run changed from the {profile} profile's:\n\n| setting | this run | {profile} profile |\n"
            f"|---|---|---|\n{rows}")


def scale_note(profile, details: str = "", *, dry_run: bool | str = False, overrides: Mapping[str, tuple] | None = None
               ) -> Markdown:
    """A note stating the scale a chapter ran at (``profile``: a :class:`ncutils.book.profiles.Profile`) and
    the settings the run changed from the profile's (``overrides``: name -> (value, the profile's value))."""
    text = f"This copy of the chapter was computed with {profile.scale}."
    if details:
        text += f" {details}"
    if profile.name != "paper":
        text += (" The paper's numbers are shown beside ours; they come from far larger models and "
                 "datasets, so compare trends, not values.")
    table = parameter_table(overrides or {}, profile.name)
    note = f":::{{note}}\n{text}" + (f"\n\n{table}" if table else "") + "\n:::"
    if dry_run:
        note = (":::{warning}\nThis is a **dry run**: every number on this page was computed on synthetic "
                "stand-ins for the datasets, with random weights and one or two optimisation steps per "
                "experiment, at the paper's architectures and image sizes. It shows that the chapter's experiments "
                "execute; the numbers themselves mean nothing."
                + (" " + dryrun.MINIMAL_SCALE if dry_run == "minimal" else "")
                + "\n:::\n\n" + note)
    return Markdown(note)
