"""The pre-training step benchmark (benchmarks/bench_step.py) in its quick mode: well-formed output, exact FLOP
bookkeeping, and channels-last training that agrees with eager. No timing is asserted.

The benchmark runs in a child process: it sets torch's thread count, denormal flushing and oneDNN flags for the
whole process, which must not leak into other tests.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_step.py"

# Channels-last tolerances (3 steps of the cpu recipe from the same weights on the same batches as eager):
# - the first step's loss is a forward pass of identical weights; float32 rounding in another summation order moves
#   a loss of about 3.6 by ~1e-6, while any layout error changes the logits by O(1) and the loss by >= 1e-2;
FIRST_STEP_DLOSS = 1e-4
# - after 3 steps the differences grow with training (measured 5e-4 in the loss, 5% of the weights' update on an
#   AMD EPYC, AVX2); a wrong gradient would leave an update unrelated to eager's, ||dw|| / ||update|| ~ 1 or more,
#   so 0.5 separates the two with room for another CPU's kernels.
MAX_DLOSS = 1e-2
UPDATE_REL = 0.5


@pytest.fixture(scope="module")
def quick(tmp_path_factory) -> tuple[dict, str]:
    out = tmp_path_factory.mktemp("bench") / "step.json"
    done = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--json", str(out)], capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(out.read_text()), done.stdout


def rows(report: dict) -> dict[str, dict]:
    return {r["technique"]: r for r in report["rows"]}


def test_report_names_the_machine_and_the_recipe(quick):
    report, _ = quick
    assert report["cpu"] and report["torch"] and report["threads"] == 1
    assert report["network"] == {"arch": "resnet18", "width": 8}
    assert report["batch_size"] == 64 and report["classes"] == 32 and report["image"] == [3, 16, 16]
    assert report["unit_steps"] == 12 * (32 * 50 // 64)  # the cpu recipe: 12 epochs of 25 steps
    assert report["compile"] is None  # --quick leaves torch.compile out


def test_every_row_is_well_formed(quick):
    report, _ = quick
    by_name = rows(report)
    assert {"eager", "channels-last", "oneDNN off", "fused SGD"} <= set(by_name)
    assert any(n.startswith("stacked K=2") for n in by_name) and any(n.startswith("batch 256") for n in by_name)
    assert by_name["eager"]["ratio"] == 1.0 and by_name["eager"]["max_abs_dloss"] == 0.0
    assert report["peak_gflops"] > 0
    for r in report["rows"]:
        for key in ("step_ms", "call_ms", "ratio", "gflops", "peak_fraction", "flops_per_call"):
            assert math.isfinite(r[key]) and r[key] > 0, (r["technique"], key)
        assert r["peak_fraction"] == pytest.approx(r["gflops"] / report["peak_gflops"])


def test_flops_scale_with_the_work_of_a_call(quick):
    report, _ = quick
    by_name = rows(report)
    eager = by_name["eager"]["flops_per_call"]
    assert 1e8 < eager < 1e10  # a width-8 ResNet18 on 64 images of 16 px: about 0.85 GFLOP forward + backward
    for name, r in by_name.items():
        assert r["flops_per_call"] == pytest.approx(eager * r["samples_per_call"] / 64, rel=1e-9), name


def test_channels_last_agrees_with_eager(quick):
    report, _ = quick
    cl = rows(report)["channels-last"]
    assert cl["first_dloss"] <= FIRST_STEP_DLOSS
    assert cl["max_abs_dloss"] <= MAX_DLOSS
    assert cl["update_rel_dw"] <= UPDATE_REL
    assert 0 < cl["max_rel_dw"]  # it does round differently: the comparison is not vacuous


def test_same_arithmetic_gives_the_same_weights(quick):
    """Fused SGD does eager's arithmetic, and replicate 0 of a vmapped stack is eager's network."""
    by_name = rows(quick[0])
    assert by_name["fused SGD"]["max_abs_dloss"] == 0.0 and by_name["fused SGD"]["max_rel_dw"] == 0.0
    stacked = next(r for n, r in by_name.items() if n.startswith("stacked"))
    assert stacked["first_dloss"] <= FIRST_STEP_DLOSS and stacked["update_rel_dw"] <= 1e-3


def test_batch_rows_have_no_agreement(quick):
    for name, r in rows(quick[0]).items():
        if name.startswith("batch"):
            assert r["max_abs_dloss"] is None and r["max_rel_dw"] is None


def test_printed_tables_match_the_json(quick):
    report, stdout = quick
    speed = [line for line in stdout.splitlines() if line.startswith("| ") and "technique" not in line]
    agreeing = [r for r in report["rows"] if r["max_abs_dloss"] is not None]
    assert len(speed) == len(report["rows"]) + len(agreeing)  # the speed table, then the agreement table
    assert report["cpu"] in stdout
    assert "A larger batch changes the recipe" in stdout and "unless lr is scaled" in stdout
