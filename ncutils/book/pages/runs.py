"""The book's page "About this build": the machine the numbers were computed on and, per chapter, its status,
time and peak memory in this build."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

__all__ = ["ChapterRun", "runs_page"]


class ChapterRun(Protocol):
    """What the page reads of one chapter's run (the runner's record has these fields)."""

    name: str
    status: str  # ok | failed | reused | not run
    seconds: float | None
    peak_mib: float | None
    error: str | None
    failed_cell: int | None
    finished: str | None


def runs_page(profile: str, records: Sequence[ChapterRun], info: dict) -> str:
    """The page: ``info`` describes the machine (``device``, ``processor``, ``cpus``, ``threads``, ``python``,
    ``torch``); ``records`` are the chapters in order; the build's time is now."""
    lines = [
        "# About this build", "",
        f"Profile **{profile}**, built {time.strftime('%Y-%m-%d %H:%M')} on {info.get('device', '?')} "
        f"({info.get('processor', '?')}, {info.get('cpus')} CPU cores, {info.get('threads', '?')} torch threads; "
        f"Python {info.get('python')}, torch {info.get('torch', '?')}).",
        "Times are wall-clock seconds of each notebook's own execution and memory is the peak resident "
        "memory of its kernel. Reused chapters were not executed again: their figures are from the run "
        "recorded on the date shown.", "",
        "| chapter | status | time (s) | peak memory (MiB) | executed |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        sec = f"{r.seconds:.1f}" if r.seconds is not None else "-"
        mem = f"{r.peak_mib:.0f}" if r.peak_mib is not None else "-"
        lines.append(f"| {r.name} | {r.status} | {sec} | {mem} | {r.finished or '-'} |")
    failed = [r for r in records if r.status == "failed"]
    if failed:
        lines += ["", "Failed chapters:", ""]
        lines += [f"- {r.name}" + (f": cell In [{r.failed_cell}]" if r.failed_cell is not None else "")
                  + f": {r.error}" for r in failed]
    return "\n".join(lines) + "\n"
