"""The paper profile before any compute: the plan, the preflight, fan-out, and the paper-shaped dry run."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from records import without_timings

from ncutils import fewshot
from ncutils.book import grids, settings
from ncutils.book.engine import units
from ncutils.book.engine.compute import Context, compute
from ncutils.book.engine.store import Store

ROOT = Path(__file__).resolve().parents[1]
PAPER_DATASETS = {"cifar10", "cifar100", "aircraft", "dtd", "pets", "flowers102", "mnist", "fashionmnist",
                  "cifar_fs", "mini_imagenet"}
PAPER_WEIGHTS = {"resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "densenet121", "densenet169",
                 "densenet201", "mobilenet_v2", "mnasnet1_0", "googlenet", "inception_v3", "vit_b_32",
                 "clip_vit_b_32"}  # Chapter 4's CLIP section (TMLR version)


def run_book(*args, env=None, timeout=900):
    return subprocess.run([sys.executable, "-m", "ncutils.book", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


def _params(profile: str, number: int):
    return settings.resolve(number, profile, root=ROOT)


def test_check_lists_every_missing_input_at_once_and_fails_fast(tmp_path):
    # NCUTILS_FASHION_MNIST: hide Debian's copy of Fashion-MNIST, which counts as present where it is installed
    empty = {k: str(tmp_path / k) for k in ("NCUTILS_DATA", "TORCH_HOME", "HF_HOME", "NCUTILS_FASHION_MNIST")}
    for folder in empty.values():
        os.makedirs(folder)
    t0 = time.perf_counter()
    out = run_book("--profile", "paper", "--check", env=empty, timeout=120)
    seconds = time.perf_counter() - t0
    assert out.returncode != 0 and seconds < 60, (seconds, out.stdout[-2000:], out.stderr[-2000:])
    missing_data = {line.split("MISSING dataset ")[1].split(":")[0] for line in out.stdout.splitlines()
                    if "MISSING dataset " in line}
    missing_weights = {line.split("MISSING weights ")[1].split(":")[0] for line in out.stdout.splitlines()
                       if "MISSING weights " in line}
    assert missing_data == PAPER_DATASETS and missing_weights == PAPER_WEIGHTS
    assert "python -m ncutils.data download cifar10" in out.stdout
    assert "python -m ncutils.hub download" in out.stdout and "nothing was computed" in out.stdout


def test_a_paper_run_checks_its_inputs_before_computing_anything(tmp_path):
    empty = {k: str(tmp_path / k) for k in ("NCUTILS_DATA", "TORCH_HOME", "HF_HOME")}
    out = run_book("--profile", "paper", "--only", "5", "--no-build", "--store", str(tmp_path / "store"), env=empty,
                   timeout=120)
    assert out.returncode != 0 and "MISSING dataset cifar10" in out.stdout
    assert not (tmp_path / "store").exists()  # nothing ran


def test_the_plan_shows_few_shot_backbones_trained_on_meta_train_classes_only(tmp_path):
    out = run_book("--profile", "paper", "--plan", "--no-timing", "--json", str(tmp_path / "plan.json"),
                   "--store", str(tmp_path / "store"), timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "04_downstream" in out.stdout and "units" in out.stdout
    units = json.loads((tmp_path / "plan.json").read_text())["units"]
    assert len({u["chapters"][0] for u in units if u["chapters"]}) == 6
    episodes = [u for u in units if u["kind"] == "fewshot_eval"]
    assert len(episodes) == 6  # (CIFAR-FS, miniImageNet) x (ConvNet4, ResNet12, SEResNet12)
    for u in episodes:
        train = u["config"]["backbone"]["source"]["config"]["data"]
        test = u["config"]["data"]
        assert train["split"] == "train" and train["num_classes"] == 64 and test["split"] == "test"
        assert u["config"]["backbone"]["source"]["config"]["num_classes"] == 64
        if train["source"] == "cifar_fs":
            assert train["classes"] == list(fewshot.CIFAR_FS_TRAIN_CLASSES)
            assert not set(train["classes"]) & set(test["classes"]) and len(test["classes"]) == 20
        recipe = u["config"]["backbone"]["source"]["config"]
        assert (recipe["lr"], recipe["weight_decay"], recipe["batch_size"]) == (0.05, 5e-4, 64)
        assert recipe["schedule"]["kind"] == "step"
    convnet = next(u for u in episodes if u["config"]["backbone"]["source"]["config"]["network"]["arch"] == "convnet4")
    assert convnet["config"]["backbone"]["source"]["config"]["network"]["hidden"] == 64
    mini = [u for u in episodes if u["config"]["data"]["source"] == "mini_imagenet"]
    assert mini and all(u["config"]["data"]["image_size"] == 84 for u in mini)
    inception = [
        u for u in units if u["kind"] == "transfer_scores" and u["config"]["backbone"] == {"public": "inception_v3"}
    ]
    assert inception and all(u["config"]["data"]["image_size"] == 299 for u in inception)


def test_the_plan_estimates_cost_by_timing_real_steps(tmp_path):
    out = run_book("--profile", "smoke", "--only", "3", "--plan", "--store", str(tmp_path), timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "estimated compute" in out.stdout and "CPU-hours" in out.stdout


# --------------------------------------------------------------------------- the paper-shaped dry run
@pytest.mark.slow
def test_paper_dry_run_executes_one_unit_of_every_kind(tmp_path):
    """A fast subset of ``--profile paper --dry-run`` at its CPU scale: the cheapest unit of each kind at the
    paper's shapes."""
    from ncutils.book.engine import units
    from ncutils.book.runner import plan

    units._load_kinds()
    timer = plan.PixelTimer()  # ranks units without timing the ~40 paper networks (minutes on a CPU)
    chosen = {}
    for n in grids.GRIDS:
        for u in grids.all_units(grids.grid(n, _params("paper", n), dry_run="minimal")):
            cost = plan.estimate(u, timer)
            if u.kind not in chosen or cost < chosen[u.kind][0]:
                chosen[u.kind] = (cost, u)
    assert set(chosen) == set(units.KINDS)
    ctx = Context(Store(tmp_path))
    for _, u in chosen.values():
        assert all(d.get("stand_in") for d in plan._walk(u.config) if plan._is_dataset(d))
        result = compute(u, ctx)
        assert result is not None
    sizes = {u.config["data"]["image_size"] for _, u in chosen.values() if "data" in u.config
             and isinstance(u.config["data"], dict) and "image_size" in u.config["data"]}
    assert sizes & {32, 84, 224, 299, 384}


