"""The plan of a run: every unit the selected chapters need, what each needs, and what it costs.

``python -m ncutils.book --profile paper --plan`` prints, per chapter and unit kind, how many units
there are and how many are already stored; the datasets and public weights they need; and an
estimate of the compute they take, from timing a few real-size steps of each distinct network and
mode on the current device (on a GPU the estimate is in GPU-hours). ``--json FILE`` writes one object
per unit: its chapters, kind, key, dependencies, stored or not, estimated seconds, and its complete
configuration (which includes the dataset, split and classes it trains and evaluates on).
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from ncutils.book import datasets, grids
from ncutils.book.engine.compute import fixed_threads
from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit, closure
from ncutils.pretrain.losses import CONTRASTIVE

__all__ = ["PixelTimer", "chapter_units", "estimate", "flatten", "fmt_seconds", "needs", "remaining_seconds",
           "show"]


def chapter_units(settings_by_notebook: Mapping[Path, Any], *, dry_run: str | None = None) -> dict[str, list[Unit]]:
    """``{chapter name: its units with their dependencies}`` for each notebook's settings
    (:mod:`ncutils.book.settings`), rewritten for the dry run when ``dry_run`` is given."""
    from ncutils.book.runner.chapters import chapter_number

    out = {}
    for nb, settings in settings_by_notebook.items():
        n = chapter_number(nb)
        if n in grids.GRIDS:
            out[nb.stem] = grids.all_units(grids.grid(n, settings, dry_run=dry_run))
    return out


def flatten(chapters: Mapping[str, list[Unit]]) -> list[Unit]:
    """Every unit of the chapters once, dependencies first."""
    return closure(u for units in chapters.values() for u in units)


def _walk(value: Any) -> Iterator[Mapping[str, Any]]:
    """Every dict inside a configuration, not descending into nested units."""
    if isinstance(value, Mapping):
        yield value
        for v in value.values():
            yield from _walk(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _walk(v)


def _is_dataset(d: Mapping[str, Any]) -> bool:
    return "source" in d and "split" in d and not isinstance(d.get("source"), Unit)


def needs(u: Unit) -> dict[str, list[str]]:
    """The on-disk datasets and public weights unit ``u`` itself reads (not its dependencies')."""
    data, weights = set(), set()
    for d in _walk(u.config):
        if _is_dataset(d):
            data.update(datasets.required_files(d))
        if isinstance(d.get("public"), str):
            weights.add(d["public"])
    return {"datasets": sorted(data), "weights": sorted(weights)}


# --------------------------------------------------------------------------- cost
class _Timer:
    """Seconds per image of forward passes and training steps, measured once per network and mode."""

    #: The largest batch a step is timed with on a CPU.
    CPU_BATCH = 64

    def __init__(self, device: str = "auto"):
        from ncutils.runtime import resolve_device

        self.device = resolve_device(device)
        self.cache: dict[str, float] = {}

    def _time(self, key: str, make, shape: tuple[int, ...], batch: int, train: bool) -> float:
        # the unit's own batch (at most CPU_BATCH on a CPU) and thread count: the per-image cost of a step falls
        # steeply with the batch on a CPU, and units compute with UNIT_THREADS threads each
        b = batch if self.device.type == "cuda" else min(batch, self.CPU_BATCH)
        key = f"{key}|batch {b}"
        if key in self.cache:
            return self.cache[key]
        with fixed_threads() if self.device.type == "cpu" else contextlib.nullcontext():
            self.cache[key] = self._per_image(make, shape, b, train)
        return self.cache[key]

    def _per_image(self, make, shape: tuple[int, ...], b: int, train: bool) -> float:
        import torch

        net = make().to(self.device)
        x = torch.randn(b, *shape, device=self.device)
        y = torch.zeros(b, dtype=torch.long, device=self.device)
        params = [p for p in net.parameters() if p.requires_grad]
        opt = torch.optim.SGD(params, lr=1e-3) if train and params else None

        def step():
            if opt is None:
                with torch.no_grad():
                    net.eval()(x)
                return
            net.train()
            out = net(x)
            loss = torch.nn.functional.cross_entropy(out.flatten(1)[:, :2].float(), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.device.type == "cuda"):
            step()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(2):
                step()
            if self.device.type == "cuda":
                torch.cuda.synchronize()
        return (time.perf_counter() - t0) / (2 * b)

    def encoder(self, backbone: Mapping[str, Any], shape, batch: int, train: bool = False) -> float:
        from ncutils.book import networks

        key = json.dumps([networks.architecture(backbone), shape, train])
        return self._time(key, lambda: networks.untrained(backbone), shape, batch, train)

    def pretrain(self, cfg: Mapping[str, Any]) -> float:
        from ncutils.book.networks import build_net

        s = cfg["data"]
        key = json.dumps([cfg["network"], cfg["loss"], cfg["head_layers"], cfg["num_classes"], s["image_size"]])
        return self._time(key, lambda: build_net(cfg), (s["channels"], s["image_size"], s["image_size"]),
                          cfg["batch_size"], True)

    def finetune(self, cfg: Mapping[str, Any]) -> float:
        from ncutils import finetune
        from ncutils.book import networks

        s = cfg["train"]
        key = json.dumps([networks.architecture(cfg["backbone"]), cfg["method"], cfg["block"], s["image_size"]])

        def make():
            return finetune.build(networks.untrained(cfg["backbone"]), cfg["method"], cfg["num_classes"],
                                  block=cfg["block"])

        return self._time(key, make, (s["channels"], s["image_size"], s["image_size"]), cfg["batch_size"], True)


class PixelTimer(_Timer):
    """Cost per image proportional to its number of pixels (a training step three times a forward pass), in
    nominal seconds of one CPU thread: ranks units by the work they do without building or timing a network
    (for dealing units to workers, for choosing cheap units, and as the planned cost that the fan-out's
    progress estimate corrects as units finish, :func:`remaining_seconds`; not for reporting hours)."""

    #: Seconds per pixel of a forward pass on one CPU thread: actual over estimated cost of 1,660 units of
    #: the cpu profile computed on one AMD EPYC thread, pooled (3.2e-7; by kind from 2.5e-7, pre-training,
    #: to 4.4e-6, layer-wise probes). Only a start: the fan-out corrects it by the units it finishes.
    SECONDS_PER_PIXEL = 3e-7

    def __init__(self):
        super().__init__("cpu")

    def _time(self, key: str, make, shape: tuple[int, ...], batch: int, train: bool) -> float:
        return float(math.prod(shape)) * (3.0 if train else 1.0) * self.SECONDS_PER_PIXEL


def _size(spec: Mapping[str, Any]) -> int:
    return datasets.size(spec)


def _shape(spec: Mapping[str, Any]) -> tuple[int, int, int]:
    return (spec["channels"], spec["image_size"], spec["image_size"])


def estimate(u: Unit, timer: _Timer) -> float:
    """Estimated seconds to compute ``u`` on the timer's device (its dependencies not included)."""
    c = u.config
    k = u.kind
    if k == "pretrain":
        n = _size(c["data"])
        views = 2 if c["loss"] in CONTRASTIVE else 1
        pgd = (c["pgd_steps"] or 0) + 1 if c.get("adv_eps") is not None else 1
        step = timer.pretrain(c) * views * pgd
        fwd = step / 3
        nc_passes = math.ceil(c["epochs"] / (c.get("nc_every") or c["epochs"])) + 1
        return c["epochs"] * n * step + nc_passes * n * fwd
    if k in ("probe", "layerwise_probe"):
        n = _size(c["train"]) + _size(c["test"])
        layers = len(c.get("layers", [1]))
        return n * timer.encoder(c["backbone"], _shape(c["train"]), c["loader_batch"]) + 2e-6 * c["epochs"] * n * layers
    if k == "layer_nc":
        return _size(c["data"]) * timer.encoder(c["backbone"], _shape(c["data"]), c["loader_batch"])
    if k == "transfer_scores":
        return _size(c["data"]) * timer.encoder(c["backbone"], _shape(c["data"]), c["loader_batch"]) + 2.0
    if k == "fewshot_eval":
        n = _size(c["data"])
        return n * timer.encoder(c["backbone"], _shape(c["data"]), c["loader_batch"]) + \
            0.02 * c["episodes"] * len(c["shots"])
    if k == "finetune":
        n, nt = _size(c["train"]), _size(c["test"])
        step = timer.finetune(c)
        fwd = timer.encoder(c["backbone"], _shape(c["test"]), 256)
        return c["epochs"] * n * step + (nt + n * (2 if c.get("layerwise") else 1)) * fwd
    if k == "nc1_cost":
        return 1.0 + c["samples"] * c["dim"] ** 2 * 2e-9
    if k == "param_percentages":
        return 0.1 * len(c["cells"])
    return 1.0


def remaining_seconds(planned: Mapping[Any, float], actual: Mapping[Any, float], *, workers: int = 1,
                      group: Callable[[Any], Any] | None = None) -> float:
    """Estimated wall-clock seconds left to compute the units of ``planned`` (planned cost of every unit of
    the run, e.g. :func:`estimate` with a :class:`PixelTimer`) of which those in ``actual`` have finished,
    taking the seconds given there.

    The planned cost of the units left, times the ratio of actual to planned cost of the units finished so
    far (1 before any has: the plan is taken at its word), spread over ``workers`` (never more than units
    left). Units weigh by their cost, not their count: ten quick units finished say little about one long
    unit left, and a long unit finished first corrects the estimate of the others.

    With ``group`` (a unit's kind, say), the ratio is taken within each group: the plan's error differs by kind
    (its per-pixel cost fits one kind better than another), so a group's units left are corrected by the units
    of that group finished so far, and a group with none finished yet is taken at the plan's word.
    """
    left = [u for u in planned if u not in actual]
    if not left:
        return 0.0
    key = group or (lambda u: None)
    done_planned: dict[Any, float] = {}
    done_actual: dict[Any, float] = {}
    for u in actual:
        if u in planned:
            done_planned[key(u)] = done_planned.get(key(u), 0.0) + planned[u]
            done_actual[key(u)] = done_actual.get(key(u), 0.0) + actual[u]

    def ratio(g: Any) -> float:
        p, a = done_planned.get(g, 0.0), done_actual.get(g, 0.0)
        return a / p if p > 0 and a > 0 else 1.0

    return sum(ratio(key(u)) * planned[u] for u in left) / max(1, min(workers, len(left)))


# --------------------------------------------------------------------------- output
def fmt_seconds(seconds: float) -> str:
    """``seconds`` for people: "42 s", "3.5 min", "1.2 h"."""
    if seconds >= 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.0f} s"


