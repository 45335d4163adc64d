"""The means of the cpu book's power (the issue of decidable verdicts): training to a target accuracy, a converged
SupCon accuracy, the population of the correlation claims, costly scores on a balanced share, and replicates that
redraw every seed."""

from pathlib import Path

import pytest
import torch
from records import without_timings

from ncutils.book import grids, profiles, settings
from ncutils.book.engine.compute import Context
from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit
from ncutils.book.experiments import scores, sources

ROOT = Path(__file__).resolve().parents[1]


def _params(profile: str, number: int, replicate: int = 0):
    return settings.resolve(number, profile, root=ROOT, replicate=replicate)


def test_the_cpu_recipe_trains_to_a_target_with_margin_and_other_profiles_do_not():
    cpu = profiles.get("cpu")
    assert cpu.recipe["until"]["train_accuracy"] == profiles.TERMINAL_TARGET
    from ncutils.book.claims import TERMINAL
    assert profiles.TERMINAL_TARGET > TERMINAL >= 99.5
    assert cpu.datasets["source"]["glyphs"]["per_class"]["train"] == profiles.CPU_SOURCE_PER_CLASS >= 50
    assert cpu.source_model("resnet18").config["until"] == dict(cpu.recipe["until"])
    assert profiles.get("paper").source_model("resnet18").config["until"] is None
    assert cpu.source_model("resnet18", until=None).key != cpu.source_model("resnet18").key


def test_a_source_model_below_its_target_trains_extra_epochs_and_records_them(tmp_path):
    p = profiles.get("smoke")
    ctx = Context(Store(tmp_path), device="cpu", progress=False)
    never = ctx.result(p.source_model("convnet4", until={"train_accuracy": 101.0, "max_extra_epochs": 2}))
    assert never["extra_epochs"] == 2
    assert [h.get("extra", False) for h in never["history"]] == [False] * p.recipe["epochs"] + [True, True]
    assert [h["epoch"] for h in never["history"]] == list(range(1, p.recipe["epochs"] + 3))
    reached = ctx.result(p.source_model("convnet4", until={"train_accuracy": 0.0, "max_extra_epochs": 2}))
    assert reached["extra_epochs"] == 0 and len(reached["history"]) == p.recipe["epochs"]
    again = Context(Store(tmp_path / "again"), device="cpu", progress=False)
    rerun = again.result(p.source_model("convnet4", until={"train_accuracy": 101.0, "max_extra_epochs": 2}))
    assert without_timings(rerun) == without_timings(never)  # the extra epochs are seeded


def test_supcon_training_accuracy_is_a_converged_linear_fit():
    torch.manual_seed(0)
    means = torch.randn(4, 6) * 3
    x = torch.cat([means[c] + 0.3 * torch.randn(25, 6) for c in range(4)])
    y = torch.arange(4).repeat_interleave(25)
    # classes a nearest-class-mean rule confuses but a linear map separates: stretched along one axis
    x[:, 0] *= 40.0
    loader = [(x, y)]
    acc = sources._linear_accuracy(torch.nn.Identity(), loader, torch.nn.Identity(), "cpu")
    assert acc == 100.0


def test_a_balanced_share_takes_as_many_of_every_class_and_repeats():
    y = torch.tensor([0] * 30 + [1] * 7 + [2] * 12)
    idx = scores.balanced_share(y, 10, seed=3)
    assert torch.equal(idx, scores.balanced_share(y, 10, seed=3)) and torch.equal(idx, idx.sort().values)
    assert torch.bincount(y[idx]).tolist() == [7, 7, 7] and idx.unique().numel() == idx.numel()
    assert torch.bincount(y[scores.balanced_share(y, 5, seed=3)]).tolist() == [5, 5, 5]
    assert not torch.equal(idx, scores.balanced_share(y, 10, seed=4))


def test_costly_scores_on_a_share_and_an_unknown_score_is_an_error(tmp_path):
    p = profiles.get("smoke")
    back = p.pretrained("convnet4")
    data = p.downstream("synthetic-b", "train", back)
    ctx = Context(Store(tmp_path), device="cpu", progress=False)
    full = ctx.result(Unit("transfer_scores", {"backbone": back, "data": data, "loader_batch": 64}))
    share = ctx.result(Unit("transfer_scores", {"backbone": back, "data": data, "loader_batch": 64,
                                                      "subsample": {"scores": ["parc"], "per_class": 6, "seed": 0}}))
    assert share["parc"] != full["parc"]
    for name in ("seli", "ncc", "vc", "logme", "hscore", "nleep"):  # the others: all samples, unchanged
        assert share[name] == pytest.approx(full[name], rel=1e-6, abs=1e-9)
    bad = Unit("transfer_scores", {"backbone": back, "data": data, "loader_batch": 64,
                                         "subsample": {"scores": ["speed"], "per_class": 6, "seed": 0}})
    with pytest.raises(ValueError, match="unknown scores"):
        ctx.result(bad)


def test_the_correlation_population_holds_every_in_book_source_model_once():
    p, q = profiles.get("cpu"), _params("cpu", 4)
    pop = grids.population(p, q, q.ds_population)
    keys = [b["source"].key for b in pop.values()]
    assert len(keys) == len(set(keys))
    seeds = q.population_seeds
    expected = set(q.ds_population) | {f"{t}, seed {s}" for t in grids.SETTING_TITLES.values() for s in seeds} \
        | {f"CE + {h}-layer head, seed {s}" for h in (1, 2) for s in seeds} | set(grids.fig4_models(p, q))
    assert set(pop) <= expected
    fig4 = {m.key for m in grids.fig4_models(p, q).values()}
    assert fig4 <= set(keys) and len(pop) >= 20  # ce_none s0 = augmentation level 1 = resnet18: listed once
    # the figure's groups and the verdict's population are the same probes where they meet
    g = grids.grid(4, q)
    assert {u.key for u in g["fig6"].values()} <= {u.key for u in g["population"].values()}
    assert set(grids.population(profiles.get("paper"), _params("paper", 4), ["resnet34"])) == {"resnet34"}


@pytest.mark.parametrize("number", [1, 2, 3, 4, 5, 6])
def test_a_replicate_redraws_the_seed_of_every_unit(number):
    """Every unit of replicate 1 (and every source model it reads) has a seed of its own set: none of the default
    build's units recurs, except those that draw nothing at random."""
    base = grids.all_units(grids.grid(number, _params("cpu", number)))
    rep = grids.all_units(grids.grid(number, _params("cpu", number, replicate=1)))
    seeded = [u for u in rep if "seed" in u.config]
    assert seeded and all(u.config["seed"] >= settings.REPLICATE_STRIDE for u in seeded), \
        sorted({(u.kind, u.config["seed"]) for u in seeded if u.config["seed"] < settings.REPLICATE_STRIDE})
    assert not ({u.key for u in seeded} & {u.key for u in base})


def test_chapter_three_transfers_to_every_set_with_chapter_fours_probes():
    """Table 1 and Figs. 3-4 read the mean probe accuracy over the downstream sets: the extra probes are Chapter 4's
    (no unit of their own in the whole book); the paper profile transfers to Cifar-10 alone, as the paper does."""
    g3, g4 = grids.grid(3, _params("cpu", 3)), grids.grid(4, _params("cpu", 4))
    extra = {u.key for u in g3["transfer"].values()}
    assert len(extra) == len({u.key for u in g3["probes"].values()}) * (len(profiles.get("cpu").downstream_names) - 1)
    assert extra <= {u.key for group in ("fig5", "population") for u in g4[group].values()}
    assert not grids.grid(3, _params("paper", 3))["transfer"]
