"""Verdict rules: three outcomes, decided from intervals and the claim's regime."""

import math

import pytest

from ncutils.book.verdicts import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim, check, halves_of, judge
from ncutils.stats import Estimate

CLAIM = Claim("x", "Smaller NC1 transfers better.", "Section 3.2", "r < 0 on four datasets",
              "Pearson r of accuracy with log NC1 below 0 (95% bootstrap interval) on every dataset.",
              regime="source models at >= 99% training accuracy")


def est(lo, hi):
    return Estimate((lo + hi) / 2, lo, hi, 10, "test")


def test_all_tests_as_predicted_support_the_claim():
    v = judge(CLAIM, [check("r", est(-0.9, -0.4), -1), check("r2", est(-0.8, -0.1), -1)], regime=(True, "99.5%"))
    assert v.outcome == SUPPORTED and "2 of 2" in v.reason


def test_a_contradicting_interval_does_not_support_and_a_straddling_one_is_inconclusive():
    assert judge(CLAIM, [check("r", est(-0.9, -0.4), -1), check("r2", est(0.1, 0.5), -1)]).outcome == NOT_SUPPORTED
    assert judge(CLAIM, [check("r", est(-0.9, -0.4), -1), check("r2", est(-0.3, 0.2), -1)]).outcome == INCONCLUSIVE
    nan = Estimate(0.0, math.nan, math.nan, 3, "undefined")
    assert judge(CLAIM, [check("r", nan, -1)]).outcome == INCONCLUSIVE


def test_a_failed_precondition_is_inconclusive_never_not_supported():
    v = judge(CLAIM, [check("r", est(0.2, 0.9), -1)], regime=(False, "MSE reached 65%"))
    assert v.outcome == INCONCLUSIVE and v.regime_met is False and "regime" in v.reason


def test_qualified_claims_combine_most_and_any():
    tests_ = [check("a", est(1, 2), 1), check("b", est(1, 3), 1), check("c", est(-1, 1), 1)]
    assert judge(CLAIM, tests_, combine="most").outcome == SUPPORTED
    assert judge(CLAIM, tests_, combine="all").outcome == INCONCLUSIVE
    assert judge(CLAIM, [check("a", est(-2, -1), 1), check("b", est(0.5, 1), 1)], combine="any").outcome == SUPPORTED
    with pytest.raises(ValueError, match="combine"):
        judge(CLAIM, tests_, combine="some")


def test_a_claim_states_how_its_tests_combine():
    """The combination is the claim's, stated before the numbers; ``judge`` applies it unless told otherwise."""
    from dataclasses import replace

    one_against = [check("a", est(1, 2), 1), check("b", est(1, 3), 1), check("c", est(-3, -2), 1)]
    assert judge(CLAIM, one_against).outcome == NOT_SUPPORTED  # "all": any test against refutes
    assert judge(replace(CLAIM, combine="majority"), one_against).outcome == SUPPORTED  # exceptions admitted
    assert judge(replace(CLAIM, combine="most"), one_against).outcome == INCONCLUSIVE  # none may be against
    assert judge(replace(CLAIM, combine="majority"), one_against, combine="all").outcome == NOT_SUPPORTED
    with pytest.raises(ValueError, match="combine must be one of"):
        replace(CLAIM, combine="usually")


def test_every_claims_rule_says_how_its_tests_combine():
    """A rule's words and its combination agree: the reader reads the rule the verdict applies."""
    from ncutils.book.claims import CLAIMS

    for c in CLAIMS.values():
        assert ("whatever the rest" in c.rule) == (c.combine == "majority"), c.key
        if c.combine == "most":
            assert "none against" in c.rule, c.key
        if c.combine == "majority":  # exceptions are admitted only where the paper admits them, in its words
            assert any(w in c.text + c.rule for w in ("generally", "various", "variety")), c.key


def test_a_verdict_carries_its_replication_on_two_halves_of_the_build():
    assert halves_of(range(7)) == ([0, 2, 4, 6], [1, 3, 5])
    a, b = halves_of(["m1", "m2"])
    assert a == ["m1"] and b == ["m2"] and not set(a) & set(b)
    full = judge(CLAIM, [check("r", est(-0.9, -0.4), -1)])
    first, second = judge(CLAIM, [check("r", est(-0.9, -0.1), -1)]), judge(CLAIM, [check("r", est(-0.6, 0.2), -1)])
    v = full.with_halves(first, second, split="models")
    assert v.outcome == SUPPORTED and v.halves == (SUPPORTED, INCONCLUSIVE) and v.split == "models"
    assert v.to_dict()["halves"] == [SUPPORTED, INCONCLUSIVE] and "each half of the models" in v._repr_markdown_()
    other = Claim("y", "t", "w", "p", "r")
    with pytest.raises(ValueError, match="judged by the rule of"):
        full.with_halves(first, judge(other, []), split="models")
    with pytest.raises(ValueError, match="name what the halves split"):
        full.with_halves(first, second, split="")


