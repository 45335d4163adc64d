"""Every rule calibrated by simulation at the cpu design: how often it supports a claim with no effect, whether it
can come out against the claim, and its power at the paper's effect (the numbers the rules page shows)."""

from collections import Counter
from pathlib import Path

import pytest

from ncutils.book import calibration, grids, settings
from ncutils.book.evidence import setting_of
from ncutils.book.pages.rules import calibrations, rules_page
from ncutils.book.rules import RULES
from ncutils.book.verdicts import NOT_SUPPORTED, SUPPORTED

ROOT = Path(__file__).resolve().parents[1]
#: Simulated builds per scenario in the tests (deterministic: the simulations are seeded).
DRAWS = 200


def _params(number: int):
    return settings.resolve(number, "cpu", root=ROOT)


def _calibrate(key: str):
    return calibration.calibrate(key, draws=DRAWS)


@pytest.fixture(scope="module")
def calibrated():
    """Every rule's calibration, the rules shared between two processes (each simulation is seeded by its rule and
    scenario, so the results do not depend on the process that computes them)."""
    from concurrent.futures import ProcessPoolExecutor

    keys = list(calibration.SIMULATORS)
    with ProcessPoolExecutor(2) as pool:
        return dict(zip(keys, pool.map(_calibrate, keys)))


def test_every_statistical_rule_has_a_simulator():
    """Only checks of code and exact counts go without one (a count over trained networks, as for progressive
    collapse, varies between builds and is simulated)."""
    unsimulated = set(RULES) - set(calibration.SIMULATORS)
    assert unsimulated == {"nc1_metric", "parameters"}
    assert all(t.kind == "exact" for k in unsimulated for p in RULES[k].parts for t in p.tests)


def test_no_rule_supports_a_claim_without_its_effect_more_than_5_percent_of_the_time(calibrated):
    for key, c in calibrated.items():
        assert c.false_support <= 0.05, (key, c.probabilities["null"])


def test_every_rule_can_come_out_against_its_claim_or_says_why_not(calibrated):
    for key, c in calibrated.items():
        if c.refutes < 0.8:
            assert RULES[key].design, (key, c.probabilities["opposite"])


def test_rules_that_cannot_decide_at_this_design_say_so(calibrated):
    for key in ("table2_fewshot", "fig4_threshold"):
        c = calibrated[key]
        assert c.power == 0.0 and c.refutes == 0.0 and RULES[key].design, key
    assert calibrated["random_features"].power >= 0.8 and calibrated["fig10_depth"].power >= 0.8


def test_the_issues_null_design_no_longer_supports_table1s_correlation():
    """Four settings x three seeds, setting means unrelated to NC1: the old cluster bootstrap over seeds put the
    interval above 0 in 29% of such builds; the rule's correlation test now does in at most 2.5%."""
    import numpy as np

    rng = np.random.default_rng(0)
    design = {**calibration.CPU_DESIGN, "table1_settings": 4}
    above = sum(RULES["table1"].judge(calibration.SIMULATORS["table1"](rng, "null", design)).checks[0].direction == 1
                for _ in range(300))
    assert above / 300 <= 0.025


def test_more_power_where_the_design_grows(calibrated):
    more = calibration.calibrate("table2_fewshot", draws=100, design={"fewshot_seeds": 4}, scenarios=("paper",))
    assert more.probabilities["paper"][SUPPORTED] > calibrated["table2_fewshot"].power


def test_the_design_is_the_cpu_books():
    d = calibration.CPU_DESIGN
    p1, p3, p4, p5, p6 = (_params(n) for n in (1, 3, 4, 5, 6))
    assert d["surrogate_sets"] == p1.nc_population
    assert d["seeds"] == len(p3.pt_seeds) == len(p3.pt_fig_seeds) == len(p4.population_seeds)
    assert d["random_seeds"] == len(p3.pt_random_seeds)
    assert tuple(h for h in p3.pt_head_layers if h) == d["fig3_heads"]
    fig4 = grids.profile_of(p3).fig4
    assert d["fig4_models"] == len(fig4["levels"]) + len(fig4["eps_255"])
    assert d["table1_settings"] == 4 + len(d["fig3_heads"]) * len(p3.pt_losses)
    assert d["progressive_networks"] == len(grids.grid(2, _params(2))["models"])
    assert d["fewshot_backbones"] == len(p4.fs_backbones) and d["fig9_networks"] == len(p4.lw_archs)
    assert d["downstream_sets"] == len(p6.tf_datasets) == len(p5.ft_datasets)
    cases = sum(len(grids.finetune_sets(p5, arch)) for arch in p5.ft_archs)  # (network, dataset) pairs
    assert d["fig10_cases"] == d["table3_cells"] == cases
    assert {len(p5.ft_blocks[arch]) for arch in p5.ft_archs} == {d["fig10_blocks"]}
    assert d["fig11_seeds"] == len(p5.ft_scarce_seeds)
    assert d["table3_seeds"] == len(p5.ft_table3_seeds)
    for group, (single, triplets) in {4: ("population_single", "population_triplets"),
                                      6: ("ncti_single", "ncti_triplets")}.items():
        g = grids.grid(group, _params(group))
        members = {}
        for name in ("fig5", "fig6", "population") if group == 4 else ("scores",):
            for (label, _d), u in g[name].items():
                members.setdefault(repr(u.config["backbone"]), setting_of(u, label))
        sizes = Counter(Counter(members.values()).values())
        assert sizes == Counter({1: d[single], 3: d[triplets]}), (group, sizes)


