"""Per-epoch speed-up of Layer FT from caching the frozen prefix (ncutils.finetune.fit).

Fine-tunes Block 7 of ResNet18 (the paper's best block, Tables 4-5) on the same un-augmented
data twice, side by side in one process: once recomputing the frozen prefix (stem + Blocks 1-6)
every epoch, once computing it a single time and training on the cache. Prints the mean epoch
time of each (the first epoch of each is a warm-up and not counted), the cache's one-off cost,
and the speed-ups. Target: >= 3x per epoch on CPU.

    python benchmarks/bench_prefix_cache.py                      # ResNet18 at 224 px, 256 images
    python benchmarks/bench_prefix_cache.py --image-size 112 --n 512 --block 5
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from ncutils import finetune


def run(cache: str | None, args, data) -> dict:
    torch.manual_seed(0)
    net = finetune.build("resnet18", "layer", args.classes, block=args.block)
    loader = DataLoader(data, batch_size=args.batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(0))
    res = finetune.fit(net, loader, epochs=args.epochs, prefix_cache=cache, measure_nc1=False,
                       progress=False, device=args.device, lr=0.01)
    epochs = [h["seconds"] for h in res.history[1:]]
    return {"epoch_s": sum(epochs) / len(epochs), "cache_s": res.cache_seconds, "total_s": res.seconds,
            "final_loss": res.history[-1]["loss"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image-size", type=int, default=224)
    ap.add_argument("--n", type=int, default=256, help="training images")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--block", type=int, default=7)
    ap.add_argument("--epochs", type=int, default=3, help="epochs per run (the first is not timed)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    if args.epochs < 2:
        ap.error("--epochs must be at least 2 (the first epoch is a warm-up)")
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(args.n, 3, args.image_size, args.image_size, generator=g),
                         torch.randint(0, args.classes, (args.n,), generator=g))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; ResNet18 Layer FT at Block "
          f"{args.block}, {args.n} images of {args.image_size} px, {args.epochs} epochs per run")
    plain, cached = run(None, args, data), run("memory", args, data)
    per_epoch = plain["epoch_s"] / cached["epoch_s"]
    over_run = plain["total_s"] / cached["total_s"]
    print(f"{'':>14} {'epoch s':>9} {'cache s':>9} {'run s':>8}")
    print(f"{'recomputed':>14} {plain['epoch_s']:>9.2f} {'-':>9} {plain['total_s']:>8.1f}")
    print(f"{'cached':>14} {cached['epoch_s']:>9.2f} {cached['cache_s']:>9.2f} {cached['total_s']:>8.1f}")
    print(f"per-epoch speed-up {per_epoch:.2f}x; whole {args.epochs}-epoch run {over_run:.2f}x "
          "(cache cost included); target >= 3x per epoch:", "met" if per_epoch >= 3 else "NOT met")
    if args.json:
        args.json.write_text(json.dumps({"recomputed": plain, "cached": cached, "speedup_epoch": per_epoch,
                                         "speedup_run": over_run, **vars(args)}, default=str, indent=2))
    sys.exit(0 if per_epoch >= 3 else 1)


if __name__ == "__main__":
    main()
