"""Global numerics and seeding: importing ncutils changes nothing; loops flush denormals on the CPU only."""

import os
import subprocess
import sys

import torch

from ncutils import runtime


def _denormal() -> float:
    return float(torch.tensor(1e-40, dtype=torch.float32) * 1.0)


def test_import_leaves_denormals_alone():
    code = ("import ncutils, ncutils.finetune, ncutils.pretrain, torch; "
            "print(float(torch.tensor(1e-40) * 1.0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert float(out) != 0.0


def test_cpu_numerics_flushes_inside_and_restores_on_exit():
    assert _denormal() != 0.0
    with runtime.cpu_numerics("cpu"):
        supported = _denormal() == 0.0
    assert _denormal() != 0.0
    if supported:  # and a setting made by the caller survives the block
        runtime.flush_denormals(True)
        try:
            with runtime.cpu_numerics("cpu"):
                pass
            assert _denormal() == 0.0
        finally:
            runtime.flush_denormals(False)
    with runtime.cpu_numerics("meta"):  # not the CPU: nothing changes
        assert _denormal() != 0.0


def test_seed_everything_does_not_touch_pythonhashseed(monkeypatch):
    monkeypatch.delenv("PYTHONHASHSEED", raising=False)
    runtime.seed_everything(3)
    assert "PYTHONHASHSEED" not in os.environ
