"""The runner unattended: an interrupt stops every child and says what was kept, two runs on one build folder
execute each chapter once, the progress estimate weighs units by their cost, and a bad store stops the run
before any compute."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import test_book
from test_book import TINY, _notebook

from ncutils.book.runner import cli
from ncutils.book.runner.plan import remaining_seconds

ROOT = Path(__file__).resolve().parents[1]
tiny_book = test_book.tiny_book  # the fixture: a three-chapter book without units


# --------------------------------------------------------------------------- processes, read from /proc
def _running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"


def _descendants(pid: int) -> dict[int, str]:
    """``{pid: command line}`` of every process descended from ``pid``."""
    parent, cmd = {}, {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat[stat.rindex(")") + 2:].split()[1])
                cmd[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except (OSError, ValueError, IndexError):
                continue
    out, todo = {}, [pid]
    while todo:
        p = todo.pop()
        for child, par in parent.items():
            if par == p and child not in out:
                out[child] = cmd[child]
                todo.append(child)
    return out


def _until(condition, what: str, proc: subprocess.Popen, limit_s: float = 120):
    """Wait for ``condition()`` to be true (a guard against hanging, not a timing assertion)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the run ended (code {proc.returncode}) before {what}:\n{out[-3000:]}\n{err[-3000:]}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"no {what} after {limit_s} s")
        time.sleep(0.1)


def _start(cmd: list[str], env: dict | None = None) -> subprocess.Popen:
    """The runner in its own process group, as a shell starts a command in a terminal."""
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def _assert_stopped_cleanly(out: str, err: str, returncode: int, children: dict[int, str], name: str) -> str:
    """Exit code 128 + the signal, no traceback, no child left, one line saying so: returns that line."""
    assert returncode == 128 + signal.Signals[name], out[-3000:] + err[-3000:]
    assert "Traceback" not in out + err, err[-3000:]
    said = [line for line in out.splitlines() if line.startswith("interrupted")]
    assert len(said) == 1 and said[0].startswith(f"interrupted by {name}: "), out[-3000:]
    assert "to resume, run the same command" in said[0]
    left = {pid: cmd for pid, cmd in children.items() if _running(pid)}
    assert not left, f"orphaned: {left}"
    return said[0]


# --------------------------------------------------------------------------- 1. interrupts
SLEEPY = '''
"""A unit kind that sleeps, and the local job that knows it (imported by the fan-out's jobs too)."""
import time

from ncutils.book.engine import units
from ncutils.book.runner.executors import jobs


@units.kind("test_sleep")
def sleep(ctx, *, i: int, seconds: float) -> dict:
    time.sleep(seconds)
    return {"i": i}


UNITS = [units.Unit("test_sleep", {"i": i, "seconds": 0.0 if i < 2 else 600.0}) for i in range(5)]


def run_units_job(*args, **kwargs):
    return jobs.run_units_job(*args, **kwargs)
'''

DRIVER = '''
import sys

import sleepy
from ncutils.book.runner import cli
from ncutils.book.runner.executors import local

local.run_units_job = sleepy.run_units_job  # jobs that know the test's kind
cli.plan_units = lambda run: {"01_ok": sleepy.UNITS}
sys.exit(cli.main(sys.argv[1:]))
'''