def test_dry_run_scales_keep_the_paper_shapes():
    """Both dry-run scales keep every network, image size and class count; the batch scale gives pre-training
    at least one full batch of the paper's size, the minimal scale few images and small batches."""
    from ncutils.book import datasets
    from ncutils.book.engine import dryrun

    real = {u.key: u for u in grids.all_units(grids.grid(3, _params("paper", 3)))}
    for scale in dryrun.SCALES:
        for u in grids.all_units(grids.grid(3, _params("paper", 3), dry_run=scale)):
            if u.kind != "pretrain":
                continue
            d, batch = u.config["data"], u.config["batch_size"]
            assert d["stand_in"] and d["num_classes"] == u.config["num_classes"] == 100
            assert d["image_size"] == 32 and u.config["epochs"] == 1
            twin = next(r for r in real.values() if r.kind == "pretrain" and r.config["network"] == u.config["network"])
            if scale == "batch":
                assert batch == twin.config["batch_size"] and datasets.size(d) >= batch
            else:
                assert batch == dryrun.MINIMAL_BATCH and datasets.size(d) == 2 * dryrun.MINIMAL_CLASSES
    for u in grids.all_units(grids.grid(4, _params("paper", 4), dry_run="minimal")):
        if u.kind == "fewshot_eval":  # one episode's classes, each with its shots and a couple of queries
            d = u.config["data"]
            assert d["num_classes"] in (16, 20) and d["stand_in"]["present"] == u.config["ways"]
            assert u.config["queries"] == dryrun.MINIMAL_QUERIES
            assert d["stand_in"]["per_class"] == max(u.config["shots"]) + dryrun.MINIMAL_QUERIES
    labels = datasets.build(datasets.stand_in({"source": "cifar100", "split": "train", "num_classes": 100,
                                               "image_size": 8, "channels": 3}, per_class=2, present=4))
    assert sorted({int(y) for _, y in labels}) == [0, 33, 66, 99]


# --------------------------------------------------------------------------- fan-out
def _unit_results(path: Path) -> dict:
    record = json.loads(path.read_text())
    return {k: without_timings(v["result"]) for k, v in record["units"].items()}


