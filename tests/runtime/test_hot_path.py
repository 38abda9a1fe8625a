"""The per-step path: what each step costs the engine, in tasks, commits and events.

How fast is for bench/ (`make bench-peers`); these tests hold the mechanisms that keep a
step cheap, each of which a change could quietly undo."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from harness import run_text

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
