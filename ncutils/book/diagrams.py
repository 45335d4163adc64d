"""The paper's explanatory diagrams, drawn by the book with matplotlib (no image is copied from the paper).

===========================  =============================================================================
function                     the paper's figure
===========================  =============================================================================
:func:`neural_collapse`      Fig. 1: features of three classes before collapse and at the terminal phase
:func:`layerwise_transfer`   Fig. 7: the network up to block *i* as a frozen feature extractor + linear probe
:func:`finetuning_methods`   Fig. 8: Layer FT and SCL FT (one trainable block; skip connection)
:func:`resnet_blocks`        Fig. 12: the fine-tuning units of a ResNet, read from the real network
===========================  =============================================================================

Each returns a :class:`matplotlib.figure.Figure` about 7 inches wide, drawn in the book's style
(:func:`ncutils.book.plotting.style`, applied inside an ``rc_context`` so that the global settings are
left as they were). Colours mean the same in every diagram: blue = frozen pre-trained parameters,
orange = parameters trained on the downstream data, white = operations without parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Circle, FancyBboxPatch, Patch, Polygon

from ncutils.book.plotting import style

__all__ = ["finetuning_methods", "layerwise_transfer", "neural_collapse", "resnet_blocks"]

WIDTH = 7.0  # inches

#: kind -> (face colour, edge colour, text colour, line style)
KINDS: dict[str, tuple[str, str, str, str]] = {
    "frozen": ("#dbe7f4", "#4e79a7", "#1f2d3d", "-"),
    "train": ("#fdd3a8", "#d9661f", "#3d2210", "-"),
    "op": ("#ffffff", "#7f7f7f", "#333333", "-"),
    "data": ("#eeeeee", "#9a9a9a", "#333333", "-"),
    "unused": ("#f7f7f7", "#bdbdbd", "#9a9a9a", "--"),
}
ARROW = "#555555"
LABELS = {"frozen": "frozen (pre-trained)", "train": "trained on the downstream data",
          "op": "no parameters", "unused": "not used",
          "data": "input"}


@dataclass(frozen=True)
class _Box:
    cx: float
    cy: float
    w: float
    h: float

    @property
    def left(self) -> tuple[float, float]:
        return self.cx - self.w / 2, self.cy

    @property
    def right(self) -> tuple[float, float]:
        return self.cx + self.w / 2, self.cy

    @property
    def top(self) -> tuple[float, float]:
        return self.cx, self.cy + self.h / 2

    @property
    def bottom(self) -> tuple[float, float]:
        return self.cx, self.cy - self.h / 2


def _canvas(fig: Figure) -> Axes:
    """An axes over the whole figure whose data coordinates are inches from the lower-left corner."""
    w, h = fig.get_size_inches()
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, w)
    ax.set_ylim(0, h)
    ax.set_axis_off()
    return ax


def _box(ax: Axes, cx: float, cy: float, w: float, h: float, text: str = "", kind: str = "frozen", *,
         fontsize: float = 8, weight: str = "normal", lw: float = 1.0, ls: str | None = None,
         edgecolor: str | None = None, sub: str = "", subsize: float = 6.5, subfamily: str | None = None) -> _Box:
    """A rounded box centred at ``(cx, cy)`` with a label (and smaller text ``sub`` under it)."""
    face, edge, colour, style_ = KINDS[kind]
    ax.add_patch(FancyBboxPatch((cx - w / 2, cy - h / 2), w, h, boxstyle="round,pad=0,rounding_size=0.05",
                                fc=face, ec=edgecolor or edge, lw=lw, ls=ls or style_, zorder=2))
    if sub:
        lines = sub.count("\n") + 1
        ax.text(cx, cy + h * (0.16 if lines == 1 else 0.24), text, ha="center", va="center", fontsize=fontsize,
                color=colour, weight=weight, zorder=3)
        ax.text(cx, cy - h * (0.22 if lines == 1 else 0.16), sub, ha="center", va="center", fontsize=subsize,
                color=colour, family=subfamily, linespacing=1.1, zorder=3)
    elif text:
        ax.text(cx, cy, text, ha="center", va="center", fontsize=fontsize, color=colour, weight=weight,
                zorder=3)
    return _Box(cx, cy, w, h)


def _arrow(ax: Axes, start: tuple[float, float], end: tuple[float, float], *, color: str = ARROW,
           lw: float = 1.0, ls: str = "-", head: bool = True) -> None:
    ax.annotate("", xy=end, xytext=start, zorder=1,
                arrowprops={"arrowstyle": "-|>" if head else "-", "color": color, "lw": lw, "ls": ls,
                            "shrinkA": 0, "shrinkB": 0, "mutation_scale": 9})


def _path(ax: Axes, points: list[tuple[float, float]], *, color: str = ARROW, lw: float = 1.0,
          ls: str = "-") -> None:
    """A polyline through ``points`` ending in an arrow head."""
    xs, ys = zip(*points[:-1])
    ax.plot(xs, ys, color=color, lw=lw, ls=ls, solid_capstyle="butt", zorder=1)
    _arrow(ax, points[-2], points[-1], color=color, lw=lw, ls=ls)


def _bracket(ax: Axes, x0: float, x1: float, y: float, text: str, *, color: str = "#444444",
             fontsize: float = 7.5, tick: float = 0.07) -> None:
    """A horizontal bracket above ``[x0, x1]`` at height ``y`` with a label above it."""
    ax.plot([x0, x0, x1, x1], [y - tick, y, y, y - tick], color=color, lw=0.9, zorder=1)
    ax.text((x0 + x1) / 2, y + 0.06, text, ha="center", va="bottom", fontsize=fontsize, color=color)


def _legend(ax: Axes, kinds: list[str], *, y: float = 0.0, labels: dict[str, str] | None = None,
            extra: list | None = None, ncol: int | None = None) -> None:
    names = {**LABELS, **(labels or {})}
    handles = [Patch(fc=KINDS[k][0], ec=KINDS[k][1], ls=KINDS[k][3], label=names[k]) for k in kinds]
    handles += extra or []
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, y), bbox_transform=ax.transAxes,
              ncol=ncol or len(handles), frameon=False, fontsize=7.5, handlelength=1.6, columnspacing=1.4,
              handletextpad=0.5, borderaxespad=0.2)


# --------------------------------------------------------------------------------------------- Fig. 1
def _etf(k: int = 3) -> np.ndarray:
    """Unit vectors of a ``k``-simplex ETF in the plane (``k = 3``: an equilateral triangle), one per row."""
    angles = np.pi / 2 + 2 * np.pi * np.arange(k) / k
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def neural_collapse(seed: int = 0) -> Figure:
    """Fig. 1 of the paper: what neural collapse looks like.

    The feature map :math:`\\phi_\\theta: \\mathbb{R}^D \\to \\mathbb{R}^d` (the output of the
    penultimate layer) sends the samples of three classes into the plane. Early in training the features
    are spread and the classes overlap; at the terminal phase of training each class has collapsed to
    its mean (within-class variability :math:`\\to 0`, :math:`\\mathcal{NC}_1 \\to 0`) and the class
    means, centred at the global mean, form a simplex equiangular tight frame (for three classes an
    equilateral triangle). Dots are training samples, crosses test samples, which collapse less.

    Parameters
    ----------
    seed : int, optional
        Seed of the random points (the figure is the same for the same seed).

    Returns
    -------
    matplotlib.figure.Figure
    """
    rng = np.random.default_rng(seed)
    colours = ["#4e79a7", "#f28e2b", "#59a14f"]
    etf = _etf(3)
    with plt.rc_context():
        style()
        height, bottom = 3.45, 0.95  # inches; the panels stand on `bottom`
        fig = Figure(figsize=(WIDTH, height))
        ax = _canvas(fig)

        # the feature map, left
        x_img = _box(ax, 0.78, 2.8, 1.25, 0.46, "input $x\\in\\mathbb{R}^D$", "data", fontsize=8.5)
        net = Polygon([(0.33, 2.33), (1.23, 2.33), (1.03, 1.83), (0.53, 1.83)], closed=True,
                      fc=KINDS["frozen"][0], ec=KINDS["frozen"][1], lw=1.0, zorder=2)
        ax.add_patch(net)
        ax.text(0.78, 2.09, "$\\phi_{\\theta}(\\cdot)$", ha="center", va="center", fontsize=10, zorder=3)
        feat = _box(ax, 0.78, 1.36, 1.25, 0.46, "feature $h\\in\\mathbb{R}^d$", "op", fontsize=8.5)
        _arrow(ax, x_img.bottom, (0.78, 2.33))
        _arrow(ax, (0.78, 1.83), feat.top)
        ax.text(0.78, 1.0, "$\\phi_\\theta:\\mathbb{R}^D\\to\\mathbb{R}^d$:\nthe network up to its\n"
                "penultimate layer", ha="center", va="top", fontsize=7, color="#444444", linespacing=1.4)

        panels = [
            ("early in training", "classes spread and overlap", 1.15, 0.62, 0.62),
            ("terminal phase of training", "$\\mathcal{NC}$: classes collapse to their means,\n"
             "means form a simplex ETF", 2.0, 0.07, 0.2),
        ]
        lefts = [1.95, 4.75]
        size = 2.15
        for (title, note, radius, s_train, s_test), left in zip(panels, lefts):
            pax = fig.add_axes((left / WIDTH, bottom / height, size / WIDTH, size / height))
            means = radius * etf
            if s_train > 0.3:  # before collapse: means pulled together and off the ETF
                means = means + rng.normal(0, 0.35, means.shape)
            for k, (mean, colour) in enumerate(zip(means, colours)):
                train = mean + rng.normal(0, s_train, (22, 2))
                test = mean + rng.normal(0, s_test, (7, 2))
                pax.scatter(*train.T, s=9, color=colour, lw=0, zorder=3)
                pax.scatter(*test.T, s=22, marker="x", color=colour, lw=1.0, zorder=3)
                if s_train < 0.3:
                    pax.plot([0, mean[0]], [0, mean[1]], color="#888888", lw=0.8, zorder=1)
                    pax.add_patch(Circle(mean, 0.34, fc="none", ec=colour, lw=1.0, ls="--", zorder=2))
                    pax.text(*(mean * 1.42), f"$\\bar h_{k + 1}$", ha="center", va="center", fontsize=8.5,
                             color=colour)
            if s_train < 0.3:
                tri = np.vstack([means, means[:1]])
                pax.plot(*tri.T, color="#bbbbbb", lw=0.8, ls=":", zorder=1)
                pax.scatter([0], [0], marker="*", s=70, color="black", zorder=4)
                pax.text(0.18, 0.3, "$h_G$", fontsize=8.5, ha="left", va="center")
            lim = 3.0
            pax.set_xlim(-lim, lim)
            pax.set_ylim(-lim, lim)
            pax.set_aspect("equal")
            pax.set_xticks([])
            pax.set_yticks([])
            pax.grid(False)
            for side in ("top", "right"):
                pax.spines[side].set_visible(True)
            pax.spines[:].set_color("#bbbbbb")
            pax.set_title(title, fontsize=9, weight="bold", pad=4)
            ax.text(left + size / 2, bottom - 0.08, note, ha="center", va="top", fontsize=7.5, color="#333333",
                    linespacing=1.35)

        _arrow(ax, feat.right, (lefts[0] - 0.08, feat.cy))
        mid = bottom + size / 2
        _arrow(ax, (lefts[0] + size + 0.1, mid), (lefts[1] - 0.1, mid), lw=1.4)
        ax.text((lefts[0] + size + lefts[1]) / 2, mid + 0.1, "training", ha="center", va="bottom", fontsize=7.5)

        handles = [
            Line2D([], [], ls="none", marker="o", ms=4, color="#555555", label="training sample"),
            Line2D([], [], ls="none", marker="x", ms=5, color="#555555", label="test sample"),
            Line2D([], [], ls="none", marker="*", ms=8, color="black", label="global mean $h_G$"),
            Line2D([], [], color="#888888", lw=0.8, label="class mean $\\bar h_k - h_G$"),
        ]
        ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=4, frameon=False,
                  fontsize=7.5, handlelength=1.4, columnspacing=1.5)
    return fig


# --------------------------------------------------------------------------------------------- Fig. 7
def layerwise_transfer() -> Figure:
    """Fig. 7 of the paper: layer-wise transfer learning.

    The pre-trained network is a chain of blocks. For block *i*, the network up to and including
    block *i* is a frozen feature extractor: its output is average-pooled to one value per channel
    and fed to a new linear classifier trained on the downstream data; the later blocks and the
    source classifier are not used. Repeating this for every *i* gives the layer-wise transfer
    accuracy and :math:`\\mathcal{NC}_1` of Fig. 9.

    Returns
    -------
    matplotlib.figure.Figure
    """
    with plt.rc_context():
        style()
        fig = Figure(figsize=(WIDTH, 2.75))
        ax = _canvas(fig)
        y, h, w, gap = 1.85, 0.5, 0.66, 0.14
        items = [("input\n$x$", "data"), ("Block 1", "frozen"), ("Block 2", "frozen"), ("$\\cdots$", None),
                 ("Block $i$", "frozen"), ("Block $i{+}1$", "unused"), ("$\\cdots$", None),
                 ("Block $L$", "unused"), ("source\nclassifier", "unused")]
        widths = [w if kind else 0.34 for _, kind in items]
        x = 0.22
        boxes = []
        for (text, kind), bw in zip(items, widths):
            if kind is None:
                ax.text(x + bw / 2, y, text, ha="center", va="center", fontsize=10, color="#555555")
                boxes.append(_Box(x + bw / 2, y, bw, h))
            else:
                boxes.append(_box(ax, x + bw / 2, y, bw, h, text, kind, fontsize=8))
            x += bw + gap
        for a, b in zip(boxes, boxes[1:]):
            unused = b.cx > boxes[4].cx
            _arrow(ax, a.right, b.left, color="#bbbbbb" if unused else ARROW, ls="--" if unused else "-")
        top = y + h / 2 + 0.12
        _bracket(ax, boxes[1].left[0], boxes[4].right[0], top,
                 "pre-trained network up to block $i$: a frozen feature extractor")
        _bracket(ax, boxes[5].left[0], boxes[8].right[0], top, "not used", color="#9a9a9a")

        bi = boxes[4]
        yb = 0.8
        pool = _box(ax, bi.cx, yb, 1.3, 0.44, "global average pool", "op", fontsize=7.5,
                    sub="one value per channel")
        _arrow(ax, bi.bottom, pool.top)
        ax.text(bi.cx + 0.07, (bi.bottom[1] + pool.top[1]) / 2, "$h_i$: output of block $i$",
                ha="left", va="center", fontsize=7, color="#444444")
        clf = _box(ax, pool.right[0] + 0.62 + 0.62, yb, 1.24, 0.44, "new linear\nclassifier", "train",
                   fontsize=7.5)
        _arrow(ax, pool.right, clf.left)
        ax.text((pool.right[0] + clf.left[0]) / 2, yb + 0.05, "$\\mathcal{NC}_1$ here", ha="center",
                va="bottom", fontsize=6.5, color="#444444")
        _arrow(ax, clf.right, (clf.right[0] + 0.28, yb))
        ax.text(clf.right[0] + 0.33, yb, "downstream\nprediction $\\hat y$", ha="left", va="center",
                fontsize=7, linespacing=1.3)
        ax.text(pool.left[0] - 0.2, yb, "repeated for every\nblock $i = 1, \\dots, L$", ha="right", va="center",
                fontsize=7.5, color="#444444", style="italic", linespacing=1.3)
        _legend(ax, ["frozen", "train", "op", "unused"], y=0.0)
    return fig


# --------------------------------------------------------------------------------------------- Fig. 8
def _ft_panel(ax: Axes, x0: float, *, skip: bool) -> None:
    """One panel of Fig. 8 with its left edge at ``x0`` (inches)."""
    cx, w, h = x0 + 1.05, 1.45, 0.36
    rows = {"input": 0.7, "b1": 1.25, "d1": 1.67, "bk": 2.09, "d2": 2.51, "bl": 2.93, "pool": 3.48,
            "add": 3.95, "clf": 4.37, "out": 4.8}
    inp = _box(ax, cx, rows["input"], w, h, "input $x$", "data")
    b1 = _box(ax, cx, rows["b1"], w, h, "Block 1", "frozen")
    bk = _box(ax, cx, rows["bk"], w, h, "Block $k$", "train", weight="bold", lw=1.6)
    bl = _box(ax, cx, rows["bl"], w, h, "Block $L$", "frozen")
    for key in ("d1", "d2"):
        ax.text(cx, rows[key], "$\\vdots$", ha="center", va="center", fontsize=10, color="#555555")
    pool = _box(ax, cx, rows["pool"], w, h, "global average pool", "op", fontsize=7.5)
    clf = _box(ax, cx, rows["clf"], w, h, "new linear classifier", "train", fontsize=7.5)
    _arrow(ax, inp.top, b1.bottom)
    _arrow(ax, b1.top, (cx, rows["d1"] - 0.12))
    _arrow(ax, (cx, rows["d1"] + 0.14), bk.bottom)
    _arrow(ax, bk.top, (cx, rows["d2"] - 0.12))
    _arrow(ax, (cx, rows["d2"] + 0.14), bl.bottom)
    _arrow(ax, bl.top, pool.bottom)
    _arrow(ax, clf.top, (cx, rows["out"]))
    ax.text(cx, rows["out"] + 0.03, "prediction $\\hat y$", ha="center", va="bottom", fontsize=8)
    feature = "penultimate feature $h\\in\\mathbb{R}^d$"
    if not skip:
        _arrow(ax, pool.top, clf.bottom)
        ax.text(cx + 0.08, rows["add"], feature, ha="left", va="center", fontsize=7, color="#444444")
        ax.text(cx + w / 2 + 0.2, bk.cy, "only Block $k$ and the\nclassifier are trained;\n"
                "every other block is\nfrozen", ha="left", va="center", fontsize=7, color="#444444",
                linespacing=1.35)
        return
    r = 0.13
    plus = Circle((cx, rows["add"]), r, fc="white", ec=ARROW, lw=1.0, zorder=2)
    ax.add_patch(plus)
    ax.text(cx, rows["add"], "+", ha="center", va="center", fontsize=10, zorder=3)
    _arrow(ax, pool.top, (cx, rows["add"] - r))
    _arrow(ax, (cx, rows["add"] + r), clf.bottom)
    ax.text(cx - 0.08, (pool.top[1] + rows["add"] - r) / 2, feature, ha="right", va="center", fontsize=7,
            color="#444444")
    sx, sw, sh = x0 + 2.7, 1.2, 0.5
    spool = _box(ax, sx, bk.cy, sw, sh, "average pool", "op", fontsize=7.5, sub="one value per channel")
    pad = _box(ax, sx, (bl.cy + pool.cy) / 2, sw, sh, "zero-pad", "op", fontsize=7.5,
               sub="$C_k \\to d$ channels")
    _arrow(ax, bk.right, spool.left, color="#d9661f", lw=1.3)
    _arrow(ax, spool.top, pad.bottom, color="#d9661f", lw=1.3)
    _path(ax, [pad.top, (sx, rows["add"]), (cx + r, rows["add"])], color="#d9661f", lw=1.3)
    ax.text(sx + 0.07, rows["add"] + 0.08, "skip connection", ha="center", va="bottom", fontsize=7,
            color="#d9661f")


def finetuning_methods() -> Figure:
    """Fig. 8 of the paper: Layer FT (left) and SCL FT (right).

    *Layer FT* fine-tunes one intermediate block (Block *k*) and trains a new linear classifier; every
    other block stays frozen. *SCL FT* does the same and adds a skip connection from the fine-tuned
    block to the penultimate feature: the block's output is average-pooled to one value per channel,
    zero-padded to the penultimate width *d*, and added to the penultimate feature before the
    classifier (Appendix B, "SCL FT for different models").

    Returns
    -------
    matplotlib.figure.Figure
    """
    with plt.rc_context():
        style()
        fig = Figure(figsize=(WIDTH, 5.75))
        ax = _canvas(fig)
        for x0, skip, title, sub in [(0.0, False, "Layer FT", "fine-tune one block, train a new classifier"),
                                     (3.55, True, "SCL FT", "Layer FT + a skip connection to the\n"
                                      "penultimate feature")]:
            _ft_panel(ax, x0 + 0.05, skip=skip)
            ax.text(x0 + 1.75, 5.65, title, ha="center", va="top", fontsize=10, weight="bold")
            ax.text(x0 + 1.75, 5.4, sub, ha="center", va="top", fontsize=7.5, color="#444444")
        ax.plot([3.55, 3.55], [0.4, 5.6], color="#dddddd", lw=0.8)
        _legend(ax, ["frozen", "train", "op", "data"], y=0.0)
    return fig


# -------------------------------------------------------------------------------------------- Fig. 12
@dataclass(frozen=True)
class _Unit:
    number: int  # the paper's Block number (1-based)
    path: str  # module path, e.g. "layer3.0"
    stage: str  # "layer3"
    c_in: int
    c_out: int
    stride: int


def _resnet(arch: str):
    import torch
    import torchvision

    ctor = getattr(torchvision.models, arch, None)
    if ctor is None or not arch.startswith("resnet"):
        raise ValueError(f"{arch!r} is not a torchvision ResNet (e.g. 'resnet18', 'resnet50').")
    with torch.device("meta"):  # the structure only: no memory, no initialisation
        return ctor(weights=None)


def _units(net) -> list[_Unit]:
    """The paper's fine-tuning units of a torchvision ResNet, from :func:`ncutils.models.blocks`."""
    from torch import nn

    from ncutils.models import blocks

    units = []
    for number, (path, module) in enumerate(blocks(net), start=1):
        convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
        stride = max(c.stride[0] for c in convs)  # 2 where the block halves the feature map
        units.append(_Unit(number, path, path.split(".")[0], convs[0].in_channels, convs[-1].out_channels, stride))
    return units


