"""The cpu profile's pre-training step on one core: eager vs every candidate speed-up, side by side.

The baseline is the step :func:`ncutils.pretrain.pretrain` takes for the cpu book's source models (its own
``_train_step``): the profile's source network (``PretrainNet`` around a CIFAR-stem ResNet18 of width 8,
32 glyph classes at 16 px), cross-entropy, SGD with the recipe's momentum and weight decay, the cosine
schedule stepped every iteration, denormals flushed (``cpu_numerics``), on the unit's own batches (its
loader's order, its level-1 augmentation and normalisation; ``--data random``: standard-normal images and
random labels, which cost the same). Each candidate trains its own copy of the same initial weights in the
same process:

``channels-last``   network and inputs in channels-last memory format (what the loop does on CUDA)
``torch.compile``   the network compiled by inductor; its cold compile time (empty cache) and its compile
                    time in a new process whose ``TORCHINDUCTOR_CACHE_DIR`` is already warm (how fan-out
                    workers could share one cache directory) are measured in child processes
``oneDNN off``      ``torch.backends.mkldnn.flags(enabled=False)`` (the baseline runs with oneDNN on)
``foreach SGD``, ``fused SGD``   the optimiser's multi-tensor and fused CPU kernels (the same update in
                    fewer passes: equal to eager after the 3 steps compared here, but not bit for bit over a
                    run; 24 steps of a cpu pre-training already differ by up to 0.47 in a weight)
``bf16 autocast``   the forward pass under CPU bfloat16 autocast
``stacked K``       K seed replicates trained in one step (``torch.func.stack_module_state`` +
                    ``functional_call`` + ``vmap``), reported per replicate-step
``batch 2x, 4x``    larger batches, reported per 64 samples: this changes the recipe unless ``lr`` is scaled

Variants are interleaved round by round, each for about the same wall time per round, so that a busy
machine slows all alike; medians are reported. FLOPs are those :class:`~torch.utils.flop_counter.FlopCounterMode`
counts for forward + backward (convolutions and matrix products only: no BatchNorm, ReLU or optimiser);
the practical peak is the FLOP/s of a large fp32 matrix product on the same core, timed in the same rounds.
Numerical agreement: every variant takes the same first steps (3) on the same batches from the same weights
as eager; the tables give the largest |loss difference| over those steps and the largest relative weight
difference after them (per tensor: max |w - w_eager| / max |w_eager|, the largest over tensors), and the same
against eager in float64, whose eager row is the floor that float32 rounding alone reaches. Early training
amplifies rounding: by 10 steps eager float32 and float64 differ by tens of percent of the weights' update,
so longer agreement runs (``--agree-steps``) measure that chaos rather than the technique.

    python benchmarks/bench_step.py --json bench_step.json     # the full run (about 5 minutes)
    python benchmarks/bench_step.py --quick                    # a few seconds: no compile, no bf16, 2 rounds
    python benchmarks/bench_step.py --arch resnet34 --replicates 2 --no-compile
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from ncutils import training
from ncutils.book import datasets, profiles
from ncutils.book.networks import build_net
from ncutils.data import make_loader
from ncutils.pretrain.loop import _train_step  # the loop's own step: the baseline is exactly what pretrain() runs
from ncutils.pretrain.losses import as_loss
from ncutils.runtime import cpu_numerics

CPU = torch.device("cpu")
#: The recipe fields a pre-training step depends on (checked against the profile's source unit in a full run).
RECIPE_KEYS = ("network", "num_classes", "loss", "head_layers", "adv_eps", "epochs", "lr", "min_lr", "momentum",
               "weight_decay", "batch_size", "schedule")
Batch = tuple[torch.Tensor, torch.Tensor]

# flags() also sets oneDNN's TF32 switch, which warns on every call on a machine without an Intel GPU
warnings.filterwarnings("ignore", message="TF32 acceleration on top of oneDNN")


# =========================================================================== the recipe
def source_config(arch: str, profile: str = "cpu") -> dict[str, Any]:
    """The configuration of ``profile``'s cross-entropy source model ``arch`` (what its ``pretrain`` unit trains),
    built from the profile's public pieces without rendering the source images (their statistics only
    normalise the data, which a step's cost does not depend on)."""
    p = profiles.get(profile)
    level = int(p.recipe["level"])
    r = p.setting_recipe(p.recipe, loss="ce", head_layers=0, level=level, adv_eps=None, arch=arch)
    ds = p.datasets["source"]
    per_class = ds.get("glyphs", {}).get("per_class", {}).get("train")
    if per_class is None:
        raise ValueError(f"the {profile} profile's source set is not rendered glyphs, so this benchmark cannot tell "
                         "how many steps an epoch has; run it on the cpu profile.")
    until = r.get("until") or {}
    return {"network": p.network(arch), "data": {**ds, "normalize": None}, "num_classes": ds["num_classes"],
            "loss": "ce", "head_layers": 0, "adv_eps": None, "seed": 0, "epochs": int(r["epochs"]),
            "lr": float(r["lr"]), "min_lr": float(r["min_lr"]), "momentum": float(r["momentum"]),
            "weight_decay": float(r["weight_decay"]), "batch_size": int(r["batch_size"]),
            "schedule": {"kind": "cosine"}, "train_images": per_class * ds["num_classes"],
            "max_extra_epochs": int(until.get("max_extra_epochs", 0))}


