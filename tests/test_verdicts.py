"""How a test reads its interval (one semantics of δ), how tests combine, and the verdict record."""

import math

import pytest

from ncutils.book.claims import CLAIMS
from ncutils.book.verdicts import (
    INCONCLUSIVE,
    NOT_SUPPORTED,
    SUPPORTED,
    Check,
    Part,
    PartResult,
    Test,
    Verdict,
    combine,
    verdict,
)
from ncutils.stats import Estimate


def est(lo, hi, value=None):
    return Estimate((lo + hi) / 2 if value is None else value, lo, hi, 10, "test")


BETTER = Test("gain", +1, 0.0, "better", 1.0)
SUBSTANTIAL = Test("gain", +1, 0.0, "substantial", 2.0)
COMPARABLE = Test("difference", +1, 0.0, "comparable", 3.0)
BELOW = Test("ρ", -1, 0.0, "better", 0.3)


@pytest.mark.parametrize("test, lo, hi, direction", [
    (BETTER, 0.2, 0.8, -1),       # inside (0, δ): real but negligible, against a claim that one is better
    (BETTER, 0.5, 3.0, 1),
    (BETTER, -0.5, 0.8, -1),      # rules out every effect of δ or more: against
    (BETTER, -2.0, -0.5, -1),
    (BETTER, -0.5, 1.5, 0),       # straddles both 0 and δ: undecided
    (SUBSTANTIAL, 0.5, 1.5, -1),  # inside (0, δ): real but insubstantial, against a claim of substance
    (SUBSTANTIAL, 2.5, 4.0, 1),
    (SUBSTANTIAL, 1.0, 3.0, 0),
    (COMPARABLE, -2.0, 1.0, 1),   # at worst 2 short: comparable
    (COMPARABLE, -5.0, -3.5, -1),
    (COMPARABLE, -4.0, 0.0, 0),
    (BELOW, -0.8, -0.4, 1),       # a prediction "below 0" reads the interval mirrored
    (BELOW, -0.2, 0.4, -1),
    (BELOW, -0.6, 0.1, 0),
])
def test_one_semantics_of_delta(test, lo, hi, direction):
    assert Check(test, "x", est(lo, hi)).direction == direction


def test_a_negligible_effect_is_marked_and_an_undefined_interval_never_decides():
    c = Check(BETTER, "x", est(0.2, 0.8))
    assert c.negligible and "negligible" in c.describe()
    assert not Check(BETTER, "x", est(-0.2, 0.8)).negligible  # against, but not a real effect
    nan = Check(BETTER, "x", Estimate(2.0, math.nan, math.nan, 2, "no interval: fewer than two replicates"))
    assert nan.direction == 0 and "no interval" in nan.describe() and math.isinf(nan.detectable)


def test_exact_tests_read_at_least_and_at_most():
    at_least = Test("fraction", +1, 0.75, "exact")
    assert Check(at_least, "x", Estimate(0.75, 0.75, 0.75, 8, "exact")).direction == 1
    assert Check(at_least, "x", Estimate(0.625, 0.625, 0.625, 8, "exact")).direction == -1
    assert "≥ 0.75" in at_least.predicted()


def test_a_test_rejects_what_it_cannot_read():
    with pytest.raises(ValueError, match="kind"):
        Test("x", 1, 0.0, "usually", 1.0)
    with pytest.raises(ValueError, match="δ"):
        Test("x", 1, 0.0, "better")  # a statistical test needs δ
    with pytest.raises(ValueError, match="side"):
        Test("x", 0, 0.0, "better", 1.0)


def test_the_smallest_detectable_effect_follows_the_interval_width():
    c = Check(BETTER, "x", est(1.0, 1.4))
    assert c.detectable == pytest.approx(0.2 * (1.959964 + 0.841621) / 1.959964, rel=1e-5)


@pytest.mark.parametrize("directions, how, outcome", [
    ([1, 1, 1], "all", SUPPORTED), ([1, 1, 0], "all", INCONCLUSIVE), ([1, 1, -1], "all", NOT_SUPPORTED),
    ([1, 1, -1], "majority", SUPPORTED), ([1, 0, 0], "majority", INCONCLUSIVE),
    ([1, -1], "majority", INCONCLUSIVE), ([0, -1, -1], "majority", NOT_SUPPORTED), ([1, 0, -1], "majority",
                                                                                      INCONCLUSIVE),
    ([], "all", INCONCLUSIVE)])
def test_how_a_part_combines_its_checks(directions, how, outcome):
    assert combine(directions, how)[0] == outcome
    with pytest.raises(ValueError, match="combine"):
        combine(directions, "most")


def _part(outcome, name="p"):
    d = {SUPPORTED: 1, NOT_SUPPORTED: -1, INCONCLUSIVE: 0}[outcome]
    c = Check(BETTER, name, est(1.5, 2.5) if d == 1 else est(-1.0, 0.5) if d == -1 else est(-1.0, 3.0))
    return PartResult(name, "all", outcome, "r", (c,))


def test_parts_combine_into_a_verdict_and_the_regime_comes_first():
    claim = CLAIMS["table3_scl"]
    assert verdict(claim, [_part(SUPPORTED), _part(SUPPORTED)]).outcome == SUPPORTED
    assert verdict(claim, [_part(SUPPORTED), _part(NOT_SUPPORTED)]).outcome == NOT_SUPPORTED
    assert verdict(claim, [_part(SUPPORTED), _part(INCONCLUSIVE)]).outcome == INCONCLUSIVE
    out = verdict(claim, [_part(SUPPORTED)], regime=(False, "2 of 9 below 99.5%"))
    assert out.outcome == INCONCLUSIVE and out.regime_met is False and "regime" in out.reason


def test_the_headline_is_the_check_that_decided():
    claim = CLAIMS["table3_scl"]
    v = verdict(claim, [_part(SUPPORTED, "a"), _part(NOT_SUPPORTED, "b")])
    assert v.headline().name == "b"
    v = verdict(claim, [_part(SUPPORTED, "a"), _part(INCONCLUSIVE, "b")])
    assert v.headline().name == "b"


def test_a_verdict_round_trips_and_its_box_does_not_repeat_the_claim():
    claim = CLAIMS["table3_scl"]
    v = verdict(claim, [_part(SUPPORTED, "a"), _part(NOT_SUPPORTED, "b")], details="d", digest="abc")
    v = v.with_halves(v, v, split="seeds")
    back = Verdict.from_dict(v.to_dict())
    assert back == v
    box = v.markdown()
    assert claim.text not in box and "Decided by" in box and "each half of the seeds" in box


def test_parts_are_named_in_the_rule_text():
    p = Part("a part", (BETTER,), "majority")
    assert "more than half" in p.describe_combination()
    with pytest.raises(ValueError, match="combine"):
        Part("x", (BETTER,), "most")