def test_ctrl_c_during_the_fan_out_stops_every_job_and_says_what_is_stored(tiny_book, tmp_path):
    """Ctrl-C (SIGINT to the terminal's whole process group) while two local jobs compute: no traceback from
    the runner or submitit's controllers, no process left, one line with the units stored; exit code 130."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "sleepy.py").write_text(textwrap.dedent(SLEEPY))
    (code / "driver.py").write_text(textwrap.dedent(DRIVER))
    store = tmp_path / "store"
    proc = _start([sys.executable, str(code / "driver.py"), "--root", str(tiny_book), "--profile", "cpu",
                   "--only", "1", "--no-build", "--quiet", "--workers", "2", "--store", str(store)],
                  env={"PYTHONPATH": str(code), "OMP_NUM_THREADS": "1"})
    logs = tiny_book / "_build" / "cpu" / "submitit"

    def both_jobs_sleep() -> bool:  # two units stored, and each job inside a sleeping unit
        text = "".join(p.read_text(errors="replace") for p in logs.glob("*/*_log.out"))
        return len(list(store.glob("test_sleep/*.json"))) == 2 and text.count("unit test_sleep-") == 4

    _until(both_jobs_sleep, "two jobs computing sleeping units", proc)
    children = _descendants(proc.pid)
    assert sum("submitit.local._local" in c for c in children.values()) == 2, children
    assert sum("submitit.core._submit" in c for c in children.values()) == 2, children
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    said = _assert_stopped_cleanly(out, err, proc.returncode, children, "SIGINT")  # exit code 130
    assert f"2 of 5 units stored in {store}" in said


def test_sigterm_during_the_chapters_stops_each_chapter_and_its_kernel(tiny_book, capfd):
    """SIGTERM to the runner alone (a batch system, ``kill``; here the runner is this process) while a chapter
    runs: its papermill process and kernel are stopped, the chapter is recorded as interrupted (never reused),
    one line; exit code 143."""
    _notebook(tiny_book / "book" / "01_ok.ipynb", "import time\ntime.sleep(600)")
    log = tiny_book / "_build" / "cpu" / "logs" / "01_ok.log"
    children: dict[int, str] = {}

    def terminate_when_the_chapter_sleeps() -> None:
        deadline = time.monotonic() + 120
        # cells: parameters [1], papermill's injected parameters [2], the sleep [3]
        while not (log.exists() and "Executing Cell 3-" in log.read_text(errors="replace")):
            if time.monotonic() > deadline:
                return  # the chapter never started: the run ends by itself and the test fails below
            time.sleep(0.1)
        children.update(_descendants(os.getpid()))
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=terminate_when_the_chapter_sleeps)
    killer.start()
    code = cli.main(["--root", str(tiny_book), *TINY, "--only", "1", "--no-build", "--quiet"])
    killer.join()
    out, err = capfd.readouterr()
    assert any("ipykernel" in c for c in children.values()), children  # the kernel is the runner's descendant
    said = _assert_stopped_cleanly(out, err, code, children, "SIGTERM")  # exit code 143
    assert f"every unit computed so far is stored in {tiny_book / '_build' / 'store'}" in said
    runs = {r["name"]: r for r in json.loads((tiny_book / "_build" / "cpu" / "runs.json").read_text())}
    assert runs["01_ok"]["status"] == "interrupted"


# --------------------------------------------------------------------------- 2. two runs, one build folder
def test_two_runs_on_one_build_folder_execute_a_chapter_once(tiny_book, monkeypatch, capsys):
    """The second run waits for the chapter the first is executing, says so, then reuses it (same key)."""
    executed, started, release = [], threading.Event(), threading.Event()

    def execute(nb, out, params, log, label, progress, env=None):  # a chapter that runs until released
        executed.append(nb.stem)
        started.set()
        assert release.wait(60)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text("{}")
        return {"status": "ok", "seconds": 1.0}

    monkeypatch.setattr(cli, "execute", execute)
    runs = [cli.parse(["--root", str(tiny_book), *TINY, "--only", "1", "--quiet"]) for _ in range(2)]
    for run in runs:
        run.chapter_params(compute_missing=True)
    records = {}

    def chapters(i):
        records[i] = cli.run_chapters(runs[i], side_by_side=1)

    first = threading.Thread(target=chapters, args=(0,))
    first.start()
    assert started.wait(60)
    second = threading.Thread(target=chapters, args=(1,))
    second.start()
    seen = ""
    deadline = time.monotonic() + 60
    while "another run is executing 01_ok" not in seen and time.monotonic() < deadline:
        time.sleep(0.05)
        seen += capsys.readouterr().out
    release.set()
    first.join(60)
    second.join(60)
    seen += capsys.readouterr().out
    assert "[1/1] 01_ok: another run is executing 01_ok into" in seen and "waiting for it" in seen
    assert executed == ["01_ok"]  # once, by the first run
    assert records[0]["01_ok"].status == "ok" and records[1]["01_ok"].status == "reused"
    assert "01_ok: unchanged since" in seen and "reused" in seen


def test_a_chapter_is_reused_only_when_its_key_matches_and_it_completed(tmp_path):
    executed = tmp_path / "01.ipynb"
    executed.write_text("{}")
    done = cli.Record("01", status="ok", fingerprint="k1", finished_at=100.0)
    assert cli.reusable(done, "k1", executed, None)
    assert not cli.reusable(done, "k2", executed, None)  # another notebook, code or parameters
    assert not cli.reusable(cli.Record("01", status="interrupted"), "k1", executed, None)
    assert not cli.reusable(cli.Record("01", status="running", fingerprint="k1"), "k1", executed, None)
    assert not cli.reusable(done, "k1", tmp_path / "missing.ipynb", None)
    # --fresh: only what was executed after the run began (by another run on the same folder)
    assert cli.reusable(done, "k1", executed, 50.0) and not cli.reusable(done, "k1", executed, 150.0)


# --------------------------------------------------------------------------- 3. the progress estimate
def test_the_estimate_weighs_units_by_planned_cost_not_count():
    planned = {"cheap-1": 10.0, "cheap-2": 10.0, "long": 1000.0}
    assert remaining_seconds(planned, {}) == 1020.0  # nothing finished: the plan at its word
    # the two cheap units took twice their plan: the long one will too; two units of three done is no hint
    assert remaining_seconds(planned, {"cheap-1": 20.0, "cheap-2": 20.0}) == 2000.0
    # the long unit finished first, at half its plan: the cheap ones are expected at half theirs
    assert remaining_seconds(planned, {"long": 500.0}) == 10.0
    assert remaining_seconds(planned, {"long": 500.0}, workers=2) == 5.0
    assert remaining_seconds(planned, {"long": 500.0, "cheap-1": 10.0}, workers=4) == pytest.approx(510 / 1010 * 10)
    assert remaining_seconds(planned, dict.fromkeys(planned, 1.0)) == 0.0
    assert remaining_seconds({"a": 0.0, "b": 5.0}, {"a": 3.0}) == 5.0  # no planned cost finished: ratio 1


def test_the_estimate_corrects_each_kind_by_its_own_finished_units():
    """A probe finished at a tenth of its plan says nothing about a pre-training unit's error: by kind, the
    pre-training units left keep the plan's word until one of them finishes."""
    planned = {"probe-1": 100.0, "probe-2": 100.0, "pretrain-1": 1000.0, "pretrain-2": 1000.0}
    kind = lambda u: u.split("-")[0]  # noqa: E731
    pooled = remaining_seconds(planned, {"probe-1": 10.0})
    by_kind = remaining_seconds(planned, {"probe-1": 10.0}, group=kind)
    assert pooled == pytest.approx(0.1 * 2100) and by_kind == pytest.approx(10.0 + 2000.0)
    # one pre-training unit at twice its plan: the other is expected at twice too, the probe at a tenth
    assert remaining_seconds(planned, {"probe-1": 10.0, "pretrain-1": 2000.0}, group=kind) == pytest.approx(2010.0)
    assert remaining_seconds(planned, {"probe-1": 10.0}, group=kind, workers=2) == pytest.approx(2010.0 / 2)


