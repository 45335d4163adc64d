"""The verdict rules as library code: evidence tables, intervals over the independent unit, rules that can come
out against the claim, words generated from the rules, digests frozen in the registry, and notebooks without test
logic."""

import json
import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ncutils.book.claims import CLAIMS
from ncutils.book.rule_history import HISTORY, unregistered
from ncutils.book.rules import RULES, _digest, halves
from ncutils.book.verdicts import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED

ROOT = Path(__file__).resolve().parents[1]


def test_every_claim_has_one_rule_and_every_rule_a_claim():
    assert set(CLAIMS) == set(RULES)
    for key, rule in RULES.items():
        assert rule.key == key and rule.claim is CLAIMS[key]


def test_every_rule_is_registered_with_its_current_digest():
    """A rule's code or parameters cannot change without a revision in ncutils.book.rule_history."""
    assert unregistered() == {}, ("rules changed without a Revision in ncutils/book/rule_history.py "
                                  "(python -m ncutils.book.rule_history prints the digests)")
    for key, revisions in HISTORY.items():
        assert key in RULES and revisions and all(r.date and r.change and r.reason and r.previous_verdict
                                                  for r in revisions)


def test_a_digest_follows_the_rules_parameters_and_code():
    rule = RULES["fig5_downstream"]
    part = rule.parts[0]
    looser = replace(rule, parts=(replace(part, combine="all"),))
    assert _digest(looser) != rule.digest()
    other_delta = replace(rule, parts=(replace(part, tests=(replace(part.tests[0], delta=0.2),)),))
    assert _digest(other_delta) != rule.digest()
    assert _digest(replace(rule, evaluate=RULES["fig9_layers"].evaluate)) != rule.digest()


def test_the_words_of_a_rule_are_generated_from_its_parameters():
    for key, rule in RULES.items():
        words = rule.describe()
        assert rule.unit_words in words, key
        for part in rule.parts:
            assert part.describe_combination()[1:] in words, key
            for t in part.tests:
                assert t.predicted() in words, key
                if t.delta is not None:
                    assert f"δ = {t.delta:g}" in words, key
        if rule.regime:
            assert rule.regime in words
        assert words in rule.show().data


def test_a_rule_names_the_columns_it_misses():
    with pytest.raises(ValueError, match=r"needs the evidence columns \['setting'"):
        RULES["fig5_downstream"].judge(pd.DataFrame({"dataset": ["a"], "model": ["m"]}))
    with pytest.raises(TypeError, match="DataFrame"):
        RULES["table1"].judge([{"setting": "x"}])


def test_halves_keep_each_independent_unit_whole():
    ev = pd.DataFrame({"setting": [s for s in "abcde" for _ in range(3)], "seed": [0, 1, 2] * 5})
    a, b = halves(ev, "setting")
    assert set(a["setting"]) == {"a", "c", "e"} and set(b["setting"]) == {"b", "d"}
    assert not set(a["setting"]) & set(b["setting"]) and len(a) + len(b) == len(ev)


# --------------------------------------------------------------------------- rules that can fail
def _table1(acc_by_setting, n_settings=6, seeds=3):
    names = ["mse_none"] + [f"s{i}" for i in range(1, n_settings - 1)] + ["supcon_mlp"]
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"setting": n, "seed": s, "source_nc1": float(np.exp(i + 0.01 * s)),
                          "transfer_accuracy": acc_by_setting(i) + rng.normal(0, 0.2), "train_accuracy": 100.0}
                         for i, n in enumerate(names) for s in range(seeds)])


def test_table1_needs_six_settings_for_its_correlation():
    """With Table 1's four settings no valid 95% interval of a correlation over settings exists: undecided."""
    four = RULES["table1"].judge(_table1(lambda i: 60 + 5 * i, n_settings=4))
    rho = four.checks[0]
    assert rho.direction == 0 and "fewer than 6" in rho.estimate.method
    six = RULES["table1"].judge(_table1(lambda i: 60 + 5 * i))
    assert six.outcome == SUPPORTED
    against = RULES["table1"].judge(_table1(lambda i: 60 - 5 * i))
    assert against.outcome == NOT_SUPPORTED


def test_fig4_comes_out_against_a_monotone_relation_and_picks_no_winner():
    def ev(acc):
        z = np.linspace(-1, 1, 7)
        return pd.DataFrame({"model": [f"m{i}" for i in range(7)], "source_nc1": np.exp(z), "train_accuracy": 100.0,
                             "transfer_accuracy": acc(z)})
    assert RULES["fig4_threshold"].judge(ev(lambda z: 70 + 5 * z + 0.1 * np.sin(9 * z))).outcome == NOT_SUPPORTED
    assert RULES["fig4_threshold"].judge(ev(lambda z: 70 - 5 * z ** 2 + 0.1 * np.sin(9 * z))).outcome == SUPPORTED
    # the book's four models are fewer than the rule needs: not in the regime, never a verdict
    small = RULES["fig4_threshold"].judge(ev(lambda z: 70 - 5 * z ** 2).iloc[:4])
    assert small.outcome == INCONCLUSIVE and small.regime_met is False


