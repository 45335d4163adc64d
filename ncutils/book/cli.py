"""``python -m ncutils.book``: run the book's chapters for a profile and build the Jupyter Book.

    python -m ncutils.book [--profile cpu|smoke|paper|FILE.yaml] [--only N ...] [--no-build] [--fresh]
                           [--plan [--json FILE]] [--check] [--dry-run [batch|minimal]] [--store DIR]
                           [--executor sequential|local|slurm] [--workers N] [--slurm-* ...]

Every chapter's work is a grid of units (:mod:`ncutils.book.grids`) whose results live in a store
(``_build/<profile>/store`` unless ``--store``), keyed by their complete configuration and code.
By default each chapter notebook runs in its own process and computes the units it needs as it goes
(sequential, in-process). ``--executor local|slurm`` first computes the selected chapters' units
with submitit (see :mod:`ncutils.book.executors`), then runs the notebooks,
which only read (with ``--executor local --workers N``, N chapters side by side).
``--plan`` lists the units and their estimated cost without computing anything; ``--check`` checks
that every dataset and weight file is present (a ``paper`` run does this first by itself);
``--dry-run`` runs the same plan at the paper's shapes on synthetic stand-ins and random weights,
capped to a step or two per unit (at the paper's batch sizes on a GPU; with the least data that runs
every code path on a CPU, see :mod:`ncutils.book.dryrun`). A chapter that fails is named with the
failing cell; the other chapters still run and the command exits non-zero. A rerun reuses chapters whose notebook,
parameters and library code are unchanged (``--fresh`` recomputes every unit of the run once).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from ncutils.book import notebooks as nbs_
from ncutils.book.notebooks import FRESH_ENV
from ncutils.book.site import Record, build_book, stage

__all__ = ["main"]


def _library_digest() -> str:
    pkg = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted([*pkg.rglob("*.py"), *pkg.rglob("*.json")]):
        h.update(f.relative_to(pkg).as_posix().encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def fingerprint(nb: Path, params: dict, library: str) -> str:
    """Hash of the notebook's cell sources, its parameters and the library code."""
    cells = json.loads(nb.read_text())["cells"]
    h = hashlib.sha256()
    for cell in cells:
        src = cell.get("source", "")
        h.update(("".join(src) if isinstance(src, list) else src).encode())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(library.encode())
    return h.hexdigest()[:16]


