"""Units keyed by their complete configuration and code; the store; computing and reusing results."""

import copy
import dataclasses
import inspect
import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from ncutils.book import grids
from ncutils.book.engine import fingerprint, units
from ncutils.book.engine.compute import Context, MissingResult, compute
from ncutils.book.engine.store import Store
from ncutils.book.engine.units import KINDS, Unit

ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the smoke grids' units
def _smoke_params(number: int):
    from ncutils.book import settings

    return settings.resolve(number, "smoke", root=ROOT)


@pytest.fixture(scope="module")
def smoke_units() -> dict[str, Unit]:
    """One unit of every kind, from the smoke profile's chapter grids (the cheapest of each kind)."""
    found: dict[str, Unit] = {}
    for n in grids.GRIDS:
        for u in grids.all_units(grids.grid(n, _smoke_params(n))):
            found.setdefault(u.kind, u)
    return found


def test_the_smoke_grids_use_every_kind(smoke_units):
    units._load_kinds()
    assert set(smoke_units) == set(KINDS)


def _mutations(value):
    """Ways to change one configuration value (each must give another key)."""
    if isinstance(value, Unit):
        return [Unit(value.kind, {**value.config, "seed": value.config.get("seed", 0) + 1})]
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1]
    if isinstance(value, float):
        return [value * 2 + 1]
    if isinstance(value, str):
        return [value + "x"]
    if value is None:  # an optional argument given: a number or a dict, whichever its annotation allows
        return [1, {"given": 1}]
    if isinstance(value, list):
        return [value[:-1] if value else [0], [*value, value[-1] if value else 1]]
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            for m in _mutations(v):
                out.append({**value, k: m})
        return out[:3] + [{**value, "extra": 1}]
    raise TypeError(type(value))


@pytest.mark.parametrize("kind", sorted(["nc_constructed", "nc_surrogates", "nc1_cost", "nc_streaming", "pretrain",
                                         "probe", "layerwise_probe", "layer_nc", "fewshot_eval", "finetune",
                                         "param_percentages", "transfer_scores"]))
def test_every_field_of_a_configuration_is_in_the_key(kind, smoke_units):
    u = smoke_units[kind]
    assert u.key.startswith(f"{kind}-") and u.key == Unit(kind, copy.deepcopy(dict(u.config))).key
    assert list(u.config) == list(KINDS[kind].arguments)  # complete: every argument of the kind
    for field, value in u.config.items():
        tried = 0
        for changed in _mutations(value):
            try:
                other = Unit(kind, {**u.config, field: changed})
            except ValueError:  # a value the argument's annotation does not allow
                continue
            tried += 1
            assert other.key != u.key, f"{kind}: changing {field} to {changed!r} kept the key"
        assert tried, f"{kind}: no allowed change of {field}"


@pytest.mark.parametrize("kind", ["nc_streaming", "pretrain", "probe", "layer_nc", "layerwise_probe",
                                  "fewshot_eval", "finetune", "transfer_scores"])
def test_units_are_computed_once_and_recomputed_when_a_field_changes(kind, smoke_units, tmp_path, monkeypatch):
    u = smoke_units[kind]
    calls = []
    fn = KINDS[kind].fn
    monkeypatch.setitem(KINDS, kind, dataclasses.replace(KINDS[kind],
                                                         fn=lambda ctx, **c: calls.append(1) or fn(ctx, **c)))
    store = Store(tmp_path)
    first = compute(u, Context(store))
    assert calls == [1]
    again = compute(u, Context(store))  # a new context: read from the store, not recomputed
    assert calls == [1] and json.dumps(again, sort_keys=True) == json.dumps(first, sort_keys=True)
    seed_field = "seed" if "seed" in u.config else next(iter(u.config))
    changed = Unit(kind, {**u.config, seed_field: _mutations(u.config[seed_field])[0]})
    compute(changed, Context(store))
    assert calls == [1, 1]


def test_a_dependency_changes_the_key_of_what_uses_it(smoke_units):
    probe = smoke_units["probe"]
    source = probe.config["backbone"]["source"]
    retrained = Unit("pretrain", {**source.config, "epochs": source.config["epochs"] + 1})
    other = Unit("probe", {**probe.config, "backbone": {"source": retrained}})
    assert other.key != probe.key and other.deps == (retrained,)
    assert probe.closure()[-1] == probe and source in probe.closure()


