"""Figure style and the pieces every chapter uses to set its results beside the paper's.

Chapters end each experiment with :func:`verdict`: the paper's claim, whether it holds in this
run (decided by a test computed from the results, never typed in), and the evidence; and they
state the scale they ran at with :func:`scale_note`.
"""

from __future__ import annotations

from collections.abc import Mapping

import matplotlib.pyplot as plt
from IPython.display import Markdown

from ncutils.book.runner import dryrun

__all__ = ["figure", "glue_figure", "scale_note", "style"]


def style() -> None:
    """The book's matplotlib defaults."""
    plt.rcParams.update({
        "figure.dpi": 110, "savefig.dpi": 110, "font.size": 9, "axes.titlesize": 9,
        "axes.labelsize": 9, "legend.fontsize": 8, "axes.spines.top": False,
        "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    })


def figure(ncols: int = 1, nrows: int = 1, *, width: float = 3.2, height: float = 2.6, **kw):
    """``plt.subplots`` sized per panel; returns ``(fig, axes)`` with axes always a flat array."""
    fig, axes = plt.subplots(nrows, ncols, figsize=(width * ncols, height * nrows), squeeze=False, **kw)
    return fig, axes.ravel()


def glue_figure(name: str, fig, *, dpi: int = 110) -> None:
    """Glue ``fig`` under ``name`` as a PNG (for a ``{glue:figure}`` directive) and close it.

    The PNG is rendered here, so a bare :class:`~matplotlib.figure.Figure` made without pyplot (the
    diagrams of :mod:`ncutils.book.diagrams`) is glued as an image whatever the notebook's backend.
    """
    import io

    from IPython.display import Image
    from myst_nb import glue

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    glue(name, Image(buf.getvalue()), display=False)
    plt.close(fig)


def _short(value) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parameter_table(overrides: Mapping[str, tuple]) -> str:
    """A Markdown table of the parameters a run changed: name, value in this run, notebook default."""
    if not overrides:
        return "It ran with the notebook's default parameters."
    rows = "\n".join(f"| `{k}` | `{_short(v)}` | `{_short(d)}` |" for k, (v, d) in sorted(overrides.items()))
    return ("Parameters this run changed from the notebook's defaults:\n\n| parameter | this run | default |\n"
            f"|---|---|---|\n{rows}")


def scale_note(profile, details: str = "", *, dry_run: bool | str = False, overrides: Mapping[str, tuple] | None = None
               ) -> Markdown:
    """A note stating the scale a chapter ran at (``profile``: a :class:`ncutils.book.profiles.Profile`) and
    the parameters the run changed (``overrides``: name -> (value, default))."""
    text = f"This copy of the chapter was computed with {profile.scale}."
    if details:
        text += f" {details}"
    if profile.name != "paper":
        text += (" The paper's numbers are shown beside ours; they come from far larger models and "
                 "datasets, so compare trends, not values.")
    note = f":::{{note}}\n{text}\n\n{parameter_table(overrides or {})}\n:::"
    if dry_run:
        note = (":::{warning}\nThis is a **dry run**: every number on this page was computed on synthetic "
                "stand-ins for the datasets, with random weights and one or two optimisation steps per "
                "experiment, at the paper's architectures and image sizes. It shows that the chapter's experiments "
                "execute; the numbers themselves mean nothing."
                + (" " + dryrun.MINIMAL_SCALE if dry_run == "minimal" else "")
                + "\n:::\n\n" + note)
    return Markdown(note)
