"""Verdict rules: three outcomes, decided from intervals and the claim's regime."""

import math

import pytest

from ncutils.book.verdicts import INCONCLUSIVE, NOT_SUPPORTED, SUPPORTED, Claim, check, judge
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


def test_verdicts_render_and_serialise():
    v = judge(CLAIM, [check("r", est(-0.9, -0.4), -1)], regime=(True, "all at 100%"))
    text = v._repr_markdown_()
    assert "Verdict: supported" in text and "Rule:" in text and "[-0.9, -0.4]" in text
    d = v.to_dict()
    assert d["outcome"] == SUPPORTED and d["tests"][0]["direction"] == 1 and d["claim"]["where"] == "Section 3.2"
    assert "Rule, fixed before the numbers" in CLAIM.show().data