def _paper_blocks(arch: str) -> tuple[set[int], set[int]]:
    """Blocks fine-tuned in Table 3, and the blocks compared in Tables 5-7 (Appendix C), for ``arch``."""
    from ncutils.book import published

    table3 = {cell["block"] for by_method in published.table(3)["cells"].get(arch, {}).values()
              for cell in by_method.values() if cell.get("block")}
    compared: set[int] = set()
    for number in (5, 6, 7):
        t = published.table(number)
        if t.get("arch") == arch:
            compared |= {int(k) for k in t["percent"] if k.isdigit()}
    return table3, compared


def resnet_blocks(arch: str = "resnet18", *, image_size: int = 224) -> Figure:
    """Fig. 12 of the paper: the fine-tuning units of a ResNet.

    The stem, the four stages ``layer1``..``layer4`` with their residual blocks numbered as the paper
    does (ResNet18: Blocks 1-8, ``layer3[0]`` = Block 5; ResNet50: Blocks 1-16, ``layer3[0]`` = Block 8,
    ``layer4[0]`` = Block 14), the channel widths and feature-map sizes, the global average pool and
    the classifier. The structure is read from the torchvision network through
    :func:`ncutils.models.blocks`, not typed in. The block that Table 3 fine-tunes (Block 5 of ResNet18,
    Block 8 of ResNet50) is filled orange; the other blocks compared in Tables 5-6 (the first block of
    each width) have a dashed orange outline.

    Parameters
    ----------
    arch : str, optional
        A torchvision ResNet: ``"resnet18"`` (default), ``"resnet34"``, ``"resnet50"``, ...
    image_size : int, optional
        Input side used for the feature-map sizes shown (224, the ImageNet size, by default).

    Returns
    -------
    matplotlib.figure.Figure

    Raises
    ------
    ValueError
        If ``arch`` is not a torchvision ResNet, or has more than 8 blocks in a stage (ResNet101, 152).
    """
    net = _resnet(arch)
    units = _units(net)
    table3, compared = _paper_blocks(arch)
    stages = list(dict.fromkeys(u.stage for u in units))
    n_max = max(sum(u.stage == s for u in units) for s in stages)
    if n_max > 8:
        raise ValueError(f"{arch} has {n_max} blocks in one stage; the diagram fits at most 8 per stage "
                         "(ResNet18, 34 and 50).")
    d = units[-1].c_out

    pitch, bh = 0.86, 0.56
    n_rows = len(stages) + 2
    height = 0.42 + n_rows * pitch + 0.15  # legend, rows, top margin
    x_blocks, x_end, gap = 1.32, WIDTH - 0.2, 0.16
    bw = min(1.45, (x_end - x_blocks - (n_max - 1) * gap) / n_max)

    with plt.rc_context():
        style()
        fig = Figure(figsize=(WIDTH, height))
        ax = _canvas(fig)

        def row_y(r: int) -> float:
            return height - 0.15 - pitch * (r + 0.5)

        def stage_row(r: int, name: str, detail: str) -> float:
            yc = row_y(r)
            ax.add_patch(FancyBboxPatch((0.08, yc - pitch / 2 + 0.08), WIDTH - 0.16, pitch - 0.16,
                                        boxstyle="round,pad=0,rounding_size=0.06", fc="#f6f6f6", ec="none",
                                        zorder=0))
            ax.text(0.2, yc + 0.09, name, ha="left", va="center", fontsize=8.5, weight="bold",
                    family="monospace")
            ax.text(0.2, yc - 0.13, detail, ha="left", va="center", fontsize=7, color="#444444")
            return yc

        def slot(i: int) -> float:
            return x_blocks + bw / 2 + i * (bw + gap)

        # stem
        conv, mp = net.conv1, net.maxpool
        size = image_size // conv.stride[0] // (mp.stride if isinstance(mp.stride, int) else mp.stride[0])
        # (the feature-map sizes assume the stride-2 convolutions and pools divide the size exactly)
        yc = stage_row(0, "stem", f"{conv.in_channels}→{conv.out_channels} ch · {size}×{size}")
        first = _box(ax, slot(0), yc, bw, bh, "input", "data", sub=f"{conv.in_channels}×{image_size}×{image_size}")
        k, s = conv.kernel_size[0], conv.stride[0]
        mk = mp.kernel_size if isinstance(mp.kernel_size, int) else mp.kernel_size[0]
        ms = mp.stride if isinstance(mp.stride, int) else mp.stride[0]
        stem_w = min(3.6, x_end - (first.right[0] + 0.3))
        stem = _box(ax, first.right[0] + 0.3 + stem_w / 2, yc, stem_w, bh, "stem", "frozen",
                    sub=f"conv {k}×{k}, {conv.out_channels}, /{s} · BN · ReLU · max-pool {mk}×{mk}, /{ms}")
        _arrow(ax, first.right, stem.left)
        prev_last = stem

        for r, name in enumerate(stages, start=1):
            members = [u for u in units if u.stage == name]
            for u in members:
                size //= u.stride
            yc = stage_row(r, name, f"{members[-1].c_out} ch · {size}×{size}")
            boxes = []
            for i, u in enumerate(members):
                change = []
                if u.c_in != u.c_out:
                    change.append(f"{u.c_in}→{u.c_out}")
                if u.stride > 1:
                    change.append(f"/{u.stride}")
                sub = u.path + (f"\n{', '.join(change)}" if change else "")
                kind = "train" if u.number in table3 else "frozen"
                dashed = u.number in compared and u.number not in table3
                b = _box(ax, slot(i), yc, bw, bh, f"Block {u.number}", kind, weight="bold", fontsize=8,
                         lw=1.6 if (kind == "train" or dashed) else 1.0, ls="--" if dashed else None,
                         edgecolor=KINDS["train"][1] if dashed else None, sub=sub, subsize=6,
                         subfamily="monospace")
                boxes.append(b)
            for a, b in zip(boxes, boxes[1:]):
                _arrow(ax, a.right, b.left)
            y_mid = (prev_last.bottom[1] + boxes[0].top[1]) / 2
            _path(ax, [prev_last.bottom, (prev_last.cx, y_mid), (boxes[0].cx, y_mid), boxes[0].top])
            prev_last = boxes[-1]

        # head
        yc = stage_row(len(stages) + 1, "head", f"feature $h\\in\\mathbb{{R}}^{{{d}}}$")
        pool = _box(ax, slot(0) + 0.25, yc, bw + 0.5, bh, "global avg pool", "op", fontsize=7.5,
                    sub=f"{d}×{size}×{size} → {d}")
        clf = _box(ax, pool.right[0] + 0.6 + 0.9, yc, 1.8, bh, "fc: linear classifier", "train", fontsize=7.5,
                   sub=f"{d} → downstream classes (new)")
        _arrow(ax, pool.right, clf.left)
        ax.text((pool.right[0] + clf.left[0]) / 2, yc + 0.06, "$h$", ha="center", va="bottom", fontsize=8)
        y_mid = (prev_last.bottom[1] + pool.top[1]) / 2
        _path(ax, [prev_last.bottom, (prev_last.cx, y_mid), (pool.cx, y_mid), pool.top])

        extra = []
        if table3:
            extra.append(Patch(fc=KINDS["train"][0], ec=KINDS["train"][1], lw=1.6,
                               label=f"fine-tuned in Table 3 (Block {', '.join(map(str, sorted(table3)))})"))
        if compared - table3:
            extra.append(Patch(fc=KINDS["frozen"][0], ec=KINDS["train"][1], ls="--", lw=1.4,
                               label=f"also compared in Tables 5-6 (Blocks "
                                     f"{', '.join(map(str, sorted(compared - table3)))})"))
        _legend(ax, ["frozen"], labels={"frozen": "frozen pre-trained block"}, extra=extra, y=0.0)
    return fig
