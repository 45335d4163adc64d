"""The paper's diagrams (Figs. 1, 7, 8, 12) drawn by ncutils.book.diagrams: labels, structure, layout."""

import itertools

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.collections import PathCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.text import Text

from ncutils.book import diagrams

DIAGRAMS = {
    "fig1": diagrams.neural_collapse,
    "fig7": diagrams.layerwise_transfer,
    "fig8": diagrams.finetuning_methods,
    "fig12_resnet18": lambda: diagrams.resnet_blocks("resnet18"),
    "fig12_resnet50": lambda: diagrams.resnet_blocks("resnet50"),
}


@pytest.fixture(scope="module")
def figures():
    figs = {name: make() for name, make in DIAGRAMS.items()}
    yield figs
    for fig in figs.values():
        plt.close(fig)


def texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def labels(fig: Figure) -> set[str]:
    return {t.get_text() for t in texts(fig)}


_BOXES: dict[int, dict[str, FancyBboxPatch]] = {}


def box_of(fig: Figure, label: str) -> FancyBboxPatch:
    """The box drawn around the (unique) text ``label``."""
    if id(fig) not in _BOXES:
        fig.draw_without_rendering()
        renderer = fig._get_renderer()
        patches = [(p, p.get_window_extent(renderer)) for p in fig.findobj(FancyBboxPatch) if p.get_zorder() >= 2]
        found = {}
        for t in texts(fig):
            e = t.get_window_extent(renderer)
            inside = [p for p, b in patches if b.contains((e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2)]
            if len(inside) == 1:
                found.setdefault(t.get_text(), []).append(inside[0])
        _BOXES[id(fig)] = {k: v[0] for k, v in found.items() if len(v) == 1}
    return _BOXES[id(fig)][label]


@pytest.mark.parametrize("name", DIAGRAMS)
def test_each_diagram_is_a_figure_about_7_inches_wide(figures, name):
    fig = figures[name]
    assert isinstance(fig, Figure)
    width, height = fig.get_size_inches()
    assert width == pytest.approx(7.0) and 2.0 <= height <= 7.0


@pytest.mark.parametrize("name", DIAGRAMS)
def test_no_text_overlaps_or_leaves_the_figure_or_its_box(figures, name):
    fig = figures[name]
    fig.draw_without_rendering()
    renderer = fig._get_renderer()
    extents = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(fig)]
    overlapping = [(a, b) for (a, ea), (b, eb) in itertools.combinations(extents, 2) if ea.overlaps(eb)]
    assert overlapping == []
    outside = [t for t, e in extents if e.x0 < 0 or e.y0 < 0 or e.x1 > fig.bbox.width or e.y1 > fig.bbox.height]
    assert outside == []
    boxes = [p.get_window_extent(renderer) for p in fig.findobj(FancyBboxPatch) if p.get_zorder() >= 2]
    spilling = [t for t, e in extents for b in boxes
                if b.contains((e.x0 + e.x1) / 2, (e.y0 + e.y1) / 2)
                and not (b.x0 <= e.x0 and e.x1 <= b.x1 and b.y0 <= e.y0 and e.y1 <= b.y1)]
    assert spilling == []


def test_fig1_neural_collapse(figures):
    fig = figures["fig1"]
    text = labels(fig)
    assert {"early in training", "terminal phase of training", "training sample", "test sample"} <= text
    assert any("\\phi_" in t and "\\mathbb{R}^D" in t and "\\mathbb{R}^d" in t for t in text)  # φθ: R^D → R^d
    assert any("simplex ETF" in t for t in text)
    # three classes, dots and crosses, in both panels
    scatters = [c for ax in fig.axes for c in ax.collections if isinstance(c, PathCollection)]
    assert len(scatters) == 2 * 3 * 2 + 1  # (panels x classes x {train, test}) + the global mean


def test_fig1_class_means_form_an_equilateral_triangle_centred_at_the_global_mean(figures):
    collapsed = figures["fig1"].axes[-1]
    train = [c.get_offsets() for c in collapsed.collections if isinstance(c, PathCollection)][0:6:2]
    means = np.array([t.mean(axis=0) for t in train])
    sides = [np.linalg.norm(means[i] - means[j]) for i, j in [(0, 1), (1, 2), (0, 2)]]
    assert np.allclose(sides, sides[0], rtol=0.1)
    assert np.linalg.norm(means.mean(axis=0)) < 0.1 * sides[0]


