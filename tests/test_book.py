"""The book: clean parametrised notebooks, consistent profiles, the runner, and the smoke build."""

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import papermill as pm
import pytest
import yaml

from ncutils.book.runner import chapters as book

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = book.chapters(ROOT)
PROFILES = {p.stem: yaml.safe_load(p.read_text()) or {} for p in (ROOT / "book" / "profiles").glob("*.yaml")}


def run_book(*args, cwd=ROOT, timeout=900):
    return subprocess.run([sys.executable, "-m", "ncutils.book", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


# --------------------------------------------------------------------------- sources
def test_toc_lists_six_chapters_in_paper_order():
    assert [nb.stem for nb in NOTEBOOKS] == ["01_nc_metrics", "02_progressive_collapse", "03_pretraining",
                                            "04_downstream", "05_finetuning", "06_transferability"]
    assert all(nb.exists() for nb in NOTEBOOKS)
    assert set(PROFILES) == {"smoke", "cpu", "paper"}


@pytest.mark.parametrize("nb", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_clean_and_parametrised(nb):
    notebook = nbformat.read(nb, as_version=4)
    assert notebook.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in notebook.cells if c.cell_type == "code"]
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "hide-input" in tagged[0].metadata["tags"], "the parameter cell is folded on the page"
    claims = [c for c in code if c.source.lstrip().startswith("ch.claim(")]
    assert all("remove-input" in c.metadata.get("tags", []) for c in claims), "a claim shows its box, not its call"
    assert all(not c.outputs and c.execution_count is None for c in code), "commit notebooks without outputs"
    # the parameters cell names the profile, the changed settings and the runner's plumbing, and nothing else:
    # the settings themselves are declared once, typed, in ncutils.book.settings
    defaults = {k: ast.literal_eval(v["default"]) for k, v in pm.inspect_notebook(str(nb)).items()}
    assert defaults == {"profile": "cpu", "changes": {}, "runner": {}}
    number = book.chapter_number(nb)
    assert f"ch = Chapter({number}, profile, changes, runner)" in "".join(c.source for c in code)


def test_profiles_set_only_declared_settings_with_allowed_values():
    from ncutils.book import settings

    for name in PROFILES:
        loaded = settings.load(name, ROOT)  # raises on an unknown key or a bad value
        assert loaded.profile == name and set(loaded.values) <= set(settings.declared())


def test_declared_defaults_are_the_cpu_profile():
    """Run All in Jupyter gives the cpu profile: the declarations' defaults are its values."""
    from ncutils.book import settings

    for number in settings.CHAPTERS:
        assert settings.changed(settings.resolve(number, "cpu", root=ROOT)) == {}
        assert settings.resolve(number, "cpu", root=ROOT) == settings.CHAPTERS[number]()


# --------------------------------------------------------------------------- runner
def _notebook(path: Path, *cells: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("profile = 'cpu'\nchanges = {}\nrunner = {}", metadata={"tags": ["parameters"]})
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params,
                *[nbformat.v4.new_code_cell(c) for c in cells]]
    nbformat.write(nb, path)


@pytest.fixture()
def tiny_book(tmp_path):
    (tmp_path / "book" / "profiles").mkdir(parents=True)
    (tmp_path / "_config.yml").write_text('title: t\nexecute:\n  execute_notebooks: "off"\n')
    (tmp_path / "_toc.yml").write_text(
        "format: jb-book\nroot: book/intro\nchapters:\n- file: book/01_ok\n- file: book/02_fail\n"
        "- file: book/03_ok\n")
    (tmp_path / "book" / "intro.md").write_text("# intro\n")
    (tmp_path / "book" / "profiles" / "cpu.yaml").write_text("seed: 3\n")
    write = ("import json\nfrom ncutils.book import settings\n"
             "json.dump({'seed': settings.resolve(1, profile, changes).seed}, open(runner['results_path'], 'w'))")
    _notebook(tmp_path / "book" / "01_ok.ipynb", write)
    _notebook(tmp_path / "book" / "02_fail.ipynb", "x = 1", "raise ValueError('broken on purpose')")
    _notebook(tmp_path / "book" / "03_ok.ipynb", write)
    return tmp_path


TINY = ("--profile", "cpu", "--executor", "sequential")  # the tiny book's chapters have no units


def test_runner_names_the_failed_cell_and_keeps_the_others(tiny_book):
    out = run_book("--root", str(tiny_book), *TINY, "--no-build", "--quiet")
    assert out.returncode == 1
    # cells run: parameters [1], papermill's injected parameters [2], "x = 1" [3], the raise [4]
    assert "02_fail: FAILED in cell In [4]: ValueError: broken on purpose" in out.stdout
    assert "failed chapters: 02_fail (cell In [4])" in out.stdout
    executed = tiny_book / "_build" / "cpu" / "src" / "book"
    for ok in ("01_ok", "03_ok"):
        assert json.loads((executed / f"{ok}.json").read_text()) == {"seed": 3}  # the profile's file applied
        assert nbformat.read(executed / f"{ok}.ipynb", as_version=4).cells[-1].execution_count is not None
    assert "broken on purpose" in (executed / "02_fail.ipynb").read_text()  # traceback kept
    runs = {r["name"]: r for r in json.loads((tiny_book / "_build" / "cpu" / "runs.json").read_text())}
    assert [runs[n]["status"] for n in ("01_ok", "02_fail", "03_ok")] == ["ok", "failed", "ok"]
    assert runs["01_ok"]["seconds"] > 0 and runs["01_ok"]["peak_mib"] > 10


def test_runner_reuses_unchanged_chapters_and_reruns_changed_ones(tiny_book):
    run_book("--root", str(tiny_book), *TINY, "--no-build", "--quiet", "--only", "1", "3")
    again = run_book("--root", str(tiny_book), *TINY, "--no-build", "--quiet", "--only", "1", "3")
    assert again.returncode == 0 and again.stdout.count("reused") == 2
    (tiny_book / "book" / "profiles" / "cpu.yaml").write_text("seed: 4\n")  # the profile itself changed
    changed = run_book("--root", str(tiny_book), *TINY, "--no-build", "--quiet", "--only", "1")
    assert "reused" not in changed.stdout
    executed = tiny_book / "_build" / "cpu" / "src" / "book" / "01_ok.json"
    assert json.loads(executed.read_text()) == {"seed": 4}


def test_runner_rejects_unknown_chapters_and_profiles(tiny_book):
    assert "no such chapter" in run_book("--root", str(tiny_book), *TINY, "--only", "9").stderr
    out = run_book("--root", str(tiny_book), "--profile", "nope")
    assert out.returncode != 0 and "--profile nope: no such profile; use one of smoke, cpu, paper" in out.stderr
    assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1  # one line, no traceback


def test_the_plain_command_fans_out_into_one_store_for_every_profile(tiny_book, tmp_path):
    from ncutils.book.runner import cli

    mine = tmp_path / "mine.yaml"
    mine.write_text("seed: 5\n")
    plain = cli.parse(["--root", str(tiny_book), "--profile", "cpu"])
    with_file = cli.parse(["--root", str(tiny_book), "--profile", str(mine)])
    assert plain.args.executor == "local" and plain.executor_settings().count >= 1
    assert plain.store_dir == with_file.store_dir == tiny_book / "_build" / "store"
    assert (plain.out_dir.name, with_file.out_dir.name, with_file.profile) == ("cpu", "mine", "cpu")
    store = cli.parse(["--root", str(tiny_book), "--profile", "cpu", "--store", str(tmp_path / "s")]).store_dir
    assert store == tmp_path / "s"


def test_a_parameter_file_is_checked_before_any_compute(tiny_book, tmp_path):
    """A file names its profile or adjusts cpu; an unknown key or profile names the file, the key and the valid
    names, in one line, before anything runs."""
    typo = tmp_path / "typo.yaml"
    typo.write_text("seed: 2\nsed: 3\n")
    out = run_book("--root", str(tiny_book), "--profile", str(typo), "--executor", "sequential")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert f"{typo}: 'sed' is not a setting of any chapter (did you mean 'seed'?)" in out.stderr
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("profile: laptop\nseed: 2\n")
    out = run_book("--root", str(tiny_book), "--profile", str(wrong), "--executor", "sequential")
    assert out.returncode != 0 and f"{wrong}: profile: 'laptop' is not a profile" in out.stderr
    assert "smoke, cpu, paper" in out.stderr
    assert not (tiny_book / "_build" / "wrong").exists() and not (tiny_book / "_build" / "typo").exists()
    mine = tmp_path / "mine.yaml"
    mine.write_text("seed: 5\n")  # no profile line: adjusts cpu
    from ncutils.book import settings

    loaded = settings.load(str(mine), tiny_book)
    assert (loaded.label, loaded.profile, loaded.changes, loaded.values["seed"]) == ("mine", "cpu", {"seed": 5}, 5)


def test_book_builds_without_jupyter_book_on_path(tiny_book):
    """A virtualenv's python called directly, without activating the environment: nothing on PATH."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home())}
    out = subprocess.run([sys.executable, "-m", "ncutils.book", "--root", str(tiny_book), *TINY, "--only", "1",
                          "--quiet"], cwd=tiny_book, capture_output=True, text=True, env=env, timeout=600)
    assert "book built" in out.stdout, out.stdout[-2000:] + out.stderr[-2000:]
    assert (tiny_book / "_build" / "cpu" / "html" / "index.html").exists()


def test_a_failed_build_says_why(tiny_book):
    (tiny_book / "book" / "intro.md").write_text("# intro\n\n{glue:text}`no_such_key`\n")
    out = run_book("--root", str(tiny_book), *TINY, "--only", "1", "--quiet")
    assert out.returncode == 1 and "book build FAILED" in out.stdout
    failure = out.stdout.split("book build FAILED", 1)[1]
    assert "WARNING" in failure or "ERROR" in failure or "rror" in failure, failure


@pytest.mark.slow
def test_a_changed_parameter_never_returns_old_results(tmp_path):
    """The stale-results scenario: rerun chapter 5 with more fine-tuning epochs; its numbers must change."""
    label = f"stale-{tmp_path.name}"
    profile = ROOT / "book" / "profiles" / f"{label}.yaml"
    store = tmp_path / "store"
    results = []
    try:
        for epochs in (1, 4):
            # a parameter file that names the smoke profile starts from its values
            # one network and one Fig. 11 size: fewer units, the same question
            profile.write_text(yaml.safe_dump({"profile": "smoke", "ft_epochs": epochs, "ft_archs": ["resnet18"],
                                               "ft_sizes": [2], "ft_scarce_seeds": [0]}))
            out = run_book("--profile", str(profile), "--only", "5", "--no-build", "--quiet", "--store", str(store))
            assert out.returncode == 0, out.stdout[-3000:]
            record = json.loads((ROOT / "_build" / label / "src" / "book" / "05_finetuning.json").read_text())
            results.append({k: v for k, v in record["units"].items() if v["kind"] == "finetune"})
    finally:
        profile.unlink(missing_ok=True)
        shutil.rmtree(ROOT / "_build" / label, ignore_errors=True)
    first, second = results
    assert first and second and not set(first) & set(second)  # new keys for the new configuration
    assert all(v["config"]["epochs"] == 4 for v in second.values())

    def measured(r):
        return sorted((v["config"]["method"], v["config"]["block"] or 0, v["result"]["nc1"]) for v in r.values())

    assert measured(first) != measured(second)


# --------------------------------------------------------------------------- the smoke book
def machine_paths(build: Path) -> list[str]:
    """The absolute paths of this machine that a built book must not show: the repository, the build folder,
    the home folder and the temporary folder (each also with its symbolic links resolved)."""
    import os
    import tempfile

    paths = [ROOT, build, Path.home(), Path(tempfile.gettempdir())]
    return list(dict.fromkeys(form for p in paths for form in (str(p), os.path.realpath(p)) if form.strip("/")))


@pytest.mark.slow
def test_smoke_profile_runs_every_chapter_and_builds_the_book():
    out = run_book("--profile", "smoke", "--fresh", "--quiet", timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    runs = {r["name"]: r for r in json.loads((ROOT / "_build" / "smoke" / "runs.json").read_text())}
    html = ROOT / "_build" / "smoke" / "html"
    for nb in NOTEBOOKS:
        assert runs[nb.stem]["status"] == "ok"
        results = json.loads((ROOT / "_build" / "smoke" / "src" / "book" / f"{nb.stem}.json").read_text())
        assert results["results"], f"{nb.stem} stored no results"
        page = (html / "book" / f"{nb.stem}.html").read_text()
        assert "Traceback" not in page and "has not been run" not in page
        assert "Claim" in page  # every chapter states whether the paper's claims hold in this run
    assert "About this build" in (html / "book" / "runs.html").read_text()
    api = (html / "book" / "api.html").read_text()  # the API reference: every public name of every module
    # formulas in the docstrings are reStructuredText math (MathJax), not ASCII such as ``Sigma_W Sigma_B^dagger``
    assert 'class="math' in api, "no rendered math on the API page: write docstring formulas as :math:`...`"
    ascii_math = sorted(set(re.findall(r"(?<!\\)Sigma_[WB]", api)))  # the TeX source \Sigma_W is fine
    assert not ascii_math, f"ASCII math {ascii_math} on the API page: write it as :math:`\\Sigma_W` etc."
    import importlib

    for module in ("ncutils.metrics", "ncutils.transferability.baselines", "ncutils.finetune.methods", "ncutils.stats"):
        missing = [n for n in importlib.import_module(module).__all__ if f'id="{module}.{n}"' not in api]
        assert not missing, f"{module}: {missing} not on the API page"
    # the rendered book, pages and downloadable sources alike: no path of this machine, nothing fetched from
    # the network to render (math included), and a figure and a verdict on every chapter page
    from htmlcheck import audit

    problems = audit(html, machine_paths(ROOT / "_build" / "smoke"),
                     chapters=[f"book/{nb.stem}.html" for nb in NOTEBOOKS])
    assert not problems, "\n".join(problems)
    claims = (html / "book" / "claims.html").read_text()
    for nb in NOTEBOOKS:  # the claims page heads each chapter's claims with the chapter's title
        assert book.chapter_title(nb) in claims and book.chapter_title(nb) != nb.stem.replace("_", " ")


def test_a_replicate_draws_every_seed_from_its_own_set(tiny_book):
    from ncutils.book.runner import cli
    from ncutils.book.settings import REPLICATE_STRIDE, replicate, seed_fields

    # every setting that holds seeds, including those naming which seeds' models join the population
    assert set(seed_fields()) == {"seed", "pt_seeds", "pt_fig_seeds", "pt_random_seeds", "population_seeds",
                                  "ft_scarce_seeds", "ft_table3_seeds"}
    params = {"seed": 0, "pt_seeds": [0, 1, 2], "ft_table3_seeds": [3], "probe_epochs": 5, "profile": "cpu"}
    one, two = replicate(params, 1), replicate(params, 2)
    assert one == {**params, "seed": REPLICATE_STRIDE, "pt_seeds": [REPLICATE_STRIDE + i for i in range(3)],
                   "ft_table3_seeds": [REPLICATE_STRIDE + 3]}
    seeds = [{one["seed"], *one["pt_seeds"], *one["ft_table3_seeds"]},
             {two["seed"], *two["pt_seeds"], *two["ft_table3_seeds"]}, {0, 1, 2, 3}]
    assert not (seeds[0] & seeds[1] or seeds[0] & seeds[2] or seeds[1] & seeds[2])  # independent sets
    assert replicate(params, 0) == params
    with pytest.raises(ValueError, match="seeds must lie in"):
        replicate({"seed": REPLICATE_STRIDE}, 1)
    run = cli.parse(["--root", str(tiny_book), "--profile", "cpu", "--replicate", "2"])
    assert run.label == "cpu-replicate-2" and run.store_dir == tiny_book / "_build" / "store"
    # the other replicates are found by what their manifests say, not by their folders' names
    for k, folder in ((0, "cpu"), (1, "renamed"), (3, "cpu-replicate-3")):
        other = cli.parse(["--root", str(tiny_book), "--profile", "cpu", "--replicate", str(k)])
        other.label = folder
        other.write_manifest()
    (tiny_book / "_build" / "cpu-replicate-3" / cli.MANIFEST).write_text("{not json")  # damaged: ignored
    (tiny_book / "_build" / "cpu-replicate-4").mkdir()  # no manifest: not a build
    smoke = cli.parse(["--root", str(tiny_book), "--profile", "smoke", "--replicate", "5"])
    smoke.label = "cpu-replicate-5"
    smoke.write_manifest()  # another profile under a misleading name
    assert run.siblings() == {"default": tiny_book / "_build" / "cpu",
                              "replicate 1": tiny_book / "_build" / "renamed"}
    out = run_book("--root", str(tiny_book), *TINY, "--replicate", "-1")
    assert out.returncode != 0 and "--replicate takes a number >= 0" in out.stderr


def test_the_claims_page_shows_the_deciding_check_and_the_other_replicates():
    import pandas as pd

    from ncutils.book.claims import CLAIMS
    from ncutils.book.pages.claims import claims_page
    from ncutils.book.rules import RULES

    ev = pd.DataFrame([{"cell": c, "method": m, "seed": s, "accuracy": a + 0.4 * s} for c in ("A", "B", "C")
                       for s in range(3) for m, a in (("linear", 50.0), ("layer", 56.0))])
    v = RULES["table3_layer"].judge(ev)
    record = {"results": {"verdicts": [v.to_dict()]}}
    page = claims_page("cpu-replicate-1", [("05_finetuning", "5. Fine-tuning", record)],
                       {"default": {"table3_layer": "supported"}, "replicate 2": {"table3_layer": "not supported"}})
    row = next(line for line in page.splitlines() if line.startswith(f"| {CLAIMS['table3_layer'].text[:30]}"))
    assert "(δ 2; smallest detectable effect" in row and 'class="verdict verdict-supported">supported<' in row
    assert "A: layer − linear = 6 [" in row and "↑ predicted side of 0; as predicted" in row
    assert ('default: <span class="verdict verdict-supported">supported</span><br>replicate 2: '
            '<span class="verdict verdict-not-supported">not supported</span>') in row
    assert f"`{RULES['table3_layer'].digest()}`" in row and "| replication | rule |" in page
    assert "Revisions of the rule" in page and "a6cf703" in page
    halved = v.with_halves(v, v, split="fine-tuning seeds")
    page = claims_page("cpu", [("05_finetuning", "5. Fine-tuning", {"results": {"verdicts": [halved.to_dict()]}})])
    row = next(line for line in page.splitlines() if line.startswith(f"| {CLAIMS['table3_layer'].text[:30]}"))
    assert 'halves of the fine-tuning seeds: <span class="verdict verdict-supported">supported</span> ' in row
    # a record written by an older rule format is not shown as a verdict of the rules in force
    old = {"results": {"verdicts": [{"claim": {"key": "table3_layer"}, "outcome": "supported", "tests": []}]}}
    page = claims_page("cpu", [("05_finetuning", "5. Fine-tuning", old)])
    row = next(line for line in page.splitlines() if line.startswith(f"| {CLAIMS['table3_layer'].text[:30]}"))
    assert "not run in this build" in row