def test_configurations_must_be_exact_json():
    with pytest.raises(TypeError, match="finite"):
        units.unit("nc_streaming", classes=3, dim=4, per_class=5, sigma=float("nan"), batch_size=4, seed=0)
    with pytest.raises(TypeError, match="JSON values"):
        units.unit("nc_constructed", classes=3, dim=4, per_class=5, sigmas=[object()], seed=0)
    with pytest.raises(ValueError, match="unknown unit kind"):
        units.unit("no_such_kind")


# --------------------------------------------------------------------------- the signature is the schema
def _probe_config(**changes) -> dict:
    return {"backbone": {"random": {"arch": "mlp", "width": 8, "depth": 2}, "num_classes": 2, "seed": 0},
            "train": {"source": "synthetic", "split": "train"}, "test": {"source": "synthetic", "split": "test"},
            "epochs": 2, "seed": 0, **changes}


def test_a_misspelt_argument_is_named_with_the_nearest_one():
    with pytest.raises(ValueError) as err:
        Unit("probe", {**_probe_config(), "epoch": 3})
    assert str(err.value) == ("unit kind 'probe' has no argument 'epoch' (did you mean 'epochs'?); its arguments are "
                              "backbone, train, test, epochs, lr, batch_size, loader_batch, seed.")
    with pytest.raises(ValueError, match=r"unit kind 'nc_streaming' has no argument 'sigmas' \(did you mean 'sigma'"):
        units.unit("nc_streaming", classes=3, dim=4, per_class=5, sigmas=[0.5], batch_size=4, seed=0)


def test_a_missing_argument_is_named_with_what_it_takes():
    config = _probe_config()
    del config["epochs"]
    with pytest.raises(ValueError) as err:
        Unit("probe", config)
    assert str(err.value).startswith("unit kind 'probe' is missing required argument 'epochs' (an int);")
    with pytest.raises(ValueError, match="unit kind 'finetune' is missing required arguments 'backbone'"):
        units.unit("finetune", method="full")


@pytest.mark.parametrize("value, got", [("2", "'2' (str)"), (2.5, "2.5 (float)"),
                                        (True, "True (bool; a bool is not a number here)")])
def test_a_value_of_the_wrong_type_is_named_with_what_is_allowed(value, got):
    with pytest.raises(ValueError) as err:
        units.unit("probe", **_probe_config(epochs=value))
    assert str(err.value) == f"unit kind 'probe': argument 'epochs' must be an int; got {got}."


def test_scalars_are_checked_strictly_and_containers_by_their_type():
    assert Unit("probe", _probe_config(lr=1)).config["lr"] == 1  # an int is a float
    with pytest.raises(ValueError, match="argument 'lr' must be a float or an int; got False"):
        Unit("probe", _probe_config(lr=False))
    with pytest.raises(ValueError, match="argument 'backbone' must be a dict or a unit; got 'x'"):
        Unit("probe", _probe_config(backbone="x"))
    with pytest.raises(ValueError, match="argument 'sigmas' must be a list; got 0.5"):
        units.unit("nc_constructed", classes=3, dim=4, per_class=5, sigmas=0.5, seed=0)
    with pytest.raises(ValueError, match="argument 'block' must be an int or None; got 'layer3'"):
        units.unit("finetune", **{**_probe_config(), "method": "layer", "block": "layer3", "num_classes": 2,
                                  "lr": 0.1, "weight_decay": 0.0, "batch_size": 8})
    source = units.unit("nc_streaming", classes=3, dim=4, per_class=5, sigma=0.5, batch_size=4, seed=0)
    assert Unit("probe", _probe_config(backbone=source)).deps == (source,)  # a unit where a dict is annotated


