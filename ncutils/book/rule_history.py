"""The registry of the verdict rules: every revision of a rule after its claim was first built.

A rule is frozen by its digest (:meth:`ncutils.book.rules.Rule.digest`: its parameters, its code and the
statistics it relies on). ``tests/test_rules.py`` fails when a rule's digest differs from the digest of its
latest revision here, so a rule cannot change without an entry that says when, what, why, and what the default
cpu build's verdict was under the rule it replaced. The claims page shows each claim's revisions beside its
verdict.

``python -m ncutils.book.rule_history`` prints every rule's current digest and whether it is registered.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

__all__ = ["HISTORY", "Revision", "unregistered"]


@dataclass(frozen=True)
class Revision:
    """One revision of a rule: ``date`` and ``commit`` (where it is known), what changed, why, the verdict of
    the default cpu build under the rule before it, and the rule's ``digest`` after it (``""`` for revisions made
    while rules lived in notebooks, before digests existed)."""

    date: str
    change: str
    reason: str
    previous_verdict: str
    digest: str = ""
    commit: str = ""


_A6 = "a6cf703"
_LIBRARY = ("The rule became library code (ncutils.book.rules), a function of a tidy evidence table with its "
            "independent unit of replication, calibrated by simulation at the cpu design; one semantics of δ for "
            "every rule.")
_REVIEW = ("Revised after an independent statistical review, before any replicate build: a 'better' test whose "
           "interval lies inside (0, δ) now reads against (a negligible effect), not as predicted; 'majority' "
           "refutes only when more than half of the tests are against; an interval of zero width no longer "
           "decides.")
_REVIEW_WHY = ("The first library version let a precise but negligible effect support a claim, read one exception in "
               "two tests as a refutation, and decided on replicates that did not vary.")
_PSEUDO = ("Its interval counted observations that share a replicated unit as independent (pseudo-replication), "
           "so it left out the variance that made replicate builds disagree.")

#: The revisions of each claim's rule, oldest first. The first entries of 2026-12-07 rewrote every rule as library
#: code (issue 27): the verdict under the rule before is that of the default cpu build at c8d3316 on a 2-core AMD
#: EPYC (for the entries of a6cf703, that build's tests recombined as the rule before a6cf703 did). The second
#: entries of 2026-12-07 record the revision after a review of that first library version: the verdict under the
#: rule before is the default cpu build's under that version, whose numbers had been seen.
HISTORY: dict[str, tuple[Revision, ...]] = {
    "nc1_metric": (
        Revision("2026-12-07", _LIBRARY + " No change to what is checked; the page now says it is a check of "
                 "the code, not a finding.", "Rules as code; an exact check reads 'at least / at most'.",
                 "supported", "8cd77fef7e37"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'supported', "19126c0b6f39"),),
    "surrogates": (
        Revision("2026-12-07", _LIBRARY + " Kendall's τ must be substantial (interval above δ = 0.5, not above 0), "
                 "its interval is a jackknife over feature sets, and the population varies the share of the noise "
                 "in the span of the class means independently of its size.",
                 "The rule could not fail: one global noise scale drove every metric of the population, so any "
                 "spread measure ordered it like NC1.", "supported", "f44896d1aa93"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'supported', "bbf763c98c5b"),),
    "progressive": (
        Revision("2026-12-07", _LIBRARY + " Every network in the regime must have NC1 falling in at least 3/4 of "
                 "its layer-to-layer steps (was: the mean fraction over networks above 1/2), and every "
                 "architecture must have a network in the regime.",
                 "More than half of the steps falling is what chance gives; the paper shows NC1 falling at nearly "
                 "every step, for every loss, architecture and dataset.", "supported", "15f86b6cfca5"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'not supported', "c1d5a179720b"),),
    "table1": (
        Revision("2026-12-07", _LIBRARY + " The correlation's interval is a jackknife over settings (a setting's "
                 "seeds stay together) and needs 6 settings, so Fig. 3's headed cross-entropy settings join Table "
                 "1's four; the contrast is Welch's over seeds.",
                 "The cluster bootstrap resampled 3 seeds, so its '95% interval' was the range of 10 values and "
                 "supported a correlation that does not exist in 29% of simulated builds; with 4 settings no valid "
                 "interval can exclude 0.", "inconclusive", "ef017eb29108"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'inconclusive', "7df85edb5b95"),),
    "fig3_heads": (
        Revision("2026-12-04", "Combination 'most' (more than half as predicted, none against) became 'all'.",
                 "Read from the paper's unqualified wording ('significantly increases').",
                 "inconclusive", commit=_A6),
        Revision("2026-12-07", _LIBRARY + " Differences are Welch's over seeds (were paired by seed index).",
                 "Models of different heads share no more than a seed number; Welch's interval does not assume a "
                 "pairing.", "inconclusive", "2e06e7b96e85"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'not supported', "419f757b8d9c"),),
    "fig4_threshold": (
        Revision("2026-12-07", _LIBRARY + " A quadratic fit of transfer accuracy in log source NC1 over the models "
                 "in the regime: the slope at the most collapsed end must be positive and at the least collapsed "
                 "end negative (was: the best model against both ends). Needs 5 models spanning a factor 2 of NC1.",
                 "The old rule chose its own winner (a winner's curse favouring the claim), borrowed a seed sd from 2 "
                 "degrees of freedom with a normal quantile, and could not come out against a monotone relation.",
                 "inconclusive", "cae6024a0a54"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'inconclusive', "cfc949807f27"),),
    "random_features": (
        Revision("2026-12-07", _LIBRARY + " Unchanged in substance (Welch intervals over independent encoders).",
                 "Rules as code.", "supported", "fc8af660ddb3"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'supported', "0d8008726f3a"),),
    "fig5_downstream": (
        Revision("2026-12-04", "Combination 'all' became 'majority' (more than half of the sets, whatever the "
                 "rest).", "Read from the paper's 'generally'; changed after the builds were seen.",
                 "inconclusive (sklearn digits: ρ −0.375 [−0.731, 0.061])", commit=_A6),
        Revision("2026-12-07", _LIBRARY + " The interval is a jackknife over pre-training settings (a setting's "
                 "seeds dropped together), not a bootstrap over models; 'not supported' needs at least half of the "
                 "sets against.", _PSEUDO, "supported", "f9be4609367e"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'inconclusive', "f9d332b79436"),),
    "table2_fewshot": (
        Revision("2026-12-04", "Combination 'most' became 'majority'.", "Read from the paper's 'generally'; changed "
                 "after the builds were seen.", "supported", commit=_A6),
        Revision("2026-12-07", _LIBRARY + " One test per neighbouring pair and benchmark (1- and 5-shot averaged, "
                 "was one per number of shots), with an interval over the backbones' training seeds (was over "
                 "episodes of one trained backbone).", _PSEUDO + " Two replicate builds gave non-overlapping "
                 "'95%' intervals of the same difference.", "supported", "91638864016e"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'inconclusive', "95671a2c32a9"),),
    "fig9_layers": (
        Revision("2026-12-07", _LIBRARY + " The interval drops one layer at a time (was a bootstrap over layers).",
                 "Rules as code.", "supported", "3ffbbb0df4ad"),
        Revision("2026-12-07", "A network's layers are no longer its independent units: each network's Spearman ρ is"
                 " read exactly, 'nearly linear' as ρ ≤ −0.8, in every network (was a jackknife "
                 "interval over layers below 0). " + _REVIEW,
                 "NC1 and accuracy are smooth in depth: two unrelated random walks over 17 layers put the "
                 "jackknife interval below 0 in about 15% of null builds.",
                 'supported', "55982cb55108"),),
    "fig10_depth": (
        Revision("2026-12-07", _LIBRARY + " The statistic is the mean over (network, dataset, method) cases of each "
                 "case's fraction of block pairs in order, with a t interval over cases (was a Wilson interval over "
                 "all block pairs).", "The pairs of one case share its blocks and runs: they are not independent "
                 "trials.", "supported", "cf6fe83335e1"),
        Revision("2026-12-07", "The independent unit is the (network, dataset) case, its Layer FT and SCL FT "
                 "fractions averaged (was each (network, dataset, method) case); no halves (3 cases). " + _REVIEW,
                 "The two methods fine-tune the same network on the same data; the halves dealt alternately put "
                 "all Layer FT cases in one half and all SCL FT cases in the other.",
                 'supported', "931e4118fca9"),),
    "table3_layer": (
        Revision("2026-12-04", "Combination 'most' became 'majority'.", "Read from the paper's 'on a variety of "
                 "datasets'; changed after the builds were seen.", "supported", commit=_A6),
        Revision("2026-12-07", _LIBRARY + " 'Substantial' is tested: the gain's interval must lie above δ = 2 "
                 "points; the interval is over fine-tuning seeds (was binomial over one run's test images).",
                 "'Substantial gains' was never tested, and one run's test-sample interval leaves out the "
                 "variance between runs.", "supported", "58ff50ecadc6"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'supported', "9c46aa8c6f89"),),
    "table3_scl": (
        Revision("2026-12-07", _LIBRARY + " Its two sub-claims are judged separately (SCL FT vs Layer FT, SCL FT "
                 "vs full FT), each by majority over the cells; intervals over fine-tuning seeds.",
                 "Pooling both sub-claims into one vote let the easy half carry the verdict.", "inconclusive",
                 "ea91b2eb6336"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'inconclusive', "7fbd1ef4e70c"),),
    "parameters": (
        Revision("2026-12-07", _LIBRARY + " Unchanged in substance (an exact count).", "Rules as code.",
                 "supported", "d65c518f95fd"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'supported', "2d04c745d930"),),
    "fig11_scarce": (
        Revision("2026-12-07", _LIBRARY + " Unchanged in substance (paired t over seeds); the figure now shows the "
                 "seed means the verdict uses.", "The page showed one seed beside a verdict over five.",
                 "not supported", "7101763727f7"),
        Revision("2026-12-07", "Layer FT − full FT is tested beside SCL FT − full FT, both as 'better' with δ = 1 "
                 "(was SCL FT alone, 'comparable or better' within 1 point). " + _REVIEW,
                 "The paper says both 'remain robust and outperform full model FT'; the rule tested less than "
                 "that.",
                 'not supported', "6060e6a0bf1f"),),
    "ncti_rank": (
        Revision("2026-12-07", _LIBRARY + " Two sub-claims judged separately (τ > 0; the advantage over the "
                 "strongest baseline), each by majority over the target sets; the strongest baseline is chosen on "
                 "the other target sets; intervals are jackknifes over pre-training settings.",
                 "Pooling the sub-claims let the easy half carry the verdict; the strongest baseline was chosen on "
                 "the data of the test; the bootstrap over candidates counted seed triplets as independent.",
                 "inconclusive", "8b4089a96de3"),
        Revision("2026-12-07", _REVIEW, _REVIEW_WHY,
                 'inconclusive', "e06f3837544e"),
        Revision("2026-12-07", "No change to what is computed or decided: NCTI's weighted τ per target set, with its "
                 "jackknife interval, moved into ncutils.book.rules.ranking_tau, which Chapter 6's table of every "
                 "score's τ now calls too.",
                 "The table computed the same τ with its own copy of the code; one function keeps the table and the "
                 "verdict equal.", 'inconclusive', "f0b778b3bf78"),),
}


def unregistered() -> dict[str, str]:
    """``{claim key: current digest}`` of every rule whose digest is not the one its latest revision records."""
    from ncutils.book.rules import RULES

    return {k: r.digest() for k, r in RULES.items()
            if not HISTORY.get(k) or HISTORY[k][-1].digest != r.digest()}


if __name__ == "__main__":
    from ncutils.book.rules import RULES

    missing = unregistered()
    for key, rule in RULES.items():
        print(f"{key:18s} {rule.digest()}  {'NOT REGISTERED: add a Revision' if key in missing else 'registered'}")
    sys.exit(1 if missing else 0)
