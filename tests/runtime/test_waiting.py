"""`engine.when_waiting`: a run tells once that its process waits on its steps alone (a warm
server's copy then has the next command's copy prepared meanwhile, docs/server.md)."""

from __future__ import annotations

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