def test_fig1_is_reproducible_for_a_seed():
    def points(fig):
        return np.vstack([c.get_offsets() for ax in fig.axes for c in ax.collections])

    a, b, c = diagrams.neural_collapse(), diagrams.neural_collapse(), diagrams.neural_collapse(seed=1)
    assert np.array_equal(points(a), points(b))
    assert not np.array_equal(points(a), points(c))
    for fig in (a, b, c):
        plt.close(fig)


def test_fig7_layerwise_transfer(figures):
    text = labels(figures["fig7"])
    assert {"Block 1", "Block $i$", "global average pool", "new linear\nclassifier", "not used"} <= text
    assert any("frozen feature extractor" in t for t in text)
    assert box_of(figures["fig7"], "Block $i$").get_facecolor() == to_rgba(diagrams.KINDS["frozen"][0])
    assert box_of(figures["fig7"], "new linear\nclassifier").get_facecolor() == to_rgba(diagrams.KINDS["train"][0])


def test_fig8_finetuning_methods(figures):
    fig = figures["fig8"]
    text = labels(fig)
    assert {"Layer FT", "SCL FT", "skip connection", "zero-pad", "average pool", "one value per channel"} <= text
    assert sum(t == "Block $k$" for t in (t.get_text() for t in texts(fig))) == 2
    assert {"frozen (pre-trained)", "trained on the downstream data"} <= text  # the legend
    def count(kind):
        colour = to_rgba(diagrams.KINDS[kind][0])
        return sum(p.get_facecolor() == colour for p in fig.findobj(FancyBboxPatch) if p.get_zorder() >= 2)

    assert count("train") == 4  # Block k and the new classifier, in each panel
    assert count("frozen") == 4  # Block 1 and Block L, in each panel
    assert count("op") == 1 + 3  # pooling in Layer FT; pooling, average pool and zero-pad in SCL FT


@pytest.mark.parametrize("name, n, table3, paths", [
    ("fig12_resnet18", 8, 5, {1: "layer1.0", 5: "layer3.0", 8: "layer4.1"}),
    ("fig12_resnet50", 16, 8, {1: "layer1.0", 8: "layer3.0", 14: "layer4.0", 16: "layer4.2"}),
])
def test_fig12_numbers_the_blocks_as_the_paper(figures, name, n, table3, paths):
    fig = figures[name]
    text = labels(fig)
    assert {f"Block {k}" for k in range(1, n + 1)} <= text
    assert f"Block {n + 1}" not in text
    assert {"stem", "layer1", "layer2", "layer3", "layer4", "head"} <= text
    for k, path in paths.items():
        # the module path is printed under its block number, inside the same box
        assert box_of(fig, f"Block {k}") is box_of(fig, next(t for t in text if t.split("\n")[0] == path))
    train, frozen = to_rgba(diagrams.KINDS["train"][0]), to_rgba(diagrams.KINDS["frozen"][0])
    assert box_of(fig, f"Block {table3}").get_facecolor() == train
    assert all(box_of(fig, f"Block {k}").get_facecolor() == frozen for k in range(1, n + 1) if k != table3)
    assert any(t.startswith("fine-tuned in Table 3") and f"Block {table3}" in t for t in text)


def test_fig12_widths_come_from_the_network(figures):
    r18, r50 = labels(figures["fig12_resnet18"]), labels(figures["fig12_resnet50"])
    assert {"64 ch · 56×56", "128 ch · 28×28", "256 ch · 14×14", "512 ch · 7×7"} <= r18
    assert {"256 ch · 56×56", "512 ch · 28×28", "1024 ch · 14×14", "2048 ch · 7×7"} <= r50
    assert "layer3.0\n128→256, /2" in r18 and "layer1.0\n64→256" in r50
    assert any("2048 → downstream classes" in t for t in r50)


def test_fig12_rejects_a_network_that_is_not_a_resnet_or_too_deep_to_draw():
    with pytest.raises(ValueError, match="not a torchvision ResNet"):
        diagrams.resnet_blocks("vgg11")
    with pytest.raises(ValueError, match="at most 8 per stage"):
        diagrams.resnet_blocks("resnet101")


def test_diagrams_leave_pyplot_and_its_settings_alone():
    before = {k: plt.rcParams[k] for k in ("font.size", "axes.grid", "figure.dpi", "axes.spines.top")}
    open_before = plt.get_fignums()
    fig = diagrams.layerwise_transfer()
    assert plt.get_fignums() == open_before  # not registered with pyplot: shown once in a notebook
    assert {k: plt.rcParams[k] for k in before} == before
    plt.close(fig)  # closing is harmless
    assert plt.get_fignums() == open_before
