"""``python -m ncutils.book``: compute a profile's units, run the book's chapters and build the Jupyter Book.

    python -m ncutils.book [--profile cpu|smoke|paper|FILE.yaml] [--only N ...] [--no-build] [--fresh]
                           [--plan [--json FILE]] [--check] [--dry-run [batch|minimal]] [--store DIR]
                           [--executor local|sequential|slurm] [--workers N] [--slurm-* ...]

Every chapter's work is a grid of units (:mod:`ncutils.book.grids`) whose results live in one store
shared by every profile and parameter file (``_build/store`` unless ``--store``), keyed by their complete
configuration and code, so a parameter file reuses every unit it does not change. By default the units
are computed first, spread over this machine with submitit's local executor (one worker per GPU, else one
per core at one thread each; :mod:`ncutils.book.runner.executors`), and the chapters then only read them,
side by side. ``--executor slurm`` computes them on a cluster; ``--executor sequential`` lets each
chapter compute the units it needs as it goes, in its own process. ``--plan`` lists the units and their
estimated cost without computing anything; ``--check`` checks that every dataset and weight file is
present (a ``paper`` run does this first by itself); ``--dry-run`` runs the same plan at the paper's
shapes on synthetic stand-ins and random weights, capped to a step or two per unit (see
:mod:`ncutils.book.engine.dryrun`). A chapter that fails is named with the failing cell; the other
chapters still run and the command exits non-zero. A rerun reuses chapters whose notebook, parameters
and code are unchanged (``--fresh`` recomputes every unit of the run once).

Unattended runs: two runs on one build folder execute each chapter once (a lock per chapter; the second
waits, says so, and reuses what the first executed when the chapter's key matches), and build the book
one after the other. An interrupted run (Ctrl-C, SIGTERM) stops every process it started, prints one line
saying what is stored and how to resume (the same command: stored units and executed chapters are reused),
and exits with 130 (SIGINT) or 143 (SIGTERM); see :mod:`ncutils.book.runner.interrupts`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ncutils.book import settings as settings_
from ncutils.book.engine.chapter_key import chapter_key
from ncutils.book.engine.store import FRESH_ENV, Store, StoreError
from ncutils.book.runner import chapters as chapters_
from ncutils.book.runner import interrupts
from ncutils.book.runner.execute import execute, execute_child
from ncutils.book.runner.parameters import chapter_parameters
from ncutils.book.runner.site import Record, build_book, replicate_verdicts, stage

__all__ = ["MANIFEST", "Run", "main"]

#: The file in a build folder that says what the build is (its profile, parameter file, replicate, dry run):
#: other builds find their replicates by reading it, never by parsing folder names.
MANIFEST = "build.json"


# --------------------------------------------------------------------------- the command line
def _parser() -> argparse.ArgumentParser:
    from ncutils.book.runner.executors import add_slurm_arguments

    ap = argparse.ArgumentParser(prog="python -m ncutils.book", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="smoke, cpu (default), paper, or a YAML parameter file")
    ap.add_argument("--only", type=int, nargs="+", metavar="N", help="run only these chapters (numbers)")
    ap.add_argument("--no-build", action="store_true", help="run the notebooks but do not build the book")
    ap.add_argument("--fresh", action="store_true", help="recompute every unit of this run once")
    ap.add_argument("--root", help="the repository (default: found from the current folder)")
    ap.add_argument("--store", help="the unit store (default: _build/store, shared by every profile)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    ap.add_argument("--replicate", type=int, default=0, metavar="K",
                    help="build with every seed drawn from the independent set K (0, the default: the book's own); "
                    "into _build/<profile>-replicate-K")
    g = ap.add_argument_group("planning")
    g.add_argument("--plan", action="store_true", help="list the units and their estimated cost; compute nothing")
    g.add_argument("--json", metavar="FILE", help="with --plan: write the plan as JSON to FILE ('-': stdout)")
    g.add_argument("--no-timing", action="store_true", help="with --plan: skip the timed steps of the estimate")
    g.add_argument("--check", action="store_true", help="check that every dataset and weight file is present")
    g.add_argument("--dry-run", nargs="?", const="auto", default=None, choices=("auto", "batch", "minimal"),
                   help="the same plan on synthetic stand-ins at the paper's shapes, random weights, 1-2 steps; "
                   "batch: at the paper's batch sizes, minimal: the least data that runs every code path, see "
                   "ncutils.book.engine.dryrun (auto, the default: batch on a GPU, minimal on a CPU)")
    e = ap.add_argument_group("computing the units (submitit)")
    e.add_argument("--executor", choices=("local", "sequential", "slurm"), default="local",
                   help="local (default: units first, in parallel on this machine), sequential (each chapter "
                   "computes its units in its own process) or slurm (units first, on a cluster)")
    e.add_argument("--workers", type=int, default=None, help="local executor: parallel units (default: one per GPU, "
                   "else one per CPU core)")
    add_slurm_arguments(e)
    return ap


@dataclass
class Run:
    """One invocation: what to run, where its outputs go, and how its units are computed."""

    args: argparse.Namespace
    root: Path
    label: str  # the build folder's name: the profile, or a parameter file's stem (+ "-dry-run", "-replicate-K")
    loaded: settings_.Loaded  # the profile or parameter file, checked
    notebooks: list[Path]  # every chapter notebook that exists
    listed: list[Path]  # every chapter the table of contents lists
    selected: list[Path]
    dry_run: str | None
    fresh_since: float | None = None
    params: dict[Path, tuple[dict, settings_.Common]] = field(default_factory=dict)

    @property
    def profile(self) -> str:
        return self.loaded.profile

    @property
    def replicate(self) -> int:
        return self.args.replicate

    def manifest(self) -> dict[str, Any]:
        """What this build is (written to its folder as :data:`MANIFEST`)."""
        return {"label": self.label, "profile": self.profile, "replicate": self.replicate,
                "dry_run": self.dry_run, "parameter_file": str(self.loaded.path) if self.loaded.path else None,
                "changes": self.loaded.changes}

    def write_manifest(self) -> None:
        _write_atomic(self.out_dir / MANIFEST, json.dumps(self.manifest(), indent=1, default=str))

    @property
    def out_dir(self) -> Path:
        return self.root / "_build" / self.label

    @property
    def store_dir(self) -> Path:
        return Path(self.args.store).resolve() if self.args.store else self.root / "_build" / "store"

    def siblings(self) -> dict[str, Path]:
        """The other replicate builds of this build found under ``_build``, by the name the claims page gives them
        ("default", "replicate K"): builds whose :data:`MANIFEST` names the same profile, parameter file, changes
        and dry run, and another replicate."""
        mine = {k: v for k, v in json.loads(json.dumps(self.manifest(), default=str)).items()
                if k not in ("label", "replicate")}
        out = {}
        for path in sorted((self.root / "_build").glob(f"*/{MANIFEST}")):
            try:
                other = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError):
                continue
            if other.get("replicate") != self.replicate and \
                    all(other.get(k) == v for k, v in mine.items()):
                name = f"replicate {other['replicate']}" if other["replicate"] else "default"
                out[name if name not in out else f"{name} ({path.parent.name})"] = path.parent
        return out

    @property
    def stage_dir(self) -> Path:
        return self.out_dir / "src"

    def lock_file(self, name: str) -> Path:
        """The lock that runs on this build folder share for ``name`` (a chapter, ``runs``, ``book``)."""
        return self.out_dir / "locks" / f"{name}.lock"

    @property
    def workers(self) -> int:
        from ncutils.book.runner.executors import default_workers

        return self.args.workers or default_workers()

    def executor_settings(self):
        """The settings object of the fan-out backend (:mod:`ncutils.book.runner.executors`)."""
        from ncutils.book.runner.executors import Local, Slurm

        if self.args.executor == "slurm":
            return Slurm.from_args(self.args)
        return Local(self.args.workers)

    def chapter_params(self, compute_missing: bool) -> None:
        """What papermill injects into each selected chapter, and the settings it then runs with."""
        book_dir = self.root / "book"
        for nb in self.selected:
            number = chapters_.chapter_number(nb)
            if number not in settings_.CHAPTERS:
                raise SystemExit(f"{nb.name}: no chapter {number} is declared in ncutils.book.settings.CHAPTERS.")
            executed = self.stage_dir / "book" / nb.name
            plumbing = {"results_path": os.path.relpath(executed.with_suffix(".json"), book_dir),
                        "store_dir": os.path.relpath(self.store_dir, book_dir), "reuse_results": not self.args.fresh,
                        "compute_missing": compute_missing, "progress": not self.args.quiet,
                        "dry_run": self.dry_run}
            self.params[nb] = chapter_parameters(number, self.loaded, plumbing, self.replicate)


def _select(nbs: list[Path], only: list[int] | None) -> list[Path]:
    if not only:
        return nbs
    numbers = {chapters_.chapter_number(nb): nb for nb in nbs}
    unknown = sorted(set(only) - set(numbers))
    if unknown:
        known = sorted(k for k in numbers if k)
        raise SystemExit(f"--only {unknown}: no such chapter; chapters are {known}.")
    return [numbers[n] for n in sorted(set(only))]


def parse(argv: list[str]) -> Run:
    """The run the command line asks for; a bad profile, parameter file or option stops here."""
    args = _parser().parse_args(argv)
    if args.json and not args.plan:
        raise SystemExit("--json writes a plan: use it with --plan.")
    if args.replicate < 0:
        raise SystemExit(f"--replicate takes a number >= 0; got {args.replicate}.")
    if args.workers is not None and args.workers < 1:
        raise SystemExit(f"--workers takes a positive number; got {args.workers}.")
    root = settings_.find_root(args.root)
    listed = chapters_.chapters(root)
    nbs = [nb for nb in listed if nb.exists()]
    try:
        loaded = settings_.load(args.profile, root)
    except settings_.SettingsError as err:
        raise SystemExit(str(err)) from None
    label = loaded.label
    dry_run = args.dry_run
    if dry_run == "auto":
        import torch

        dry_run = "batch" if torch.cuda.is_available() else "minimal"
    label = f"{label}-dry-run" if dry_run else label
    label = f"{label}-replicate-{args.replicate}" if args.replicate else label
    return Run(args, root, label, loaded, nbs, listed, _select(nbs, args.only), dry_run,
               fresh_since=time.time() if args.fresh else None)


def check_store(run: Run) -> None:
    """Stop with one line, before any compute, when the store cannot be used (``--store`` names a file, a
    folder that cannot be written, ...: :class:`~ncutils.book.engine.store.StoreError`)."""
    try:
        Store(run.store_dir, fresh_since=run.fresh_since)
    except StoreError as err:
        raise SystemExit(str(err)) from None


# --------------------------------------------------------------------------- the steps
def plan_units(run: Run) -> dict[str, list]:
    """Every selected chapter's units, by chapter."""
    from ncutils.book.runner import plan

    try:
        return plan.chapter_units({nb: eff for nb, (_, eff) in run.params.items()}, dry_run=run.dry_run)
    except ValueError as err:  # an unknown dataset or network name in the parameters
        raise SystemExit(f"cannot plan the chapters: {err}") from None