def check_config(cfg: Mapping[str, Any], unit: Mapping[str, Any], arch: str, profile: str = "cpu") -> None:
    """Raise if ``cfg`` differs from the profile's source unit configuration ``unit`` in anything a step depends on."""
    drift = {k: (cfg[k], unit[k]) for k in RECIPE_KEYS if cfg[k] != unit[k]}
    if drift:
        raise RuntimeError(f"the benchmark's recipe differs from the {profile} profile's source unit of {arch} "
                           f"(benchmark, unit): {drift}; update source_config() in {Path(__file__).name}.")


def steps_per_epoch(cfg: Mapping[str, Any], batch_size: int | None = None) -> int:
    """Steps of one epoch (the loader drops the last partial batch)."""
    return cfg["train_images"] // (batch_size or cfg["batch_size"])


def in_shape(cfg: Mapping[str, Any]) -> tuple[int, int, int]:
    d = cfg["data"]
    return d["channels"], d["image_size"], d["image_size"]


def glyph_batches(unit: Mapping[str, Any], n: int) -> list[Batch]:
    """The first ``n`` batches the source unit trains on: its loader's shuffled order and its batch transform
    (augmentation level and normalisation), epoch after epoch seeded as :func:`ncutils.pretrain.pretrain` seeds."""
    ds, transform = datasets.training_data(unit["data"], level=unit["level"], padding=unit["padding"])
    loader = make_loader(ds, unit["batch_size"], shuffle=True, seed=unit["seed"], drop_last=True)
    out: list[Batch] = []
    for epoch in itertools.count():
        training.seed_epoch(unit["seed"], epoch, loader)
        for x, y in loader:
            out.append((transform(x) if transform is not None else x, y))
            if len(out) == n:
                return out
    raise AssertionError("unreachable")


def make_batches(cfg: Mapping[str, Any], n: int, batch_size: int, seed: int) -> list[Batch]:
    """``n`` batches of standard-normal images (normalised data) and uniform labels."""
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(batch_size, *in_shape(cfg), generator=g),
             torch.randint(0, cfg["num_classes"], (batch_size,), generator=g)) for _ in range(n)]


