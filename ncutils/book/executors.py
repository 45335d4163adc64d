"""Computing a plan's units with submitit: on a Slurm cluster, or in parallel processes on one machine.

:func:`fan_out` computes the units that are not stored yet, each only once every unit it needs is
stored. Each job computes units into the shared store
(:class:`ncutils.book.store.Store`, safe for concurrent writers) and nothing else. A rerun skips what
is stored and resubmits only what is missing or failed; a failed unit is reported with the path of
its log, and the units that need it are skipped (reported too).

``--executor slurm`` submits one job-array task per unit in **dependency waves** (wave ``k`` holds the
units whose longest chain of dependencies is ``k``, submitted once the waves before it are stored), and
takes the partition, GPUs per unit, time limit, CPUs, memory and any extra ``#SBATCH`` options from the
command line or a YAML file (``--slurm-config``, keys as the long options without ``--slurm-``).

``--executor local --workers N`` uses submitit's local executor and no waves: one job per worker
for the whole plan. Every job walks the units from the highest priority down (its estimated cost plus
the costliest chain of units that need it, :class:`ncutils.book.plan.PixelTimer` estimates) and
computes the first one whose dependencies are stored and that no other job has claimed yet (a claim is
a file created atomically in a claim folder); when none is ready it waits for one. A worker that
finishes early thus takes the next unit instead of idling at the end of a wave or of a share dealt in
advance from wrong estimates, and the seconds a fresh Python process needs to import torch are paid
once per worker. Each worker is pinned to its own GPU on a multi-GPU machine
(``CUDA_VISIBLE_DEVICES``), or runs ``cores / N`` threads on a CPU (never more than this process's
torch threads, so ``OMP_NUM_THREADS`` caps them as it caps the sequential run). A failing unit fails
alone: its job goes on with the next one, and the units that need it are skipped.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from ncutils.book.compute import Context, compute
from ncutils.book.store import Store
from ncutils.book.units import Unit

__all__ = ["add_slurm_arguments", "by_priority", "claim", "claimed_by", "cpu_threads", "fan_out", "run_unit_job",
           "run_units_job", "slurm_parameters", "waves"]

SLURM_KEYS = ("partition", "gpus", "time", "cpus", "mem_gb", "array_parallelism", "setup", "options")


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
        if owner is not None and not _alive(owner) and d not in store:
            return f"skipped: needs {d.key}, whose job died"
        if owner is None and d.key not in keys and d not in store:
            return f"skipped: needs {d.key}, which is neither stored nor part of this run"
    return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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


def _executors(kind: str, log_dir: Path, args: argparse.Namespace):
    """The submitit executors to spread units over: one per local worker slot, or one Slurm executor."""
    import submitit

    if kind == "slurm":
        ex = submitit.AutoExecutor(folder=str(log_dir / "%j"), cluster="slurm")
        params = slurm_parameters(args)
        ex.update_parameters(**params)
        return [ex], None
    import torch

    gpus = torch.cuda.device_count()
    workers = args.workers or (gpus if gpus else 2)
    threads = None if gpus else cpu_threads(workers)
    out = []
    for i in range(workers):
        ex = submitit.LocalExecutor(folder=str(log_dir / "%j"))
        ex.update_parameters(timeout_min=24 * 60, gpus_per_node=1 if gpus else 0,
                             visible_gpus=(i % gpus,) if gpus else ())
        out.append(ex)
    return out, threads


def fan_out(units: Sequence[Unit], args: argparse.Namespace, *, store_dir: Path, log_dir: Path,
            fresh_since: float | None = None, poll_s: float = 2.0) -> bool:
    """Compute the missing ``units`` with submitit (see the module docstring); True if none failed."""
    from tqdm.auto import tqdm

    store = Store(store_dir, fresh_since=fresh_since)
    executors, threads = _executors(args.executor, log_dir, args)
    data_root = os.environ.get("NCUTILS_DATA")
    failed: dict[Unit, str] = {}
    todo = [u for u in units if u not in store]
    if args.executor == "local":
        print(f"fan-out (local, {len(executors)} workers): {len(units)} units, {len(todo)} to compute "
              f"(store: {store_dir})")
        if todo:
            failed = _run_local(todo, executors, store, fresh_since, data_root, threads, log_dir,
                                poll_s=poll_s, progress=not args.quiet, tqdm=tqdm)
    else:
        plan = waves(units)
        print(f"fan-out ({args.executor}): {len(units)} units in {len(plan)} waves, {len(todo)} to compute "
              f"(store: {store_dir})")
        for i, wave in enumerate(plan, 1):
            blocked = [u for u in wave if any(d in failed for d in u.deps)]
            for u in blocked:
                failed[u] = f"skipped: needs {next(d.key for d in u.deps if d in failed)}, which failed"
            missing = [u for u in wave if u not in blocked and u not in store]
            if missing:
                failed.update(_run_wave(missing, executors[0], store, fresh_since, data_root, threads,
                                        desc=f"wave {i}/{len(plan)}", poll_s=poll_s, progress=not args.quiet,
                                        tqdm=tqdm))
    for u, why in failed.items():
        print(f"  FAILED {u.key} {u.describe()}: {why}")
    done = sum(u in store for u in units)
    print(f"fan-out: {done} of {len(units)} units stored, {len(failed)} failed or skipped.")
    return not failed


def _outcome(job, u: Unit, store: Store) -> str | None:
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
        log = _keep_log(job, store.log_path(u))
        why = _outcome(job, u, store)
        if why is not None:
            failed[u] = f"{why} (log: {log})"
    return failed


def _run_local(todo, executors, store, fresh_since, data_root, threads, log_dir, *, poll_s, progress,
               tqdm) -> dict[Unit, str]:
    """One local job per worker, all given every unit to compute by priority (see the module docstring);
    waits for them and returns the failed or skipped units with the reason and log."""
    log_dir.mkdir(parents=True, exist_ok=True)
    claims = Path(tempfile.mkdtemp(prefix="claims-", dir=log_dir))
    batch = [(u, u.key) for u in by_priority(todo)]
    failed = {}
    with tqdm(total=len(todo), desc="units", unit="unit", disable=not progress) as bar, _terminate_as_interrupt():
        running = [ex.submit(run_units_job, batch, str(store.root), fresh_since, data_root, threads, str(claims), i)
                   for i, ex in enumerate(executors[:len(todo)])]
        try:
            while not all(j.done() for j in running):
                bar.n = sum(store.path(u).exists() for u in todo)  # a progress count: no need to read records
                bar.refresh()
                time.sleep(poll_s)
        except BaseException:  # Ctrl-C or an error here: local jobs are this machine's processes, stop them
            for job in running:
                job.cancel(check=False)
            raise
        bar.n = sum(u in store for u in todo)
        bar.refresh()
    for u in todo:
        marker = claims / f"{u.key}.failed"
        worker = claimed_by(claims, u.key)
        job = running[worker] if worker is not None and worker < len(running) else None
        if u in store and not marker.exists():
            continue
        why = marker.read_text() if marker.exists() else (
            _outcome(job, u, store) if job is not None else "no worker took it (every worker's job ended)")
        if why is None:
            continue
        log = _keep_log(job, store.log_path(u)) if job is not None and not why.startswith("skipped") else None
        failed[u] = why + (f" (log: {log})" if log else "")
    shutil.rmtree(claims, ignore_errors=True)
    return failed


@contextlib.contextmanager
def _terminate_as_interrupt():
    """SIGTERM (``kill``, a session ending) raises KeyboardInterrupt in the main thread, so that the local
    jobs are cancelled as on Ctrl-C (they ignore SIGTERM themselves, as submitit's jobs do, and would
    otherwise outlive this process)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def by_priority(units: Sequence[Unit]) -> list[Unit]:
    """``units`` from the highest priority down: a unit's estimated cost plus the costliest chain of the
    given units that need it (:class:`ncutils.book.plan.PixelTimer` estimates; ties keep the plan's
    order). Long chains start first, and short units at the end fill the gaps."""
    from ncutils.book import plan

    timer = plan.PixelTimer()
    cost = {u: plan.estimate(u, timer) for u in units}
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


def _keep_log(job, dest: Path) -> Path:
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


def clean(log_dir: Path) -> None:
    """Remove submitit's job folders (results are in the store; logs were copied beside them)."""
    shutil.rmtree(log_dir, ignore_errors=True)
