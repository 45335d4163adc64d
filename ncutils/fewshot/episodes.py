"""Meta-testing of Table 2: the pre-training recipe, episodes, and their evaluation (Tian et al. 2020)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from ncutils.features import extract_features
from ncutils.metrics import nc1
from ncutils.transforms import FEWSHOT_IMAGES

__all__ = [
    "PAPER_RECIPE",
    "Episode",
    "embed",
    "evaluate_episodes",
    "evaluate_shots",
    "paper_optimizer",
    "sample_episodes",
    "split_nc1",
]

# --------------------------------------------------------------------------- recipe
#: Pre-training and meta-testing hyper-parameters of Table 2 (paper Appendix B.2, quoting Tian
#: et al. 2020). ``lr_milestones`` are the epochs at which the learning rate is multiplied by
#: ``lr_decay``: neither paper states them, only the number of decays (three for CIFAR-FS, two
#: for miniImageNet, "as the third decay has no effect"); the values below are the usual
#: choice for miniImageNet (60, 80 of 100) and evenly spaced decays in the second half of the
#: 90 CIFAR-FS epochs.
PAPER_RECIPE: dict[str, Any] = {
    "objective": "cross-entropy, one K-way classifier over the merged meta-train classes",
    "num_classes": {"cifar_fs": 64, "mini_imagenet": 64},
    "optimizer": "sgd",
    "momentum": 0.9,
    "weight_decay": 5e-4,
    "batch_size": 64,
    "lr": 0.05,
    "lr_decay": 0.1,
    "epochs": {"cifar_fs": 90, "mini_imagenet": 100},
    "lr_milestones": {"cifar_fs": (45, 60, 75), "mini_imagenet": (60, 80)},
    "augmentation": ("random crop", "colour jitter", "random horizontal flip"),
    "image_size": {name: size for name, (size, _) in FEWSHOT_IMAGES.items()},
    "meta_test": {
        "n_way": 5,
        "shots": (1, 5),
        "n_query": 15,
        "episodes": 600,
        "classifier": "scikit-learn LogisticRegression (multinomial, L2, C=1, lbfgs) on "
                      "L2-normalised penultimate embeddings of the support images",
    },
}


def _recipe_dataset(dataset: str) -> str:
    key = dataset.lower().replace("-", "_").replace("miniimagenet", "mini_imagenet")
    if key not in PAPER_RECIPE["epochs"]:
        raise ValueError(f"unknown few-shot dataset {dataset!r}; use 'cifar_fs' or 'mini_imagenet'.")
    return key


def paper_optimizer(
    params: Iterable[nn.Parameter], dataset: str, *, steps_per_epoch: int = 1
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.MultiStepLR]:
    """SGD and step schedule of :data:`PAPER_RECIPE` for pre-training on ``dataset``'s meta-train split.

    The scheduler is meant to be stepped once per optimisation step; with ``steps_per_epoch``
    set to the number of batches per epoch its milestones fall at the recipe's epochs (with the
    default ``1``, step it once per epoch).
    """
    key = _recipe_dataset(dataset)
    params = list(params)
    if not params:
        raise ValueError("no trainable parameters.")
    opt = torch.optim.SGD(params, lr=PAPER_RECIPE["lr"], momentum=PAPER_RECIPE["momentum"],
                          weight_decay=PAPER_RECIPE["weight_decay"])
    milestones = [m * steps_per_epoch for m in PAPER_RECIPE["lr_milestones"][key]]
    return opt, torch.optim.lr_scheduler.MultiStepLR(opt, milestones, gamma=PAPER_RECIPE["lr_decay"])


# --------------------------------------------------------------------------- episodes
class Episode(NamedTuple):
    """One few-shot task: indices into the dataset and labels ``0..n_way-1``.

    ``support``/``query`` are grouped by class: class ``c`` of the episode owns
    ``support[c*k_shot:(c+1)*k_shot]`` and ``query[c*n_query:(c+1)*n_query]``.
    """

    support: np.ndarray
    support_labels: np.ndarray
    query: np.ndarray
    query_labels: np.ndarray


def _as_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def sample_episodes(
    labels: Any,
    n_way: int = 5,
    k_shot: int = 1,
    n_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
) -> list[Episode]:
    """Sample ``episodes`` class-balanced ``n_way``-way ``k_shot``-shot tasks from ``labels``.

    Each episode draws ``n_way`` distinct classes, then ``k_shot + n_query`` distinct samples of
    each: the first ``k_shot`` form the support set, the rest the query set, so support and
    query never overlap. The result depends only on ``labels`` and ``seed`` (a NumPy
    ``default_rng(seed)``); the default values are those of Tian et al. (600 episodes of 15
    queries per class).

    Raises
    ------
    ValueError
        When ``labels`` has fewer than ``n_way`` classes or some class has fewer than
        ``k_shot + n_query`` samples.
    """
    y = _as_numpy(labels)
    if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"labels must be a 1-D integer array; got shape {y.shape}, dtype {y.dtype}.")
    for name, v, lo in (("n_way", n_way, 2), ("k_shot", k_shot, 1), ("n_query", n_query, 1),
                        ("episodes", episodes, 1)):
        if int(v) != v or v < lo:
            raise ValueError(f"{name} must be an integer >= {lo}; got {v!r}.")
    classes, counts = np.unique(y, return_counts=True)
    if classes.size < n_way:
        raise ValueError(f"{n_way}-way episodes need at least {n_way} classes; labels have {classes.size}.")
    need = k_shot + n_query
    small = classes[counts < need]
    if small.size:
        raise ValueError(
            f"every class needs at least k_shot + n_query = {need} samples; classes "
            f"{small[:10].tolist()}{'...' if small.size > 10 else ''} have fewer (minimum "
            f"{int(counts.min())})."
        )
    order = np.argsort(y, kind="stable")
    starts = np.concatenate([[0], np.cumsum(counts)])
    members = [order[starts[i]:starts[i + 1]] for i in range(classes.size)]
    rng = np.random.default_rng(seed)
    out = []
    base_s = np.repeat(np.arange(n_way), k_shot)
    base_q = np.repeat(np.arange(n_way), n_query)
    for _ in range(episodes):
        chosen = rng.choice(classes.size, size=n_way, replace=False)
        picks = [members[c][rng.choice(members[c].size, size=need, replace=False)] for c in chosen]
        support = np.concatenate([p[:k_shot] for p in picks])
        query = np.concatenate([p[k_shot:] for p in picks])
        out.append(Episode(support, base_s.copy(), query, base_q.copy()))
    return out


# --------------------------------------------------------------------------- evaluation
def _l2_normalize(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


@contextlib.contextmanager
def _single_threaded():
    """Run BLAS/OpenMP and torch single-threaded: episodes are tiny problems, and thread start-up and
    spin-waiting would dominate (by orders of magnitude on a busy machine)."""
    from threadpoolctl import threadpool_limits

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(n)


def _run_episodes(
    X: np.ndarray, y: np.ndarray, episodes: Sequence[Episode], template: Any, compute_nc1: bool
) -> tuple[list[float], list[float]]:
    """Per-episode accuracy (percent) of a fresh clone of ``template`` and NC1 of the queries."""
    from sklearn.base import clone

    accs, nc1s = [], []
    for i, ep in enumerate(episodes):
        s, sl, q, ql = (np.asarray(a) for a in ep)
        for idx, lab in ((s, sl), (q, ql)):
            pairs = np.unique(np.stack([lab, y[idx]]), axis=1)
            if (np.unique(pairs[0]).size != pairs.shape[1]
                    or np.unique(pairs[1]).size != pairs.shape[1]):
                raise ValueError(
                    f"episode {i} does not match `labels`: its episode labels and the dataset labels "
                    "of its samples are not in one-to-one correspondence (were the episodes sampled "
                    "from these labels?)."
                )
        clf = clone(template)
        clf.fit(X[s], sl)
        accs.append(100.0 * float(np.mean(clf.predict(X[q]) == ql)))
        if compute_nc1:
            nc1s.append(nc1(X[q], ql))
    return accs, nc1s


def evaluate_episodes(
    embeddings: Any,
    labels: Any,
    episodes: Sequence[Episode],
    *,
    normalize: bool = True,
    C: float = 1.0,
    max_iter: int = 1000,
    compute_nc1: bool = True,
) -> dict[str, Any]:
    r"""Few-shot accuracy of a linear classifier fitted per episode, and the NC1 of its queries.

    For every episode, scikit-learn's multinomial ``LogisticRegression`` (L2 penalty ``C``,
    lbfgs, as Tian et al.) is fitted on the support embeddings and scored on the query
    embeddings; with ``normalize`` every embedding is first divided by its L2 norm (Tian et al.).
    NC1 (Eq. 4, :func:`ncutils.metrics.nc1`) is computed per episode on the query embeddings
    the classifier sees (L2-normalised when ``normalize``) with the episode's query labels.

    Parameters
    ----------
    embeddings : (N, d) tensor or array
        Embedding of every sample of the dataset the episodes index into.
    labels : (N,) integer labels
        Dataset labels; used to check that the episodes were sampled from these labels.
    episodes : list of :class:`Episode`
        From :func:`sample_episodes`.

    Returns
    -------
    dict
        ``accuracy`` (mean, percent), ``ci95`` (:math:`1.96 \, \mathrm{std} / \sqrt{\mathrm{episodes}}`,
        percent, with the sample standard deviation over episodes), ``std``, ``accuracies`` (per episode),
        ``nc1`` (mean over episodes) and ``nc1_per_episode`` (absent without ``compute_nc1``),
        ``episodes``, ``n_way``, ``k_shot``, ``n_query``.
    """
    from sklearn.linear_model import LogisticRegression

    X = _as_numpy(embeddings).astype(np.float64, copy=False)
    y = _as_numpy(labels)
    if X.ndim != 2:
        raise ValueError(f"embeddings must be 2-D (N, d); got shape {X.shape}.")
    if y.shape != (X.shape[0],):
        raise ValueError(f"labels must have shape ({X.shape[0]},) to match embeddings; got {y.shape}.")
    if not np.isfinite(X).all():
        raise ValueError("embeddings contain NaN or inf.")
    if len(episodes) == 0:
        raise ValueError("no episodes to evaluate.")
    if normalize:
        X = _l2_normalize(X)
    template = LogisticRegression(C=C, max_iter=max_iter, random_state=0)
    with _single_threaded():
        accs, nc1s = _run_episodes(X, y, episodes, template, compute_nc1)
    accs_arr = np.asarray(accs)
    n = accs_arr.size
    std = float(accs_arr.std(ddof=1)) if n > 1 else 0.0
    ep0 = episodes[0]
    n_way = int(np.unique(ep0[1]).size)
    out: dict[str, Any] = {
        "accuracy": float(accs_arr.mean()),
        "ci95": 1.96 * std / math.sqrt(n),
        "std": std,
        "accuracies": accs_arr,
        "episodes": n,
        "n_way": n_way,
        "k_shot": len(ep0[0]) // n_way,
        "n_query": len(ep0[2]) // n_way,
    }
    if compute_nc1:
        out["nc1_per_episode"] = np.asarray(nc1s)
        out["nc1"] = float(np.mean(nc1s))
    return out


def evaluate_shots(
    embeddings: Any,
    labels: Any,
    shots: Sequence[int] = (1, 5),
    *,
    n_way: int = 5,
    n_query: int = 15,
    episodes: int = 600,
    seed: int = 0,
    **kwargs,
) -> dict[int, dict[str, Any]]:
    """:func:`evaluate_episodes` for several ``k_shot`` on the same embeddings (one Table 2 row).

    ``kwargs`` go to :func:`evaluate_episodes`. Returns ``{k_shot: result}``.
    """
    return {
        k: evaluate_episodes(embeddings, labels,
                             sample_episodes(labels, n_way, k, n_query, episodes, seed), **kwargs)
        for k in shots
    }


def embed(
    model: nn.Module,
    dataset: Dataset,
    *,
    batch_size: int = 256,
    device: str | torch.device = "auto",
    num_workers: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate embeddings (the input of ``fc``) and labels of every item of ``dataset``, on the CPU.

    Uses :func:`ncutils.features.extract_features` (model in eval mode, no gradients, dataset
    order kept).
    """
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=num_workers)
    out = extract_features(model, loader, layers=("penultimate",), device=device, progress=False)
    return out["penultimate"], out["labels"]


def split_nc1(
    model: nn.Module,
    dataset: Dataset,
    *,
    normalize: bool = False,
    batch_size: int = 256,
    device: str | torch.device = "auto",
) -> float:
    """NC1 (Eq. 4) of ``model``'s penultimate embeddings over every image of ``dataset``.

    All images of the given split and all its classes enter one NC1 (not an average over
    episodes), with the split's labels. Table 2's bottom block reports NC1 of models
    *pre-trained* on the meta-train split; its caption states that these NC1 values, like the
    accuracies, are *evaluated on the meta-test split*, so pass e.g. ``cifar_fs("test")`` to
    reproduce it. Passing ``cifar_fs("train")`` instead measures collapse on the pre-training
    classes (Section 3.1's source-data NC1). ``normalize`` L2-normalises each embedding first,
    as :func:`evaluate_episodes` does; the default uses the raw features, the usual NC1.
    """
    X, y = embed(model, dataset, batch_size=batch_size, device=device)
    if normalize:
        X = torch.nn.functional.normalize(X, dim=1)
    return nc1(X, y)
