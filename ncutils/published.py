"""Numbers printed in the paper (and the NCTI paper), transcribed as data in ``ncutils/paper/``.

Every table the book compares against comes from here, with its source. Figures of the paper
print no numbers; the book states their claims in words instead.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources

__all__ = ["percentage_cells", "table"]


@cache
def _load(name: str) -> dict:
    return json.loads(resources.files("ncutils").joinpath("paper", name).read_text())


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