@pytest.mark.slow
def test_local_executor_with_two_workers_gives_the_sequential_results(tmp_path):
    """Units computed by submitit's local executor in two processes equal those computed in the notebook, at
    the same number of threads (float sums round differently with another thread count)."""
    outs = {}
    for how, extra in (("sequential", []), ("local", ["--executor", "local", "--workers", "2"])):
        label = f"fanout-{how}-{tmp_path.name}"
        profile = ROOT / "book" / "profiles" / f"{label}.yaml"
        # one seed and no heads: every kind of chapter 3 (pre-training, probes, Fig. 4) in fewer units
        profile.write_text(yaml.safe_dump({"profile": "smoke", "pt_seeds": [0], "pt_fig_seeds": [0],
                                           "pt_head_layers": [0]}))
        try:
            out = run_book("--profile", str(profile), "--only", "3", "--no-build", "--quiet",
                           "--store", str(tmp_path / how), *extra, env={"OMP_NUM_THREADS": "1"})
            assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
            outs[how] = {ch: _unit_results(ROOT / "_build" / label / "src" / "book" / f"{ch}.json")
                         for ch in ("03_pretraining",)}
            if how == "local":
                assert "fan-out (local, 2 workers)" in out.stdout and "0 failed" in out.stdout
        finally:
            profile.unlink(missing_ok=True)
            import shutil

            shutil.rmtree(ROOT / "_build" / label, ignore_errors=True)
    stored = list((tmp_path / "local").glob("pretrain/*.json"))
    assert stored and all(json.loads(p.read_text())["provenance"]["pid"] for p in stored)
    assert outs["local"] == outs["sequential"]


def _chain(ctx, *, x: int, after: units.Unit | None = None, fail: bool = False) -> dict:
    """Adds ``x`` to the value of the unit it comes ``after`` (a test kind with a dependency)."""
    if fail:
        raise ValueError("asked to fail")
    return {"value": x + (ctx.result(after)["value"] if after is not None else 0)}


def test_a_local_worker_waits_for_dependencies_and_skips_what_needs_a_failed_unit(tmp_path):
    """In-process: a worker takes the first unit whose dependencies are stored, records a failure for the
    other workers, skips the units that need a failed unit or one claimed by a job that died, and a second
    worker on the same claims finds nothing left."""
    from ncutils.book.engine.units import Unit
    from ncutils.book.runner import executors

    units.kind("test_chain")(_chain)  # a kind of this test only: removed at the end
    try:
        _worker_takes_ready_units(tmp_path, executors, Unit)
    finally:
        units.KINDS.pop("test_chain", None)


def _worker_takes_ready_units(tmp_path, executors, Unit):
    a = Unit("test_chain", {"x": 1})
    b = Unit("test_chain", {"x": 2, "after": a})
    bad = Unit("test_chain", {"x": 0, "fail": True})
    c = Unit("test_chain", {"x": 3, "after": bad})
    orphan = Unit("test_chain", {"x": 4})
    d = Unit("test_chain", {"x": 5, "after": orphan})
    claims = tmp_path / "claims"
    claims.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (claims / orphan.key).write_text(f"7 {dead.pid}")  # claimed by a worker that has died
    batch = [(u, u.key) for u in (b, c, d, a, bad, orphan)]  # b before the unit it needs
    out = executors.run_units_job(batch, str(tmp_path / "store"), None, None, 1, str(claims), 0, poll_s=0.01)
    assert out[a.key] is None and out[b.key] is None
    assert out[bad.key] == "ValueError: asked to fail" and (claims / f"{bad.key}.failed").exists()
    assert out[c.key] == f"skipped: needs {bad.key}, which failed"
    assert out[d.key] == f"skipped: needs {orphan.key}, whose job died"
    assert orphan.key not in out  # claimed by the dead worker: not this one's
    store = Store(tmp_path / "store")
    assert store.read(b)["result"]["value"] == 3 and c not in store and d not in store
    assert executors.claimed_by(claims, b.key) == 0 and executors.claimed_by(claims, orphan.key) == 7
    assert executors.run_units_job(batch, str(tmp_path / "store"), None, None, 1, str(claims), 1) == {}


def _constructed(seed: int, sigmas=(0.0, 0.5)):
    from ncutils.book.engine.units import Unit

    return Unit("nc_constructed", {"classes": 4, "dim": 8, "per_class": 5, "sigmas": list(sigmas), "seed": seed})


