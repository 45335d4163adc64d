"""What a submitit job runs: compute units into the shared store, and the claim files through which
several local jobs share one list of units."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from ncutils.book.engine.compute import Context, compute
from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit
from ncutils.book.runner.interrupts import alive

__all__ = ["by_priority", "claim", "claimed_by", "cpu_threads", "keep_log", "outcome", "planned_costs",
           "run_unit_job", "run_units_job"]


def run_unit_job(u: Unit, key: str, store_root: str, fresh_since: float | None, data_root: str | None,
                 threads: int | None) -> str:
    """The body of one submitit job: compute unit ``u`` into the store (its dependencies are stored)."""
    import torch

    if threads:
        torch.set_num_threads(threads)
    if u.key != key:
        raise RuntimeError(f"this worker computes key {u.key} for the unit submitted as {key}: it runs different "
                           "code or library versions than the submitting process. Use the same environment.")
    ctx = Context(Store(store_root, fresh_since=fresh_since), data_root=data_root, log=print)
    compute(u, ctx)
    return u.key


def run_units_job(batch: Sequence[tuple[Unit, str]], store_root: str, fresh_since: float | None,
                  data_root: str | None, threads: int | None, claim_dir: str, worker: int = 0,
                  poll_s: float = 0.5) -> dict[str, str | None]:
    """The body of one local job: compute the ``(unit, key)`` pairs of ``batch``, in its order; returns
    ``{key: None}`` for a unit stored, ``{key: error}`` for one that failed (the others are still computed)
    or was skipped because a unit it needs failed.

    Several jobs share one ``batch`` through ``claim_dir``: each computes only the units it claims first
    (:func:`claim`), and takes the first unit of ``batch`` whose dependencies are stored, waiting
    ``poll_s`` seconds at a time while none is. A failure is recorded in the claim folder
    (``KEY.failed``), so that every job skips the units that need it; so is a unit claimed by a job that
    has died.
    """
    import traceback

    claims = Path(claim_dir)
    store = Store(store_root, fresh_since=fresh_since)
    keys = {key for _, key in batch}
    pending = list(batch)
    out: dict[str, str | None] = {}
    stored: set[str] = set()

    def ready(u: Unit) -> bool:
        for d in u.deps:
            if d.key not in stored:
                if d not in store:
                    return False
                stored.add(d.key)
        return True

    while pending:
        pick = None
        for i, (u, key) in enumerate(pending):
            if (claims / key).exists():  # another job has it (or had it and failed)
                pick = i
                break
            why = _blocked(u, claims, keys, store)
            if why is not None or ready(u):
                pick = i
                break
        if pick is None:
            time.sleep(poll_s)
            continue
        u, key = pending.pop(pick)
        if not claim(claims, key, worker):
            continue
        why = _blocked(u, claims, keys, store)
        if why is None:
            print(f"unit {key}: {u.describe()}", flush=True)
            try:
                run_unit_job(u, key, store_root, fresh_since, data_root, threads)
            except Exception as err:  # reported per unit by fan_out; the job goes on
                traceback.print_exc()
                lines = str(err).strip().splitlines()
                why = f"{type(err).__name__}: {lines[-1] if lines else ''}"
        out[key] = why
        if why is not None:
            (claims / f"{key}.failed").write_text(why)
    return out


def _blocked(u: Unit, claims: Path, keys: set[str], store: Store) -> str | None:
    """Why ``u`` can never be computed in this fan-out (a unit it needs failed, or was claimed by a job
    that has died, or is neither stored nor planned), or None."""
    for d in u.deps:
        if (claims / f"{d.key}.failed").exists():
            return f"skipped: needs {d.key}, which failed"
        owner = claimed_by(claims, d.key, pid=True)
        if owner is not None and not alive(owner) and d not in store:
            return f"skipped: needs {d.key}, whose job died"
        if owner is None and d.key not in keys and d not in store:
            return f"skipped: needs {d.key}, which is neither stored nor part of this run"
    return None


def claim(claim_dir: Path, key: str, worker: int) -> bool:
    """Claim unit ``key`` for ``worker``: True for the first caller only (the claim file is created with
    ``O_EXCL``, atomic among processes on one machine's file system; it holds the worker and its pid)."""
    try:
        fd = os.open(claim_dir / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(f"{worker} {os.getpid()}")
    return True


def claimed_by(claim_dir: Path, key: str, *, pid: bool = False) -> int | None:
    """The worker that claimed ``key`` (its process id with ``pid=True``), or None when none did."""
    try:
        fields = (claim_dir / key).read_text().split()
        return int(fields[1 if pid else 0])
    except (OSError, ValueError, IndexError):
        return None


def cpu_threads(workers: int) -> int:
    """Threads for each of ``workers`` processes sharing this machine's cores (never more than this
    process's torch threads, so ``OMP_NUM_THREADS`` caps them)."""
    import torch

    return max(1, min(torch.get_num_threads(), (os.cpu_count() or 1) // workers))


def planned_costs(units: Sequence[Unit]) -> dict[Unit, float]:
    """Each unit's planned seconds on one CPU thread, from its shapes alone
    (:class:`ncutils.book.runner.plan.PixelTimer`: no network is built or timed)."""
    from ncutils.book.runner import plan

    timer = plan.PixelTimer()
    return {u: plan.estimate(u, timer) for u in units}


def by_priority(units: Sequence[Unit]) -> list[Unit]:
    """``units`` from the highest priority down: a unit's estimated cost plus the costliest chain of the
    given units that need it (:class:`ncutils.book.runner.plan.PixelTimer` estimates; ties keep the plan's
    order). Long chains start first, and short units at the end fill the gaps."""
    cost = planned_costs(units)
    needed_by: dict[Unit, list[Unit]] = {u: [] for u in units}
    for u in units:
        for d in u.deps:
            if d in needed_by:
                needed_by[d].append(u)
    rank: dict[Unit, float] = {}

    def r(u: Unit) -> float:
        if u not in rank:
            rank[u] = cost[u] + max((r(v) for v in needed_by[u]), default=0.0)
        return rank[u]

    return sorted(units, key=lambda u: -r(u))


def outcome(job, u: Unit, store: Store) -> str | None:
    """Why ``job`` did not store ``u`` (its error, or the job's crash), or None when it did."""
    try:
        why = job.result()
        why = why.get(u.key) if isinstance(why, dict) else None
    except Exception as err:  # the job's exception, or submitit's report of a crash
        lines = str(err).strip().splitlines()
        why = lines[-1] if lines else type(err).__name__
    if why is None and u not in store:
        why = "the job ended without storing it"
    return why


def keep_log(job, dest: Path) -> Path:
    """Copy a job's stdout and stderr next to the unit's record (what a notebook's error points at)."""
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "w") as out:
            for p in (job.paths.stdout, job.paths.stderr):
                if Path(p).exists():
                    out.write(Path(p).read_text(errors="replace"))
        return dest
    except OSError:
        return Path(job.paths.stderr)
