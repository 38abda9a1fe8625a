"""The per-step path: what each step costs the engine, in tasks, commits and events.

How fast is for bench/ (`make bench-peers`); these tests hold the mechanisms that keep a
step cheap, each of which a change could quietly undo."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from harness import run_text

from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime.journal import Journal
from wfx.runtime.scheduler import Scheduler


def test_a_workflow_max_parallel_is_as_many_workers_as_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the workflow's `maxParallel` as the only limit, every step holds it while it
    runs, so workers beyond it would only wait: 200 ready steps under `maxParallel: 2`
    run on two worker tasks, not one task each."""
    live = [0]
    most = [0]
    worker = Scheduler._worker

    async def counting(self: Scheduler) -> None:
        live[0] += 1
        most[0] = max(most[0], live[0])
        try:
            await worker(self)
        finally:
            live[0] -= 1

    monkeypatch.setattr(Scheduler, "_worker", counting)

    async def quick() -> dict[str, Any]:
        return {}

    steps = "".join(f"      - {{id: s{i}, uses: 'python:t:quick'}}\n" for i in range(200))
    run = run_text(
        tmp_path,
        "wfx: 1\nmaxParallel: 2\nsteps:\n  - type: parallel\n    steps:\n" + steps,
        actions={"python:t:quick": quick},
    )
    assert run.result.exit_code == 0
    assert most[0] == 2


def _status(path: Path, step: str) -> str | None:
    """A step's status as another process reading the journal sees it (committed only)."""
    with sqlite3.connect(path) as reader:
        row = reader.execute("SELECT status FROM steps WHERE step_id = ?", (step,)).fetchone()
    return None if row is None else str(row[0])


def test_an_attempts_end_rides_with_the_next_start_record(tmp_path: Path) -> None:
    """One commit per step instead of two: an end record is held back and written in the
    next transaction, the next step's start record's, before that step starts."""
    path = tmp_path / "state.db"
    journal = Journal(path)
    try:
        journal.create_run("r", workflow="w", file="f", fingerprint="x", definition="", inputs={})
        journal(ev.StepStarted("r", 1.0, StepId("a"), 1))
        assert _status(path, "a") == "running"
        journal(ev.StepSucceeded("r", 2.0, StepId("a"), ev.StepStatus.SUCCESS, 1, where="local"))
        assert _status(path, "a") == "running"  # held back...
        journal(ev.StepStarted("r", 3.0, StepId("b"), 1))
        assert (_status(path, "a"), _status(path, "b")) == ("success", "running")  # ...to here
        journal(ev.StepFailed("r", 4.0, StepId("b"), ev.StepStatus.FAILED, 1, exit_code=3))
        journal.commit_pending()  # what the engine calls before it waits
        assert _status(path, "b") == "failed"
        journal(ev.StepSucceeded("r", 5.0, StepId("c"), ev.StepStatus.SUCCESS, 1))
    finally:
        journal.close()  # writes what is still held back
    assert _status(path, "c") == "success"


def test_a_run_commits_once_per_step_and_nothing_stays_held_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain of quick steps: one commit per step, while it runs, carrying its start
    record, the end record of the one before and the intent of the one after (the first
    step's start is committed before it starts, as nothing recorded it ahead); the last
    end record is written when the phase ends, before the run's end."""
    commits: list[int] = []
    transaction = Journal.transaction

    def counting(self: Journal) -> Any:
        commits.append(1)
        return transaction(self)

    monkeypatch.setattr(Journal, "transaction", counting)
    path = tmp_path / "state.db"
    journal = Journal(path)
    steps = 12
    text = "wfx: 1\nsteps:\n" + "".join(f"  - {{id: s{i}, run: 'true'}}\n" for i in range(steps))
    try:
        journal.create_run("r", workflow="w", file="f", fingerprint="x", definition="", inputs={})
        commits.clear()
        run_text(tmp_path, text, sink=journal)
        committed_during_the_run = len(commits)
        assert all(_status(path, f"s{i}") == "success" for i in range(steps))
    finally:
        journal.close()
    # one per step, the first step's start, the last end record, the run's end (it was
    # 2 per step before end records were held back)
    assert committed_during_the_run == steps + 3
