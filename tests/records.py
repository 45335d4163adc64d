"""Comparing stored results of two runs: everything but the wall-clock fields."""

from typing import Any

#: Wall-clock fields of results (with every key ending in ``seconds``): the only parts of a result that
#: may differ between two runs of one configuration on one machine at one thread count.
TIMING_FIELDS = frozenset({"seconds", "reference s", "ncutils s", "speed-up", "ncutils GPU s", "peak_mib",
                           "started", "finished"})


def without_timings(result: Any) -> Any:
    """``result`` with its wall-clock fields (:data:`TIMING_FIELDS`) removed, at every depth."""
    if isinstance(result, dict):
        return {k: without_timings(v) for k, v in result.items()
                if k not in TIMING_FIELDS and not str(k).endswith("seconds")}
    if isinstance(result, list):
        return [without_timings(v) for v in result]
    return result
