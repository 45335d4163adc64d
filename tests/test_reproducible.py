"""Two runs on one machine give identical results: the cpu profile's source model and its transfer (a whole cheap
chapter computed twice into separate stores is checked in tests/test_interactive.py)."""

from pathlib import Path

from records import without_timings

from ncutils.book import grids, profiles
from ncutils.book.engine.compute import Context
from ncutils.book.engine.store import Store

ROOT = Path(__file__).resolve().parents[1]


def test_a_cpu_source_model_and_its_transfer_are_identical_across_runs(tmp_path):
    p = profiles.get("cpu")
    model = p.source_model("resnet18", epochs=1)  # the cpu recipe, one epoch: the same code path, cheap
    probe = grids.probe(p, {"source": model}, p.downstream_names[1], epochs=2, seed=0)
    results = []
    for run in ("a", "b"):
        ctx = Context(Store(tmp_path / run), device="cpu", progress=False)
        results.append((without_timings(ctx.result(model)), without_timings(ctx.result(probe))))
    assert results[0] == results[1]
    assert results[0][0]["train_accuracy"] > 100 / model.config["num_classes"]  # it learned something


def test_a_unit_computes_the_same_numbers_whatever_the_threads_of_its_process(tmp_path):
    """A notebook runs with every core, a fan-out job with one: a unit pins its own threads, so both store the
    same numbers (reductions split over more threads round differently)."""
    import torch

    p = profiles.get("smoke")
    model = p.source_model("resnet18", epochs=1)
    before = torch.get_num_threads()
    results, restored = [], []
    try:
        for run, threads in (("one", 1), ("two", 2)):
            torch.set_num_threads(threads)
            ctx = Context(Store(tmp_path / run), device="cpu", progress=False)
            results.append(without_timings(ctx.result(model)))
            restored.append(torch.get_num_threads() == threads)
    finally:
        torch.set_num_threads(before)
    assert results[0] == results[1]  # without the pin, source NC1 differs in the 6th digit on a 2-core CPU
    assert all(restored) and {Store(tmp_path / r).read(model)["provenance"]["threads"] for r in ("one", "two")} == {1}
