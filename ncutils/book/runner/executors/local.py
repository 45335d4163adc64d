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

The progress bar's estimate of the time left weighs the units by their planned cost
(:func:`~ncutils.book.runner.plan.remaining_seconds`), corrected as units finish. Each job's controller runs in
its own session, so that Ctrl-C in a terminal reaches only this process; an interrupted fan-out (Ctrl-C,
SIGTERM) stops every job itself (:func:`stop_jobs`): the units being computed get SIGINT, and what is left
after a grace period is killed. Stored units stay stored, and a rerun reuses them.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit
from ncutils.book.runner import interrupts
from ncutils.book.runner.executors.jobs import by_priority, claimed_by, cpu_threads, keep_log, outcome, run_units_job

__all__ = ["Local", "default_workers", "run_local", "stop_jobs"]


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
    import torch

    gpus = torch.cuda.device_count()
    workers = settings.count
    threads = None if gpus else cpu_threads(workers)
    out = []
    for i in range(workers):
        ex = _detached_executor_class()(folder=str(log_dir / "%j"))
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
    try:
        batch = [(u, u.key) for u in by_priority(todo)]
        running = []
        with interrupts.raising():  # SIGTERM as Ctrl-C, also when called outside the command line
            try:
                for i, ex in enumerate(executors[:len(todo)]):
                    running.append(ex.submit(run_units_job, batch, str(store.root), fresh_since, data_root,
                                             threads, str(claims), i))
                _wait(running, todo, store, workers=len(running), poll_s=poll_s, progress=progress, tqdm=tqdm)
            except BaseException:  # Ctrl-C, SIGTERM or an error here: local jobs are this machine's processes
                stop_jobs(running)
                raise
        return _failures(todo, running, store, claims)
    finally:
        shutil.rmtree(claims, ignore_errors=True)


def _wait(running, todo, store: Store, *, workers: int, poll_s: float, progress: bool, tqdm) -> None:
    """Wait for the jobs, showing the units stored and the time left, from their planned costs
    (:func:`~ncutils.book.runner.plan.remaining_seconds`)."""
    from ncutils.book.runner.executors.jobs import planned_costs
    from ncutils.book.runner.plan import fmt_seconds, remaining_seconds

    planned = planned_costs(todo)
    finished: dict[Unit, float] = {}
    fmt = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} units [{elapsed}{postfix}]"
    with tqdm(total=len(todo), desc="units", unit="unit", disable=not progress, bar_format=fmt) as bar:
        while True:
            done = all(j.done() for j in running)
            if progress:
                _read_finished(store, todo, finished)
                bar.n = len(finished)
                left = remaining_seconds(planned, finished, workers=workers, group=lambda u: u.kind)
                bar.set_postfix_str(f"~{fmt_seconds(left)} left", refresh=False)
                bar.refresh()
            if done:
                return
            time.sleep(poll_s)


def _read_finished(store: Store, todo: Sequence[Unit], finished: dict[Unit, float]) -> None:
    """Add to ``finished`` the units of ``todo`` stored since the last call, with the seconds they took
    (from their records' provenance; each new record is read once, not verified)."""
    for u in todo:
        if u in finished or not store.path(u).exists():
            continue
        try:
            provenance = json.loads(store.path(u).read_text())["provenance"]
            if store.fresh_since is None or provenance["finished_at"] >= store.fresh_since:
                finished[u] = float(provenance["seconds"])
        except (OSError, ValueError, KeyError, TypeError):  # damaged, or not readable yet: the next poll
            pass


def _failures(todo, running, store: Store, claims: Path) -> dict[Unit, str]:
    """The units of ``todo`` that the ``running`` jobs (now ended) did not store, with the reason and log."""
    failed = {}
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
    return failed


def stop_jobs(jobs, *, grace_s: float = interrupts.GRACE_S) -> None:
    """Stop submitit local ``jobs`` and every process they started: their tasks get SIGINT (the unit being
    computed stops; its job's log says where), their controllers end by themselves once their tasks have,
    and what is left after ``grace_s`` seconds is killed. In parallel, so the wait is one grace period."""
    def stop(job) -> None:
        interrupts.stop_tree(int(job.job_id), signal.SIGINT, grace_s=grace_s, spare_root=True,
                             reap=getattr(job, "_process", None))

    threads = [threading.Thread(target=stop, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


@functools.cache
def _detached_executor_class():
    """submitit's ``LocalExecutor``, its job controllers started in their own session.

    Ctrl-C in a terminal signals every process of the terminal's foreground group: submitit's controllers
    would each raise KeyboardInterrupt and print a traceback, while the runner stops them in order anyway
    (:func:`stop_jobs`). ``_submit_command`` and the controller's start are submitit 1.5.4's
    (``submitit.local.local``), with ``start_new_session=True`` (the version is pinned in requirements.txt).
    """
    import submitit
    from submitit.local.local import LocalJob

    class DetachedLocalExecutor(submitit.LocalExecutor):
        def _submit_command(self, command: str) -> LocalJob:
            p = self.parameters
            n_gpus, visible = p.get("gpus_per_node", 0), p.get("visible_gpus", ())
            gpus = range(n_gpus) if visible == () else visible[:n_gpus]
            env = dict(os.environ, SUBMITIT_LOCAL_NTASKS=str(p.get("tasks_per_node", 1)),
                       SUBMITIT_LOCAL_COMMAND=command,
                       SUBMITIT_LOCAL_TIMEOUT_S=str(int(60 * p.get("timeout_min", 2.0))),
                       SUBMITIT_LOCAL_SIGNAL_DELAY_S=str(int(p.get("signal_delay_s", 30))),
                       SUBMITIT_LOCAL_NODEID="0", SUBMITIT_LOCAL_JOB_NUM_NODES="1",
                       SUBMITIT_STDERR_TO_STDOUT="1" if p.get("stderr_to_stdout", False) else "",
                       SUBMITIT_EXECUTOR="local", CUDA_VISIBLE_DEVICES=",".join(str(k) for k in gpus),
                       SUBMITIT_LOCAL_WITH_SHELL="")
            process = subprocess.Popen([sys.executable, "-m", "submitit.local._local", str(self.folder)],
                                       env=env, start_new_session=True)
            return LocalJob(folder=self.folder, job_id=str(process.pid), process=process,
                            tasks=list(range(p.get("tasks_per_node", 1))))

    return DetachedLocalExecutor
