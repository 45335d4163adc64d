"""Scrubbing the build machine's paths from an executed notebook, on a hand-written notebook (no kernel)."""

import json
import tempfile
from pathlib import Path

import nbformat
import pytest

from ncutils.book.runner.execute import machine_roots, scrub_paths

REPO, HOME, TMP = "/home/builder/ncbook", "/home/builder", "/tmp"
BUILD = f"{REPO}/_build/cpu"
ROOTS = {REPO: "", BUILD: "_build/cpu", HOME: "~", TMP: "<tmp>", "../../../tmp": "<tmp>"}
PNG = "iVBORw0KGgo/tmp/home/builder/ncbook+AAA="  # base64 may hold any such run of characters: left alone
KEPT = f"kept: /var/tmp/x /tmpfs {HOME}er"  # not whole paths of ROOTS


def executed_notebook() -> dict:
    meta = {"execution": {"iopub.execute_input": "2026-11-22T17:42:10.703132Z"}}
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
            "papermill": {
                "input_path": f"{REPO}/book/01_ch.ipynb", "output_path": f"{BUILD}/src/book/01_ch.ipynb",
                "cwd": f"{REPO}/book", "environment_variables": {},
                "parameters": {"results_path": f"{BUILD}/src/book/01_ch.json", "store_dir": "../../../tmp/st",
                               "data_root": f"{HOME}/data", "cache_dir": f"{HOME}/.cache/ncbook", "seed": 0,
                               "dry_run": False, "shots": [1, 5]},
            },
        },
        "cells": [
            {"cell_type": "markdown", "id": "m1", "metadata": {}, "source": ["# A chapter\n", "No paths here."]},
            {"cell_type": "code", "id": "p1", "execution_count": 1, "metadata": {"tags": ["parameters"], **meta},
             "outputs": [], "source": 'profile = "cpu"\nstore_dir = "../_build/cpu/store"\nresults_path = None'},
            {"cell_type": "code", "id": "i1", "execution_count": 2, "outputs": [],
             "metadata": {"tags": ["injected-parameters", "remove-cell"], **meta},
             "source": ["# Parameters\n", f'results_path = "{BUILD}/src/book/01_ch.json"\n',
                        f'data_root = "{HOME}/data"\n']},
            {"cell_type": "code", "id": "c1", "execution_count": 3, "metadata": meta, "source": "run()",
             "outputs": [
                 {"output_type": "stream", "name": "stderr",
                  "text": [f"{HOME}/.pyenv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning\n",
                           f"{TMP}/ipykernel_17228/1238159287.py:13: ConstantInputWarning\n"]},
                 {"output_type": "stream", "name": "stdout",
                  "text": f"saved {BUILD}/store/ab.pt\nread {REPO}/book/figs/a.png\ncwd {REPO}\n"
                          f"{KEPT} {REPO}2/x\n"},
                 {"output_type": "display_data", "metadata": {},
                  "data": {"image/png": PNG, "application/papermill.record/image/png": PNG,
                           "image/svg+xml": f"<svg><!-- {REPO}/fig.svg --></svg>",
                           "text/plain": f"<Figure saved to {TMP}/fig.png>"}},
                 {"output_type": "execute_result", "execution_count": 3, "metadata": {},
                  "data": {"text/html": f"<p>{REPO}/x</p>", "application/json": {"path": f"{HOME}/y"}}},
             ]},
            {"cell_type": "code", "id": "c2", "execution_count": 4, "metadata": meta, "source": "fail()",
             "outputs": [{"output_type": "error", "ename": "OSError", "evalue": f"no file {REPO}/data/x.npz",
                          "traceback": [f'File "{REPO}/ncutils/book/store.py", line 3, in load\n']}]},
        ],
    }


@pytest.fixture()
def scrubbed(tmp_path) -> tuple[dict, str]:
    path = tmp_path / "01_ch.ipynb"
    path.write_text(json.dumps(executed_notebook(), indent=1))
    scrub_paths(path, ROOTS)
    return json.loads(path.read_text()), path.read_text()


def test_no_machine_path_is_left(scrubbed):
    nb, text = scrubbed
    masked = text.replace(PNG, "").replace(KEPT, "")
    for path in (REPO, HOME, BUILD, "/tmp/", "../../../tmp"):
        assert path not in masked
    nbformat.validate(nbformat.reads(text, as_version=4))  # still a valid notebook


def test_papermill_metadata_becomes_relative(scrubbed):
    pm = scrubbed[0]["metadata"]["papermill"]
    assert pm["input_path"] == "book/01_ch.ipynb"
    assert pm["output_path"] == "_build/cpu/src/book/01_ch.ipynb"
    assert pm["cwd"] == "book"
    assert pm["parameters"] == {"results_path": "_build/cpu/src/book/01_ch.json", "store_dir": "<tmp>/st",
                                "data_root": "~/data", "cache_dir": "~/.cache/ncbook", "seed": 0, "dry_run": False,
                                "shots": [1, 5]}


