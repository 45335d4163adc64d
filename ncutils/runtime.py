"""Device choice, seeding and mixed-precision helpers shared by the training and probing code."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import numpy as np
import torch

__all__ = [
    "autocast", "channels_last", "cpu_numerics", "flush_denormals", "resolve_device", "seed_everything",
]


def flush_denormals(enabled: bool = True) -> bool:
    """Treat denormal (subnormal) floats as zero in CPU arithmetic; returns whether it is supported.

    Weights and gradients of networks trained with weight decay drift towards values below the
    normal float32 range, and CPUs compute on such numbers 10-40x more slowly: one fine-tuning epoch
    measured here took 42 s instead of 1.1 s. Flushing them to zero changes results by less than
    float32 resolution. ``import ncutils`` does not call it (importing changes no global state);
    the training loops (:func:`ncutils.pretrain.pretrain`, :func:`ncutils.finetune.fit`,
    :func:`ncutils.probe.linear_probe`) turn it on while they run on the CPU, through
    :func:`cpu_numerics`. The setting is per thread: it applies to the calling thread.
    """
    return torch.set_flush_denormal(enabled)


def _flushing_denormals() -> bool:
    """Whether CPU arithmetic currently flushes denormals (torch has no getter: test a denormal)."""
    return float(torch.tensor(1e-40, dtype=torch.float32) * 1.0) == 0.0


@contextlib.contextmanager
def cpu_numerics(device: str | torch.device | None) -> Iterator[None]:
    """Flush denormal floats to zero (:func:`flush_denormals`) inside the block when ``device`` is the CPU.

    The previous setting is restored on exit, so the flag stays on only inside a training loop.
    On other devices this does nothing.
    """
    if resolve_device(device).type != "cpu":
        yield
        return
    before = _flushing_denormals()
    flush_denormals(True)
    try:
        yield
    finally:
        flush_denormals(before)


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or ``None``) picks CUDA when available, else the CPU; anything else is passed through."""
    if device is None or (isinstance(device, str) and device == "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU generator seeded likewise for data order.

    ``PYTHONHASHSEED`` is not set: it only takes effect when the interpreter starts.
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeds third-party code that uses the legacy API
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def autocast(device: torch.device, enabled: bool = True):
    """bfloat16 autocast on CUDA when ``enabled``; a no-op context on the CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(model: torch.nn.Module, device: torch.device, enabled: bool = True) -> bool:
    """Put a convolutional ``model`` on CUDA in channels-last memory format (faster convolutions).

    Returns whether inputs should follow. Only models with 2-D convolutions on CUDA are converted:
    on the CPU, torch 2.15's backward pass of a 1x1 stride-2 convolution (a ResNet's downsampling
    shortcut) in channels-last format corrupts the heap for some shapes. Reproduced on a 2-core AMD EPYC:
    3 or 4 channels, a batch of 2 or 3, 8 or 16 px, ``Conv2d(C, 2C, 1, stride=2)`` on a channels-last
    input that requires grad, 20 backward passes, ends in ``free(): invalid next size``, a segmentation
    fault or a bus error. A corruption that does not crash could change numbers silently, so CPU runs
    keep the default layout, although channels-last is 0.87x eager per step on the cpu source network
    (``benchmarks/bench_step.py``).
    """
    has_conv = any(isinstance(m, torch.nn.Conv2d) for m in model.modules())
    if not enabled or device.type != "cuda" or not has_conv:
        return False
    model.to(memory_format=torch.channels_last)
    return True
