"""The chapter notebooks: finding them, resolving their parameters, executing them with papermill.

A chapter's parameters are its ``parameters`` cell's defaults, overridden by the profile's YAML file
(only the parameters the chapter declares), plus the runner's plumbing (:data:`ncutils.book.chapter.
PLUMBING`). :func:`chapter_parameters` computes exactly what papermill will inject, so the runner can
list a chapter's units (:mod:`ncutils.book.grids`) without executing it.
"""

from __future__ import annotations

import ast
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

#: The runner's ``--fresh`` sets this to the run's start time: every chapter of the run recomputes what
#: was finished before it, and reuses what an earlier chapter of the same run recomputed.
FRESH_ENV = "NCUTILS_FRESH_SINCE"

__all__ = ["FRESH_ENV", "chapter_number", "chapter_title", "chapter_parameters", "chapters",
           "declared_defaults", "declared_parameters", "execute", "find_root", "load_profile", "machine_roots",
           "scrub_paths"]


def find_root(start: str | os.PathLike | None = None) -> Path:
    """The repository holding ``_config.yml``, ``_toc.yml`` and ``book/`` (searching upwards)."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "_toc.yml").exists() and (folder / "book").is_dir():
            return folder
    pkg_parent = Path(__file__).resolve().parents[2]  # an editable install inside the repository
    if (pkg_parent / "_toc.yml").exists():
        return pkg_parent
    raise SystemExit(f"no book found: neither {here} nor its parents hold _toc.yml and book/. Run this command "
                     "inside the ncbook repository, or pass --root PATH.")


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


def chapter_title(nb: Path) -> str:
    """The chapter's title: the first heading of its first markdown cell (else the file's stem)."""
    for cell in json.loads(nb.read_text()).get("cells", []):
        if cell.get("cell_type") == "markdown":
            for line in "".join(cell.get("source", [])).splitlines():
                if line.startswith("# "):
                    return line[2:].strip()
            break
    return nb.stem.replace("_", " ")


def load_profile(root: Path, profile: str) -> tuple[str, str, dict]:
    """``(label, profile name, parameters)`` of a profile name or a YAML parameter file.

    The label names the build folder (``_build/<label>``): the profile's name, or a file's stem. A file
    may say which profile it adjusts with a ``profile:`` key (default: its stem).
    """
    path = Path(profile)
    if not path.suffix:
        path = root / "book" / "profiles" / f"{profile}.yaml"
    if not path.exists():
        known = sorted(p.stem for p in (root / "book" / "profiles").glob("*.yaml"))
        raise SystemExit(f"profile {profile!r} not found (looked for {path.name} in book/profiles/); known profiles: "
                         f"{', '.join(known)}, or pass a YAML parameter file.")
    try:
        params = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as err:
        raise SystemExit(f"profile file {path} is not valid YAML: {err}") from None
    if not isinstance(params, dict):
        raise SystemExit(f"profile file {path} must be a mapping of parameter names to values.")
    return path.stem, str(params.pop("profile", path.stem)), params


def declared_defaults(nb: Path) -> dict[str, Any]:
    """The ``parameters`` cell of ``nb`` as ``{name: default value}``."""
    import papermill as pm

    out = {}
    for name, info in pm.inspect_notebook(str(nb)).items():
        try:
            out[name] = ast.literal_eval(info["default"])
        except (ValueError, SyntaxError):
            out[name] = info["default"]
    return out


def declared_parameters(nb: Path) -> set[str]:
    return set(declared_defaults(nb))


def chapter_parameters(nb: Path, profile: str, overrides: dict[str, Any], plumbing: dict[str, Any]
                       ) -> tuple[dict, dict]:
    """``(injected, effective)``: what papermill injects into ``nb`` and the values the chapter then runs with."""
    defaults = declared_defaults(nb)
    injected = {k: v for k, v in {**overrides, **plumbing, "profile": profile}.items() if k in defaults}
    return injected, {**defaults, **injected}


# --------------------------------------------------------------------------- execution
def execute_child(argv: list[str]) -> int:
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


# Output data that is base64 (images, PDF): never searched for paths.
_BINARY_MIME = re.compile(r"(?:^|/)(?:image/(?!svg)[\w.+-]+|application/(?:pdf|octet-stream))$")


def _path_pattern(path: str) -> re.Pattern:
    """``path`` as a whole path: not inside a longer name (``/tmp`` never matches ``/tmpfs`` or ``/var/tmp``)."""
    return re.compile(r"(?<![\w./-])" + re.escape(path.rstrip("/")) + r"(?:(/)(?=[\w.~-])|(?![\w-]))")


def scrub_paths(executed: Path, roots: Mapping[str, str]) -> None:
    """Rewrite the build machine's paths in an executed notebook, and drop papermill's injected-parameters cell.

    Every string of ``executed`` (cell sources, outputs, tracebacks, papermill's metadata: ``input_path``,
    ``output_path``, ``parameters``) has each path of ``roots`` replaced by its value, longest path first,
    so the staged notebook (and the copy the book offers under ``_sources``) names no folder of the
    machine that built it. A value of ``""`` or ``"."`` makes the path relative: with ``{"/repo": ""}``,
    ``/repo/ncutils/x.py`` becomes ``ncutils/x.py`` and ``/repo`` alone ``.``. A path matches only as a
    whole (``/tmp`` is left alone in ``/var/tmp`` and ``/tmpfs``). Base64 output data (images) is left as
    it is. The injected-parameters cell is removed (it holds the runner's plumbing, and the page hides it
    anyway); the values it set stay in ``metadata.papermill.parameters``.
    """
    if not executed.exists():
        return
    subs = [(_path_pattern(p), v) for p, v in sorted(roots.items(), key=lambda kv: -len(kv[0])) if p.strip("/")]

    def replace(m: re.Match, value: str) -> str:
        relative = value in ("", ".")
        if m.group(1):  # followed by "/": keep the rest of the path
            return "" if relative else value + "/"
        return "." if relative else value

    def clean(node):
        if isinstance(node, str):
            for pattern, value in subs:
                node = pattern.sub(lambda m, v=value: replace(m, v), node)
            return node
        if isinstance(node, list):
            return [clean(x) for x in node]
        if isinstance(node, dict):
            return {k: v if _BINARY_MIME.search(k) else clean(v) for k, v in node.items()}
        return node

    try:
        nb = json.loads(executed.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):  # not a notebook (a kernel killed while saving): nothing to stage
        return
    nb["cells"] = [c for c in nb.get("cells", [])
                   if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]
    executed.write_text(json.dumps(clean(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def machine_roots(nb: Path, out: Path) -> dict[str, str]:
    """The paths of this machine that an executed copy of ``nb`` may mention, and what :func:`scrub_paths`
    writes instead: the repository (relative paths), the build folder ``_build/<profile>`` (``_build/...``),
    ``$NCUTILS_DATA`` (``$NCUTILS_DATA``), the home folder (``~``) and the temporary folder (``<tmp>``).

    A folder outside the repository is also listed as the relative path the notebook's parameters use for
    it (from the notebook's folder, its working directory), e.g. ``../../../tmp`` for a ``--store`` there.
    """
    cwd = nb.parent.resolve()
    try:
        repo = find_root(cwd)
    except SystemExit:
        repo = cwd
    out = out.resolve()
    build = next((p for p in out.parents if p.parent.name == "_build"), out.parent)
    places = [(repo, ""),
              (build, os.path.relpath(build, repo) if build.is_relative_to(repo) else "<build>")]
    if os.environ.get("NCUTILS_DATA"):
        places.append((Path(os.environ["NCUTILS_DATA"]).expanduser(), "$NCUTILS_DATA"))
    places += [(Path.home(), "~"), (Path(tempfile.gettempdir()), "<tmp>")]
    roots: dict[str, str] = {}
    for path, value in places:
        for form in dict.fromkeys([str(path), os.path.realpath(path)]):
            if os.path.isabs(form) and form.strip("/") and form not in roots:
                roots[form] = value
        rel = os.path.relpath(path, cwd)
        if path.is_absolute() and not Path(path).resolve().is_relative_to(repo) \
                and set(Path(rel).parts) - {".."} and rel not in roots:  # "../../tmp", not ".." alone
            roots[rel] = value
    return roots


def execute(nb: Path, out: Path, params: dict, log: Path, label: str, progress: bool,
            env: dict[str, str] | None = None) -> dict:
    """Run ``nb`` in a child process (cwd: its folder), showing which cell runs; return its status dict."""
    from tqdm.auto import tqdm

    out.parent.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    params_file, status_file = log.with_suffix(".params.json"), log.with_suffix(".status.json")
    params_file.write_text(json.dumps(params, default=str))
    status_file.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "ncutils.book", "_execute", str(nb), str(out), str(params_file),
           str(status_file), str(nb.parent)]
    child_env = dict(os.environ, PYTHONUNBUFFERED="1", MPLBACKEND="module://matplotlib_inline.backend_inline",
                     **(env or {}))
    total = _count_code_cells(nb) + 1  # papermill adds the injected-parameters cell
    show = progress and sys.stderr.isatty()
    with open(log, "w") as log_fh, tqdm(total=total, desc=label, unit="cell", disable=not show,
                                        leave=False) as bar:
        proc = subprocess.Popen(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=child_env)
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
    scrub_paths(out, machine_roots(nb, out))
    if not status_file.exists():
        return {"status": "failed", "error": f"the runner process exited with code {proc.returncode}"}
    return json.loads(status_file.read_text())
