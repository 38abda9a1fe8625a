"""`engine.when_waiting`: a run tells once that its process waits on its steps alone (a warm
server's copy then has the next command's copy prepared meanwhile, docs/server.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import run_text

from wfx.runtime import engine


@pytest.fixture
def heard() -> Iterator[list[float]]:
    """When the hook was called (monotonic times); no hook is left behind."""
    calls: list[float] = []
    engine.when_waiting(lambda: calls.append(time.monotonic()))
    yield calls
    engine._WAITING_HOOK.clear()


def test_a_run_waiting_on_a_process_says_so_once_while_it_waits(
    tmp_path: Path, heard: list[float]
) -> None:
    before = time.monotonic()
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: nap
            run: sleep 0.6
          - id: again
            run: sleep 0.3
        """,
    )
    assert run.result.exit_code == 0
    assert len(heard) == 1  # once, though the run waits twice
    waited = heard[0] - before
    assert waited < 0.5, f"told {waited:.2f} s after the start, not while the first step slept"


def test_a_run_whose_own_process_works_never_says_so(tmp_path: Path, heard: list[float]) -> None:
    """A Python step runs in wfx's own process: while it computes, wfx is not waiting."""

    def spin() -> dict[str, str]:
        end = time.process_time() + 0.5
        while time.process_time() < end:
            pass
        return {}

    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: work
            uses: python:t:spin
        """,
        actions={"python:t:spin": spin},
    )
    assert run.result.exit_code == 0
    assert heard == []


STARVED = """
import os, subprocess, sys, time
from pathlib import Path
import anyio
from wfx.api import compile_file
from wfx.runtime import engine

cpu, root = int(sys.argv[1]), Path(sys.argv[2])
(root / "wf.yaml").write_text("wfx: 1\\nsteps:\\n  - {id: work, uses: 'python:t:spin'}\\n")
graph = compile_file(root / "wf.yaml").graph
heard = []
engine.when_waiting(lambda: heard.append(1))

def spin():
    end = time.monotonic() + 0.6
    while time.monotonic() < end:
        pass
    return {}

options = engine.RunOptions(actions={"python:t:spin": spin}, workspace=root / "workspace")
hog = f"import os\\nos.sched_setaffinity(0, {{{cpu}}})\\nwhile True: pass"
hogs = [subprocess.Popen([sys.executable, "-c", hog])]
try:
    os.sched_setaffinity(0, {cpu})
    os.setpriority(os.PRIO_PROCESS, 0, 10)  # the busy process beside it gets 90 % of it
    result = anyio.run(lambda: engine.run(graph, options=options))
finally:
    for process in hogs:
        process.kill()
print(result.exit_code, len(heard))
"""


def test_a_run_starved_of_cpu_is_not_taken_for_waiting(tmp_path: Path) -> None:
    """A run that wants the CPU and gets little of it (a busy process on its one CPU,
    itself at nice 10, while a Python step computes) spends almost no CPU
    time, yet it is not waiting: the time it waited for a CPU counts as wanted."""
    cpu = min(os.sched_getaffinity(0))
    done = subprocess.run(
        [sys.executable, "-c", STARVED, str(cpu), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["0", "0"]
