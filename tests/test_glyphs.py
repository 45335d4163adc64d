"""Tests of ncutils.data.glyphs: determinism, disjoint splits, shapes, excluded classes, speed."""

import time

import pytest
import torch

from ncutils.data import glyphs


@pytest.fixture(scope="module", autouse=True)
def _masters():
    glyphs.render_masters()  # rendered once for all tests (and timed separately below)


def test_classes_are_100_unique_and_exclude_digits_and_confusables():
    cls = glyphs.glyph_classes()
    assert len(cls) == 100 and len(set(cls)) == 100
    assert all(len(c) == 1 for c in cls)
    assert not any(c.isdigit() for c in cls)
    assert not set(cls) & set(glyphs.EXCLUDED)
    for a, b in ["oO", "cC", "sS", "xX", "zZ", "lI", "bd", "pP", "uU", "vV", "wW", "kK"]:
        assert not (a in cls and b in cls), (a, b)


def test_every_class_has_several_fonts():
    _, class_of, font_of = glyphs.render_masters()
    counts = torch.bincount(class_of, minlength=100)
    assert counts.min() >= 6
    assert len(set(font_of.tolist())) == len(glyphs.font_names())


def test_shapes_dtypes_labels_attributes():
    ds = glyphs.glyphs("train", per_class=3, image_size=20, seed=1)
    x, y = ds.tensors
    assert x.shape == (300, 3, 20, 20) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and y.tolist() == [k for k in range(100) for _ in range(3)]
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert ds.classes == glyphs.glyph_classes() and len(ds.fonts) == 300
    assert glyphs.glyphs("test", per_class=2, image_size=16, channels=1).tensors[0].shape == (200, 1, 16, 16)


def test_deterministic_given_seed():
    a = glyphs.glyphs("train", per_class=4, seed=3).tensors[0]
    b = glyphs.glyphs("train", per_class=4, seed=3).tensors[0]
    c = glyphs.glyphs("train", per_class=4, seed=4).tensors[0]
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_splits_are_disjoint():
    tr = glyphs.glyphs("train", per_class=20, seed=0).tensors[0].flatten(1)
    te = glyphs.glyphs("test", per_class=20, seed=0).tensors[0].flatten(1)
    va = glyphs.glyphs("val", per_class=20, seed=0).tensors[0].flatten(1)
    for p, q in [(tr, te), (tr, va), (te, va)]:
        assert torch.cdist(p, q).min() > 1e-3  # no image repeated across splits
    assert torch.cdist(tr, tr).add(torch.eye(len(tr)) * 1e9).min() > 1e-3  # nor within one


def test_class_subset_keeps_a_class_images():
    full = glyphs.glyphs("train", per_class=5, seed=2)
    part = glyphs.glyphs("train", classes=["Q", "ж".upper(), "♣"], per_class=5, seed=2)
    assert part.classes == ["Q", "Ж", "♣"] and part.tensors[1].tolist() == [0] * 5 + [1] * 5 + [2] * 5
    k = glyphs.glyph_classes().index("Ж")
    assert torch.equal(part.tensors[0][5:10], full.tensors[0][5 * k : 5 * k + 5])
    idx = glyphs.glyphs("train", classes=[0, 1], per_class=5, seed=2)
    assert idx.classes == ["A", "B"]


def test_meta_split_partitions_the_classes():
    s = glyphs.meta_split()
    assert [len(s[k]) for k in ("train", "val", "test")] == [64, 16, 20]
    assert sorted(s["train"] + s["val"] + s["test"]) == sorted(glyphs.glyph_classes())
    assert s == glyphs.meta_split(0) and s != glyphs.meta_split(1)


def test_bad_arguments():
    with pytest.raises(ValueError):
        glyphs.glyphs("dev")
    with pytest.raises(ValueError):
        glyphs.glyphs(classes=["0"])
    with pytest.raises(ValueError):
        glyphs.glyphs(classes=["A", "A"])
    with pytest.raises(ValueError):
        glyphs.glyphs(seed=-1)


def test_speed():
    t = time.process_time()  # CPU time: robust to other jobs on a shared machine
    ds = glyphs.glyphs("train", per_class=60, image_size=16)
    assert len(ds) == 6000
    assert time.process_time() - t < 5.0  # ~1 s of CPU


def test_images_are_not_trivial():
    x, y = glyphs.glyphs("train", per_class=10, image_size=16).tensors
    # every image has visible contrast, and images of one class differ
    assert (x.flatten(1).std(1) > 0.05).all()
    assert (x[:10].flatten(1).std(0).mean() > 0.05)


def test_colour_styles():
    lum = torch.tensor([0.299, 0.587, 0.114])
    raw = torch.rand(5000, 2, 3, generator=torch.Generator().manual_seed(0))
    fg, bg = glyphs._colours(raw, "light_on_dark")
    assert ((fg - bg) @ lum).min() >= 0.15 - 1e-6          # glyph always the brighter, by >= 0.15
    fg, bg = glyphs._colours(raw, "random")
    d = (fg - bg) @ lum
    assert d.abs().min() >= 0.15 - 1e-6 and 0.4 < (d < 0).float().mean() < 0.6
    w, _ = glyphs.glyphs("train", per_class=2, image_size=16, colours="white_on_black").tensors
    assert float(w.flatten(1).quantile(0.1, dim=1).max()) < 0.15  # black background
    x = glyphs.glyphs("train", per_class=2, image_size=16).tensors[0]
    r = glyphs.glyphs("train", per_class=2, image_size=16, colours="random").tensors[0]
    assert r.shape == x.shape and not torch.equal(r, x)
    with pytest.raises(ValueError):
        glyphs.glyphs(per_class=1, colours="neon")
