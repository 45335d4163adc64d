"""Stopping a run cleanly: SIGINT and SIGTERM as one exception, and the runner's child processes stopped with it.

A run that is interrupted (Ctrl-C, ``kill``, a batch system ending the session) must leave no process behind
and say in one line what it kept. :func:`raising` turns the first SIGINT or SIGTERM into
:class:`Interrupted` in the main thread (later signals are ignored while the run stops); the runner then
stops its children with :func:`stop_tree` (the chapter processes registered in :data:`CHILDREN`, the
fan-out's jobs) and exits with :attr:`Interrupted.exit_code` (130 for SIGINT, 143 for SIGTERM).

Children are started in their own session, so that Ctrl-C in a terminal reaches the runner only (each child
would otherwise print its own traceback) and the runner stops them in order. A process tree is read from
``/proc`` (Linux); elsewhere only the child itself is known and signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

__all__ = ["CHILDREN", "Children", "Interrupted", "alive", "process_tree", "raising", "stop_tree"]

#: Seconds a stopped process gets to end by itself before it is killed.
GRACE_S = 10.0


class Interrupted(KeyboardInterrupt):
    """The run received ``signum`` (SIGINT or SIGTERM). A :class:`KeyboardInterrupt`, so that code which
    already cleans up after Ctrl-C does so after SIGTERM too."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal's number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


@contextlib.contextmanager
def raising(signals: Sequence[int] = (signal.SIGINT, signal.SIGTERM)) -> Iterator[None]:
    """Within the block, the first of ``signals`` raises :class:`Interrupted` in the main thread; any later
    one is ignored, so that a second Ctrl-C cannot break the clean-up the first started. Off the main thread
    (where Python cannot install handlers), or inside another such block, the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread() or \
            getattr(signal.getsignal(signals[0]), "raises_interrupted", False):
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if not fired:
            fired.append(signum)
            raise Interrupted(signum)

    handler.raises_interrupted = True
    previous = {s: signal.signal(s, handler) for s in signals}
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def _stat(pid: int) -> tuple[str, int] | None:
    """``(state, parent pid)`` of process ``pid`` from ``/proc``, or None when there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name, in parentheses, may hold spaces
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    """Whether process ``pid`` still runs (a zombie, ended but not yet reaped, does not)."""
    if Path("/proc").is_dir():
        st = _stat(pid)
        return st is not None and st[0] not in ("Z", "X")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def process_tree(pid: int) -> list[int]:
    """``pid`` and every process descended from it, parents first (only ``pid`` where ``/proc`` is missing)."""
    if not Path("/proc").is_dir():
        return [pid]
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                children.setdefault(st[1], []).append(int(entry.name))
    out, todo = [], [pid]
    while todo:
        p = todo.pop(0)
        out.append(p)
        todo.extend(sorted(children.get(p, [])))
    return out


def _signal(pids: Sequence[int], sig: int) -> None:
    for p in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(p, sig)


def stop_tree(pid: int, sig: int = signal.SIGTERM, *, grace_s: float = GRACE_S, spare_root: bool = False,
              reap: subprocess.Popen | None = None) -> None:
    """Stop process ``pid`` and its descendants: send ``sig`` to each (not to ``pid`` itself with
    ``spare_root``, for a parent that ends by itself once its children have), wait up to ``grace_s``
    seconds for all of them to end, then kill what is left. ``reap``: ``pid``'s :class:`~subprocess.Popen`,
    polled so that it does not stay a zombie."""
    tree = process_tree(pid)
    _signal(tree[1:] if spare_root else tree, sig)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if reap is not None:
            reap.poll()
        if alive(pid):  # a child started meanwhile is stopped too
            new = [p for p in process_tree(pid) if p not in tree]
            _signal(new, sig)
            tree += new
        if not any(alive(p) for p in tree):
            return
        time.sleep(0.05)
    _signal([p for p in (process_tree(pid) if alive(pid) else []) if p not in tree] + tree, signal.SIGKILL)
    if reap is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            reap.wait(timeout=5)


class Children:
    """The runner's child processes (chapters, the book build), each started in its own session and
    stopped, with everything it started, by :meth:`stop_all`; after that, no new one starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._procs: list[subprocess.Popen] = []
        self._stopped: int | None = None

    def start(self, cmd: Sequence[str], **popen_kwargs) -> subprocess.Popen:
        """``subprocess.Popen(cmd, ...)`` in a new session, registered until :meth:`forget`; raises
        :class:`Interrupted` once :meth:`stop_all` has run."""
        with self._lock:
            if self._stopped is not None:
                raise Interrupted(self._stopped)
            proc = subprocess.Popen(cmd, start_new_session=True, **popen_kwargs)
            self._procs.append(proc)
            return proc

    def forget(self, proc: subprocess.Popen) -> None:
        with self._lock:
            if proc in self._procs:
                self._procs.remove(proc)

    @contextlib.contextmanager
    def running(self, cmd: Sequence[str], **popen_kwargs) -> Iterator[subprocess.Popen]:
        """:meth:`start` ``cmd`` for the block, which waits for it; an exception in the block stops it (and what
        it started) before it propagates."""
        proc = self.start(cmd, **popen_kwargs)
        try:
            yield proc
        except BaseException:
            stop_tree(proc.pid, reap=proc)
            raise
        finally:
            self.forget(proc)

    def stop_all(self, signum: int = signal.SIGTERM, *, grace_s: float = GRACE_S) -> None:
        """Stop every registered child and its descendants (SIGTERM, then SIGKILL after ``grace_s``), in
        parallel; ``signum`` is what :meth:`start` raises from now on."""
        with self._lock:
            self._stopped = signum
            procs, self._procs = list(self._procs), []
        threads = [threading.Thread(target=stop_tree, args=(p.pid,), kwargs={"grace_s": grace_s, "reap": p})
                   for p in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    def reset(self) -> None:
        """Allow children again (a new run in the same process, e.g. a test)."""
        with self._lock:
            self._stopped = None


#: The children of this process's run.
CHILDREN = Children()
