"""Executing one chapter notebook with papermill in a child process, and scrubbing machine paths from
the executed copy."""

from __future__ import annotations

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

from ncutils.book.runner.interrupts import CHILDREN
from ncutils.book.settings import find_root

__all__ = ["execute", "execute_child", "machine_roots", "scrub_paths"]


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
    """Run ``nb`` in a child process (cwd: its folder), showing which cell runs; return its status dict.

    The child runs in its own session, registered in :data:`~ncutils.book.runner.interrupts.CHILDREN`: an
    interrupted run stops it and the kernel it started."""
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
        # its own session: Ctrl-C reaches the runner, which stops it and its kernel (interrupts.CHILDREN)
        with CHILDREN.running(cmd, stdout=log_fh, stderr=subprocess.STDOUT, env=child_env) as proc:
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