def compute_units(run: Run, chapter_units: dict[str, list]) -> bool:
    """Compute the units of the selected chapters into the store with the run's executor; True if none failed."""
    from ncutils.book.runner import plan
    from ncutils.book.runner.executors import fan_out

    ok = fan_out(plan.flatten(chapter_units), run.executor_settings(), store_dir=run.store_dir,
                 log_dir=run.out_dir / "submitit", fresh_since=run.fresh_since, progress=not run.args.quiet)
    if not ok:
        print("some units failed (see above); the chapters that need them will fail too.")
    return ok


def _previous_records(runs_file: Path) -> dict[str, Record]:
    try:
        return {r["name"]: Record(**r) for r in json.loads(runs_file.read_text())}
    except (OSError, json.JSONDecodeError, TypeError):
        return {}


def _write_atomic(path: Path, text: str) -> None:
    """Write ``path`` whole or not at all (a reader never sees half of it, two writers never mix)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@contextlib.contextmanager
def held(lock_file: Path, tag: str = "", what: str | None = None,
         stop: threading.Event | None = None) -> Iterator[None]:
    """Hold ``lock_file`` (a ``filelock.FileLock``); while another run holds it, wait, and with ``what`` say so
    once ("``tag``: another run is ``what``"). ``stop``: give up waiting when set (raises ``filelock.Timeout``)."""
    from filelock import FileLock, Timeout

    lock_file.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(lock_file)
    try:
        lock.acquire(blocking=False)
    except Timeout:
        if what:
            print(f"{tag}: another run is {what}; waiting for it to finish (lock: {lock_file})", flush=True)
        lock.acquire(cancel_check=stop.is_set if stop is not None else None)
    try:
        yield
    finally:
        lock.release()


def save_records(run: Run, mine: dict[str, Record]) -> dict[str, Record]:
    """Merge this run's chapter records ``mine`` into the build folder's ``runs.json``, under its lock (another
    run on the same folder may have recorded its chapters meanwhile); returns every chapter's record, in
    book order."""
    runs_file = run.out_dir / "runs.json"
    with held(run.lock_file("runs")):
        records = _previous_records(runs_file)
        records.update(mine)
        ordered = {nb.stem: records.get(nb.stem, Record(nb.stem, status="not run")) for nb in run.notebooks}
        _write_atomic(runs_file, json.dumps([asdict(r) for r in ordered.values()], indent=1))
    return ordered


def reusable(old: Record | None, key: str, executed: Path, fresh_since: float | None) -> bool:
    """Whether the chapter recorded as ``old`` can be reused for cache key ``key`` (its executed copy is
    there; with ``--fresh``, only when it was executed after the run began)."""
    return old is not None and old.status in ("ok", "reused") and old.fingerprint == key and executed.exists() \
        and (fresh_since is None or (old.finished_at or 0.0) >= fresh_since)


def run_chapters(run: Run, *, side_by_side: int) -> dict[str, Record]:
    """Execute the selected chapters (``side_by_side`` at once), reusing those whose cache key is unchanged;
    returns the record of every chapter: what this run did for the selected ones (a run sharing the build folder
    may record the same chapter later), the build folder's ``runs.json`` for the others.

    Each chapter is executed under its lock in the build folder: a second run on the same folder waits for it
    (and says so), then reuses the chapter when its key matches. An interrupt stops every chapter process (and
    its kernel) before it propagates; the chapters it stopped are recorded as ``interrupted``, never reused."""
    env = {FRESH_ENV: repr(run.fresh_since)} if run.fresh_since else {}
    if side_by_side > 1:
        from ncutils.book.runner.executors import cpu_threads

        env["OMP_NUM_THREADS"] = str(cpu_threads(side_by_side))
    # the keys first, in this thread: CPython 3.11's ast.parse is not safe in several threads at once
    keys = {nb: chapter_key(nb, settings_.as_dict(run.params[nb][1]), run.params[nb][0]["runner"])
            for nb in run.selected}
    stop = threading.Event()
    mine: dict[str, Record] = {}  # what this run did with each chapter (another run may record it later)

    def one(i: int, nb: Path) -> None:
        tag = f"[{i}/{len(run.selected)}] {nb.stem}"
        with held(run.lock_file(nb.stem), tag, f"executing {nb.stem} into {run.out_dir}", stop):
            mine[nb.stem] = _chapter(run, nb, keys[nb], tag, env, stop)

    pool = ThreadPoolExecutor(max(1, side_by_side))
    try:
        for done in [pool.submit(one, i, nb) for i, nb in enumerate(run.selected, 1)]:
            done.result()
    except BaseException as err:  # Ctrl-C, SIGTERM (or a bug): stop the chapters running, start no other
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        interrupts.CHILDREN.stop_all(getattr(err, "signum", signal.SIGTERM))
        pool.shutdown(wait=True)
        raise
    pool.shutdown()
    return {stem: mine.get(stem, r) for stem, r in save_records(run, {}).items()}


def _chapter(run: Run, nb: Path, key: str, tag: str, env: dict[str, str], stop: threading.Event) -> Record:
    """Execute chapter ``nb`` (its lock held), or reuse it; record what happened, and return the record."""
    executed = run.stage_dir / "book" / nb.name
    old = _previous_records(run.out_dir / "runs.json").get(nb.stem)  # read now: another run may have executed it
    if reusable(old, key, executed, run.fresh_since):
        rec = Record(**{**asdict(old), "status": "reused"})
        save_records(run, {nb.stem: rec})
        print(f"{tag}: unchanged since {old.finished}, reused", flush=True)
        return rec
    save_records(run, {nb.stem: Record(nb.stem, status="running")})  # a half-executed copy is never reused
    log = run.out_dir / "logs" / f"{nb.stem}.log"
    try:
        status = execute(nb, executed, run.params[nb][0], log, tag, not run.args.quiet, env=env)
    except interrupts.Interrupted:  # the run stops: no new chapter process
        status = None
    if status is None or stop.is_set():
        rec = Record(nb.stem, status="interrupted")
        save_records(run, {nb.stem: rec})
        return rec
    rec = Record(nb.stem, status=status["status"], seconds=status.get("seconds"),
                 peak_mib=status.get("peak_mib"), fingerprint=key, error=status.get("error"),
                 failed_cell=status.get("failed_cell"), finished=time.strftime("%Y-%m-%d %H:%M"),
                 finished_at=time.time())
    mem = f", peak {rec.peak_mib:.0f} MiB" if rec.peak_mib else ""
    if rec.status == "ok":
        print(f"{tag}: ok in {rec.seconds:.1f} s{mem}", flush=True)
    else:
        where = f" in cell In [{rec.failed_cell}]" if rec.failed_cell is not None else ""
        print(f"{tag}: FAILED{where}: {rec.error}\n    executed copy: {executed}\n    log: {log}", flush=True)
    save_records(run, {nb.stem: rec})
    return rec


def build(run: Run, records: dict[str, Record]) -> bool:
    """Stage the book source of this run and build the HTML book; True if it built. One run at a time per
    build folder (a second waits, then builds with every chapter recorded by then)."""
    with held(run.lock_file("book"), "book", f"building the book in {run.out_dir}"):
        records = save_records(run, {})  # with the chapters another run on this folder recorded meanwhile
        stage(run.root, run.stage_dir, run.label, list(records.values()), run.listed,
              replicate_verdicts(run.siblings()), store=run.store_dir,
              draws=50 if run.profile == "smoke" or run.dry_run else None, workers=run.workers)
        t0 = time.perf_counter()
        log = run.out_dir / "logs" / "jupyter-book.log"
        built, why = build_book(run.stage_dir, run.out_dir / "html", log)
    if built:
        print(f"book built in {time.perf_counter() - t0:.1f} s: {run.out_dir / 'html' / 'index.html'}")
    else:
        print(f"book build FAILED (full log: {log}):\n{why}")
    return built


def interrupted_line(run: Run | None, argv: Sequence[str], err: interrupts.Interrupted,
                     units: Sequence | None) -> str:
    """The one line an interrupted run prints: what is stored, and how to resume."""
    if run is None:
        return f"interrupted by {err.name} before anything was computed."
    if units:
        store = Store(run.store_dir, fresh_since=run.fresh_since)
        kept = f"{sum(u in store for u in units)} of {len(units)} units stored in {run.store_dir}"
    else:
        kept = f"every unit computed so far is stored in {run.store_dir}"
    again = [a for a in argv if a != "--fresh"]  # resuming a --fresh run must not recompute what it stored
    how = "the same command" if len(again) == len(argv) else "the same command without --fresh"
    return (f"interrupted by {err.name}: {kept}; to resume, run {how} (stored units and executed chapters are "
            f"reused): python -m ncutils.book {shlex.join(again)}".rstrip())


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_execute"]:
        return execute_child(argv[1:])
    interrupts.CHILDREN.reset()
    run, units = None, []
    with interrupts.raising():
        try:
            run = parse(argv)
            check_store(run)
            return _main(run, units)
        except interrupts.Interrupted as err:
            interrupts.CHILDREN.stop_all(err.signum)  # what is still running (the fan-out stops its own jobs)
            print(interrupted_line(run, argv, err, units), flush=True)
            return err.exit_code


def _main(run: Run, units: list) -> int:
    """Plan, check, compute, run the chapters and build; ``units`` receives the run's units once planned."""
    units_first = run.args.executor != "sequential"
    run.chapter_params(compute_missing=not units_first)
    a = run.args
    if a.plan or a.check or units_first or (run.profile == "paper" and not run.dry_run):
        chapter_units = plan_units(run)
        from ncutils.book.runner import plan

        units.extend(plan.flatten(chapter_units))
        if a.check or (run.profile == "paper" and not run.dry_run and not a.plan):
            from ncutils.book.runner.preflight import preflight

            ok = preflight(chapter_units, data_root=os.environ.get("NCUTILS_DATA"))
            if a.check or not ok:
                return 0 if ok else 1
        if a.plan:
            return plan.show(chapter_units, store_dir=run.store_dir, json_path=a.json, timing=not a.no_timing,
                             dry_run=run.dry_run, workers=run.workers if a.executor == "local" else 1)
        if units_first:
            if not run.dry_run and run.profile != "paper":  # small datasets (Fashion-MNIST): fetched when missing
                from ncutils.book.runner.preflight import fetch_missing

                if not fetch_missing(chapter_units, data_root=os.environ.get("NCUTILS_DATA")):
                    return 1
            compute_units(run, chapter_units)
    if not run.notebooks:
        print("no chapters yet: _toc.yml lists no notebooks under book/.")
    run.write_manifest()
    print(f"ncbook: profile {run.label}, {len(run.selected)} of {len(run.notebooks)} chapters -> {run.out_dir}")
    t_all = time.perf_counter()
    # after a local fan-out every unit is stored and the chapters only read: run them side by side
    side_by_side = min(run.workers, len(run.selected)) if a.executor == "local" else 1
    records = run_chapters(run, side_by_side=side_by_side)
    ok = build(run, records) if not a.no_build else True
    print(f"total {time.perf_counter() - t_all:.1f} s")
    failed = [r for r in records.values() if r.name in {nb.stem for nb in run.selected} and r.status == "failed"]
    if failed:
        names = ", ".join(r.name + (f" (cell In [{r.failed_cell}])" if r.failed_cell is not None else "")
                          for r in failed)
        print(f"failed chapters: {names}")
        ok = False
    return 0 if ok else 1
