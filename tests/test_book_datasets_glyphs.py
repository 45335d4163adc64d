"""Glyphs as a dataset source of the book's specs: spec -> raw/build, labels, determinism, splits, no files."""

import json

import pytest
import torch
from torch.utils.data import TensorDataset

from ncutils.book import datasets
from ncutils.data import glyphs


def glyph_spec(classes, split="train", per_class=None, **fields):
    per_class = per_class or {"train": 3, "test": 2}
    return datasets.spec("glyphs", split, classes=list(classes), num_classes=len(classes), image_size=16, channels=3,
                         glyphs={"per_class": per_class, "seed": 0, "colours": "light_on_dark"}, **fields)


def test_raw_shapes_labels_and_range():
    s = glyph_spec(glyphs.glyph_classes()[:5])
    ds = datasets.raw(s)
    assert isinstance(ds, TensorDataset)
    x, y = ds.tensors
    assert x.shape == (15, 3, 16, 16) and x.dtype == torch.float32
    assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
    assert y.dtype == torch.int64 and y.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert datasets.size(s) == 15 and datasets.size(dict(s, split="test")) == 10
    assert len(datasets.raw(dict(s, split="test"))) == 10
    assert datasets.describe(s) == "glyphs/train (5 classes, 16 px)"


def test_labels_follow_the_spec_order_of_classes_given_as_characters_or_indices():
    chars = datasets.raw(glyph_spec(["Q", "&", "B"]))
    index = datasets.raw(glyph_spec([glyphs.glyph_classes().index(c) for c in ["Q", "&", "B"]]))
    direct = glyphs.glyphs("train", classes=["Q", "&", "B"], per_class=3, image_size=16, seed=0)
    torch.testing.assert_close(chars.tensors[0], direct.tensors[0], rtol=0, atol=0)
    torch.testing.assert_close(index.tensors[0], direct.tensors[0], rtol=0, atol=0)
    assert chars.tensors[1].tolist() == index.tensors[1].tolist() == [0] * 3 + [1] * 3 + [2] * 3
    reordered = datasets.raw(glyph_spec(["B", "Q", "&"]))  # a class's images do not depend on its label
    assert torch.equal(reordered.tensors[0][:3], chars.tensors[0][6:9])


def test_same_spec_gives_identical_tensors():
    s = glyph_spec(glyphs.glyph_classes()[:4])
    a = datasets.raw(s).tensors
    datasets._raw_cached.cache_clear()  # render again, not from the cache
    b = datasets.raw(json.loads(json.dumps(s))).tensors
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    other = datasets.raw(dict(s, glyphs=dict(s["glyphs"], seed=1))).tensors[0]
    assert not torch.equal(a[0], other)  # the seed is part of the spec


def test_train_and_test_differ_and_a_list_of_splits_concatenates():
    s = glyph_spec(glyphs.glyph_classes()[:4])
    tr, te = datasets.raw(s).tensors, datasets.raw(dict(s, split="test")).tensors
    assert torch.cdist(tr[0].flatten(1), te[0].flatten(1)).min() > 1e-3  # no image shared
    both = datasets.raw(dict(s, split=["train", "test"])).tensors
    assert torch.equal(both[0], torch.cat([tr[0], te[0]])) and torch.equal(both[1], torch.cat([tr[1], te[1]]))
    assert datasets.size(dict(s, split=["train", "test"])) == len(both[0]) == 20
    val = datasets.raw(dict(s, split="val", glyphs=dict(s["glyphs"], per_class=2))).tensors[0]
    assert val.shape == (8, 3, 16, 16)  # one number of images for every split


def test_no_required_files_stand_in_and_build():
    s = glyph_spec(glyphs.glyph_classes()[:3], normalize={"mean": [0.5] * 3, "std": [0.25] * 3})
    assert datasets.required_files(s) == []
    assert datasets.required_files(datasets.stand_in(s)) == []
    assert datasets.raw(datasets.stand_in(s, per_class=2)).tensors[0].shape == (6, 3, 16, 16)
    x = datasets.build(s).tensors[0]
    torch.testing.assert_close(x, (datasets.raw(s).tensors[0] - 0.5) / 0.25)
    gray = datasets.raw(dict(s, channels=1)).tensors[0]
    assert gray.shape == (9, 1, 16, 16)


def test_meta_train_spec_lists_the_64_meta_train_characters():
    meta = glyphs.meta_split()
    s = glyph_spec(meta["train"], per_class={"train": 1, "test": 1})
    assert s["num_classes"] == 64 and all(isinstance(c, str) for c in s["classes"])
    x, y = datasets.raw(s).tensors
    assert x.shape == (64, 3, 16, 16) and y.tolist() == list(range(64))
    assert datasets.size(dict(s, classes=None, num_classes=100)) == 100  # None: all 100 classes


def test_bad_glyph_specs():
    s = glyph_spec(["A", "B"])
    with pytest.raises(ValueError, match="split 'val'"):
        datasets.raw(dict(s, split="val"))
    with pytest.raises(ValueError, match="needs glyphs="):
        datasets.raw({k: v for k, v in s.items() if k != "glyphs"})
    with pytest.raises(ValueError, match="num_classes"):
        datasets.raw(dict(s, num_classes=3))
    with pytest.raises(ValueError, match="glyph class"):
        datasets.raw(dict(s, classes=["A", "7"]))