def test_planned_costs_are_seconds_of_one_cpu_thread():
    """The fan-out's planned costs are nominal seconds (a unit of seconds and one of pixels add up)."""
    from ncutils.book.engine.units import Unit
    from ncutils.book.runner.executors.jobs import planned_costs

    nc = Unit("nc_constructed", {"classes": 4, "dim": 8, "per_class": 5, "sigmas": [0.0], "seed": 0})
    assert 0.0 < planned_costs([nc])[nc] < 60.0


# --------------------------------------------------------------------------- 4. a bad store
def test_a_store_that_is_a_file_stops_the_run_in_one_line_before_any_compute(tiny_book, tmp_path, monkeypatch):
    not_a_folder = tmp_path / "store.json"
    not_a_folder.write_text("{}")

    def never(*args, **kwargs):
        raise AssertionError("computed before the store was checked")

    for step in ("plan_units", "run_chapters", "compute_units"):
        monkeypatch.setattr(cli, step, never)
    with pytest.raises(SystemExit) as stopped:
        cli.main(["--root", str(tiny_book), "--profile", "cpu", "--only", "1", "--store", str(not_a_folder)])
    message = stopped.value.code
    assert isinstance(message, str) and "\n" not in message  # printed on stderr, exit status 1
    assert str(not_a_folder) in message and "is a file" in message and "--store" in message
    assert not (tiny_book / "_build" / "cpu").exists()