def test_injected_parameters_cell_is_dropped_and_the_others_kept(scrubbed):
    cells = scrubbed[0]["cells"]
    assert [c["id"] for c in cells] == ["m1", "p1", "c1", "c2"]
    assert cells[1]["source"] == 'profile = "cpu"\nstore_dir = "../_build/cpu/store"\nresults_path = None'
    assert cells[0]["source"] == ["# A chapter\n", "No paths here."]
    assert cells[2]["metadata"]["execution"] == {"iopub.execute_input": "2026-11-22T17:42:10.703132Z"}


def test_outputs_and_tracebacks_are_rewritten(scrubbed):
    stderr, stdout, display, result = scrubbed[0]["cells"][2]["outputs"]
    assert stderr["text"] == ["~/.pyenv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning\n",
                              "<tmp>/ipykernel_17228/1238159287.py:13: ConstantInputWarning\n"]
    assert stdout["text"] == ("saved _build/cpu/store/ab.pt\nread book/figs/a.png\ncwd .\n"
                              f"{KEPT} ~/ncbook2/x\n")  # only whole paths are replaced
    assert display["data"]["image/png"] == PNG and display["data"]["application/papermill.record/image/png"] == PNG
    assert display["data"]["image/svg+xml"] == "<svg><!-- fig.svg --></svg>"
    assert display["data"]["text/plain"] == "<Figure saved to <tmp>/fig.png>"
    assert result["data"] == {"text/html": "<p>x</p>", "application/json": {"path": "~/y"}}
    error = scrubbed[0]["cells"][3]["outputs"][0]
    assert error["evalue"] == "no file data/x.npz"
    assert error["traceback"] == ['File "ncutils/book/store.py", line 3, in load\n']


def test_scrub_of_a_missing_or_broken_notebook_does_nothing(tmp_path):
    scrub_paths(tmp_path / "missing.ipynb", ROOTS)
    broken = tmp_path / "broken.ipynb"
    broken.write_text('{"cells": [')
    scrub_paths(broken, ROOTS)
    assert broken.read_text() == '{"cells": ['


def test_machine_roots_name_repository_build_home_temp_and_data(tmp_path, monkeypatch):
    repo, scratch, home = tmp_path / "repo", tmp_path / "scratch", tmp_path / "home"
    (repo / "book").mkdir(parents=True)
    (repo / "_toc.yml").write_text("format: jb-book\nroot: book/intro\n")
    scratch.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("NCUTILS_DATA", str(tmp_path / "datasets"))
    monkeypatch.setattr(tempfile, "gettempdir", lambda: str(scratch))
    nb, out = repo / "book" / "01_ch.ipynb", repo / "_build" / "cpu" / "src" / "book" / "01_ch.ipynb"
    roots = machine_roots(nb, out)
    assert roots[str(repo.resolve())] == ""
    assert roots[str(repo.resolve() / "_build" / "cpu")] == "_build/cpu"
    assert roots[str(home)] == "~" and roots[str(scratch)] == "<tmp>"
    assert roots[str(tmp_path / "datasets")] == "$NCUTILS_DATA"
    assert roots["../../scratch"] == "<tmp>"  # how a --store there is written in the parameters
    assert all(set(Path(k).parts) - {".."} for k in roots)  # never a bare "../.." (it would eat relative paths)

    out.parent.mkdir(parents=True)
    notebook = executed_notebook()
    notebook["metadata"]["papermill"] = {"input_path": str(nb), "output_path": str(out),
                                         "parameters": {"store_dir": "../../scratch/store",
                                                        "results_path": "../_build/cpu/src/book/01_ch.json"}}
    notebook["cells"][3]["outputs"][0]["text"] = [f"{scratch}/ipykernel_1/2.py:3: Warning\n",
                                                  f"{home}/.cache/x\n", f"{repo}/ncutils/a.py\n"]
    out.write_text(json.dumps(notebook))
    scrub_paths(out, roots)
    nb_out = json.loads(out.read_text())
    assert nb_out["metadata"]["papermill"] == {"input_path": "book/01_ch.ipynb",
                                               "output_path": "_build/cpu/src/book/01_ch.ipynb",
                                               "parameters": {"store_dir": "<tmp>/store",
                                                              "results_path": "../_build/cpu/src/book/01_ch.json"}}
    assert nb_out["cells"][2]["outputs"][0]["text"] == ["<tmp>/ipykernel_1/2.py:3: Warning\n", "~/.cache/x\n",
                                                        "ncutils/a.py\n"]
    assert str(tmp_path) not in out.read_text()
