"""Linear probing on fixed features."""

import numpy as np
import pytest
import torch

from ncutils.probe import linear_probe


def blobs(n, d, k, sep, seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    centres = rng.normal(size=(k, d)) * sep
    return (centres[y] + rng.normal(size=(n, d))).astype(np.float32), y


def test_separable_features_are_learned_and_labels_kept():
    X, y = blobs(400, 8, 3, sep=6.0, seed=0)
    y = np.array([4, 9, 11])[y]  # non-contiguous labels
    res = linear_probe(X[:300], y[:300], X[300:], y[300:], epochs=30)
    assert res.train_accuracy > 98 and res.test_accuracy > 98
    assert set(res.predict(torch.from_numpy(X[300:])).tolist()) <= {4, 9, 11}


def test_overlapping_features_are_not_separable():
    X, y = blobs(400, 8, 3, sep=0.0, seed=1)
    res = linear_probe(X[:300], y[:300], X[300:], y[300:], epochs=20)
    assert res.test_accuracy < 60


def test_standardize_and_determinism():
    X, y = blobs(200, 5, 2, sep=3.0, seed=2)
    X[:, 0] *= 1e4  # one feature on a wildly different scale
    a = linear_probe(X, y, epochs=10, standardize=True, seed=3)
    b = linear_probe(X, y, epochs=10, standardize=True, seed=3)
    assert a.train_accuracy == b.train_accuracy > 90
    torch.testing.assert_close(a.classifier.weight, b.classifier.weight)


def test_bad_input():
    with pytest.raises(ValueError, match="rows but labels"):
        linear_probe(np.ones((4, 2)), np.arange(3))
