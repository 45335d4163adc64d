"""Computing a plan's units with submitit: on a Slurm cluster, or in parallel processes on one machine.

:func:`fan_out` computes the units that are not stored yet, each only once every unit it needs is
stored. Each job computes units into the shared store
(:class:`ncutils.book.engine.store.Store`, safe for concurrent writers) and nothing else. A rerun skips what
is stored and resubmits only what is missing or failed; a failed unit is reported with the path of
its log, and the units that need it are skipped (reported too).

Two backends, each with a settings object: :class:`Local` (:mod:`.local`, submitit's local executor, one
job per worker for the whole plan) and :class:`Slurm` (:mod:`.slurm`, job arrays in dependency waves);
:mod:`.jobs` holds what a job runs.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit
from ncutils.book.runner.executors.jobs import by_priority, claim, claimed_by, cpu_threads, run_unit_job, run_units_job
from ncutils.book.runner.executors.local import Local, default_workers, run_local
from ncutils.book.runner.executors.slurm import Slurm, add_slurm_arguments, waves

__all__ = ["Local", "Slurm", "add_slurm_arguments", "by_priority", "claim", "claimed_by", "cpu_threads",
           "default_workers", "fan_out", "run_unit_job", "run_units_job", "waves"]


def fan_out(units: Sequence[Unit], settings: Local | Slurm, *, store_dir: Path, log_dir: Path,
            fresh_since: float | None = None, progress: bool = True, poll_s: float = 2.0) -> bool:
    """Compute the ``units`` that are not stored yet with the backend of ``settings``; True if none failed."""
    from ncutils.book.runner.executors.slurm import run_slurm

    store = Store(store_dir, fresh_since=fresh_since)
    run = run_local if isinstance(settings, Local) else run_slurm
    failed = run(units, settings, store, log_dir=log_dir, fresh_since=fresh_since,
                 data_root=os.environ.get("NCUTILS_DATA"), progress=progress, poll_s=poll_s)
    for u, why in failed.items():
        print(f"  FAILED {u.key} {u.describe()}: {why}")
    done = sum(u in store for u in units)
    print(f"fan-out: {done} of {len(units)} units stored, {len(failed)} failed or skipped.")
    return not failed
