"""Running units: reuse a stored result, or compute the unit (its dependencies first) and store it.

:class:`Context` carries what a unit needs besides its configuration: the store, the device, where
the datasets live, whether to show progress, and whether missing results may be computed here
(``compute_missing=False`` makes a notebook fail fast when a fan-out run left a unit missing).

A unit computes with :data:`UNIT_THREADS` CPU threads (torch's intra-op pool and the BLAS libraries'),
whatever the process it runs in: reductions split over more threads round differently, so a unit's numbers
would otherwise depend on whether it ran in a notebook, in a fan-out job or on a machine with more cores.
Parallelism comes from computing units side by side (:mod:`ncutils.book.runner.executors`).
"""

from __future__ import annotations

import contextlib
import os
import platform
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch

from ncutils.book.engine.store import Store
from ncutils.book.engine.units import Unit, get_kind

__all__ = ["UNIT_THREADS", "Context", "MissingResult", "compute", "fixed_threads"]

#: CPU threads every unit computes with, in every process (see the module docstring).
UNIT_THREADS = 1


@contextlib.contextmanager
def fixed_threads(n: int = UNIT_THREADS) -> Iterator[None]:
    """Run the body with ``n`` torch intra-op threads and ``n`` BLAS / OpenMP threads, then restore them."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(limits=n):
            yield
    finally:
        torch.set_num_threads(previous)


class MissingResult(LookupError):
    """A unit's result is not in the store and this context may not compute it."""


@dataclass
class Context:
    """Execution settings of units (none of them changes a unit's key).

    Attributes
    ----------
    store : Store
    device : "auto", "cpu", "cuda", ...
    data_root : folder of the paper's datasets (default: ``$NCUTILS_DATA``)
    progress : show progress bars while training
    compute_missing : compute units that are not stored (else raise :class:`MissingResult`)
    log : called with one line per unit computed (e.g. ``print``), or ``None``
    """

    store: Store
    device: str = "auto"
    data_root: str | None = None
    progress: bool = False
    compute_missing: bool = True
    log: Callable[[str], None] | None = None
    current: Unit | None = field(default=None, repr=False)  # the unit being computed
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def result(self, u: Unit) -> Any:
        """The result of ``u``: from memory, from the store, or computed now."""
        return compute(u, self)

    def checkpoint_path(self):
        """Where the unit being computed keeps its resumable checkpoint (deleted once it is stored)."""
        return None if self.current is None else self.store.path(self.current, ".ckpt")

    def load_weights(self, u: Unit) -> dict[str, torch.Tensor]:
        """The network stored with ``u``'s result (computing ``u`` first when needed)."""
        compute(u, self)
        return self.store.load_weights(u)


def _provenance(seconds: float, threads: int) -> dict[str, Any]:
    dev = "cpu"
    if torch.cuda.is_available():
        dev = torch.cuda.get_device_name(0)
    return {"seconds": seconds, "device": dev, "torch": torch.__version__, "threads": threads,
            "python": platform.python_version(), "pid": os.getpid()}


def compute(u: Unit, ctx: Context) -> Any:
    """``u``'s result, computing it and the units it depends on when they are not stored."""
    if u.key in ctx._cache:
        return ctx._cache[u.key]
    result = ctx.store.get(u)
    if result is None:
        if not ctx.compute_missing:
            log = ctx.store.log_path(u)
            hint = f" Its fan-out log: {log}." if log.exists() else ""
            raise MissingResult(f"unit {u.key} ({u.describe()}) is not in the store {ctx.store.root} and this "
                                f"run may not compute it.{hint} Rerun the runner to resubmit it.")
        for dep in u.deps:
            compute(dep, ctx)
        result = _run(u, ctx)
    ctx._cache[u.key] = result
    return result


def _run(u: Unit, ctx: Context) -> Any:
    kind = get_kind(u.kind)
    with ctx.store.lock(u):
        stored = ctx.store.get(u)  # another process may have finished it while we waited
        if stored is not None:
            return stored
        t0 = time.perf_counter()
        outer, ctx.current = ctx.current, u
        try:
            with fixed_threads():
                out = kind.fn(ctx, **u.config)
                threads = torch.get_num_threads()
        finally:
            ctx.current = outer
        state = None
        if kind.stores_weights:
            out, model = out
            state = model.state_dict()
        seconds = time.perf_counter() - t0
        record = ctx.store.write(u, out, provenance=_provenance(seconds, threads), state_dict=state)
        ctx.store.path(u, ".ckpt").unlink(missing_ok=True)
    if ctx.log is not None:
        ctx.log(f"computed {u.key} in {seconds:.1f} s")
    return record["result"]
