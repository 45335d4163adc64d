"""Fan-out on a Slurm cluster: one job-array task per unit, in dependency waves.

Wave ``k`` holds the units whose longest chain of dependencies is ``k``; it is submitted once the waves
before it are stored. :class:`Slurm` holds the partition, GPUs per unit, time limit, CPUs, memory and any
extra ``#SBATCH`` options, from the command line or a YAML file (``--slurm-config``, keys as the long
options without ``--slurm-``).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit
from ncutils.book.runner.executors.jobs import keep_log, outcome, run_unit_job

__all__ = ["SLURM_KEYS", "Slurm", "add_slurm_arguments", "run_slurm", "waves"]

SLURM_KEYS = ("partition", "gpus", "time", "cpus", "mem_gb", "array_parallelism", "setup", "options")


@dataclass(frozen=True)
class Slurm:
    """Settings of the Slurm fan-out: submitit's parameters for every unit's job."""

    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Slurm:
        """From ``--slurm-config`` and the ``--slurm-*`` options (options win)."""
        return cls(slurm_parameters(args))


def add_slurm_arguments(group: argparse._ArgumentGroup) -> None:
    group.add_argument("--slurm-config", metavar="FILE", help="YAML file with any of: " + ", ".join(SLURM_KEYS))
    group.add_argument("--slurm-partition", help="Slurm partition")
    group.add_argument("--slurm-gpus", type=int, help="GPUs per unit (default 1)")
    group.add_argument("--slurm-time", type=int, metavar="MIN", help="time limit per unit in minutes (default 720)")
    group.add_argument("--slurm-cpus", type=int, help="CPUs per unit (default 8: loader workers)")
    group.add_argument("--slurm-mem-gb", type=int, help="memory per unit in GB (default 64)")
    group.add_argument("--slurm-array-parallelism", type=int, help="units of one wave running at once (default 32)")
    group.add_argument("--slurm-setup", action="append", metavar="CMD",
                       help="shell line run before each unit, e.g. 'module load cuda' (repeatable)")
    group.add_argument("--slurm-option", action="append", metavar="KEY=VALUE", dest="slurm_options",
                       help="extra #SBATCH option, e.g. account=mylab or qos=high (repeatable)")


def slurm_parameters(args: argparse.Namespace) -> dict[str, Any]:
    """submitit's Slurm parameters from ``--slurm-config`` and the ``--slurm-*`` options (options win)."""
    cfg: dict[str, Any] = {}
    if getattr(args, "slurm_config", None):
        cfg = yaml.safe_load(Path(args.slurm_config).read_text()) or {}
        unknown = set(cfg) - set(SLURM_KEYS)
        if unknown:
            raise SystemExit(f"{args.slurm_config}: unknown keys {sorted(unknown)}; use {', '.join(SLURM_KEYS)}.")
    for key in SLURM_KEYS:
        value = getattr(args, f"slurm_{key}", None)
        if value is not None:
            cfg[key] = value
    options = cfg.get("options") or {}
    if isinstance(options, list):  # KEY=VALUE strings from the command line
        bad = [o for o in options if "=" not in o]
        if bad:
            raise SystemExit(f"--slurm-option takes KEY=VALUE; got {bad}.")
        options = dict(o.split("=", 1) for o in options)
    params = {"timeout_min": int(cfg.get("time", 720)), "gpus_per_node": int(cfg.get("gpus", 1)),
              "cpus_per_task": int(cfg.get("cpus", 8)), "mem_gb": int(cfg.get("mem_gb", 64)),
              "slurm_array_parallelism": int(cfg.get("array_parallelism", 32)), "name": "ncbook",
              "slurm_additional_parameters": dict(options), "slurm_setup": list(cfg.get("setup") or [])}
    if cfg.get("partition"):
        params["slurm_partition"] = cfg["partition"]
    return params


def waves(units: Sequence[Unit]) -> list[list[Unit]]:
    """``units`` grouped by depth: wave ``k`` holds the units whose longest chain of dependencies is ``k``."""
    depth: dict[Unit, int] = {}

    def d(u: Unit) -> int:
        if u not in depth:
            depth[u] = 1 + max((d(x) for x in u.deps), default=-1)
        return depth[u]

    out: dict[int, list[Unit]] = {}
    for u in units:
        out.setdefault(d(u), []).append(u)
    return [out[k] for k in sorted(out)]


def run_slurm(units: Sequence[Unit], settings: Slurm, store: Store, *, log_dir: Path, fresh_since: float | None,
              data_root: str | None, progress: bool, poll_s: float) -> dict[Unit, str]:
    """Compute the missing ``units`` wave after wave; returns the failed or skipped units with the reason."""
    import submitit
    from tqdm.auto import tqdm

    executor = submitit.AutoExecutor(folder=str(log_dir / "%j"), cluster="slurm")
    executor.update_parameters(**settings.parameters)
    plan = waves(units)
    todo = [u for u in units if u not in store]
    print(f"fan-out (slurm): {len(units)} units in {len(plan)} waves, {len(todo)} to compute (store: {store.root})")
    failed: dict[Unit, str] = {}
    for i, wave in enumerate(plan, 1):
        blocked = [u for u in wave if any(d in failed for d in u.deps)]
        for u in blocked:
            failed[u] = f"skipped: needs {next(d.key for d in u.deps if d in failed)}, which failed"
        missing = [u for u in wave if u not in blocked and u not in store]
        if missing:
            failed.update(_run_wave(missing, executor, store, fresh_since, data_root, None,
                                    desc=f"wave {i}/{len(plan)}", poll_s=poll_s, progress=progress, tqdm=tqdm))
    return failed


def _run_wave(missing, executor, store, fresh_since, data_root, threads, *, desc, poll_s, progress,
              tqdm) -> dict[Unit, str]:
    """Submit one wave as a job array and wait; returns the failed units with the reason and log."""
    failed = {}
    with tqdm(total=len(missing), desc=desc, unit="unit", disable=not progress) as bar:
        args_of = [(u, u.key, str(store.root), fresh_since, data_root, threads) for u in missing]
        submitted = executor.map_array(run_unit_job, *zip(*args_of))
        while not all(j.done() for j in submitted):
            bar.n = sum(j.done() for j in submitted)
            bar.refresh()
            time.sleep(poll_s)
        bar.n = len(missing)
        bar.refresh()
    for u, job in zip(missing, submitted):
        log = keep_log(job, store.log_path(u))
        why = outcome(job, u, store)
        if why is not None:
            failed[u] = f"{why} (log: {log})"
    return failed