def test_defaults_are_applied_into_the_configuration_and_the_key():
    u = Unit("probe", _probe_config())
    assert list(u.config) == ["backbone", "train", "test", "epochs", "lr", "batch_size", "loader_batch", "seed"]
    assert (u.config["lr"], u.config["batch_size"], u.config["loader_batch"]) == (0.1, 256, 256)
    assert u.key == Unit("probe", _probe_config(lr=0.1, batch_size=256, loader_batch=256)).key
    assert u.key == units.unit("probe", **_probe_config()).key
    assert u.key != Unit("probe", _probe_config(lr=0.2)).key
    # a read-only mapping default becomes a plain dict of each unit's own
    net = {"arch": "mlp", "width": 8, "depth": 2}
    data = {"source": "synthetic", "split": "train", "num_classes": 2, "image_size": 4, "channels": 1}
    a, b = (units.unit("pretrain", network=net, data=data, num_classes=2, loss="ce", head_layers=0, level=1,
                       epochs=1, lr=0.1, batch_size=4, seed=s) for s in (0, 1))
    assert a.config["schedule"] == {"kind": "cosine"} and type(a.config["schedule"]) is dict
    assert a.config["schedule"] is not b.config["schedule"] and a.config["loss_options"] == {}
    assert (a.config["adv_eps"], a.config["until"], a.config["min_lr"]) == (None, None, 1e-4)


def test_every_kind_takes_the_context_then_annotated_keyword_only_arguments():
    units._load_kinds()
    assert KINDS
    for name, k in KINDS.items():
        params = list(inspect.signature(k.fn).parameters.values())
        assert params[0].name == "ctx" and params[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, name
        assert params[1:] and all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in params[1:]), name
        assert all(p.annotation is not inspect.Parameter.empty for p in params[1:]), name
        assert k.signature == inspect.signature(k.fn, eval_str=True)
        assert list(k.arguments) == [p.name for p in params[1:]]


def test_a_kind_whose_signature_is_not_a_schema_is_refused():
    with pytest.raises(TypeError, match="keyword-only"):
        units.kind("test_positional")(lambda ctx, epochs: {})
    with pytest.raises(TypeError, match="has no annotation"):
        units.kind("test_unannotated")(lambda ctx, *, epochs: {})

    def odd(ctx, *, epochs: set) -> dict:
        return {}

    with pytest.raises(TypeError, match="annotation"):
        units.kind("test_odd")(odd)
    assert not {"test_positional", "test_unannotated", "test_odd"} & set(KINDS)


# --------------------------------------------------------------------------- code fingerprints
def test_code_fingerprint_ignores_docstrings_and_comments_but_not_code():
    src = '''"""Module doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 1  # comment\n'''
    same = '''"""Another doc."""\n\ndef f(x):\n    """Reworded."""\n    # a new comment\n    return x + 1\n'''
    other = '''"""Module doc."""\n\ndef f(x):\n    """Doc."""\n    return x + 2\n'''
    assert fingerprint.source_digest(src) == fingerprint.source_digest(same) != fingerprint.source_digest(other)


def test_code_fingerprint_follows_names_to_the_modules_that_define_them():
    closure = set(fingerprint.closure("ncutils.book.experiments.finetuning"))
    wanted = {"ncutils.finetune.loop", "ncutils.finetune.methods", "ncutils.metrics", "ncutils.book.datasets",
              "ncutils.fewshot.backbones"}  # through `from ncutils import fewshot` and `fewshot.backbone(...)`
    assert wanted <= closure
    assert not closure & {"ncutils.book.experiments.scores", "ncutils.book.runner.cli", "ncutils.fewshot.episodes",
                          "ncutils.fewshot", "ncutils.book.engine.units", "ncutils.book.engine.store"}
    assert fingerprint.closure("ncutils.book.experiments.metrics") == (
        "ncutils.book.experiments.metrics", "ncutils.metrics", "ncutils.reference")
    pretraining = set(fingerprint.closure("ncutils.book.experiments.sources"))
    assert "ncutils.pretrain.adversarial" in pretraining
    assert not any(m.startswith("ncutils.finetune") for m in pretraining)


