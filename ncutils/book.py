"""Run the book's notebooks with papermill and build the Jupyter Book.

    python -m ncutils.book [--profile cpu|smoke|paper|FILE.yaml] [--only N ...] [--no-build] [--fresh]

For the chosen profile (``book/profiles/<profile>.yaml``, a flat papermill parameter file) every
chapter notebook listed in ``_toc.yml`` is executed in its own process, and the executed copy,
its results (JSON, written by the notebook as it goes), and a log land under
``_build/<profile>/``. Each notebook's wall time and peak memory are reported. A notebook that
fails is named with the cell that failed; the others still run and keep their outputs, and the
command exits non-zero. A rerun skips notebooks whose source, parameters and library code are
unchanged since their last successful run (``--fresh`` runs everything again and tells the
notebooks not to reuse stored results). Finally the staged book (config, table of contents,
pages and executed notebooks) is built with Jupyter Book 1.x (execution off, warnings as
errors) into ``_build/<profile>/html``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import yaml

__all__ = ["Record", "chapters", "find_root", "load_profile", "main"]

PROFILES = ("smoke", "cpu", "paper")
RUNNER_PARAMETERS = ("profile", "results_path", "cache_dir", "reuse_results")


# --------------------------------------------------------------------------- locating things
def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository holding ``_config.yml``, ``_toc.yml`` and ``book/`` (searching upwards)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "book").is_dir():
            return folder
    pkg_parent = Path(__file__).resolve().parent.parent  # an editable install inside the repository
    if (pkg_parent / "_toc.yml").exists():
        return pkg_parent
    raise FileNotFoundError(
        f"no book found: neither {here} nor its parents hold _toc.yml and book/. Run this command "
        "inside the ncbook repository, or pass --root PATH."
    )


def chapters(root: Path) -> list[Path]:
    """Chapter notebooks listed in ``_toc.yml``, in book order (entries without a ``.md`` page).

    A listed chapter whose notebook does not exist yet is returned too; it gets a placeholder page.
    """
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                if isinstance(value, (list, dict)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(toc)
    return [root / f"{f}.ipynb" for f in files
            if not (root / f"{f}.md").exists() and not (root / f"{f}.rst").exists()]


def chapter_number(nb: Path) -> int | None:
    m = re.match(r"(\d+)_", nb.name)
    return int(m.group(1)) if m else None


def load_profile(root: Path, profile: str) -> tuple[str, dict]:
    """``(name, parameters)`` of a profile name or a YAML file path."""
    path = Path(profile)
    if not path.suffix:
        path = root / "book" / "profiles" / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (root / "book" / "profiles").glob("*.yaml"))
        raise FileNotFoundError(f"profile {profile!r} not found at {path}; known profiles: {known}.")
    params = yaml.safe_load(path.read_text()) or {}
    if not isinstance(params, dict):
        raise ValueError(f"{path} must be a mapping of parameter names to values.")
    return path.stem, params


# --------------------------------------------------------------------------- bookkeeping
@dataclass
class Record:
    """What happened to one notebook in one run of the book."""

    name: str
    status: str = "pending"  # ok | failed | reused | not run
    seconds: float | None = None
    peak_mib: float | None = None
    fingerprint: str | None = None
    error: str | None = None
    failed_cell: int | None = None
    finished: str | None = None
    extra: dict = field(default_factory=dict)


def _library_digest() -> str:
    pkg = Path(__file__).resolve().parent
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


def declared_parameters(nb: Path) -> set[str]:
    import papermill as pm

    return set(pm.inspect_notebook(str(nb)).keys())


# --------------------------------------------------------------------------- execution
def _execute_child(argv: list[str]) -> int:
    """Child process: execute one notebook with papermill, then report status and peak memory."""
    src, out, params_file, status_file, cwd = argv
    import logging

    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)
    params = json.loads(Path(params_file).read_text())
    status: dict = {"status": "ok"}
    t0 = time.perf_counter()
    try:
        pm.execute_notebook(src, out, parameters=params, cwd=cwd, log_output=True, progress_bar=False,
                            kernel_name="python3", request_save_on_cell_execute=True)
    except PapermillExecutionError as err:
        status = {"status": "failed", "failed_cell": err.exec_count, "cell_index": err.cell_index,
                  "error": f"{err.ename}: {err.evalue}"}
    except Exception as err:  # kernel death, bad parameters, ...
        status = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
    status["seconds"] = time.perf_counter() - t0
    status["peak_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # the kernel
    Path(status_file).write_text(json.dumps(status))
    return 0


def _count_code_cells(nb: Path) -> int:
    return sum(c["cell_type"] == "code" for c in json.loads(nb.read_text())["cells"])


def execute(nb: Path, out: Path, params: dict, log: Path, label: str, progress: bool) -> dict:
    """Run ``nb`` in a child process, showing which cell is executing; return its status dict."""
    from tqdm.auto import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    params_file, status_file = log.with_suffix(".params.json"), log.with_suffix(".status.json")
    params_file.write_text(json.dumps(params, default=str))
    status_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "ncutils.book", "_execute", str(nb), str(out), str(params_file),
           str(status_file), str(nb.parent)]
    env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="module://matplotlib_inline.backend_inline")
    total = _count_code_cells(nb) + 1  # papermill adds the injected-parameters cell
    show = progress and sys.stderr.isatty()
    with open(log, "w") as log_fh, tqdm(total=total, desc=label, unit="cell", disable=not show,
                                        leave=False) as bar:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=env)
        pattern = re.compile(r"Executing Cell (\d+)-")
        while proc.poll() is None:
            time.sleep(0.5)
            try:
                found = pattern.findall(log.read_text(errors="replace"))
            except OSError:
                found = []
            if found:
                bar.n = int(found[-1])
                bar.refresh()
    if not status_file.exists():
        return {"status": "failed", "error": f"the runner process exited with code {proc.returncode}"}
    return json.loads(status_file.read_text())


# --------------------------------------------------------------------------- staging and building
def _placeholder(title: str, text: str) -> str:
    return f"# {title}\n\n{text}\n"


def _machine() -> dict:
    info = {"python": platform.python_version(), "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU"
    except Exception:  # pragma: no cover - torch is a dependency
        pass
    return info


def _runs_page(profile: str, records: list[Record], machine: dict) -> str:
    lines = [
        "# About this build", "",
        f"Profile **{profile}**, built {time.strftime('%Y-%m-%d %H:%M')} on {machine.get('device', '?')} "
        f"({machine.get('cpus')} CPU cores, Python {machine.get('python')}, "
        f"torch {machine.get('torch', '?')}).",
        "Times are wall-clock seconds of each notebook's own execution and memory is the peak resident "
        "memory of its kernel. Reused chapters were not executed again: their figures are from the run "
        "recorded on the date shown.", "",
        "| chapter | status | time (s) | peak memory (MiB) | executed |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        sec = f"{r.seconds:.1f}" if r.seconds is not None else "-"
        mem = f"{r.peak_mib:.0f}" if r.peak_mib is not None else "-"
        lines.append(f"| {r.name} | {r.status} | {sec} | {mem} | {r.finished or '-'} |")
    failed = [r for r in records if r.status == "failed"]
    if failed:
        lines += ["", "Failed chapters:", ""]
        lines += [f"- {r.name}" + (f": cell In [{r.failed_cell}]" if r.failed_cell is not None else "")
                  + f": {r.error}" for r in failed]
    return "\n".join(lines) + "\n"


def stage(root: Path, stage_dir: Path, profile: str, records: list[Record], nbs: list[Path]) -> None:
    """Lay out the book source for this profile: config, toc, pages and executed notebooks."""
    book = stage_dir / "book"
    book.mkdir(parents=True, exist_ok=True)
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(root / name, stage_dir / name)
    for f in (root / "book").rglob("*"):
        rel = f.relative_to(root / "book")
        if f.is_dir() or rel.parts[0] in ("profiles", ".ipynb_checkpoints") or f.suffix == ".ipynb":
            continue
        (book / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(f, book / rel)
    for nb in nbs:
        executed = book / nb.name
        md = executed.with_suffix(".md")
        if executed.exists():
            md.unlink(missing_ok=True)
        else:
            md.write_text(_placeholder(nb.stem.replace("_", " "), (
                f"This chapter has not been run in the `{profile}` profile yet. Run\n\n"
                f"    python -m ncutils.book --profile {profile} --only {chapter_number(nb)}\n")))
    (book / "runs.md").write_text(_runs_page(profile, records, _machine()))


def build_book(stage_dir: Path, html_dir: Path, log: Path) -> tuple[bool, str]:
    """``jupyter-book build`` of the staged source with warnings as errors; HTML ends in ``html_dir``."""
    out = stage_dir.parent / "jupyter-book"
    cmd = ["jupyter-book", "build", str(stage_dir), "--path-output", str(out), "-W", "--keep-going"]
    exe = shutil.which("jupyter-book")
    if exe is None:
        cmd = [sys.executable, "-m", "jupyter_book.cli.main", *cmd[1:]]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    log.write_text(proc.stdout + proc.stderr)
    built = out / "_build" / "html"
    if proc.returncode == 0 and built.exists():
        if html_dir.exists():
            shutil.rmtree(html_dir)
        shutil.move(str(built), str(html_dir))
        return True, ""
    tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
    return False, tail


# --------------------------------------------------------------------------- main
def _select(nbs: list[Path], only: list[int] | None) -> list[Path]:
    if not only:
        return nbs
    numbers = {chapter_number(nb): nb for nb in nbs}
    unknown = sorted(set(only) - set(numbers))
    if unknown:
        known = sorted(k for k in numbers if k)
        raise SystemExit(f"--only {unknown}: no such chapter; chapters are {known}.")
    return [numbers[n] for n in sorted(set(only))]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_execute"]:
        return _execute_child(argv[1:])
    ap = argparse.ArgumentParser(prog="python -m ncutils.book", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help="smoke, cpu (default), paper, or a YAML parameter file")
    ap.add_argument("--only", type=int, nargs="+", metavar="N", help="run only these chapters (numbers)")
    ap.add_argument("--no-build", action="store_true", help="run the notebooks but do not build the book")
    ap.add_argument("--fresh", action="store_true",
                    help="rerun everything; notebooks recompute stored results")
    ap.add_argument("--root", help="the repository (default: found from the current folder)")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    args = ap.parse_args(argv)

    root = find_root(args.root)
    profile, params = load_profile(root, args.profile)
    out_dir = root / "_build" / profile
    stage_dir, logs = out_dir / "src", out_dir / "logs"
    runs_file = out_dir / "runs.json"
    previous = {}
    if runs_file.exists():
        try:
            previous = {r["name"]: Record(**r) for r in json.loads(runs_file.read_text())}
        except (json.JSONDecodeError, TypeError):
            previous = {}
    listed = chapters(root)
    nbs = [nb for nb in listed if nb.exists()]
    if not nbs:
        print("no chapters yet: _toc.yml lists no notebooks under book/.")
    selected = _select(nbs, args.only)
    library = _library_digest()
    declared = {nb: declared_parameters(nb) for nb in nbs}
    unused = sorted(set(params) - set().union(*declared.values(), RUNNER_PARAMETERS)) if nbs else []
    if unused:
        print(f"warning: profile {profile!r} sets parameters no chapter declares: {unused}")

    records = {nb.stem: previous.get(nb.stem, Record(nb.stem, status="not run")) for nb in nbs}
    print(f"ncbook: profile {profile}, {len(selected)} of {len(nbs)} chapters -> {out_dir}")
    t_all = time.perf_counter()
    for i, nb in enumerate(selected, 1):
        executed = stage_dir / "book" / nb.name
        nb_params = {k: v for k, v in params.items() if k in declared[nb]}
        nb_params.update({k: v for k, v in {
            "profile": profile,
            "results_path": str(executed.with_suffix(".json")),
            "cache_dir": str(out_dir / "cache"),
            "reuse_results": not args.fresh,
        }.items() if k in declared[nb]})
        fp = fingerprint(nb, {k: v for k, v in nb_params.items() if k != "reuse_results"}, library)
        old = previous.get(nb.stem)
        label = f"[{i}/{len(selected)}] {nb.stem}"
        if not args.fresh and old and old.status in ("ok", "reused") and old.fingerprint == fp \
                and executed.exists():
            records[nb.stem] = Record(**{**asdict(old), "status": "reused"})
            print(f"{label}: unchanged since {old.finished}, reused")
            continue
        status = execute(nb, executed, nb_params, logs / f"{nb.stem}.log", label, not args.quiet)
        rec = Record(nb.stem, status=status["status"], seconds=status.get("seconds"),
                     peak_mib=status.get("peak_mib"), fingerprint=fp, error=status.get("error"),
                     failed_cell=status.get("failed_cell"), finished=time.strftime("%Y-%m-%d %H:%M"))
        records[nb.stem] = rec
        mem = f", peak {rec.peak_mib:.0f} MiB" if rec.peak_mib else ""
        if rec.status == "ok":
            print(f"{label}: ok in {rec.seconds:.1f} s{mem}")
        else:
            where = f" in cell In [{rec.failed_cell}]" if rec.failed_cell is not None else ""
            print(f"{label}: FAILED{where}: {rec.error}\n    executed copy: {executed}\n"
                  f"    log: {logs / (nb.stem + '.log')}")
        runs_file.parent.mkdir(parents=True, exist_ok=True)
        runs_file.write_text(json.dumps([asdict(r) for r in records.values()], indent=1))
    runs_file.parent.mkdir(parents=True, exist_ok=True)
    runs_file.write_text(json.dumps([asdict(r) for r in records.values()], indent=1))

    ok = True
    failed = [r for r in records.values() if r.name in {nb.stem for nb in selected} and r.status == "failed"]
    if not args.no_build:
        stage(root, stage_dir, profile, list(records.values()), listed)
        t0 = time.perf_counter()
        built, tail = build_book(stage_dir, out_dir / "html", logs / "jupyter-book.log")
        if built:
            print(f"book built in {time.perf_counter() - t0:.1f} s: {out_dir / 'html' / 'index.html'}")
        else:
            ok = False
            print(f"book build FAILED (log: {logs / 'jupyter-book.log'}):\n{tail}")
    print(f"total {time.perf_counter() - t_all:.1f} s")
    if failed:
        names = ", ".join(r.name + (f" (cell In [{r.failed_cell}])" if r.failed_cell is not None else "")
                          for r in failed)
        print(f"failed chapters: {names}")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
