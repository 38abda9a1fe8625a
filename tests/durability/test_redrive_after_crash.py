"""Redrives and parts of a workflow after `kill -9` of wfx: a redrive of the dead run keeps
what it finished, stops the step processes it left, and runs the rest; a run of part of a
workflow that is killed and resumed keeps skipping what it did not select."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from crash_harness import Crashable, kill_wfx_only

# `slow` sleeps in its own process group until the pid file exists; the next time it runs
# it says whether the old sleep was still alive, then ends at once
FLOW = """wfx: 1
steps:
  - {{id: first, run: "echo first >> {ledger}; echo n=1 >> $WFX_OUTPUT"}}
  - id: slow
    run: |
      old=$(cat {root}/pid 2>/dev/null) && state=$(cut -d' ' -f3 /proc/$old/stat 2>/dev/null) &&
        [ "$state" != Z ] && echo old-alive >> {ledger}
      echo slow >> {ledger}
      [ -e {root}/pid ] && exit 0
      sh -c 'echo $$ > {root}/pid.new; mv {root}/pid.new {root}/pid; exec sleep 30'
  - {{id: last, run: "echo last ${{{{ steps.first.outputs.n }}}} >> {ledger}"}}
  - {{id: extra, run: "echo extra >> {ledger}"}}
"""


def _killed_during_slow(crash: Crashable, *args: str) -> str:
    """Start the workflow, kill -9 wfx while `slow` sleeps; the dead run's id."""
    crash.write(FLOW.format(root=crash.root, ledger=crash.ledger))
    process = crash.start(*args)
    deadline = time.monotonic() + 30
    while not (crash.root / "pid").exists():
        assert time.monotonic() < deadline, (crash.root / "wfx.log").read_text()
        time.sleep(0.02)
    kill_wfx_only(process)
    with crash.journal() as db:
        (run_id,) = db.execute("SELECT id FROM runs").fetchone()
    return str(run_id)


def _wfx(crash: Crashable, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfx", *args, "--state-dir", str(crash.state)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_a_redrive_after_a_crash_keeps_what_finished(tmp_path: Path) -> None:
    crash = Crashable(tmp_path)
    dead = _killed_during_slow(crash)
    old = int((tmp_path / "pid").read_text())
    retried = _wfx(crash, "retry", dead, "-q")
    assert retried.returncode == 0, retried.stderr
    # `first` finished before the crash: kept (its output too); `slow` runs again once the
    # old sleep is stopped; the rest runs
    assert crash.entries() == ["first", "slow", "slow", "last", "extra"]
    assert (tmp_path / "ledger").read_text().splitlines()[3] == "last 1"
    assert f"stopped 1 process the dead run left running: {old} (sleep 30)" in retried.stderr
    with crash.journal() as db:
        runs = db.execute("SELECT id, status, redrives FROM runs ORDER BY started").fetchall()
        kept = db.execute("SELECT step_id, kept_from FROM steps WHERE kept_from IS NOT NULL")
        assert kept.fetchall() == [("first", dead)]
    assert runs[0][:2] == (dead, "running")  # the dead run is left as it was
    assert runs[1][1:] == ("success", dead)
    assert crash.integrity() == "ok"


def test_a_killed_run_of_part_of_a_workflow_resumes_the_same_part(tmp_path: Path) -> None:
    """`--skip extra` is recorded with the run: its resume does not run `extra`."""
    crash = Crashable(tmp_path)
    dead = _killed_during_slow(crash, "--skip", "extra")
    assert _wfx(crash, "resume", dead, "-q").returncode == 0
    assert crash.entries() == ["first", "slow", "slow", "last"]
    shown = json.loads(_wfx(crash, "show", dead, "--json").stdout)
    statuses = {s["id"]: (s["status"], s["reason"]) for s in shown["steps"]}
    assert statuses["extra"] == ("skipped", "not selected")
    assert statuses["last"] == ("success", None)


def test_a_redrive_killed_before_its_end_resumes_keeping_the_same_steps(
    tmp_path: Path,
) -> None:
    """The kept steps are recorded with the redrive when it starts: killed before it
    reached them, its resume still keeps them and does not run them."""
    crash = Crashable(tmp_path)
    dead = _killed_during_slow(crash)
    (tmp_path / "pid").unlink()  # the redrive's `slow` sleeps again: kill that one too
    process = crash._spawn(["retry", dead, "-q"], None)
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists():
        assert time.monotonic() < deadline, (tmp_path / "wfx.log").read_text()
        time.sleep(0.02)
    kill_wfx_only(process)
    with sqlite3.connect(crash.state / "state.db") as db:
        (redrive,) = db.execute("SELECT id FROM runs WHERE redrives = ?", (dead,)).fetchone()
    assert _wfx(crash, "resume", redrive, "-q").returncode == 0
    assert crash.entries() == ["first", "slow", "slow", "slow", "last", "extra"]
