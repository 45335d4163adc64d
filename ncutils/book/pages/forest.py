"""The claims page's forest plot: the check that decided each claim, its estimate and 95% interval on one
scale (the distance from the rule's threshold in the predicted direction, in units of δ), coloured by verdict."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from ncutils.book.plotting import COLUMN_WIDTH, DPI, column_png
from ncutils.book.verdicts import Check

__all__ = ["COLOURS", "finite", "forest_plot", "normalised"]

#: Each verdict's colour on the plot.
COLOURS = {"supported": "#1a7f37", "not supported": "#c62828", "inconclusive": "#b08800", "not run": "#6e7781"}


def finite(*xs) -> bool:
    """Whether every one of ``xs`` is a finite number."""
    return all(isinstance(x, (int, float)) and math.isfinite(x) for x in xs)


def normalised(check: Check) -> tuple[float, float, float]:
    """``(estimate, low, high)`` of a check on the forest plot's common scale: the distance from the threshold in
    the predicted direction, in units of δ (or of the threshold's size for an exact check)."""
    t, sign, e = check.test.threshold, check.test.sign, check.estimate
    unit = check.test.delta or (abs(t) if t else 1.0)
    f = [(x - t) * sign / unit if finite(x) else math.nan for x in (e.value, e.low, e.high)]
    lo, hi = sorted(f[1:]) if finite(*f[1:]) else (math.nan, math.nan)
    return f[0], lo, hi


def forest_plot(rows: Sequence[tuple[str, str, Check | None, bool]], path: Path) -> None:
    """One row per claim (``(label, outcome, headline check or None, regime not met)``), its estimate and 95%
    interval on a common scale, coloured by verdict, written as PNG to ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    lim = 4.0
    fig = Figure(figsize=(COLUMN_WIDTH, 0.3 * len(rows) + 1.5), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.axvspan(-lim - 1, 0, color="0.95", zorder=0)
    ax.axvline(0, color="0.3", lw=1, zorder=1)
    ax.axvline(1, color="0.5", lw=0.8, ls="--", zorder=1)
    for i, (_label, outcome, test, out_of_regime) in enumerate(rows):
        y = len(rows) - 1 - i
        colour = COLOURS.get(outcome, "#6e7781")
        if test is None:
            ax.text(0.05, y, "not run" if outcome == "not run" else
                    "no test computed" + (": not in the regime" if out_of_regime else ""),
                    va="center", fontsize=8, color=colour)
            continue
        v, lo, hi = normalised(test)
        if finite(lo, hi) and lo != hi:
            ax.plot([max(lo, -lim), min(hi, lim)], [y, y], color=colour, lw=2, solid_capstyle="butt")
            for end, x in ((lo, -lim), (hi, lim)):
                if (end < -lim and x < 0) or (end > lim and x > 0):
                    ax.annotate("", (x, y), (x - 0.35 * (1 if x > 0 else -1), y),
                                arrowprops={"arrowstyle": "->", "color": colour, "lw": 1.5})
        if finite(v):
            ax.plot([min(max(v, -lim), lim)], [y], "o", ms=6, color=colour if not out_of_regime else "white",
                    mec=colour, mew=1.5, zorder=3)
    ax.set(yticks=range(len(rows)), yticklabels=[r[0] for r in reversed(rows)], xlim=(-lim - 0.3, lim + 0.3),
           ylim=(-0.7, len(rows) - 0.3),
           xlabel="estimate − threshold, in units of δ (the smallest effect that matters);\n"
           "right = the predicted direction (checks without δ: in units of the threshold;\n"
           "bars: 95% intervals, arrows: off the scale)")
    ax.grid(axis="y", visible=False)
    ax.tick_params(axis="y", length=0)
    handles = [Line2D([], [], marker="o", ls="-", color=c, label=o) for o, c in COLOURS.items() if o != "not run"]
    handles.append(Line2D([], [], marker="o", ls="", color="0.3", mfc="white", label="not in the regime"))
    handles.append(Line2D([], [], ls="--", color="0.5", label="threshold + δ"))
    fig.legend(handles=handles, loc="outside upper center", ncols=3, frameon=False, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(column_png(fig))
