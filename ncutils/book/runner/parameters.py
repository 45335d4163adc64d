"""Profiles and parameter files, and the parameters each chapter runs with.

A chapter's parameters are its ``parameters`` cell's defaults, overridden by the profile's YAML file
(only the parameters the chapter declares), plus the runner's plumbing (:data:`ncutils.book.chapter.
PLUMBING`). :func:`chapter_parameters` computes exactly what papermill will inject, so the runner can
list a chapter's units (:mod:`ncutils.book.grids`) without executing it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ncutils.book.runner.chapters import declared_defaults

__all__ = ["REPLICATE_STRIDE", "chapter_parameters", "is_seed", "load_profile", "replicate",
           "replicated_parameters"]

#: Replicate ``K`` adds ``K`` times this to every seed, so the seeds of two replicates never meet (a chapter's
#: seeds stay below it).
REPLICATE_STRIDE = 1000


#: The profile a parameter file without a ``profile:`` line adjusts.
DEFAULT_PROFILE = "cpu"


def load_profile(root: Path, profile: str, declared: set[str] | None = None) -> tuple[str, str, dict]:
    """``(label, profile name, parameters)`` of a profile name or a YAML parameter file.

    The label names the build folder (``_build/<label>``): the profile's name, or a file's stem. A file
    names the profile it adjusts with a ``profile:`` key, else it adjusts :data:`DEFAULT_PROFILE`. With
    ``declared`` (the parameters the chapters declare), a key no chapter declares is an error, as is an
    unknown profile: both before anything is computed, naming the file, the key and the valid names.
    """
    profiles_dir = root / "book" / "profiles"
    path = Path(profile)
    builtin = not path.suffix
    if builtin:
        path = profiles_dir / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in profiles_dir.glob("*.yaml"))
        raise SystemExit(f"profile {profile!r} not found (looked for {path.name} in book/profiles/); known profiles: "
                         f"{', '.join(known)}, or pass a YAML parameter file.")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SystemExit(f"profile file {path} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise SystemExit(f"profile file {path} must be a mapping of parameter names to values.")
    from ncutils.book.profiles import PROFILES

    known_profiles = sorted(PROFILES)
    name = str(params.pop("profile", path.stem if builtin and path.stem in PROFILES else DEFAULT_PROFILE))
    if name not in known_profiles:
        raise SystemExit(f"{path}: 'profile: {name}' names no profile; use one of {', '.join(known_profiles)} "
                         f"(or leave the line out: a parameter file adjusts '{DEFAULT_PROFILE}').")
    if declared is not None:
        unknown = sorted(set(params) - declared)
        if unknown:
            raise SystemExit(f"{path}: {', '.join(repr(k) for k in unknown)} is not a parameter of any chapter; "
                             f"the chapters' parameters are: {', '.join(sorted(declared))}.")
    return path.stem, name, params


def is_seed(name: str) -> bool:
    """Whether chapter parameter ``name`` holds a random seed (``seed``, ``*_seed``) or a list of them (``*_seeds``)."""
    return name == "seed" or name.endswith(("_seed", "_seeds"))


def replicate(params: dict[str, Any], k: int) -> dict[str, Any]:
    """``params`` with every seed moved to replicate ``k``'s own set (``k = 0``: unchanged).

    Every random choice of a chapter flows from its seed parameters (pre-training, probes, subsets, episodes,
    bootstraps), so replicate ``k`` redraws them all from seeds no other replicate uses; the datasets stay
    the same (they are the population the experiment samples from)."""
    if k < 0:
        raise ValueError(f"a replicate is a number >= 0; got {k}.")
    shift = REPLICATE_STRIDE * k

    def moved(value):
        if isinstance(value, bool) or value is None:
            return value
        if isinstance(value, int):
            if not 0 <= value < REPLICATE_STRIDE:
                raise ValueError(f"seeds must lie in [0, {REPLICATE_STRIDE}) to replicate; got {value}.")
            return value + shift
        if isinstance(value, list):
            return [moved(v) for v in value]
        return value

    return {name: moved(v) if is_seed(name) else v for name, v in params.items()}


def chapter_parameters(nb: Path, profile: str, overrides: dict[str, Any], plumbing: dict[str, Any]
                       ) -> tuple[dict, dict]:
    """``(injected, effective)``: what papermill injects into ``nb`` and the values the chapter then runs with."""
    defaults = declared_defaults(nb)
    injected = {k: v for k, v in {**overrides, **plumbing, "profile": profile}.items() if k in defaults}
    return injected, {**defaults, **injected}


def replicated_parameters(nb: Path, profile: str, overrides: dict[str, Any], plumbing: dict[str, Any], k: int
                          ) -> tuple[dict, dict]:
    """:func:`chapter_parameters` of replicate ``k``: every seed parameter injected, moved by :func:`replicate`."""
    injected, effective = chapter_parameters(nb, profile, overrides, plumbing)
    if k:
        seeds = replicate({n: v for n, v in effective.items() if is_seed(n)}, k)
        injected, effective = {**injected, **seeds}, {**effective, **seeds}
    return injected, effective