def test_local_workers_share_the_units_and_a_failing_unit_fails_alone(tmp_path):
    """Local workers take the units one by one, each unit computed by the one worker that claims it
    first; a unit that raises is reported with its log, the others are still stored, and a rerun computes
    only what is missing."""

    from ncutils.book.runner import executors

    good = [_constructed(s) for s in range(5)]
    bad = _constructed(9, sigmas=("not a number",))
    units = [good[0], bad, *good[1:]]
    assert sorted(u.key for u in executors.by_priority(units)) == sorted(u.key for u in units)
    # two jobs given the same batch and claim folder: the second finds every unit claimed
    claims = tmp_path / "claims"
    claims.mkdir()
    batch = [(u, u.key) for u in good[:2]]
    first = executors.run_units_job(batch, str(tmp_path / "s0"), None, None, 1, str(claims), 0)
    second = executors.run_units_job(batch, str(tmp_path / "s0"), None, None, 1, str(claims), 1)
    assert first == {u.key: None for u in good[:2]} and second == {}
    assert [executors.claimed_by(claims, u.key) for u in good[:3]] == [0, 0, None]
    local = executors.Local(workers=2)
    ok = executors.fan_out(units, local, store_dir=tmp_path / "store", log_dir=tmp_path / "logs", progress=False,
                           poll_s=0.2)
    store = Store(tmp_path / "store")
    assert not ok and all(u in store for u in good) and bad not in store
    log = store.log_path(bad)
    assert log.exists() and "did not contain a loop" in log.read_text() and f"unit {bad.key}" in log.read_text()
    before = {u.key: store.path(u).stat().st_mtime_ns for u in good}
    assert not executors.fan_out(units, local, store_dir=tmp_path / "store", log_dir=tmp_path / "logs2",
                                 progress=False, poll_s=0.2)
    assert {u.key: store.path(u).stat().st_mtime_ns for u in good} == before  # reused, not recomputed


def test_every_backbone_of_every_profile_and_dry_run_has_a_description():
    """The pages name each backbone with ``describe_backbone``: public weights, random weights of a public or
    in-book network (the dry run's stand-ins, the random encoders of Chapter 3), or a network pre-trained here."""
    from ncutils.book.evidence import describe as describe_backbone

    seen = set()
    for profile in ("smoke", "cpu", "paper"):
        for dry_run in (False, "minimal"):
            for n in (3, 4, 5, 6):
                for u in grids.all_units(grids.grid(n, _params(profile, n), dry_run=dry_run or None)):
                    assert not {"encoder", "model"} & set(u.config), "one field name for the network a unit reads"
                    spec = u.config.get("backbone")
                    if isinstance(spec, dict):
                        text = describe_backbone(spec)
                        assert "`" in text and text.strip()
                        seen.add(next(k for k in ("public", "random", "source") if k in spec)
                                 + ("-public" if isinstance(spec.get("random"), str) else ""))
    assert {"public", "random", "random-public", "source"} <= seen, seen


def test_a_dry_run_judges_no_claim_and_its_claims_page_says_so(tmp_path):
    """Stand-ins and random weights test no claim: in a dry run every verdict is inconclusive, whatever its tests
    say, and the claims page opens with a dry-run warning."""
    import pandas as pd

    from ncutils.book.chapter import Chapter
    from ncutils.book.pages.claims import claims_page
    from ncutils.book.rules import RULES
    from ncutils.book.verdicts import INCONCLUSIVE, SUPPORTED

    supported = RULES["nc1_metric"].judge(pd.DataFrame({"sigma": [0.0, 0.1], "nc1": [0.0, 1.0],
                                                        "closed_form": [0.0, 1.0]}))
    assert supported.outcome == SUPPORTED
    records = []
    for dry_run in (False, "minimal"):
        ch = Chapter(1, "smoke", {}, {"dry_run": dry_run or None, "store_dir": str(tmp_path / str(dry_run))})
        v = ch.verdict(supported)
        assert (v.outcome == INCONCLUSIVE) == bool(dry_run)
        assert ch.to_dict()["results"]["verdicts"][0]["outcome"] == v.outcome
        records.append(("01_nc_metrics", "1. Measuring neural collapse", ch.to_dict()))
    assert "dry run" not in claims_page("smoke", records[:1])
    page = claims_page("smoke", records[1:])
    assert ":::{warning}" in page and "dry run" in page and "## [1. Measuring neural collapse](01_nc_metrics)" in page
    assert page.index("Totals:") < page.index(":::{warning}")  # the totals stand outside the warning