def _select(nbs: list[Path], only: list[int] | None) -> list[Path]:
    if not only:
        return nbs
    numbers = {nbs_.chapter_number(nb): nb for nb in nbs}
    unknown = sorted(set(only) - set(numbers))
    if unknown:
        known = sorted(k for k in numbers if k)
        raise SystemExit(f"--only {unknown}: no such chapter; chapters are {known}.")
    return [numbers[n] for n in sorted(set(only))]


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m ncutils.book", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="smoke, cpu (default), paper, or a YAML parameter file")
    ap.add_argument("--only", type=int, nargs="+", metavar="N", help="run only these chapters (numbers)")
    ap.add_argument("--no-build", action="store_true", help="run the notebooks but do not build the book")
    ap.add_argument("--fresh", action="store_true", help="recompute every unit of this run once")
    ap.add_argument("--root", help="the repository (default: found from the current folder)")
    ap.add_argument("--store", help="the unit store (default: _build/<profile>/store); may be shared")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    g = ap.add_argument_group("planning")
    g.add_argument("--plan", action="store_true", help="list the units and their estimated cost; compute nothing")
    g.add_argument("--json", metavar="FILE", help="with --plan: write the plan as JSON to FILE ('-': stdout)")
    g.add_argument("--no-timing", action="store_true", help="with --plan: skip the timed steps of the estimate")
    g.add_argument("--check", action="store_true", help="check that every dataset and weight file is present")
    g.add_argument("--dry-run", nargs="?", const="auto", default=None, choices=("auto", "batch", "minimal"),
                   help="the same plan on synthetic stand-ins at the paper's shapes, random weights, 1-2 steps; "
                   "batch: at the paper's batch sizes, minimal: a few images of a few classes and small batches "
                   "per unit, see ncutils.book.dryrun (auto, the default: batch on a GPU, minimal on a CPU)")
    e = ap.add_argument_group("fan-out (submitit)")
    e.add_argument("--executor", choices=("sequential", "local", "slurm"), default="sequential",
                   help="sequential (default: notebooks compute their units), local or slurm (units first)")
    e.add_argument("--workers", type=int, default=None, help="local executor: parallel units (default: one per GPU, "
                   "else 2)")
    from ncutils.book.executors import add_slurm_arguments

    add_slurm_arguments(e)
    return ap


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_execute"]:
        return nbs_.execute_child(argv[1:])
    args = _parser().parse_args(argv)
    root = nbs_.find_root(args.root)
    label, profile, overrides = nbs_.load_profile(root, args.profile)
    if args.json and not args.plan:
        raise SystemExit("--json writes a plan: use it with --plan.")
    if args.dry_run == "auto":
        import torch

        args.dry_run = "batch" if torch.cuda.is_available() else "minimal"
    label = f"{label}-dry-run" if args.dry_run else label
    out_dir = root / "_build" / label
    store_dir = Path(args.store).resolve() if args.store else out_dir / "store"
    stage_dir, logs = out_dir / "src", out_dir / "logs"
    listed = nbs_.chapters(root)
    nbs = [nb for nb in listed if nb.exists()]
    selected = _select(nbs, args.only)
    defaults = {nb: nbs_.declared_defaults(nb) for nb in nbs}
    unused = sorted(set(overrides) - set().union(*(set(d) for d in defaults.values()))) if nbs else []
    if unused:
        print(f"warning: profile {args.profile!r} sets parameters no chapter declares: {unused}")

    book_dir = root / "book"

    def plumbing(nb: Path, compute_missing: bool = True) -> dict:
        executed = stage_dir / "book" / nb.name
        return {"results_path": os.path.relpath(executed.with_suffix(".json"), book_dir),
                "store_dir": os.path.relpath(store_dir, book_dir), "reuse_results": not args.fresh,
                "compute_missing": compute_missing, "progress": not args.quiet, "dry_run": args.dry_run or False}

    params = {nb: nbs_.chapter_parameters(nb, profile, overrides, plumbing(nb)) for nb in selected}

    if args.plan or args.check or args.executor != "sequential" or (profile == "paper" and not args.dry_run):
        from ncutils.book import plan as plan_

        try:
            chapters_units = plan_.chapter_units({nb: eff for nb, (_, eff) in params.items()})
        except ValueError as err:  # an unknown profile, dataset or network name in the parameters
            raise SystemExit(f"cannot plan the chapters: {err}") from None
        if args.check or (profile == "paper" and not args.dry_run and not args.plan):
            from ncutils.book.preflight import preflight

            ok = preflight(chapters_units, data_root=os.environ.get("NCUTILS_DATA"))
            if args.check or not ok:
                return 0 if ok else 1
        if args.plan:
            return plan_.show(chapters_units, store_dir=store_dir, json_path=args.json, timing=not args.no_timing,
                              dry_run=args.dry_run)

    fresh_since = time.time() if args.fresh else None
    env = {FRESH_ENV: repr(fresh_since)} if fresh_since else {}
    if args.executor != "sequential":
        from ncutils.book.executors import fan_out

        ok = fan_out(plan_.flatten(chapters_units), args, store_dir=store_dir, log_dir=out_dir / "submitit",
                     fresh_since=fresh_since)
        if not ok:
            print("some units failed (see above); the chapters that need them will fail too.")
        params = {nb: nbs_.chapter_parameters(nb, profile, overrides, plumbing(nb, False)) for nb in selected}

    runs_file = out_dir / "runs.json"
    previous = {}
    if runs_file.exists():
        try:
            previous = {r["name"]: Record(**r) for r in json.loads(runs_file.read_text())}
        except (json.JSONDecodeError, TypeError):
            previous = {}
    if not nbs:
        print("no chapters yet: _toc.yml lists no notebooks under book/.")
    library = _library_digest()
    records = {nb.stem: previous.get(nb.stem, Record(nb.stem, status="not run")) for nb in nbs}
    print(f"ncbook: profile {label}, {len(selected)} of {len(nbs)} chapters -> {out_dir}")
    t_all = time.perf_counter()
    records_lock = threading.Lock()

    def run_chapter(i: int, nb: Path, child_env: dict[str, str]) -> None:
        executed = stage_dir / "book" / nb.name
        injected, _ = params[nb]
        fp = fingerprint(nb, {k: v for k, v in injected.items() if k not in ("reuse_results", "progress",
                                                                                "compute_missing")}, library)
        old = previous.get(nb.stem)
        tag = f"[{i}/{len(selected)}] {nb.stem}"
        if not args.fresh and old and old.status in ("ok", "reused") and old.fingerprint == fp \
                and executed.exists():
            records[nb.stem] = Record(**{**asdict(old), "status": "reused"})
            print(f"{tag}: unchanged since {old.finished}, reused", flush=True)
            return
        status = nbs_.execute(nb, executed, injected, logs / f"{nb.stem}.log", tag, not args.quiet, env=child_env)
        rec = Record(nb.stem, status=status["status"], seconds=status.get("seconds"),
                     peak_mib=status.get("peak_mib"), fingerprint=fp, error=status.get("error"),
                     failed_cell=status.get("failed_cell"), finished=time.strftime("%Y-%m-%d %H:%M"))
        records[nb.stem] = rec
        mem = f", peak {rec.peak_mib:.0f} MiB" if rec.peak_mib else ""
        if rec.status == "ok":
            print(f"{tag}: ok in {rec.seconds:.1f} s{mem}", flush=True)
        else:
            where = f" in cell In [{rec.failed_cell}]" if rec.failed_cell is not None else ""
            print(f"{tag}: FAILED{where}: {rec.error}\n    executed copy: {executed}\n"
                  f"    log: {logs / (nb.stem + '.log')}", flush=True)
        with records_lock:  # chapters may finish at once (side by side after a local fan-out)
            runs_file.parent.mkdir(parents=True, exist_ok=True)
            runs_file.write_text(json.dumps([asdict(r) for r in records.values()], indent=1))

    # After a local fan-out every unit is stored and the chapters only read results: run them side by side,
    # one per worker, with the cores shared between them.
    parallel = args.executor == "local" and (args.workers or 1) > 1 and len(selected) > 1
    if parallel:
        from concurrent.futures import ThreadPoolExecutor

        from ncutils.book.executors import cpu_threads

        child_env = {**env, "OMP_NUM_THREADS": str(cpu_threads(args.workers))}
        with ThreadPoolExecutor(args.workers) as pool:
            for done in [pool.submit(run_chapter, i, nb, child_env) for i, nb in enumerate(selected, 1)]:
                done.result()
    else:
        for i, nb in enumerate(selected, 1):
            run_chapter(i, nb, env)
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    runs_file.write_text(json.dumps([asdict(r) for r in records.values()], indent=1))

    ok = True
    failed = [r for r in records.values() if r.name in {nb.stem for nb in selected} and r.status == "failed"]
    if not args.no_build:
        stage(root, stage_dir, label, list(records.values()), listed)
        t0 = time.perf_counter()
        built, why = build_book(stage_dir, out_dir / "html", logs / "jupyter-book.log")
        if built:
            print(f"book built in {time.perf_counter() - t0:.1f} s: {out_dir / 'html' / 'index.html'}")
        else:
            ok = False
            print(f"book build FAILED (full log: {logs / 'jupyter-book.log'}):\n{why}")
    print(f"total {time.perf_counter() - t_all:.1f} s")
    if failed:
        names = ", ".join(r.name + (f" (cell In [{r.failed_cell}])" if r.failed_cell is not None else "")
                          for r in failed)
        print(f"failed chapters: {names}")
        ok = False
    return 0 if ok else 1
