"""Checking, in seconds and before any compute, that every input a run needs is on disk.

A paper-scale run that finds a missing dataset 130 GPU-hours in has wasted the 130 hours; so
``python -m ncutils.book --check`` (and every ``paper`` run, by itself, before computing anything)
collects the datasets and public weight files of every unit of the selected chapters, looks for
each where the code will look (``NCUTILS_DATA`` for datasets; torchvision's cache under
``TORCH_HOME`` and the Hugging Face cache under ``HF_HOME`` for weights), and lists everything
missing at once, with the command that fetches it. Nothing is downloaded.
"""

from __future__ import annotations

from collections.abc import Mapping

from ncutils import data, fewshot, hub
from ncutils.book.engine.units import Unit
from ncutils.book.runner.plan import flatten, needs

__all__ = ["missing_inputs", "preflight"]


def _dataset_problem(name: str, data_root: str | None) -> str | None:
    if name == "cifar_fs":
        return fewshot.check_cifar_fs(data_root)
    if name == "mini_imagenet":
        return fewshot.check_mini_imagenet(data_root)
    return data.check(name, data_root)


def _download_command(name: str) -> str:
    if name == "cifar_fs":
        return "python -m ncutils.data download cifar100   (CIFAR-FS is built from Cifar-100's files)"
    if name == "mini_imagenet":
        return (f"(no download: build it from ImageNet with the Ravi & Larochelle split, layout "
                f"{fewshot.MINI_IMAGENET_LAYOUT}, under $NCUTILS_DATA/mini-imagenet)")
    if name == "fashionmnist":
        return ("apt-get install dataset-fashion-mnist (Debian, Ubuntu; no network needed beyond the package), or "
                "python -m ncutils.data download fashionmnist")
    return f"python -m ncutils.data download {name}"


def missing_inputs(units: list[Unit], data_root: str | None = None) -> dict[str, dict[str, str]]:
    """``{"datasets": {name: problem}, "weights": {name: problem}}`` for the inputs that are not on disk."""
    want_data = sorted({d for u in units for d in needs(u)["datasets"]})
    want_weights = sorted({w for u in units for w in needs(u)["weights"]})
    out: dict[str, dict[str, str]] = {"datasets": {}, "weights": {}}
    for name in want_data:
        problem = _dataset_problem(name, data_root)
        if problem:
            out["datasets"][name] = problem
    for name in want_weights:
        if hub.cached_weights(name) is None:
            out["weights"][name] = f"not in the cache ({hub.weights_location(name)})"
    return out


def preflight(chapters: Mapping[str, list[Unit]], data_root: str | None = None) -> bool:
    """Print what the chapters' units need and what is missing; True when everything is present."""
    units = flatten(chapters)
    want_data = sorted({d for u in units for d in needs(u)["datasets"]})
    want_weights = sorted({w for u in units for w in needs(u)["weights"]})
    missing = missing_inputs(units, data_root)
    print(f"check: {len(units)} units need {len(want_data)} datasets and {len(want_weights)} weight files "
          f"(data root: {data.data_root(data_root)})")
    if not missing["datasets"] and not missing["weights"]:
        print("check: everything is present.")
        return True
    for name, problem in missing["datasets"].items():
        print(f"  MISSING dataset {name}: {problem}\n      fetch: {_download_command(name)}")
    for name, problem in missing["weights"].items():
        print(f"  MISSING weights {name}: {problem}")
    if missing["weights"]:
        print(f"      fetch all: python -m ncutils.hub download {' '.join(missing['weights'])}")
    n = len(missing["datasets"]) + len(missing["weights"])
    print(f"check: {n} inputs missing; nothing was computed. Fetch them (on a machine with internet access), "
          "then run again.")
    return False


def fetch_missing(chapters: Mapping[str, list[Unit]], data_root: str | None = None) -> bool:
    """Before computing: download the datasets the units need and lack (the cpu profile's Fashion-MNIST, 30 MB,
    where Debian's ``dataset-fashion-mnist`` is not installed); True when everything is then present. Where
    nothing can be fetched, :func:`preflight` says what is missing and how to get it, and nothing is computed."""
    units = flatten(chapters)
    missing = missing_inputs(units, data_root)
    for name in missing["datasets"]:
        print(f"fetching dataset {name} into {data.data_root(data_root)} ...", flush=True)
        try:
            data.download(name, root=data_root)
        except Exception as err:  # no network, a server down: the preflight below names the ways to get it
            print(f"  could not fetch {name}: {type(err).__name__}: {str(err).strip().splitlines()[0][:200]}")
    return preflight(chapters, data_root) if missing["datasets"] or missing["weights"] else True