def test_no_import_cycle_inside_ncutils_imports_in_functions_included():
    package = ROOT / "ncutils"
    modules = [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
               for p in package.rglob("*.py")]
    graph = {m: fingerprint.dependencies(m, declarations=True) for m in modules}
    state: dict[str, int] = {}

    def visit(m: str, path: tuple[str, ...]) -> None:
        state[m] = 1
        for d in graph.get(m, ()):
            assert state.get(d) != 1, "import cycle: " + " -> ".join((*path, m, d))
            if d not in state:
                visit(d, (*path, m))
        state[m] = 2

    for m in modules:
        if m not in state:
            visit(m, ())
    assert len(graph) > 50


def _cpu_plan() -> list[Unit]:
    from ncutils.book import settings
    from ncutils.book.runner import chapters, plan

    params = {nb: settings.resolve(chapters.chapter_number(nb), "cpu", root=ROOT) for nb in chapters.chapters(ROOT)}
    return plan.flatten(plan.chapter_units(params))


def _keys_after_edit(copy: Path, relative: str, edit) -> dict[str, set[str]]:
    """The kinds whose keys an edit of ``copy/relative`` changes, with the original keys for comparison."""
    with fingerprint.reading(copy):
        before = {(u.kind, i): u.key for i, u in enumerate(_cpu_plan())}
    target = copy / relative
    original = target.read_text()
    target.write_text(edit(original))
    try:
        with fingerprint.reading(copy):
            after = {(u.kind, i): u.key for i, u in enumerate(_cpu_plan())}
    finally:
        target.write_text(original)
    changed: dict[str, set[str]] = {}
    for (kind, i), key in before.items():
        changed.setdefault(kind, set())
        if after[(kind, i)] != key:
            changed[kind].add(key)
    return {k: v for k, v in changed.items() if v}


