"""Colour augmentation of a batch (levels 4-5 of Fig. 4): per-image Python loop vs batched, side by side.

Old: torchvision's ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)`` and ``RandomGrayscale(0.2)``
called on every image of the batch in a Python loop (what ``ncutils.transforms.augmentation`` did
before, kept here for the comparison). New: :class:`ncutils.transforms.ColorJitterPerSample` and
:class:`ncutils.transforms.RandomGrayscalePerSample`, the same per-image random draws applied to the
whole batch with a few tensor operations per step. Both run in the same process on the same images,
interleaved round by round so that a busy machine slows both alike; the median of the rounds is
reported, and the full level-5 augmentation (crop + flip + colour) is timed the same way.

    python benchmarks/bench_color_jitter.py                    # batch 64, 16 px, RGB
    python benchmarks/bench_color_jitter.py --threads 1         # one thread (a busy 2-core machine)
    python benchmarks/bench_color_jitter.py --batch 128 --size 32 --rounds 30
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torchvision.transforms import v2

from ncutils import transforms as T


class OldPerSample(nn.Module):
    """The old ``PerSample``: ``transform`` applied to every image of a batch in a Python loop."""

    def __init__(self, transform: nn.Module):
        super().__init__()
        self.transform = transform

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([self.transform(xi) for xi in x.as_subclass(torch.Tensor)])


def old_colour(p: float = 0.8) -> v2.Compose:
    return v2.Compose([OldPerSample(v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=p)),
                       OldPerSample(v2.RandomGrayscale(p=0.2))])


def new_colour(p: float = 0.8) -> v2.Compose:
    return v2.Compose([T.ColorJitterPerSample(0.4, 0.4, 0.4, 0.1, p=p), T.RandomGrayscalePerSample(p=0.2)])


def old_level5(size: int) -> v2.Compose:
    return v2.Compose([T.RandomCropPerSample(size, 4), T.RandomHorizontalFlipPerSample(), *old_colour().transforms,
                       v2.Normalize([0.5] * 3, [0.25] * 3), v2.ToPureTensor()])


def new_level5(size: int) -> v2.Compose:
    return T.augmentation(5, size, [0.5] * 3, [0.25] * 3)


def time_side_by_side(fns: dict[str, object], x: torch.Tensor, rounds: int, inner: int) -> dict[str, float]:
    """Median seconds per call of every function, interleaved round by round."""
    for fn in fns.values():  # warm-up
        fn(x)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t = time.perf_counter()
            for _ in range(inner):
                fn(x)
            times[name].append((time.perf_counter() - t) / inner)
    return {name: statistics.median(ts) for name, ts in times.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--size", type=int, default=16)
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--inner", type=int, default=3, help="calls per round and method")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's own choice)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, device=args.device)
    print(f"batch of {args.batch} RGB images at {args.size} px on {args.device}; torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads; median of {args.rounds} rounds x {args.inner} calls")
    rows = [("colour jitter + grayscale", old_colour(), new_colour()),
            ("level 5 (crop, flip, colour)", old_level5(args.size), new_level5(args.size))]
    print(f"{'step':<30} {'per-sample loop':>16} {'batched':>12} {'speed-up':>9}")
    for label, old, new in rows:
        t = time_side_by_side({"old": old, "new": new}, x, args.rounds, args.inner)
        print(f"{label:<30} {t['old'] * 1e3:13.2f} ms {t['new'] * 1e3:9.2f} ms {t['old'] / t['new']:8.1f}x")


if __name__ == "__main__":
    main()
