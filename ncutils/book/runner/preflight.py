"""Checking, in seconds and before any compute, that every input a run needs is on disk.

A paper-scale run that finds a missing dataset 130 GPU-hours in has wasted the 130 hours; so
``python -m ncutils.book --check`` (and every ``paper`` run, by itself, before computing anything)
collects the datasets and public weight files of every unit of the selected chapters, looks for
each where the code will look (``NCUTILS_DATA`` and, for Fashion-MNIST, Debian's copy, for datasets;
torchvision's cache under ``TORCH_HOME`` and the Hugging Face cache under ``HF_HOME`` for weights),
and lists everything missing at once, with the command that fetches it. A dataset counts only when
its files do (:func:`ncutils.data.check`: every file by size, header or checksum, not just a
folder), and the check says which copy of each dataset the run will read. Nothing is downloaded,
except by :func:`fetch_missing`, whose failed downloads leave nothing behind.
"""

from __future__ import annotations

from collections.abc import Mapping

from ncutils import data, fewshot, hub
from ncutils.book.engine.units import Unit
from ncutils.book.runner.plan import flatten, needs

__all__ = ["BUILT_FROM", "fetch_missing", "missing_inputs", "preflight"]


#: Datasets built from the files of a dataset of :data:`ncutils.data.DATASETS`.
BUILT_FROM = {"cifar_fs": "cifar100"}


def _dataset_state(name: str, data_root: str | None) -> tuple[str | None, str | None]:
    """``(copy, None)``: the copy the run will read, in words; or ``(None, problem)``: every copy that was looked at,
    what it lacks and its fix."""
    if name == "mini_imagenet":
        problem = fewshot.check_mini_imagenet(data_root)
        return (None, problem) if problem else (f"{data.data_root(data_root) / 'mini-imagenet'}", None)
    source = BUILT_FROM.get(name, name)
    found = data.locate(source, data_root)
    built = f" (built from {source}'s files)" if source != name else ""
    if found.used is not None:
        return found.describe() + built, None
    return None, "\n".join([f"no complete copy of {found.title}{built}", *found.problem_lines()])


def _download_command(name: str) -> str:
    if name == "mini_imagenet":
        return (f"(no download: build it from ImageNet with the Ravi & Larochelle split, layout "
                f"{fewshot.MINI_IMAGENET_LAYOUT}, under $NCUTILS_DATA/mini-imagenet)")
    source = BUILT_FROM.get(name, name)
    command = f"python -m ncutils.data download {source}"
    if name == "fashionmnist":
        return (f"apt-get install {data.idx.FASHION_MNIST_PACKAGE} (Debian, Ubuntu; no network needed beyond the "
                f"package), or {command}")
    return command + ("   (CIFAR-FS is built from CIFAR-100's files)" if source != name else "")


def _dataset_states(units: list[Unit], data_root: str | None) -> dict[str, tuple[str | None, str | None]]:
    return {name: _dataset_state(name, data_root) for name in sorted({d for u in units for d in needs(u)["datasets"]})}


def missing_inputs(units: list[Unit], data_root: str | None = None,
                   states: Mapping[str, tuple[str | None, str | None]] | None = None) -> dict[str, dict[str, str]]:
    """``{"datasets": {name: problem}, "weights": {name: problem}}`` for the inputs that are not on disk.

    ``states`` are the datasets' states when already computed (:func:`_dataset_states`).
    """
    states = _dataset_states(units, data_root) if states is None else states
    want_weights = sorted({w for u in units for w in needs(u)["weights"]})
    out: dict[str, dict[str, str]] = {"datasets": {}, "weights": {}}
    out["datasets"] = {name: problem for name, (_, problem) in states.items() if problem}
    for name in want_weights:
        if hub.cached_weights(name) is None:
            out["weights"][name] = f"not in the cache ({hub.weights_location(name)})"
    return out


def _indented(text: str, prefix: str) -> str:
    return text.replace("\n", "\n" + prefix)


def preflight(chapters: Mapping[str, list[Unit]], data_root: str | None = None) -> bool:
    """Print what the chapters' units need, which copy of each dataset they will read and what is missing;
    True when everything is present."""
    units = flatten(chapters)
    states = _dataset_states(units, data_root)
    want_weights = sorted({w for u in units for w in needs(u)["weights"]})
    missing = missing_inputs(units, data_root, states)
    print(f"check: {len(units)} units need {len(states)} datasets and {len(want_weights)} weight files "
          f"(data root: {data.data_root(data_root)})")
    for name, (copy, _) in states.items():
        if copy:
            print(f"  found dataset {name}: {copy}")
    if not missing["datasets"] and not missing["weights"]:
        print("check: everything is present.")
        return True
    for name, problem in missing["datasets"].items():
        print(f"  MISSING dataset {name}: {_indented(problem, '      ')}\n      fetch: {_download_command(name)}")
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
    where Debian's ``dataset-fashion-mnist`` is not installed); True when everything is then present. A failed
    download removes what it left (:func:`ncutils.data.download`), and :func:`preflight` then says what is
    missing and how to get it, and nothing is computed."""
    units = flatten(chapters)
    missing = missing_inputs(units, data_root)
    for name in missing["datasets"]:
        source = BUILT_FROM.get(name, name)
        if source not in data.DATASETS:
            continue  # miniImageNet cannot be downloaded; the preflight below says how to build it
        print(f"fetching dataset {source} into {data.data_root(data_root)} ...", flush=True)
        try:
            data.download(source, root=data_root)
        except Exception as err:  # no network, a server down, damaged files: the preflight below names the fixes
            print(f"  could not fetch {source}: {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}")
    return preflight(chapters, data_root) if missing["datasets"] or missing["weights"] else True
