"""`onError: retry` as docs/language.md says: the step's own retry policy when it has one,
else 3 attempts with the default waits (also when only `defaults` says `max: 0`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from harness import run_text

from wfx.graph import RetrySchedule
from wfx.runtime import events as ev
from wfx.runtime import steps


@pytest.fixture
def planned_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits the engine would sleep, recorded; it sleeps none (keeps the test fast)."""
    waits: list[float] = []

    def no_wait(schedule: RetrySchedule, failed_attempt: int, rng: object) -> float:
        waits.append(schedule.delays[failed_attempt - 1])
        return 0.0

    monkeypatch.setattr(steps, "wait_before", no_wait)
    return waits


def _attempts(tmp_path: Path, step: str, head: str = "") -> tuple[int, ev.StepFinished]:
    ledger = tmp_path / "ledger"
    text = (
        f"wfx: 1\n{head}steps:\n"
        f"  - {{id: flaky, run: 'echo try >> {ledger}; exit 1', onError: retry{step}}}\n"
    )
    run = run_text(tmp_path, text)
    assert run.result.exit_code == 1
    [finished] = [e for e in run.of(ev.StepFinished) if e.step == "flaky"]
    return len(ledger.read_text().split()), finished


def test_the_steps_own_policy_is_used(tmp_path: Path, planned_waits: list[float]) -> None:
    count, finished = _attempts(tmp_path, ", retries: {max: 1, delay: 10ms}")
    assert count == finished.attempts == 2
    assert planned_waits == [0.01]


def test_the_steps_own_count_is_used(tmp_path: Path, planned_waits: list[float]) -> None:
    count, finished = _attempts(tmp_path, ", retries: 4")
    assert count == finished.attempts == 5
    assert planned_waits == [1.0, 2.0, 4.0, 8.0]


def test_without_a_policy_three_attempts_with_the_default_waits(
    tmp_path: Path, planned_waits: list[float]
) -> None:
    count, finished = _attempts(tmp_path, "")
    assert count == finished.attempts == 3
    assert planned_waits == [1.0, 2.0]


def test_a_defaults_policy_of_no_retries_still_gives_three_attempts(
    tmp_path: Path, planned_waits: list[float]
) -> None:
    head = "defaults:\n  retries: {max: 0, delay: 10ms, backoff: linear}\n"
    count, finished = _attempts(tmp_path, "", head)
    assert count == finished.attempts == 3
    assert planned_waits == [0.01, 0.02]
