"""`retries.on`, `retries.except` and `retries.deadline` (docs/language.md, "Retries"):
which failures are retried, and for how long, with real processes and exit codes."""

from __future__ import annotations

import os
from pathlib import Path

from harness import run_text

from wfx.runtime import events as ev


def _counted(tmp_path: Path, script: str, policy: str) -> tuple[int, ev.StepFinished]:
    """Run one step that appends a line to a ledger per attempt; (attempts, its end)."""
    ledger = tmp_path / "ledger"
    text = (
        "wfx: 1\nsteps:\n"
        f"  - id: s\n    run: |\n      echo try >> {ledger}\n      {script}\n"
        f"    retries: {policy}\n"
    )
    run = run_text(tmp_path, text)
    [finished] = [e for e in run.of(ev.StepFinished) if e.step == "s"]
    return len(ledger.read_text().split()), finished


def test_on_retries_a_listed_exit_code(tmp_path: Path) -> None:
    count, finished = _counted(tmp_path, "exit 75", "{max: 2, delay: 1ms, on: [75]}")
    assert count == finished.attempts == 3
    assert finished.exit_code == 75


def test_on_does_not_retry_an_exit_code_it_does_not_list(tmp_path: Path) -> None:
    count, finished = _counted(tmp_path, "exit 3", "{max: 2, delay: 1ms, on: [75, timeout]}")
    assert count == finished.attempts == 1
    assert finished.exit_code == 3
    assert "not retried: `retries.on` does not list exit code 3" in (finished.reason or "")


def test_except_is_never_retried_even_with_on_any(tmp_path: Path) -> None:
    count, finished = _counted(tmp_path, "exit 2", "{max: 3, delay: 1ms, on: any, except: [2]}")
    assert count == 1
    assert "`retries.except` lists exit code 2" in (finished.reason or "")


def test_except_leaves_other_codes_retried(tmp_path: Path) -> None:
    count, _ = _counted(tmp_path, "exit 1", "{max: 2, delay: 1ms, except: [2]}")
    assert count == 3


def test_on_timeout_retries_a_timed_out_attempt_and_not_an_exit_code(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    text = f"""
    wfx: 1
    steps:
      - id: slow
        run: |
          echo try >> {ledger}
          if [ "${{{{ attempt }}}}" -lt 3 ]; then sleep 5; fi
          exit 4
        timeout: 100ms
        killGrace: 50ms
        retries: {{max: 5, delay: 1ms, on: [timeout]}}
    """
    run = run_text(tmp_path, text)
    [finished] = run.of(ev.StepFinished)
    # attempts 1 and 2 time out and are retried; attempt 3 exits 4, which is not retried
    assert len(ledger.read_text().split()) == finished.attempts == 3
    assert finished.exit_code == 4
    assert [e.attempt for e in run.of(ev.StepRetrying)] == [1, 2]


def test_deadline_starts_no_attempt_after_it(tmp_path: Path) -> None:
    count, finished = _counted(
        tmp_path, "sleep 0.1; exit 1", "{max: 50, delay: 1ms, deadline: 250ms}"
    )
    assert 2 <= count <= 3
    assert finished.attempts == count
    assert "retries deadline of 250ms passed" in (finished.reason or "")


def test_deadline_skips_a_wait_that_would_end_after_it(tmp_path: Path) -> None:
    count, finished = _counted(tmp_path, "exit 1", "{max: 3, delay: 30s, deadline: 1s}")
    assert count == finished.attempts == 1
    assert "not retried: its retries deadline of 1s passed" in (finished.reason or "")


def test_deadline_stops_a_running_attempt(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    count, finished = _counted(
        tmp_path, f"echo $$ > {pid_file}; exec sleep 30", "{max: 3, deadline: 200ms}"
    )
    assert count == 1
    assert finished.status is ev.StepStatus.TIMEOUT
    assert finished.reason == "its retries deadline of 200ms passed"
    assert gone(int(pid_file.read_text()))


def gone(pid: int) -> bool:
    """Whether process `pid` no longer runs (reaped, or a zombie waiting to be)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" in status.read_text()
