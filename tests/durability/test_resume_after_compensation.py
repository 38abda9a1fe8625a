"""Resuming a run that was compensated never reports success over undone work.

A run that is not failing (it was interrupted, then maybe killed) runs again every step
a compensation undid or was undoing, with new attempt numbers, and runs `finally` again.
A run that is failing (a step failed for good) finishes its compensation and stays failed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
from crash_harness import Crashable, kill_wfx_only, wait_for_quiet

# each line of the ledger: `<name> <attempt>`; `c` waits for a `go` file the test creates
SAGA = """wfx: 1
steps:
  - {{id: a, run: "echo a $WFX_ATTEMPT >> {ledger}", rollback: {{run: "echo undo-a >> {ledger}"}}}}
  - {{id: b, run: "echo b $WFX_ATTEMPT >> {ledger}",
      rollback: {{run: "echo undo-b >> {ledger}; sleep {undo_b}"}}}}
  - {{id: c, run: "echo c $WFX_ATTEMPT >> {ledger}; {c}"}}
finally:
  - {{id: done, run: "echo finally $WFX_ATTEMPT >> {ledger}"}}
"""

WAIT_FOR_GO = "[ -e {root}/go ] || sleep 30"


def _saga(crash: Crashable, *, undo_b: str = "0", c: str = WAIT_FOR_GO) -> None:
    crash.write(SAGA.format(ledger=crash.ledger, undo_b=undo_b, c=c.format(root=crash.root)))


def _wait_for(crash: Crashable, entry: str) -> None:
    deadline = time.monotonic() + 30
    while entry not in crash.entries():
        assert time.monotonic() < deadline, f"`{entry}` never appeared: {crash.entries()}"
        time.sleep(0.02)


def _interrupt(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to wfx alone, as `kill` or a CI runner cancelling a job would send it."""
    os.kill(process.pid, signal.SIGTERM)


def _attempts(crash: Crashable, step: str) -> list[int]:
    lines = crash.ledger.read_text().splitlines()
    return [int(line.split()[1]) for line in lines if line.split()[0] == step]


def _step_statuses(crash: Crashable) -> dict[str, str]:
    with crash.journal() as db:
        return dict(db.execute("SELECT step_id, status FROM steps").fetchall())


def test_an_interrupted_compensated_run_redoes_the_undone_steps(tmp_path: Path) -> None:
    """Ctrl-C in `c`: a and b are compensated, the run is `interrupted`. The resume runs a
    and b again (attempt 2: a new idempotency key), then c, then finally again."""
    crash = Crashable(tmp_path)
    _saga(crash)
    process = crash.start()
    _wait_for(crash, "c")
    _interrupt(process)
    assert process.wait(timeout=60) == 130
    assert crash.entries() == ["a", "b", "c", "undo-b", "undo-a", "finally"]
    (crash.root / "go").touch()
    assert crash.run("--resume") == 0
    assert crash.entries()[6:] == ["a", "b", "c", "finally"]
    assert _attempts(crash, "a") == [1, 2]
    assert _attempts(crash, "b") == [1, 2]
    assert _attempts(crash, "finally") == [1, 2]
    assert set(_step_statuses(crash).values()) == {"success"}
    assert crash.run_statuses() == ["success"]


def test_a_kill_during_the_compensation_of_an_interrupted_run(tmp_path: Path) -> None:
    """Ctrl-C, then kill -9 while b is being compensated: the resume runs b again (its
    effects may be half undone); a, whose compensation never started, keeps its effects."""
    crash = Crashable(tmp_path)
    _saga(crash, undo_b="1")
    process = crash.start()
    _wait_for(crash, "c")
    _interrupt(process)
    _wait_for(crash, "undo-b")
    kill_wfx_only(process)
    wait_for_quiet(crash.ledger, 1.2)
    (crash.root / "go").touch()
    assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    assert counts == {"a": 1, "b": 2, "c": 2, "undo-b": 1, "finally": 1}
    assert _attempts(crash, "b") == [1, 2]
    assert crash.run_statuses() == ["success"]


def test_a_kill_after_the_compensation_of_an_interrupted_run(tmp_path: Path) -> None:
    """Ctrl-C, compensation and finally done, then wfx dies before recording the end: the
    resume redoes a and b and runs finally again."""
    crash = Crashable(tmp_path)
    _saga(crash)
    process = crash.start(env={"WFX_FAILPOINT": "journal.run-finished:1"})
    _wait_for(crash, "c")
    _interrupt(process)
    assert process.wait(timeout=60) == 137
    assert crash.run_statuses() == ["compensating"]
    (crash.root / "go").touch()
    assert crash.run("--resume") == 0
    assert crash.entries()[6:] == ["a", "b", "c", "finally"]
    assert crash.run_statuses() == ["success"]


@pytest.mark.parametrize("point", ["journal.rollback-started:2", "journal.run-finished:1"])
def test_a_failed_run_killed_in_or_after_its_compensation_stays_failed(
    tmp_path: Path, point: str
) -> None:
    """c fails for good: the resume finishes the compensation (never redoes a or b) and the
    run ends failed."""
    crash = Crashable(tmp_path)
    _saga(crash, c="exit 1")
    assert crash.run(env={"WFX_FAILPOINT": point}) == 137
    assert crash.run("--resume") == 1
    counts = Counter(crash.entries())
    assert counts["a"] == counts["b"] == counts["c"] == 1
    assert counts["undo-a"] == counts["undo-b"] == 1
    assert counts["finally"] == 1
    assert _step_statuses(crash) == {
        "a": "rolledBack",
        "b": "rolledBack",
        "c": "failed",
        "done": "success",
    }
    assert crash.run_statuses() == ["failed"]
