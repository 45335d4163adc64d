"""Fan-out on one machine: submitit's local executor, one job per worker for the whole plan.

Every job walks the units from the highest priority down (its estimated cost plus the costliest chain of
units that need it, :func:`~ncutils.book.runner.executors.jobs.by_priority`) and computes the first one
whose dependencies are stored and that no other job has claimed yet (a claim is a file created atomically
in a claim folder); when none is ready it waits for one. A worker that finishes early thus takes the next
unit instead of idling, and the seconds a fresh Python process needs to import torch are paid once per
worker. Each worker is pinned to its own GPU on a multi-GPU machine (``CUDA_VISIBLE_DEVICES``), or runs
``cores / N`` threads on a CPU (never more than this process's torch threads, so ``OMP_NUM_THREADS`` caps
them as it caps the sequential run). A failing unit fails alone: its job goes on with the next one, and
the units that need it are skipped.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit
from ncutils.book.runner.executors.jobs import by_priority, claimed_by, cpu_threads, keep_log, outcome, run_units_job

__all__ = ["Local", "default_workers", "run_local"]


def default_workers() -> int:
    """One worker per GPU, else one per CPU core."""
    import os

    import torch

    return torch.cuda.device_count() or os.cpu_count() or 1


@dataclass(frozen=True)
class Local:
    """Settings of the local fan-out: ``workers`` parallel units (``None``: :func:`default_workers`)."""

    workers: int | None = None

    def __post_init__(self) -> None:
        if self.workers is not None and self.workers < 1:
            raise ValueError(f"--workers takes a positive number of parallel units; got {self.workers}.")

    @property
    def count(self) -> int:
        return self.workers or default_workers()


def _executors(settings: Local, log_dir: Path):
    """One submitit local executor per worker slot, and the threads each worker runs on a CPU."""
    import submitit
    import torch

    gpus = torch.cuda.device_count()
    workers = settings.count
    threads = None if gpus else cpu_threads(workers)
    out = []
    for i in range(workers):
        ex = submitit.LocalExecutor(folder=str(log_dir / "%j"))
        ex.update_parameters(timeout_min=24 * 60, gpus_per_node=1 if gpus else 0,
                             visible_gpus=(i % gpus,) if gpus else ())
        out.append(ex)
    return out, threads


def run_local(units: Sequence[Unit], settings: Local, store: Store, *, log_dir: Path, fresh_since: float | None,
              data_root: str | None, progress: bool, poll_s: float) -> dict[Unit, str]:
    """Compute the missing ``units`` (see the module docstring); returns the failed or skipped units."""
    from tqdm.auto import tqdm

    executors, threads = _executors(settings, log_dir)
    todo = [u for u in units if u not in store]
    print(f"fan-out (local, {len(executors)} workers): {len(units)} units, {len(todo)} to compute "
          f"(store: {store.root})")
    if not todo:
        return {}
    return _run_local(todo, executors, store, fresh_since, data_root, threads, log_dir, poll_s=poll_s,
                      progress=progress, tqdm=tqdm)


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
            outcome(job, u, store) if job is not None else "no worker took it (every worker's job ended)")
        if why is None:
            continue
        log = keep_log(job, store.log_path(u)) if job is not None and not why.startswith("skipped") else None
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