# =========================================================================== the variants
class LoopStep:
    """A network trained by the loop's own step, with one technique switched on.

    ``optimizer``: keyword arguments of ``torch.optim.SGD`` beyond the recipe (``foreach``, ``fused``); ``None``
    for :func:`ncutils.training.sgd`, what the loop uses. ``context``: entered around every step.
    """

    def __init__(self, net: nn.Module, cfg: Mapping[str, Any], *, batch_size: int, channels_last: bool = False,
                 compile: bool = False, optimizer: Mapping[str, Any] | None = None,
                 context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        if channels_last:
            net.to(memory_format=torch.channels_last)
        self.net, self.channels_last, self.context = net, channels_last, context
        self.model = torch.compile(net) if compile else net
        params = [p for p in net.parameters() if p.requires_grad]
        if optimizer is None:
            self.opt = training.sgd(params, cfg["lr"], momentum=cfg["momentum"], weight_decay=cfg["weight_decay"])
        else:
            self.opt = torch.optim.SGD(params, cfg["lr"], momentum=cfg["momentum"],
                                       weight_decay=cfg["weight_decay"], **optimizer)
        self.sched = training.make_schedule(self.opt, dict(cfg["schedule"]), cfg["epochs"],
                                            steps_per_epoch(cfg, batch_size), cfg["min_lr"])
        self.loss = as_loss(cfg["loss"])

    def __call__(self, batches: list[Batch]) -> torch.Tensor:
        (x, y), = batches
        with self.context():
            value, _ = _train_step(self.model, x, y, self.loss, self.opt, self.sched, CPU, adversarial_eps=None,
                                   pgd_steps=10, pgd_step_size=None, amp=False, channels_last=self.channels_last)
        return value.reshape(1)

    def weights(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.net.named_parameters()}


class StackedStep:
    """K replicates of the network trained in one step: parameters and buffers stacked along a new first
    dimension, the forward pass vmapped over it, one backward pass of the summed losses (each replicate's
    gradient is its own loss's) and one SGD step over the stacked tensors (element-wise, so the same update)."""

    def __init__(self, nets: list[nn.Module], cfg: Mapping[str, Any]):
        self.params, self.buffers = stack_module_state(nets)
        self.base = copy.deepcopy(nets[0]).to("meta")
        self.loss = as_loss(cfg["loss"])
        self.opt = training.sgd(list(self.params.values()), cfg["lr"], momentum=cfg["momentum"],
                                weight_decay=cfg["weight_decay"])
        self.sched = training.make_schedule(self.opt, dict(cfg["schedule"]), cfg["epochs"], steps_per_epoch(cfg),
                                            cfg["min_lr"])

    def _loss(self, params, buffers, x, y):
        return self.loss(functional_call(self.base, (params, buffers), (x,)), y)

    def __call__(self, batches: list[Batch]) -> torch.Tensor:
        x = torch.stack([b[0] for b in batches])
        y = torch.stack([b[1] for b in batches])
        values = vmap(self._loss, randomness="different")(self.params, self.buffers, x, y)
        self.opt.zero_grad(set_to_none=True)
        values.sum().backward()
        self.opt.step()
        self.sched.step()
        return values.detach()

    def weights(self) -> dict[str, torch.Tensor]:
        """Replicate 0's parameters."""
        return {k: v[0].detach() for k, v in self.params.items()}


@dataclass
class Variant:
    """One row of the table: a step function and what one call of it does."""

    name: str
    step: LoopStep | StackedStep
    batch_size: int          # samples of each replicate's batch
    replicates: int = 1      # batches one call trains on (stacked replicates)
    work: float = 1.0        # eager steps' worth of samples in one call (replicate-steps, or eager batches)
    agrees: bool = True      # whether its first steps should match eager's (same recipe)
    flops: float = 0.0       # forward + backward FLOPs of one call


def mkldnn_off() -> contextlib.AbstractContextManager:
    return torch.backends.mkldnn.flags(enabled=False)


def bf16_autocast() -> contextlib.AbstractContextManager:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def build_variants(net0: nn.Module, cfg: Mapping[str, Any], args: argparse.Namespace, *,
                   channels_last_ok: bool) -> list[Variant]:
    """Every variant the options ask for, each with its own copy of the initial weights ``net0``; eager first."""
    B = cfg["batch_size"]

    def loop(batch_size: int = B, **kw: Any) -> LoopStep:
        return LoopStep(copy.deepcopy(net0), cfg, batch_size=batch_size, **kw)

    out = [Variant("eager", loop(), B)]
    if channels_last_ok:
        out.append(Variant("channels-last", loop(channels_last=True), B))
    if args.compile:
        out.append(Variant("torch.compile", loop(compile=True), B))
    out += [Variant("oneDNN off", loop(context=mkldnn_off), B),
            Variant("foreach SGD", loop(optimizer={"foreach": True}), B),
            Variant("fused SGD", loop(optimizer={"fused": True}), B)]
    if channels_last_ok:
        out.append(Variant("channels-last + fused SGD", loop(channels_last=True, optimizer={"fused": True}), B))
    if args.bf16:
        out.append(Variant("bf16 autocast", loop(context=bf16_autocast), B))
    K = args.replicates
    if K > 1:
        out.append(Variant(f"stacked K={K} (vmap), per replicate-step",
                           StackedStep([copy.deepcopy(net0) for _ in range(K)], cfg), B, replicates=K, work=K))
    for m in (2, 4):
        out.append(Variant(f"batch {m * B} ({m}x), per {B} samples", loop(batch_size=m * B), m * B, work=m,
                           agrees=False))
    return out


def count_flops(net: nn.Module, cfg: Mapping[str, Any], batch: Batch) -> float:
    """Forward + backward FLOPs of one step of ``net`` on ``batch`` (on a copy: running statistics untouched)."""
    net = copy.deepcopy(net).train()
    loss = as_loss(cfg["loss"])
    with FlopCounterMode(display=False) as counter:
        loss(net(batch[0]), batch[1]).backward()
    return float(counter.get_total_flops())


# =========================================================================== measuring
def weight_differences(w: Mapping[str, torch.Tensor], ref: Mapping[str, torch.Tensor],
                       init: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """How far weights ``w`` are from ``ref``: ``max_rel_dw`` (per tensor max |w - ref| / max |ref|, the largest
    over tensors) and ``update_rel_dw`` (||w - ref|| / ||ref - init|| over all parameters: the difference
    relative to how far training moved the weights)."""
    w = {k: v.double() for k, v in w.items()}
    ref = {k: v.double() for k, v in ref.items()}
    max_rel = max(float((w[k] - r).abs().max() / r.abs().max().clamp_min(1e-30)) for k, r in ref.items())
    num = math.sqrt(sum(float((w[k] - r).pow(2).sum()) for k, r in ref.items()))
    den = math.sqrt(sum(float((r - init[k].double()).pow(2).sum()) for k, r in ref.items()))
    return {"max_rel_dw": max_rel, "update_rel_dw": num / max(den, 1e-300)}


def run_steps(v: Variant, batches: list[Batch], spare: list[Batch]) -> tuple[list[float], list[float]]:
    """``v``'s losses (replicate 0's) and seconds on its successive calls: replicate 0 of a stack trains on
    ``batches``, the others on ``spare``; a larger batch is ``batches[i]`` followed by spare samples."""
    losses, seconds = [], []
    for i, b in enumerate(batches):
        if v.agrees:
            call = [b] + [spare[(i * v.replicates + r) % len(spare)] for r in range(1, v.replicates)]
        else:
            call = [make_batch_of(b, spare, v.batch_size)]
        t0 = time.perf_counter()
        losses.append(float(v.step(call)[0]))
        seconds.append(time.perf_counter() - t0)
    return losses, seconds


def agreement(net0: nn.Module, cfg: Mapping[str, Any], variants: list[Variant], batches: list[Batch],
              spare: list[Batch]) -> dict[str, dict[str, float | None]]:
    """Run every variant for ``len(batches)`` steps from the initial weights ``net0`` (``variants[0]`` is eager)
    and compare each with eager, and with eager in float64 (exact arithmetic, to tell a less accurate variant
    from one that only rounds differently).

    Returns per variant ``max_abs_dloss`` (over the steps), ``first_dloss`` (the first step's: a forward pass of
    the same weights), :func:`weight_differences` against eager, ``max_abs_dloss_fp64`` and ``max_rel_dw_fp64``
    against float64, and ``step_s`` (its fastest step); ``None`` for what a variant with another recipe cannot
    be compared on.
    """
    init = {k: v.detach().clone() for k, v in net0.named_parameters()}
    ref64 = Variant("eager fp64", LoopStep(copy.deepcopy(net0).double(), cfg, batch_size=cfg["batch_size"]),
                    cfg["batch_size"])
    losses64, _ = run_steps(ref64, [(x.double(), y) for x, y in batches], spare)
    w64 = ref64.step.weights()
    runs = {v.name: run_steps(v, batches, spare) for v in variants}
    ref_loss, ref_w = runs["eager"][0], variants[0].step.weights()
    out = {}
    for v in variants:
        losses, seconds = runs[v.name]
        row: dict[str, float | None] = dict.fromkeys(("max_abs_dloss", "first_dloss", "max_rel_dw",
                                                      "update_rel_dw", "max_abs_dloss_fp64", "max_rel_dw_fp64"))
        row["step_s"] = min(seconds)
        if v.agrees:
            w = v.step.weights()
            row.update(weight_differences(w, ref_w, init), max_rel_dw_fp64=weight_differences(w, w64, init)
                       ["max_rel_dw"], max_abs_dloss=max(abs(a - b) for a, b in zip(losses, ref_loss)),
                       first_dloss=abs(losses[0] - ref_loss[0]),
                       max_abs_dloss_fp64=max(abs(a - b) for a, b in zip(losses, losses64)))
        out[v.name] = row
    return out


def make_batch_of(first: Batch, spare: list[Batch], size: int) -> Batch:
    """A batch of ``size`` samples: ``first`` followed by spare batches."""
    parts = [first, *spare]
    x = torch.cat([p[0] for p in parts])[:size]
    y = torch.cat([p[1] for p in parts])[:size]
    if len(y) < size:
        raise ValueError(f"not enough spare batches for a batch of {size}; raise the number of spare batches.")
    return x, y


def call_inputs(v: Variant, pool: list[Batch]) -> Iterator[list[Batch]]:
    """The inputs of ``v``'s successive calls while timing, cycling through ``pool`` (built once)."""
    if v.replicates > 1:
        calls = [[pool[(i + r) % len(pool)] for r in range(v.replicates)] for i in range(len(pool))]
    else:
        calls = [[make_batch_of(pool[i], pool, v.batch_size)] for i in range(len(pool))]
    return itertools.cycle(calls)


def time_rounds(fns: Mapping[str, Callable[[], Any]], inner: Mapping[str, int], rounds: int) -> dict[str, float]:
    """Median seconds per call of every function, interleaved round by round (``inner[name]`` calls a round)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            times[name].append((time.perf_counter() - t0) / inner[name])
    return {k: statistics.median(v) for k, v in times.items()}


def matmul_fn(n: int) -> tuple[Callable[[], Any], float]:
    """A large fp32 matrix product and its FLOPs: the practical peak of the core."""
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    return (lambda: torch.mm(a, b)), 2.0 * n ** 3


# =========================================================================== child processes
def child_command(args: argparse.Namespace, mode: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), mode, "--arch", args.arch, "--threads", str(args.threads)]


def run_child(args: argparse.Namespace, mode: str, env: Mapping[str, str] | None = None,
              timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(child_command(args, mode), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def channels_last_works(args: argparse.Namespace) -> tuple[bool, str]:
    """Whether channels-last training steps run here (oneDNN's channels-last backward has crashed on some
    CPUs; a crash in this process would end the whole benchmark, so a child process tries first)."""
    done = run_child(args, "--probe-channels-last", timeout=300)
    if done.returncode == 0:
        return True, ""
    if done.returncode < 0:
        return False, f"channels-last steps crashed a child process (signal {-done.returncode}); left out"
    raise RuntimeError(f"the channels-last probe failed (exit {done.returncode}):\n{done.stderr[-2000:]}")


def compile_times(args: argparse.Namespace, cache_dir: str) -> dict[str, float]:
    """Seconds the first two compiled steps take beyond two steady steps, in a new process with an empty
    inductor cache (``cold_s``) and then in another new process with the cache the first one left (``warm_s``)."""
    env = {"TORCHINDUCTOR_CACHE_DIR": cache_dir, "TORCHINDUCTOR_COMPILE_THREADS": str(args.compile_threads)}
    out = {}
    for key in ("cold_s", "warm_s"):
        done = run_child(args, "--compile-child", env)
        if done.returncode != 0:
            raise RuntimeError(f"the compile-timing child failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
        out[key] = json.loads(done.stdout.strip().splitlines()[-1])["compile_s"]
    return out


def child_main(args: argparse.Namespace) -> None:
    """A child process: the channels-last probe, or the compile timing (prints one JSON line)."""
    torch.set_num_threads(args.threads)
    cfg = source_config(args.arch)
    batches = make_batches(cfg, 7, cfg["batch_size"], seed=1)
    with cpu_numerics(CPU):
        if args.probe_channels_last:
            step = LoopStep(build_net(cfg).train(), cfg, batch_size=cfg["batch_size"], channels_last=True)
            for b in batches[:2]:
                step([b])
            return
        step = LoopStep(build_net(cfg).train(), cfg, batch_size=cfg["batch_size"], compile=True)
        t0 = time.perf_counter()
        for b in batches[:2]:
            step([b])
        first = time.perf_counter() - t0
        steady = []
        for b in batches[2:]:
            t0 = time.perf_counter()
            step([b])
            steady.append(time.perf_counter() - t0)
    print(json.dumps({"compile_s": first - 2 * statistics.median(steady), "steady_s": statistics.median(steady)}))


# =========================================================================== report
def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo, else the platform's processor string)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def fmt(x: float | None, spec: str) -> str:
    return "n/a" if x is None else format(x, spec)


def markdown(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> str:
    """A Markdown table of ``rows``: ``columns`` are (heading, key, format); ``None`` prints as n/a."""
    lines = ["| " + " | ".join(c[0] for c in columns) + " |",
             "|---|" + "---:|" * (len(columns) - 1)]
    for r in rows:
        lines.append("| " + " | ".join(fmt(r[key], spec) for _, key, spec in columns) + " |")
    return "\n".join(lines)


#: The speed table: the brief's columns.
SPEED = [("technique", "technique", "s"), ("step ms", "step_ms", ".1f"), ("ratio to eager", "ratio", ".2f"),
         ("GFLOP/s", "gflops", ".1f"), ("fraction of practical peak", "peak_fraction", ".3f"),
         ("max abs Δloss", "max_abs_dloss", ".1e")]
#: The numerical-agreement table.
AGREEMENT = [("technique", "technique", "s"), ("max abs Δloss", "max_abs_dloss", ".1e"),
             ("first-step abs Δloss", "first_dloss", ".1e"), ("max rel Δw", "max_rel_dw", ".1e"),
             ("‖Δw‖ / ‖update‖", "update_rel_dw", ".1e"), ("max abs Δloss to fp64", "max_abs_dloss_fp64", ".1e"),
             ("max rel Δw to fp64", "max_rel_dw_fp64", ".1e")]


def compile_lines(c: Mapping[str, Any]) -> list[str]:
    lines = [f"torch.compile: cold compile {c['cold_s']:.1f} s (empty TORCHINDUCTOR_CACHE_DIR), "
             f"{c['warm_s']:.1f} s in a new process with that cache warm ({c['compile_threads']} compile thread(s))"]
    for key in ("cold", "warm"):
        n = c[f"break_even_{key}"]
        lines.append(f"  break-even ({key}): " + ("never (compiled steps are not faster)" if n is None else
                     f"{n:.0f} steps") + f"; a cpu pre-training unit takes {c['unit_steps']} steps "
                     f"(up to {c['unit_steps_max']} with its extra epochs)")
    return lines


# =========================================================================== main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18", help="in-book network of the cpu profile (default resnet18)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: what each fan-out worker gets)")
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--inner", type=int, default=3, help="eager steps a round; other variants get as much time")
    ap.add_argument("--agree-steps", type=int, default=3,
                    help="steps of the numerical-agreement run (by 10 steps rounding alone, eager float32 vs "
                         "float64, has moved the weights by tens of percent of their update)")
    ap.add_argument("--data", choices=("glyphs", "random"), default="glyphs",
                    help="the source unit's own augmented batches (renders the glyphs: ~10 s) or random ones")
    ap.add_argument("--replicates", type=int, default=4, help="K of the stacked variant (1: leave it out)")
    ap.add_argument("--matmul-n", type=int, default=1024, help="size of the peak's square matrix product")
    ap.add_argument("--compile-threads", type=int, default=1, help="inductor compile threads of the timing children")
    ap.add_argument("--no-compile", dest="compile", action="store_false", help="leave torch.compile out")
    ap.add_argument("--no-bf16", dest="bf16", action="store_false", help="leave bf16 autocast out")
    ap.add_argument("--quick", action="store_true",
                    help="a check that it runs: 2 rounds of 1 step, 3 agreement steps, K=2, no compile, no bf16, "
                    "random batches, channels-last run without first probing it in a child process")
    ap.add_argument("--json", type=Path, help="also write the numbers to this JSON file")
    ap.add_argument("--probe-channels-last", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--compile-child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.quick:
        args.rounds, args.inner, args.agree_steps, args.replicates = 2, 1, 3, min(args.replicates, 2)
        args.data = "random"
        args.compile = args.bf16 = False
    for name in ("rounds", "inner", "agree_steps", "replicates", "threads", "matmul_n", "compile_threads"):
        if getattr(args, name) < 1:
            ap.error(f"--{name.replace('_', '-')} must be at least 1")
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.probe_channels_last or args.compile_child:
        child_main(args)
        return {}
    wall0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    cfg = source_config(args.arch)
    B = cfg["batch_size"]
    n_batches = args.agree_steps + max(8, 2 * args.replicates) + 4  # agreement, spare and timing batches
    if args.data == "glyphs":
        unit = profiles.get("cpu").source_model(args.arch).config
        check_config(cfg, unit, args.arch)
        batches = glyph_batches(unit, n_batches)
    else:
        batches = make_batches(cfg, n_batches, B, seed=1)
    unit_steps = steps_per_epoch(cfg) * cfg["epochs"]
    notes = []
    cl_ok, why = (True, "") if args.quick else channels_last_works(args)  # a quick run (a test) should see a crash
    if why:
        notes.append(why)
    cache_dir = tempfile.mkdtemp(prefix="bench_step_inductor_")
    try:
        comp = None
        if args.compile:
            comp = compile_times(args, cache_dir)
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir  # this process compiles from the warm cache
        with cpu_numerics(CPU):
            result = measure(cfg, args, cl_ok, batches)
    finally:
        shutil.rmtree(cache_dir, ignore_errors=True)
    rows, peak = result["rows"], result["peak_gflops"]
    eager_ms = rows[0]["step_ms"]
    if comp is not None:
        c_ms = next(r["step_ms"] for r in rows if r["technique"] == "torch.compile")
        gain = (eager_ms - c_ms) / 1e3
        comp.update(compile_threads=args.compile_threads, unit_steps=unit_steps,
                    unit_steps_max=steps_per_epoch(cfg) * (cfg["epochs"] + cfg["max_extra_epochs"]),
                    **{f"break_even_{k}": (comp[f"{k}_s"] / gain if gain > 0 else None) for k in ("cold", "warm")})
    report = {
        "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(), "torch": torch.__version__,
        "threads": args.threads, "network": dict(cfg["network"]), "classes": cfg["num_classes"],
        "image": list(in_shape(cfg)), "batch_size": B, "data": args.data, "unit_steps": unit_steps,
        "rounds": args.rounds, "inner": args.inner, "agree_steps": args.agree_steps, "quick": args.quick,
        "peak_gflops": peak, "matmul_n": args.matmul_n, "rows": rows, "compile": comp, "notes": notes,
        "wall_s": time.perf_counter() - wall0,
    }
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return report


def measure(cfg: Mapping[str, Any], args: argparse.Namespace, cl_ok: bool, batches: list[Batch]) -> dict[str, Any]:
    """Agreement run, FLOP counts and interleaved timing of every variant on ``batches`` (the agreement
    steps' first, then spare ones, then 4 for timing); the table's rows."""
    net0 = build_net(cfg).train()  # seeded by cfg["seed"]
    variants = build_variants(net0, cfg, args, channels_last_ok=cl_ok)
    n = args.agree_steps
    spare, pool = batches[n:-4], batches[-4:]
    agree = agreement(net0, cfg, variants, batches[:n], spare)
    flops = {b: count_flops(net0, cfg, make_batch_of(spare[0], spare, b)) for b in {v.batch_size for v in variants}}
    for v in variants:  # every variant does the eager arithmetic (vmap stacks K copies of it)
        v.flops = v.replicates * flops[v.batch_size]
    fns: dict[str, Callable[[], Any]] = {}
    for v in variants:
        inputs = call_inputs(v, pool)
        fns[v.name] = lambda step=v.step, inputs=inputs: step(next(inputs))
    mm, mm_flops = matmul_fn(args.matmul_n)
    mm()
    t0 = time.perf_counter()
    mm()
    base = agree["eager"]["step_s"]
    inner = {v.name: max(1, round(args.inner * base / agree[v.name]["step_s"])) for v in variants}
    inner["matmul"] = max(1, round(args.inner * base / (time.perf_counter() - t0)))
    fns["matmul"] = mm
    med = time_rounds(fns, inner, args.rounds)
    peak = mm_flops / med["matmul"]
    eager_ms = 1e3 * med["eager"]
    rows = []
    for v in variants:
        gflops = v.flops / med[v.name] / 1e9
        step_ms = 1e3 * med[v.name] / v.work
        rows.append({"technique": v.name, "step_ms": step_ms, "call_ms": 1e3 * med[v.name],
                     "ratio": step_ms / eager_ms, "gflops": gflops, "peak_fraction": gflops * 1e9 / peak,
                     "flops_per_call": v.flops, "samples_per_call": v.replicates * v.batch_size,
                     **{k: x for k, x in agree[v.name].items() if k != "step_s"}})
    return {"rows": rows, "peak_gflops": peak / 1e9}


def print_report(r: Mapping[str, Any]) -> None:
    net = r["network"]
    print(f"CPU: {r['cpu']} ({r['cpu_capability']}); torch {r['torch']}; {r['threads']} thread(s)")
    print(f"cpu profile source network: {net['arch']} width {net.get('width')}, {r['classes']} classes, "
          f"{'x'.join(map(str, r['image']))} inputs ({r['data']} batches), batch {r['batch_size']}; a pre-training "
          "unit takes "
          f"{r['unit_steps']} steps")
    print(f"practical peak: {r['peak_gflops']:.1f} GFLOP/s ({r['matmul_n']}² fp32 matrix product, same core); "
          f"medians of {r['rounds']} interleaved rounds; agreement after {r['agree_steps']} steps\n")
    print(markdown(r["rows"], SPEED))
    print(f"\nNumerical agreement after {r['agree_steps']} steps from the same weights on the same batches, against "
          "eager and against eager in float64; max rel Δw: per tensor max |w - w_ref| / max |w_ref|, the largest; "
          "‖Δw‖ / ‖update‖: the difference over how far eager moved the weights. The eager row's fp64 columns are "
          "the floor of float32 rounding\n")
    print(markdown([x for x in r["rows"] if x["max_abs_dloss"] is not None], AGREEMENT))
    print()
    if r["compile"] is not None:
        print("\n".join(compile_lines(r["compile"])))
    print("Stacked and batch rows: step ms is per eager-equivalent step (one replicate, or "
          f"{r['batch_size']} samples). A larger batch changes the recipe (fewer, larger steps per epoch) "
          "unless lr is scaled; its rows have no agreement numbers.")
    print("GFLOP/s count convolutions and matrix products of forward + backward only (FlopCounterMode).")
    for note in r["notes"]:
        print(f"Note: {note}")
    print(f"({r['wall_s']:.0f} s in all)")


if __name__ == "__main__":
    main()