@pytest.fixture(scope="module")
def library_copy(tmp_path_factory) -> Path:
    import shutil

    copy = tmp_path_factory.mktemp("checkout")
    shutil.copytree(ROOT / "ncutils", copy / "ncutils", ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def _append(line: str):
    return lambda src: src + f"\n{line}\n"


def _in_function(name: str, line: str):
    """Insert ``line`` as the first statement of function ``name`` (after its docstring)."""
    import ast

    def edit(src: str) -> str:
        fn = next(n for n in ast.walk(ast.parse(src)) if isinstance(n, ast.FunctionDef) and n.name == name)
        first = fn.body[1] if isinstance(fn.body[0], ast.Expr) and len(fn.body) > 1 else fn.body[0]
        lines = src.splitlines(keepends=True)
        lines.insert(first.lineno - 1, " " * first.col_offset + line + "\n")
        return "".join(lines)

    return edit


READERS = {"probe", "layerwise_probe", "layer_nc", "fewshot_eval", "finetune", "transfer_scores"}


@pytest.mark.parametrize("relative, edit, changes, keeps", [
    ("ncutils/finetune/prefix_cache.py", _append("_EDITED = 1"), {"finetune"},
     {"pretrain", "probe", "fewshot_eval", "layerwise_probe", "transfer_scores", "layer_nc"}),
    ("ncutils/fewshot/episodes.py", _append("_EDITED = 1"), {"fewshot_eval"},
     {"pretrain", "probe", "finetune", "transfer_scores", "layerwise_probe", "layer_nc"}),
    ("ncutils/transferability/scores.py", _append("_EDITED = 1"), {"transfer_scores"},
     {"pretrain", "probe", "finetune", "fewshot_eval", "layerwise_probe", "layer_nc",
      "param_percentages", "nc_constructed", "nc_surrogates", "nc1_cost", "nc_streaming"}),
    ("ncutils/pretrain/adversarial.py", _append("_EDITED = 1"), {"pretrain"} | READERS, set()),
    # two levels down: the probe kind -> ncutils.pretrain.loop.transfer -> ncutils.probe.layerwise_probe
    ("ncutils/probe.py", _in_function("layerwise_probe", "_edited = 1"), {"probe"}, {"nc_constructed"}),
    # a kind module: its own kinds (and what reads them) only; fine-tuning no longer imports the probing module
    ("ncutils/book/experiments/probing.py", _append("_EDITED = 1"), {"probe", "layerwise_probe", "layer_nc"},
     {"pretrain", "finetune", "fewshot_eval", "transfer_scores", "param_percentages", "nc_constructed"}),
    # three levels down: finetune -> ncutils.finetune.loop -> ncutils.training -> ncutils.runtime
    ("ncutils/runtime.py", _in_function("seed_everything", "_edited = 1"), {"finetune", "pretrain"},
     {"nc_constructed", "nc_surrogates"}),
])
def test_an_edit_recomputes_exactly_the_kinds_that_can_run_it(library_copy, relative, edit, changes, keeps):
    changed = _keys_after_edit(library_copy, relative, edit)
    assert changes <= set(changed), f"{relative}: expected {changes} to change, changed {sorted(changed)}"
    assert not keeps & set(changed), f"{relative}: {sorted(keeps & set(changed))} changed too"


def test_a_reworded_docstring_recomputes_nothing(library_copy):
    edit = lambda src: src.replace('"""', '"""Reworded. ', 1)  # noqa: E731
    assert _keys_after_edit(library_copy, "ncutils/finetune/loop.py", edit) == {}
    assert _keys_after_edit(library_copy, "ncutils/book/engine/store.py", _append("_EDITED = 1")) == {}


# --------------------------------------------------------------------------- the store
def _cheap(seed: int) -> Unit:
    return units.unit("nc_streaming", classes=3, dim=4, per_class=5, sigma=0.5, batch_size=4, seed=seed)


def test_a_damaged_record_is_named_and_recomputed(tmp_path):
    store = Store(tmp_path)
    u = _cheap(0)
    good = compute(u, Context(store))
    path = store.path(u)
    path.write_text(path.read_text().replace('"nc1"', '"nc1 "', 1))  # checksum no longer matches
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert store.get(u) is None
    assert any("damaged result" in str(w.message) and u.key in str(w.message) for w in caught)
    assert list(tmp_path.glob("nc_streaming/*.damaged-*"))
    assert compute(u, Context(store)) == good and store.get(u) == good
    path.write_text("{not json")
    with pytest.warns(UserWarning, match="not valid JSON"):
        assert store.get(u) is None


def test_missing_results_fail_fast_when_this_run_may_not_compute(tmp_path):
    with pytest.raises(MissingResult, match="may not compute"):
        compute(_cheap(1), Context(Store(tmp_path), compute_missing=False))


def test_fresh_recomputes_what_was_stored_before_the_run(tmp_path):
    import time

    store = Store(tmp_path)
    u = _cheap(2)
    compute(u, Context(store))
    first = store.read(u)["provenance"]["finished_at"]
    fresh = Store(tmp_path, fresh_since=time.time())
    assert fresh.get(u) is None
    compute(u, Context(fresh))
    assert fresh.read(u)["provenance"]["finished_at"] > first


def test_two_processes_writing_one_store_lose_nothing(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from ncutils.book.engine.compute import Context, compute
        from ncutils.book.engine.store import Store
        from ncutils.book.engine.units import unit
        store = Store({str(tmp_path)!r})
        for seed in range(int(sys.argv[1]), int(sys.argv[2])):
            compute(unit("nc_streaming", classes=3, dim=4, per_class=5, sigma=0.5, batch_size=4, seed=seed),
                    Context(store))
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script, str(a), str(b)]) for a, b in ((0, 30), (15, 45))]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    store = Store(tmp_path)
    stored = [store.get(_cheap(s)) for s in range(45)]
    assert all(r is not None for r in stored)  # every record present and passing its checksum
    assert len(list(tmp_path.glob("nc_streaming/*.json"))) == 45
    assert not list(tmp_path.glob("nc_streaming/*.tmp")) and not list(tmp_path.glob("nc_streaming/.*tmp*"))


def test_unit_keys_do_not_depend_on_the_thread_count():
    """Planning computes dataset statistics that enter unit configurations: a notebook (every core) and a fan-out
    job (one thread) must agree on every key."""
    import torch

    from ncutils.book import profiles

    before, keys = torch.get_num_threads(), []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            profiles._statistics_cached.cache_clear()
            keys.append(sorted(u.key for u in _cpu_plan()))
    finally:
        torch.set_num_threads(before)
        profiles._statistics_cached.cache_clear()
    assert keys[0] == keys[1] and len(keys[0]) > 100
