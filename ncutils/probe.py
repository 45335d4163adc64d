"""Linear probing on frozen features (paper Section 3.2, Fig. 7 and Fig. 9).

A linear classifier is trained on features that were extracted once (see
:mod:`ncutils.features`), with the paper's recipe by default: SGD with momentum 0.9, weight
decay 1e-4 and a cosine learning rate from 1e-1 to 1e-4 (Appendix B). Training on cached
features is much cheaper than running the frozen network every epoch, and gives the same
classifier when the network has no normalisation layers in training mode. (The fine-tuning
code in :mod:`ncutils.finetune` implements the paper's Linear Probe with BatchNorm statistics
updated on downstream data, Appendix B.2.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ncutils.metrics import check_features, check_labels
from ncutils.runtime import cpu_numerics, resolve_device

__all__ = ["ProbeResult", "accuracy", "layerwise_probe", "linear_probe"]


@dataclass
class ProbeResult:
    """Outcome of :func:`linear_probe` (accuracies in percent)."""

    train_accuracy: float
    test_accuracy: float | None
    classifier: nn.Linear
    classes: torch.Tensor  # label value of each classifier output
    mean: torch.Tensor | None = None  # standardisation applied before the classifier, if any
    std: torch.Tensor | None = None

    def predict(self, features: torch.Tensor) -> torch.Tensor:
        """Predicted label values for ``features`` (N, d)."""
        dev = self.classifier.weight.device
        x = torch.as_tensor(features, dtype=torch.float32, device=dev)
        if self.mean is not None:
            x = (x - self.mean) / self.std
        with torch.no_grad():
            return self.classes[self.classifier(x).argmax(1)]


def accuracy(pred: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent."""
    return 100.0 * (pred.cpu() == torch.as_tensor(labels).cpu()).float().mean().item()


def linear_probe(
    train_features,
    train_labels,
    test_features=None,
    test_labels=None,
    *,
    epochs: int = 200,
    lr: float = 0.1,
    min_lr: float = 1e-4,
    momentum: float = 0.9,
    weight_decay: float = 1e-4,
    batch_size: int = 256,
    standardize: bool = False,
    device: str | torch.device = "auto",
    seed: int = 0,
) -> ProbeResult:
    """Train a linear classifier on fixed features; report train (and test) accuracy in percent.

    Parameters
    ----------
    train_features, test_features : (N, d) tensor or array
    train_labels, test_labels : (N,) integer labels (any values; mapped to classifier outputs)
    epochs, lr, min_lr, momentum, weight_decay, batch_size
        SGD with a cosine schedule from ``lr`` to ``min_lr``; defaults are the paper's.
    standardize : bool
        Standardise each feature with the training mean and standard deviation first (useful
        when probing early layers whose scales differ widely).

    Notes
    -----
    On the CPU, denormal floats are flushed to zero while the classifier trains
    (:func:`ncutils.runtime.cpu_numerics`) and the previous setting is restored afterwards.
    """
    dev = resolve_device(device)
    X = check_features(train_features).to(dev, torch.float32)
    y_raw = check_labels(train_labels, X.shape[0], dev)
    classes, y = torch.unique(y_raw, return_inverse=True)
    mean = std = None
    if standardize:
        mean, std = X.mean(0), X.std(0).clamp_min(1e-6)
        X = (X - mean) / std
    g = torch.Generator(device="cpu").manual_seed(seed)
    clf = nn.Linear(X.shape[1], classes.numel()).to(dev)
    with torch.no_grad():  # seeded initialisation, independent of the global RNG
        bound = 1.0 / X.shape[1] ** 0.5
        clf.weight.copy_(torch.empty_like(clf.weight, device="cpu").uniform_(-bound, bound, generator=g))
        clf.bias.zero_()
    opt = torch.optim.SGD(clf.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    steps_per_epoch = -(-X.shape[0] // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch, eta_min=min_lr)
    loss_fn = nn.CrossEntropyLoss()
    with cpu_numerics(dev):
        for _ in range(epochs):
            perm = torch.randperm(X.shape[0], generator=g).to(dev)
            for i in range(0, X.shape[0], batch_size):
                idx = perm[i : i + batch_size]
                opt.zero_grad(set_to_none=True)
                loss_fn(clf(X[idx]), y[idx]).backward()
                opt.step()
                sched.step()
    result = ProbeResult(float("nan"), None, clf.eval(), classes, mean, std)
    result.train_accuracy = accuracy(result.predict(X if mean is None else X * std + mean), y_raw)
    if test_features is not None:
        Xt = check_features(test_features)
        yt = check_labels(test_labels, Xt.shape[0], Xt.device)
        result.test_accuracy = accuracy(result.predict(Xt), yt)
    return result


def layerwise_probe(
    model,
    train_loader,
    test_loader,
    layers=None,
    *,
    pool: str = "avg",
    epochs: int = 200,
    lr: float = 0.1,
    min_lr: float = 1e-4,
    batch_size: int = 256,
    standardize: bool = True,
    device: str | torch.device = "auto",
    amp: bool = False,
    seed: int = 0,
    progress: bool = False,
) -> dict[str, dict[str, float]]:
    """NC1 and linear-probe accuracy of every requested layer (paper Figs. 7 and 9).

    The output of each layer (pooled to one value per channel, or over tokens; see
    :mod:`ncutils.features`) is used as a frozen feature extractor: NC1 is measured on the
    downstream training features and a linear classifier trained on them (:func:`linear_probe`
    with ``epochs``, ``lr``, ``min_lr``, ``batch_size``) is tested on the downstream test features.
    ``standardize`` puts the layers' different feature scales on an equal footing for SGD. Returns
    ``{layer: {"nc1", "train_accuracy", "test_accuracy", "dim", "num_train", "num_test"}}`` in
    network order.
    """
    from ncutils.features import extract_features
    from ncutils.metrics import nc1

    kw = dict(pool=pool, device=device, amp=amp, progress=progress)
    train = extract_features(model, train_loader, layers, desc="train features", **kw)
    test = extract_features(model, test_loader, layers, desc="test features", **kw)
    out = {}
    for name in (k for k in train if k != "labels"):
        res = linear_probe(train[name], train["labels"], test[name], test["labels"], epochs=epochs, lr=lr,
                           min_lr=min_lr, batch_size=batch_size, standardize=standardize, device=device,
                           seed=seed)
        out[name] = {"nc1": nc1(train[name], train["labels"]), "train_accuracy": res.train_accuracy,
                     "test_accuracy": res.test_accuracy, "dim": int(train[name].shape[1]),
                     "num_train": int(train[name].shape[0]), "num_test": int(test[name].shape[0])}
    return out
