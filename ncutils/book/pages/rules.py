"""The book's page "How the verdicts are decided": the semantics every rule shares, each rule's words and digest,
and its calibration at the cpu design (:mod:`ncutils.book.calibration`), cached in the unit store by the code that
simulated it.

The calibration depends on code alone (no unit), so the repository ships it for the current code
(:data:`SHIPPED`): a fresh clone reads it instead of simulating 16 rules for about two minutes.
``tests/test_calibration.py`` fails when the code changed and the shipped file did not; regenerate it with
``python -m ncutils.book.pages.rules``.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from ncutils.book.calibration import SIMULATORS, Calibration, calibrate, disagreement
from ncutils.book.verdicts import NOT_SUPPORTED, SUPPORTED

__all__ = ["CALIBRATION_LIBRARIES", "DRAWS", "SHIPPED", "calibrations", "code_key", "rules_page", "ship"]

#: Simulated builds per scenario for the page (each rule is simulated once per code and cached).
DRAWS = 500
#: The calibration of every simulated rule at :data:`DRAWS` draws, as the repository ships it for the code it names.
SHIPPED = Path(__file__).resolve().parents[1] / "calibration.json"


#: The libraries the simulation runs (no network library: torch's build does not change a simulated verdict).
CALIBRATION_LIBRARIES = ("numpy", "scipy", "pandas")


def code_key() -> str:
    """What the calibration is keyed by: the fingerprint of :mod:`ncutils.book.calibration` and all it runs (the
    simulators, the cpu design, the rules, the statistics; :func:`~ncutils.book.engine.fingerprint.fingerprint`)
    with the versions of the libraries it runs (:data:`CALIBRATION_LIBRARIES`)."""
    from ncutils.book.engine.fingerprint import fingerprint

    return fingerprint("ncutils.book.calibration", libraries=CALIBRATION_LIBRARIES)[:12]


def _shipped(code: str, draws: int) -> dict[str, Calibration]:
    """The shipped calibrations, if they were simulated by this code with ``draws`` draws (else none)."""
    try:
        data = json.loads(SHIPPED.read_text())
        if data.get("code") != code or data.get("draws") != draws:
            return {}
        return {k: Calibration.from_dict(d) for k, d in data["calibrations"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):  # unreadable: simulate instead
        return {}


def calibrations(store: Path | None, draws: int = DRAWS, workers: int = 1) -> dict[str, Calibration]:
    """Every simulated rule's calibration: from ``store/calibration`` when the same code (:func:`code_key`)
    simulated it with the same number of draws before, else from the repository's :data:`SHIPPED` file when that
    holds it for this code and draws, else simulated now, in ``workers`` processes; stored either way."""
    code = code_key()
    shipped = _shipped(code, draws)
    out, missing = {}, []
    for key in SIMULATORS:
        path = None if store is None else Path(store) / "calibration" / f"{key}-{code}-{draws}.json"
        if path is not None and path.exists():
            try:
                out[key] = Calibration.from_dict(json.loads(path.read_text()))
                continue
            except (OSError, ValueError, KeyError):
                pass
        missing.append((key, path))
    # the slowest first, so that the processes finish together (NCTI's weighted τ is a third of the whole)
    missing.sort(key=lambda kp: kp[0] != "ncti_rank")
    simulated = iter(_simulate([k for k, _ in missing if k not in shipped], draws, workers))
    for key, path in missing:
        out[key] = shipped[key] if key in shipped else next(simulated)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(out[key].to_dict()))
            tmp.replace(path)
    return {key: out[key] for key in SIMULATORS}


def _simulate(keys: list[str], draws: int, workers: int) -> list[Calibration]:
    """:func:`~ncutils.book.calibration.calibrate` for each of ``keys``: here, or in up to ``workers`` fresh
    processes (each rule's draws come from its own generator, so the results do not depend on how they are
    spread)."""
    workers = min(workers, len(keys))
    if workers <= 1:
        return [calibrate(key, draws=draws) for key in keys]
    from concurrent.futures import ProcessPoolExecutor

    # the platform's default start (fork on Linux): a spawned pool would leave multiprocessing's resource tracker
    # running beside the runner for the rest of its life
    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(calibrate, keys, [draws] * len(keys)))


def ship(store: Path | None = None, workers: int = 2) -> Path:
    """Write :data:`SHIPPED` for the current code at :data:`DRAWS` draws (reading ``store`` where it already holds
    them); returns its path."""
    cals = calibrations(store, DRAWS, workers)
    tmp = SHIPPED.with_suffix(".tmp")
    tmp.write_text(json.dumps({"code": code_key(), "draws": DRAWS,
                               "calibrations": {k: c.to_dict() for k, c in cals.items()}}, indent=1) + "\n")
    tmp.replace(SHIPPED)
    return SHIPPED


def _markdown(doc: str) -> str:
    """A numpy-style docstring section as MyST Markdown: literals, cross-references and definition lists."""
    doc = re.sub(r":(?:class|func|data|mod|meth):`~?([^`]+)`", r"`\1`", doc)
    doc = doc.replace("``", "`")
    out: list[str] = []
    for block in doc.strip().split("\n\n"):
        lines = block.splitlines()
        if len(lines) > 1 and lines[1].startswith("    ") and not lines[0].startswith(" "):
            items, term, text = [], None, []
            for line in lines:  # a definition list: "term" then its indented description
                if line.startswith("    "):
                    text.append(line.strip())
                else:
                    if term is not None:
                        items.append(f"- {term}: {' '.join(text)}")
                    term, text = line.strip(), []
            items.append(f"- {term}: {' '.join(text)}")
            out.append("\n".join(items))
        else:
            out.append(" ".join(line.strip() for line in lines))
    return "\n\n".join(out)


def _pct(p: float) -> str:
    return f"{100 * p:.0f}%"


def rules_page(cals: dict[str, Calibration]) -> str:
    """The page: shared semantics, the calibration table, then every rule in words with its digest and design."""
    from ncutils.book import verdicts
    from ncutils.book.claims import CLAIMS
    from ncutils.book.rules import RULES

    doc = verdicts.__doc__.split("\n\n", 2)[2]  # the semantics, after the module's first two paragraphs
    draws = next(iter(cals.values())).draws if cals else 0
    lines = ["# How the verdicts are decided", "",
             "Every verdict in this book comes from a rule written as code before the numbers "
             "(`ncutils.book.rules`): a function of a table of evidence with one row per observation and a "
             "column naming the *independent unit of replication* (a training seed, a pre-training setting whose "
             "seeds stay together, a layer, a fine-tuned case). Intervals are formed over that unit, so the "
             "variance between independent trainings is inside them. The notebooks only build the evidence and "
             "call the rule.", "", "## How a rule reads its intervals", "", _markdown(doc), "",
             "## How often each rule misleads at this book's design", "",
             f"Each rule was applied to {draws} simulated builds at the `cpu` profile's design (its numbers of "
             "seeds, settings, models, layers and cases; every seed redrawn in every build) under three "
             "scenarios: *no effect* (for a *comparable or better* claim, the boundary of the claim), *the "
             "paper's effect* translated into this book's units, and *the opposite effect*. A calibrated rule "
             "supports a claim with no effect at most 5% of the time; *P(not supported | opposite)* says whether "
             "it can come out against the claim; *P(supported | paper)* is its power at the paper's effect; the "
             "last column is the chance that two independent builds of the same truth (the paper's effect) "
             "reach different verdicts. The simulators and their assumptions are in `ncutils.book.calibration`. "
             "The simulation depends on code alone, so the repository ships its result for the code that produced "
             "it (`ncutils/book/calibration.json`, which the tests hold to the current code); a build with other "
             "code simulates again.",
             "", "| claim | P(supported \\| no effect) | P(not supported \\| opposite) | P(supported \\| paper's "
             "effect) | two builds disagree | what this design can decide |", "|---|---|---|---|---|---|"]
    for key, claim in CLAIMS.items():
        rule = RULES[key]
        name = claim.short or key
        if key not in cals:
            lines.append(f"| {name} | exact | exact | exact | never | {rule.design or 'an exact check'} |")
            continue
        c = cals[key]
        flags = []
        if c.false_support > 0.05:
            flags.append("**miscalibrated: supports a null claim more than 5% of the time**")
        if c.refutes < 0.8:
            flags.append(f"cannot reliably come out against the claim ({_pct(c.refutes)} under the opposite effect)")
        if c.power < 0.8:
            flags.append(f"power below 80% at the paper's effect ({_pct(c.power)})")
        note = "; ".join(filter(None, [rule.design.rstrip(".")] + flags)) or "decides at this design"
        lines.append(f"| {name} | {_pct(c.false_support)} | {_pct(c.refutes)} | {_pct(c.power)} | "
                     f"{_pct(disagreement(c.probabilities['paper']))} | {note} |")
    lines += ["", "## Every rule", "",
              "Each rule in the words generated from its own parameters, with its digest: the rules are frozen "
              "by these digests, and every revision after a claim was first built is recorded, with its reason and "
              "the verdict under the rule before, on the [claims page](claims).", ""]
    for key, claim in CLAIMS.items():
        rule = RULES[key]
        lines += [f"**{claim.short or key}** ({claim.where}; digest `{rule.digest()}`). {rule.describe()}", ""]
        if key in cals:
            p = cals[key].probabilities
            lines += ["Simulated outcomes: " + "; ".join(
                f"{scenario}: " + ", ".join(f"{o} {_pct(p[scenario][o])}" for o in (SUPPORTED, NOT_SUPPORTED,
                                                                                      "inconclusive"))
                for scenario in ("null", "paper", "opposite")) + ".", ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":  # python -m ncutils.book.pages.rules [STORE]: regenerate the shipped calibration
    print(ship(Path(sys.argv[1]) if len(sys.argv) > 1 else None))
