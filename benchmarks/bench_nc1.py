"""NC1 (Eq. 4): ncutils.metrics.nc1 against a straightforward dense reference, side by side.

Reference: Sigma_W accumulated from per-sample outer products in a Python loop, Sigma_B from the
class means, ``scipy.linalg.pinv`` of the d x d Sigma_B, then ``trace(Sigma_W Sigma_B^+) / K``.
Both run on the same float64 features. Each method also runs once in a fresh subprocess to
measure its peak extra resident memory beyond the loaded features.

    python benchmarks/bench_nc1.py                 # N=10,000, d=1,024, K in (10, 100)
    python benchmarks/bench_nc1.py --n 2000 --k 10 # quicker

Targets: >= 40x faster, <= 1e-6 relative difference.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from ncutils.metrics import nc1
from ncutils.reference import nc1_dense


def make_features(n: int, d: int, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, size=n)
    means = rng.normal(scale=3.0, size=(k, d))
    return means[labels] + rng.normal(size=(n, d)), labels


def reference_nc1(X: np.ndarray, y: np.ndarray) -> float:
    return nc1_dense(X, y, loop=True)  # per-sample outer products in a Python loop, dense pinv


def dense_nc1(X: np.ndarray, y: np.ndarray) -> float:
    return nc1_dense(X, y)  # d x d covariances from per-class matrix products, dense pinv


def ours(X: np.ndarray, y: np.ndarray) -> float:
    return nc1(torch.from_numpy(X), torch.from_numpy(y))


METHODS = {"reference": reference_nc1, "dense": dense_nc1, "ncutils": ours}


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure_extra_kib(method: str, X: np.ndarray, y: np.ndarray) -> int:
    """Peak resident memory of one call above the resident memory just before it (KiB).

    Resets the kernel's high-water mark (``/proc/self/clear_refs``, Linux) so that the peak
    covers this call only.
    """
    METHODS[method](X[:50], y[:50])  # imports and lazy initialisation are not counted
    Path("/proc/self/clear_refs").write_text("5")
    before = _status_kib("VmRSS")
    METHODS[method](X, y)
    return _status_kib("VmHWM") - before


def peak_extra_mib(method: str, path: str) -> float:
    """Run one method in a fresh interpreter and return its peak extra memory in MiB."""
    code = (
        f"import sys, numpy as np; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_nc1 as b;"
        f"print(b.measure_extra_kib({method!r}, np.load({path + '/X.npy'!r}), np.load({path + '/y.npy'!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1]) / 1024.0


def best_time(fn, *args, repeat: int) -> tuple[float, float]:
    times, value = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        value = fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times), value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=1_024)
    ap.add_argument("--k", type=int, nargs="+", default=[10, 100])
    ap.add_argument("--no-memory", action="store_true", help="skip the subprocess memory measurements")
    ap.add_argument("--memory-d", type=int, nargs="*", default=[2048, 4096],
                    help="feature dimensions of the memory comparison against the dense (matrix-product) "
                         "reference, at N = d samples and K = 10")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; N={args.n}, d={args.d}")
    header = f"{'K':>5} {'reference s':>12} {'ncutils s':>10} {'speed-up':>9} {'rel. diff':>10}"
    if not args.no_memory:
        header += f" {'ref MiB':>8} {'ncutils MiB':>11}"
    print(header)
    rows = []
    for k in args.k:
        X, y = make_features(args.n, args.d, k)
        t_ref, v_ref = best_time(reference_nc1, X, y, repeat=1)
        ours(X[:50], y[:50])  # warm-up
        t_ours, v_ours = best_time(ours, X, y, repeat=5)
        row = {"K": k, "N": args.n, "d": args.d, "reference_s": t_ref, "ncutils_s": t_ours,
               "speedup": t_ref / t_ours, "rel_diff": abs(v_ours - v_ref) / abs(v_ref),
               "nc1": v_ours}
        line = (f"{k:>5} {t_ref:>12.3f} {t_ours:>10.4f} {row['speedup']:>8.0f}x "
                f"{row['rel_diff']:>10.1e}")
        if not args.no_memory:
            with tempfile.TemporaryDirectory() as tmp:
                np.save(f"{tmp}/X.npy", X)
                np.save(f"{tmp}/y.npy", y)
                row["reference_extra_mib"] = peak_extra_mib("reference", tmp)
                row["ncutils_extra_mib"] = peak_extra_mib("ncutils", tmp)
            line += f" {row['reference_extra_mib']:>8.1f} {row['ncutils_extra_mib']:>11.1f}"
        print(line, flush=True)
        rows.append(row)
    if not args.no_memory and args.memory_d:
        print("\nmemory as d grows (N = d, K = 10): dense d x d covariances + pinv vs ncutils")
        print(f"{'d':>6} {'dense s':>8} {'ncutils s':>10} {'dense MiB':>10} {'ncutils MiB':>12}")
        for d in args.memory_d:
            X, y = make_features(d, d, 10)
            with tempfile.TemporaryDirectory() as tmp:
                np.save(f"{tmp}/X.npy", X)
                np.save(f"{tmp}/y.npy", y)
                t_dense, v_dense = best_time(dense_nc1, X, y, repeat=1)
                t_ours, v_ours = best_time(ours, X, y, repeat=1)
                mem = {m: peak_extra_mib(m, tmp) for m in ("dense", "ncutils")}
            print(f"{d:>6} {t_dense:>8.2f} {t_ours:>10.3f} {mem['dense']:>10.1f} {mem['ncutils']:>12.1f}",
                  flush=True)
            rows.append({"memory_d": d, "dense_s": t_dense, "ncutils_s": t_ours,
                         "dense_extra_mib": mem["dense"], "ncutils_extra_mib": mem["ncutils"],
                         "rel_diff": abs(v_ours - v_dense) / abs(v_dense)})
    ok = all(r["speedup"] >= 40 and r["rel_diff"] <= 1e-6 for r in rows if "speedup" in r)
    print("targets (>= 40x, <= 1e-6):", "met" if ok else "NOT met")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    if not ok:
        sys.exit(1)


if __name__ == "__main__":
    main()