def show(chapters: Mapping[str, list[Unit]], *, store_dir: Path, json_path: str | None = None,
         timing: bool = True, dry_run: bool | str = False, device: str = "auto", workers: int = 1) -> int:
    """Print the plan (and write it as JSON); returns the process exit code. ``workers``: the units computed side
    by side (the local executor's), for the estimate of the wall-clock time."""
    store = Store(store_dir)
    units = flatten(chapters)
    owners: dict[Unit, list[str]] = defaultdict(list)
    for name, us in chapters.items():
        for u in us:
            owners[u].append(name)
    stored = {u: u in store for u in units}
    timer = _Timer(device) if timing else None
    cost: dict[Unit, float | None] = {}
    t0 = time.perf_counter()
    for u in units:
        cost[u] = None if timer is None else estimate(u, timer)
    where = "GPU" if timer is not None and timer.device.type == "cuda" else "CPU"
    print(f"plan: {len(units)} units ({sum(stored.values())} stored) for {len(chapters)} chapters"
          + (f" [dry run ({dry_run} scale): synthetic stand-ins, random weights, 1-2 steps]" if dry_run else ""))
    for name, us in chapters.items():
        kinds = Counter(u.kind for u in us)
        todo = [u for u in us if not stored[u]]
        secs = sum(cost[u] or 0 for u in todo) if timer else None
        print(f"  {name}: {len(us)} units ({len(us) - len(todo)} stored): "
              + ", ".join(f"{k} x{v}" for k, v in sorted(kinds.items()))
              + (f"; to compute ~{fmt_seconds(secs)} on this {where}" if secs is not None else ""))
    data = sorted({d for u in units for d in needs(u)["datasets"]})
    weights = sorted({w for u in units for w in needs(u)["weights"]})
    print(f"  datasets: {', '.join(data) or 'none on disk (offline or synthetic data)'}")
    print(f"  public weights: {', '.join(weights) or 'none'}")
    if timer is not None:
        todo = sum(cost[u] for u in units if not stored[u])
        unit_hours = todo / 3600
        longest = max((u for u in units if not stored[u]), key=lambda u: cost[u], default=None)
        print(f"  estimated compute of the {sum(not s for s in stored.values())} missing units: {fmt_seconds(todo)} "
              f"({unit_hours:.1f} {where}-hours on this {timer.device}; timing took {time.perf_counter() - t0:.0f} s)"
              + (f"; about {fmt_seconds(todo / workers)} on {workers} workers side by side" if workers > 1 else ""))
        if longest is not None:
            print(f"  longest unit: {longest.describe()} ~{fmt_seconds(cost[longest])}")
    if json_path:
        rows = [{"key": u.key, "kind": u.kind, "chapters": owners.get(u, []), "deps": [d.key for d in u.deps],
                 "stored": stored[u], "estimated_seconds": cost[u], "needs": needs(u),
                 "config": u.to_json()["config"]} for u in units]
        text = json.dumps({"units": rows}, indent=1)
        if json_path == "-":
            sys.stdout.write(text + "\n")
        else:
            Path(json_path).write_text(text)
            print(f"  plan written to {json_path}")
    return 0
