"""A resume stops what a dead wfx left of the run's step processes, and nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from wfx.runtime.process import TOKEN_VARIABLE, ProcessTracker, run_token_prefix, stop_leftovers


def _spawn(token: str, script: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        ["sh", "-c", script],
        env={**os.environ, TOKEN_VARIABLE: token},
        start_new_session=True,
    )


def _gone(process: subprocess.Popen[bytes]) -> bool:
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        return False
    return True


def test_the_markers_of_a_runs_processes_name_the_run() -> None:
    token = ProcessTracker("20260101T000000Z-abcd").new_token()
    assert token.startswith(run_token_prefix("20260101T000000Z-abcd"))
    assert token != ProcessTracker("20260101T000000Z-abcd").new_token()


def test_leftovers_get_term_then_kill_and_other_runs_are_untouched(tmp_path: Path) -> None:
    run = "20260101T000000Z-dead"
    polite = _spawn(f"{run}/1", "sleep 30")
    ready = tmp_path / "trapped"
    # its sleep ignores TERM too; it says when its trap is set (a TERM before is no test)
    stubborn = _spawn(f"{run}/2", f"trap '' TERM; touch {ready}; sleep 30 & wait")
    other = _spawn("20260101T000000Z-other/3", "sleep 30")
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        stopped = stop_leftovers(run, grace=0.2)
        assert {polite.pid, stubborn.pid} <= {p.pid for p in stopped}
        assert _gone(polite) and polite.returncode == -signal.SIGTERM
        assert _gone(stubborn) and stubborn.returncode == -signal.SIGKILL
        assert other.poll() is None, "a process of another run was stopped"
    finally:
        for process in (polite, stubborn, other):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def test_nothing_to_stop_is_quick() -> None:
    assert stop_leftovers("20260101T000000Z-none", grace=30) == []
