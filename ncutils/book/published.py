"""Numbers printed in the paper (and NCTI reference numbers), transcribed as data in ``ncutils/book/paper/``.

Every table the book compares against comes from here, with its source. Figures of the paper
print no numbers; the book states their claims in words instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources

__all__ = [
    "ncti_finetune_accuracy",
    "ncti_scores",
    "ncti_weighted_tau",
    "percentage_cells",
    "table",
]


@cache
def _load(name: str) -> dict:
    return json.loads(resources.files("ncutils.book").joinpath("paper", name).read_text(encoding="utf-8"))


def table(number: int) -> dict:
    """Table ``number`` (1-7) of the paper as a dict with ``source`` and ``caption`` fields."""
    if number not in range(1, 8):
        raise ValueError(f"the paper has Tables 1-7; got {number}.")
    return _load(f"table{number}.json")


def percentage_cells() -> Iterator[dict]:
    """Every "percentage of parameters fine-tuned" cell of Tables 3-7.

    Yields dicts with ``table``, ``arch``, ``dataset``, ``method``, ``block`` (``None`` for the
    linear probe and full FT), ``num_classes`` (Tables 5-7 count with 50 classes, footnote 14)
    and ``printed`` (the string printed in the paper, e.g. ``"8.27%"``).
    """
    for number in (3, 4):
        t = table(number)
        for arch, by_ds in t["cells"].items():
            for ds, by_method in by_ds.items():
                for method, cell in by_method.items():
                    yield {"table": number, "arch": arch, "dataset": ds, "method": method,
                           "block": cell.get("block"), "num_classes": t["num_classes"][ds],
                           "printed": cell["percent"]}
    for number in (5, 6, 7):
        t = table(number)
        for key, printed in t["percent"].items():
            methods = [key] if key in ("linear", "full") else ["layer", "scl"]
            for method in methods:
                yield {"table": number, "arch": t["arch"], "dataset": None, "method": method,
                       "block": None if key in ("linear", "full") else int(key),
                       "num_classes": t["num_classes_for_percent"], "printed": printed}


def ncti_finetune_accuracy(dataset: str) -> dict[str, float]:
    """Fine-tuning accuracy (%) of the 11 supervised ImageNet models on ``dataset``.

    The ground truth of the NCTI evaluation (from the SFDA benchmark, Shao et al., ECCV 2022),
    keyed by torchvision model name; ``dataset`` is one of ``aircraft``, ``caltech101``,
    ``cars``, ``cifar10``, ``cifar100``, ``dtd``, ``flowers``, ``food``, ``pets``, ``sun397``,
    ``voc2007``.
    """
    datasets = _load("ncti.json")["finetune_accuracy"]["datasets"]
    key = dataset.lower()
    if key not in datasets:
        raise ValueError(
            f"no published fine-tuning accuracies for {dataset!r}; available: {sorted(datasets)}."
        )
    return dict(datasets[key])


def ncti_scores() -> dict[str, float]:
    """NCTI scores of the 11 supervised ImageNet models on CIFAR-10: the write-up's (Chadal and Massé) run
    of the NCTI authors' code, not numbers printed in the NCTI paper."""
    return dict(_load("ncti.json")["ncti_cifar10"]["scores"])


def ncti_weighted_tau() -> float:
    """Weighted Kendall tau of NCTI for the supervised models on CIFAR-10 reported by Wang et al. (0.843)."""
    return float(_load("ncti.json")["weighted_kendall_cifar10"]["value"])