def test_verdicts_render_and_serialise():
    v = judge(CLAIM, [check("r", est(-0.9, -0.4), -1)], regime=(True, "all at 100%"))
    text = v._repr_markdown_()
    assert "Verdict: supported" in text and "Rule:" in text and "[-0.9, -0.4]" in text
    d = v.to_dict()
    assert d["outcome"] == SUPPORTED and d["tests"][0]["direction"] == 1 and d["claim"]["where"] == "Section 3.2"
    assert "Rule, fixed before the numbers" in CLAIM.show().data


# --------------------------------------------------------------------------- the smallest effect that matters
def _e(low, high):
    return Estimate((low + high) / 2, low, high, 10, "test")


def test_a_better_test_reads_delta_as_the_smallest_effect_that_matters():
    def direction(low, high, sign=+1, threshold=0.0):
        return check("s", _e(low, high), sign, threshold, delta=1.0).direction

    assert direction(1.2, 2.0) == 1 and direction(0.2, 0.8) == 1  # an effect, the second smaller than δ
    assert check("s", _e(0.2, 0.8), +1, delta=1.0).smaller_than_delta
    assert not check("s", _e(1.2, 2.0), +1, delta=1.0).smaller_than_delta
    assert direction(-0.5, 0.9) == -1  # any effect is smaller than δ: against
    assert direction(-3.0, -2.0) == -1 and direction(-0.5, 1.5) == 0  # the other way; too wide to tell
    assert direction(-0.8, -0.2, sign=-1) == 1 and direction(-0.9, 0.5, sign=-1) == -1  # mirrored
    assert direction(0.55, 0.7, threshold=0.5) == 1 and direction(0.45, 1.6, threshold=0.5) == 0
    # without δ only the threshold decides, as before
    assert check("s", _e(-0.5, 0.9), +1).direction == 0 and check("s", _e(-0.5, -0.1), +1).direction == -1


def test_a_comparable_test_is_an_equivalence_test_against_minus_delta():
    def direction(low, high):
        return check("s", _e(low, high), +1, comparable=True, delta=3.0).direction

    assert direction(-2.0, 1.0) == 1 and direction(-5.0, -4.0) == -1 and direction(-4.0, 1.0) == 0


def test_power_and_decisiveness_follow_the_interval_width():
    narrow, wide = check("s", _e(-0.2, 0.6), +1, delta=1.0), check("s", _e(-2.0, 2.0), +1, delta=1.0)
    assert narrow.power == pytest.approx(0.4 * (1.959964 + 0.841621) / 1.959964, rel=1e-5)
    assert narrow.decisive and narrow.direction != 0  # narrower than δ: it always decides
    assert not wide.decisive and wide.direction == 0
    for low in (-1.5, -0.7, -0.3, 0.0, 0.1, 0.6, 1.3):  # every interval narrower than δ decides
        assert check("s", _e(low, low + 0.9), +1, delta=1.0).direction != 0


def test_judge_takes_each_tests_delta_from_the_claim_by_measure():
    claim = Claim("k", "text", "where", "paper", "rule", deltas={"accuracy": 1.0, "correlation": 0.3})
    v = judge(claim, [check("acc", _e(-0.4, 0.8), +1, measure="accuracy"),
                      check("rho", _e(0.1, 0.6), +1, measure="correlation")])
    assert [t.delta for t in v.tests] == [1.0, 0.3] and v.tests[0].direction == -1 and v.outcome == NOT_SUPPORTED
    single = Claim("k", "text", "where", "paper", "rule", deltas={"accuracy": 2.0})
    assert judge(single, [check("acc", _e(0.5, 1.5), +1)]).tests[0].delta == 2.0
    with pytest.raises(ValueError, match="no smallest effect for 'fraction'"):
        judge(claim, [check("f", _e(0.6, 0.9), +1, 0.5, measure="fraction")])
    record = v.to_dict()["tests"][0]
    assert record["delta"] == 1.0 and record["power"] > 0 and record["decisive"] is False