def test_the_rules_page_shows_the_calibration(tmp_path, calibrated):
    cals = calibrations(tmp_path, draws=20, workers=2)  # in two processes
    assert (tmp_path / "calibration").is_dir() and len(list((tmp_path / "calibration").glob("*.json"))) == len(cals)
    assert list(cals) == list(calibration.SIMULATORS)
    for key in ("table1", "ncti_rank"):  # the same draws as in this process
        assert cals[key].probabilities == calibration.calibrate(key, draws=20).probabilities
    again = calibrations(tmp_path, draws=20)  # read back from the store, not simulated again
    assert {k: c.probabilities for k, c in again.items()} == {k: c.probabilities for k, c in cals.items()}
    page = rules_page(calibrated)
    assert "P(supported \\| no effect)" in page and "## Every rule" in page
    for rule in RULES.values():
        assert rule.digest() in page
    row = next(line for line in page.splitlines() if line.startswith("| random features"))
    c = calibrated["random_features"]
    assert f"| {100 * c.false_support:.0f}% | {100 * c.refutes:.0f}% | {100 * c.power:.0f}% |" in row
    assert NOT_SUPPORTED in page


def test_a_stored_calibration_is_reused_only_by_the_code_that_simulated_it(tmp_path):
    """The cache is keyed by the fingerprint of the simulators' code: a change of the cpu design (or of a
    simulator, a rule, the statistics) simulates again instead of reading the old numbers."""
    import shutil

    from ncutils.book.engine import fingerprint
    from ncutils.book.pages.rules import code_key

    copy = tmp_path / "checkout"
    shutil.copytree(ROOT / "ncutils", copy / "ncutils", ignore=shutil.ignore_patterns("__pycache__"))
    with fingerprint.reading(copy):
        before = code_key()
    src = copy / "ncutils" / "book" / "calibration.py"
    text = src.read_text()
    assert '"fig10_cases": ' in text
    src.write_text(text.replace('"fig10_cases": ', '"fig10_cases": 1 + ', 1))
    with fingerprint.reading(copy):
        assert code_key() != before
    # a record that other code stored is not read: here, impossible probabilities under another code key
    stale = tmp_path / "store" / "calibration" / "table1-000000000000-5.json"
    stale.parent.mkdir(parents=True)
    stale.write_text('{"key": "table1", "draws": 5, "digest": "", "probabilities": {"null": {"supported": 7.0}}}')
    cals = calibrations(tmp_path / "store", draws=5)
    assert cals["table1"].probabilities == calibration.calibrate("table1", draws=5).probabilities
    names = {p.name.split("-")[1] for p in (tmp_path / "store" / "calibration").glob("*.json")} - {"000000000000"}
    assert names == {code_key()}


def test_the_shipped_calibration_is_the_current_codes():
    """A fresh clone reads the calibration from the repository instead of simulating it, so the shipped file must
    be the current code's: a change to a rule, a simulator or the cpu design fails here until it is regenerated."""
    import json

    from ncutils.book.pages import rules as page

    data = json.loads(page.SHIPPED.read_text())
    assert data["code"] == page.code_key() and data["draws"] == page.DRAWS, (
        "the shipped calibration was simulated by other code: regenerate it with python -m ncutils.book.pages.rules")
    assert list(data["calibrations"]) == list(calibration.SIMULATORS)
    for key in ("random_features", "table3_layer"):  # two that vary with the scenario, simulated again here
        again = calibration.calibrate(key, draws=page.DRAWS).probabilities  # (another CPU may round one build apart)
        shipped = data["calibrations"][key]["probabilities"]
        assert all(abs(again[s][o] - shipped[s][o]) <= 2 / page.DRAWS for s in again for o in again[s]), key


def test_a_fresh_store_reads_the_shipped_calibration(tmp_path, monkeypatch):
    """Nothing is simulated when the repository ships the calibration of this code; the store then holds it."""
    import ncutils.book.pages.rules as page

    calls = []
    monkeypatch.setattr(page, "calibrate", lambda *a, **k: calls.append(a))
    cals = calibrations(tmp_path, draws=page.DRAWS, workers=1)
    assert calls == [] and list(cals) == list(calibration.SIMULATORS)
    assert len(list((tmp_path / "calibration").glob(f"*-{page.code_key()}-{page.DRAWS}.json"))) == len(cals)
