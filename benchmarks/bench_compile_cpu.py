"""``torch.compile`` on the CPU for the cpu profile's pre-training step: eager vs compiled, side by side.

The network and batch are those of the cpu book's source models (a CIFAR-stem ResNet18 of width 8 on
16-px RGB glyphs, 32 classes, batch 64, SGD with momentum and weight decay, cross-entropy). Both
versions train their own copy of the same initial weights in the same process, interleaved round by
round so that a busy machine slows both alike; the median seconds per step is reported, with the
time the first compiled steps take (compilation) and the number of steps after which compiling pays
for itself. A cpu pre-training unit takes ``epochs * steps_per_epoch`` steps (20 * 10 = 200 for the
common cross-entropy recipe), and every unit runs in a fresh worker process, so it compiles afresh.

    python benchmarks/bench_compile_cpu.py                 # one thread (what each of 2 workers gets)
    python benchmarks/bench_compile_cpu.py --threads 2 --arch resnet34
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch
from torch import nn

from ncutils.book.networks import build_network


def make_step(net: nn.Module):
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step(x: torch.Tensor, y: torch.Tensor) -> None:
        loss = loss_fn(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--arch", default="resnet18")
    ap.add_argument("--width", type=int, default=8)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--classes", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--inner", type=int, default=5, help="steps per round and version")
    ap.add_argument("--unit-steps", type=int, default=200, help="steps of one pre-training unit")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    base = build_network({"arch": args.arch, "width": args.width}, args.classes, (3, args.size, args.size))
    eager_net, compiled_net = base.train(), copy.deepcopy(base).train()
    x = torch.rand(args.batch, 3, args.size, args.size)
    y = torch.randint(0, args.classes, (args.batch,))
    eager = make_step(eager_net)
    compiled = make_step(torch.compile(compiled_net))

    t0 = time.perf_counter()
    for _ in range(2):  # the first calls compile the forward and backward graphs
        compiled(x, y)
    compile_s = time.perf_counter() - t0
    eager(x, y)

    times: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(args.rounds):
        for name, fn in (("eager", eager), ("compiled", compiled)):
            t0 = time.perf_counter()
            for _ in range(args.inner):
                fn(x, y)
            times[name].append((time.perf_counter() - t0) / args.inner)
    e, c = (statistics.median(times[k]) for k in ("eager", "compiled"))
    print(f"torch {torch.__version__}, {args.threads} thread(s); {args.arch} width {args.width}, batch {args.batch}, "
          f"{args.size} px, {args.classes} classes")
    print(f"eager     {1e3 * e:8.1f} ms/step")
    print(f"compiled  {1e3 * c:8.1f} ms/step   speed-up {e / c:.2f}x")
    print(f"first two compiled steps (compilation): {compile_s:.1f} s")
    gain = e - c
    if gain > 0:
        print(f"compiling pays for itself after {compile_s / gain:.0f} steps; "
              f"a unit of {args.unit_steps} steps: eager {args.unit_steps * e:.1f} s, "
              f"compiled {compile_s + args.unit_steps * c:.1f} s")
    else:
        print(f"compiled steps are not faster; a unit of {args.unit_steps} steps: eager {args.unit_steps * e:.1f} s, "
              f"compiled {compile_s + args.unit_steps * c:.1f} s")


if __name__ == "__main__":
    main()
