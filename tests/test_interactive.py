"""A chapter rerun the way Jupyter runs it (a kernel started in ``book/``, Run All, the notebook's own defaults)
reuses what the runner stored and records what the book recorded."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from records import without_timings

from ncutils.book.chapter import STORE_ENV, default_store

ROOT = Path(__file__).resolve().parents[1]


def _files(store: Path) -> dict[str, int]:
    return {str(p.relative_to(store)): p.stat().st_mtime_ns for p in store.rglob("*") if p.is_file()}


def run_all_as_jupyter(notebook: Path, store: Path, record: Path, timeout: int = 600) -> None:
    """Execute every cell of ``notebook`` unchanged in a kernel started in its folder, then one extra cell that
    writes the chapter's record to ``record`` (the test's instrument; the notebook's own cells run as they are)."""
    nb = nbformat.read(notebook, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(
        f"import json\nopen({str(record)!r}, 'w').write(json.dumps(ch._record))"))
    env_before = os.environ.get(STORE_ENV)
    os.environ[STORE_ENV] = str(store)
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(notebook.parent)}}).execute()
    finally:
        if env_before is None:
            os.environ.pop(STORE_ENV, None)
        else:
            os.environ[STORE_ENV] = env_before
    return nb


@pytest.mark.slow
def test_run_all_in_jupyter_reuses_the_runners_results(tmp_path):
    """Chapter 1 at the notebook's own defaults (the cpu profile): built by the runner into a store, then run in a
    Jupyter kernel: nothing is computed or rewritten, and the chapter's units and results equal the book's. Run
    again into an empty store, the chapter computes every unit afresh and gets the same numbers (timings aside)."""
    store, label = tmp_path / "store", f"jupyter-{tmp_path.name}"
    params = tmp_path / f"{label}.yaml"
    params.write_text("profile: cpu\n")  # the cpu profile's values, built into its own folder
    build = ROOT / "_build" / label
    try:
        out = subprocess.run([sys.executable, "-m", "ncutils.book", "--profile", str(params), "--only", "1",
                              "--no-build", "--quiet", "--store", str(store)],
                             cwd=ROOT, capture_output=True, text=True, timeout=900)
        assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
        book_record = json.loads((build / "src" / "book" / "01_nc_metrics.json").read_text())
    finally:
        import shutil

        shutil.rmtree(build, ignore_errors=True)
    before = _files(store)
    assert before, "the runner stored nothing"
    record = tmp_path / "record.json"
    nb = run_all_as_jupyter(ROOT / "book" / "01_nc_metrics.ipynb", store, record)
    assert _files(store) == before  # nothing computed, nothing rewritten
    ours = json.loads(record.read_text())
    assert ours["units"] == book_record["units"]
    assert ours["results"] == book_record["results"]
    assert ours["meta"]["parameters"] == book_record["meta"]["parameters"]
    # the notebook says which store it reads and that nothing is left to compute
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []))
    assert f"5 of 5 units stored in {store}; nothing to compute" in printed, printed[:2000]
    # the same chapter computed again from nothing, in another store: two runs, identical numbers
    again = tmp_path / "again.json"
    nb = run_all_as_jupyter(ROOT / "book" / "01_nc_metrics.ipynb", tmp_path / "empty", again)
    fresh = json.loads(again.read_text())
    records = lambda folder: {p.relative_to(folder) for p in folder.rglob("*.json")}  # noqa: E731
    assert records(tmp_path / "empty") == records(store)  # every unit computed and stored afresh
    assert without_timings({k: fresh[k] for k in ("units", "results")}) == \
        without_timings({k: book_record[k] for k in ("units", "results")})


def test_a_notebook_outside_the_repository_finds_the_store_or_says_where(tmp_path, monkeypatch):
    monkeypatch.setenv(STORE_ENV, str(tmp_path / "mine"))
    assert default_store() == tmp_path / "mine"
    monkeypatch.delenv(STORE_ENV)
    monkeypatch.chdir(tmp_path)  # the editable install still leads to the repository's store
    assert default_store() == ROOT / "_build" / "store"


def test_every_chapter_offers_a_rerun_box_with_its_settings():
    from ncutils.book import settings
    from ncutils.book.pages.rerun import rerun_box

    s = settings.resolve(3, "cpu", {})
    box = rerun_box(3, s, "book/03_pretraining.ipynb")
    assert box.startswith(":::{admonition} Rerun this chapter\n:class: dropdown")
    assert "jupyter lab book/" in box and "--only 3" in box
    rows = {line.split("|")[1].strip(" `"): line for line in box.splitlines() if line.startswith("| `")}
    assert set(rows) == {f.name for f in __import__("dataclasses").fields(s)} - {"profile"}
    # a probe setting recomputes probes only; the seeds of Table 1 its source models and their probes
    assert "(probe ×" in rows["probe_epochs"] and "pretrain" not in rows["probe_epochs"]
    assert "pretrain ×" in rows["pt_seeds"] and "probe ×" in rows["pt_seeds"]
    assert "depends on the value" in rows["pt_losses"]  # a list of names has no nearby value