def test_progressive_asks_for_nc1_falling_at_nearly_every_step():
    def ev(profile):
        return pd.DataFrame([{"network": f"n{k}", "architecture": "MLP" if k < 2 else "ResNet", "layer": i,
                              "nc1": v, "train_accuracy": 100.0} for k in range(4) for i, v in enumerate(profile)])
    assert RULES["progressive"].judge(ev([8, 4, 2, 1, 0.5, 0.25, 0.12, 0.06, 0.03])).outcome == SUPPORTED
    # a hump: NC1 rises over the first three steps, then falls (5 of 8 steps fall, what chance gives)
    hump = RULES["progressive"].judge(ev([1, 2, 4, 8, 4, 2, 1, 0.5, 0.25]))
    assert hump.outcome == NOT_SUPPORTED


def test_one_seed_per_backbone_or_cell_cannot_decide():
    t2 = pd.DataFrame([{"benchmark": "b", "backbone": a, "seed": 0, "shots": k, "nc1": n, "accuracy": acc + k,
                        "train_accuracy": 100.0} for a, n, acc in (("x", 1, 70), ("y", 2, 60), ("z", 3, 50))
                       for k in (1, 5)])
    v = RULES["table2_fewshot"].judge(t2)
    assert v.outcome == INCONCLUSIVE and all("fewer than two" in c.estimate.method for c in v.checks)
    t3 = pd.DataFrame([{"cell": c, "method": m, "seed": 0, "accuracy": a} for c in "abc"
                       for m, a in (("linear", 50), ("layer", 70), ("scl", 72), ("full", 71))])
    assert RULES["table3_layer"].judge(t3).outcome == INCONCLUSIVE
    seeds = pd.DataFrame([{"cell": c, "method": m, "seed": s, "accuracy": a + 0.3 * s} for c in "abc" for s in range(3)
                          for m, a in (("linear", 50), ("layer", 70), ("scl", 72), ("full", 71))])
    assert RULES["table3_layer"].judge(seeds).outcome == SUPPORTED
    scl = RULES["table3_scl"].judge(seeds)
    assert [p.name for p in scl.parts] == ["SCL FT vs Layer FT", "SCL FT vs full FT"] and scl.outcome == SUPPORTED


def test_ncti_chooses_its_strongest_baseline_on_the_other_targets():
    rng = np.random.default_rng(1)
    rows = []
    for d in ("t1", "t2", "t3"):
        acc = rng.normal(size=12)
        for i, a in enumerate(acc):
            # b_local is the best baseline on t1 alone; b_steady on the others
            rows.append({"dataset": d, "candidate": f"c{i}", "setting": f"s{i}", "accuracy": a,
                         "score_ncti": a + 0.1 * rng.normal(), "score_b_steady": a + 0.5 * rng.normal(),
                         "score_b_local": a if d == "t1" else -a})
    v = RULES["ncti_rank"].judge(pd.DataFrame(rows))
    adv = v.parts[1].checks
    assert adv[0].name.endswith("b_steady")  # chosen on t2 and t3, where b_local is worst
    assert all(c.name.endswith("b_steady") or c.name.endswith("b_local") for c in adv)


# --------------------------------------------------------------------------- the notebooks hold no test logic
def _code(nb: Path) -> str:
    return "\n".join("".join(c["source"]) for c in json.loads(nb.read_text())["cells"] if c["cell_type"] == "code")


def test_the_notebooks_build_evidence_and_call_the_rules():
    """No notebook forms a test, reads an interval against a threshold, or combines tests: each claim is judged by
    exactly one ``RULES[key].judge(...)`` call, and nothing from the verdict machinery is imported."""
    judged = []
    for nb in sorted((ROOT / "book").glob("*.ipynb")):
        code = _code(nb)
        assert "ncutils.book.verdicts" not in code, nb.name
        for pattern in (r"\bcheck\(", r"\bjudge\(CLAIMS", r"\.direction\b", r"halves_of", r"with_halves",
                        r"\bEstimate\(", r"\.excludes\("):
            assert not re.search(pattern, code), (nb.name, pattern)
        judged += re.findall(r'RULES\["(\w+)"\]\.judge\(', code)
    assert sorted(judged) == sorted(RULES)
