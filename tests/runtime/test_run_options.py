"""`engine.run()` hands every `RunOptions` field to the run, whichever way it is called."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import anyio
import pytest

from wfx.model import ConcurrencyMode
from wfx.runtime import engine
from wfx.runtime.concurrency import Gate
from wfx.runtime.engine import RunOptions
from wfx.runtime.journal import ResumeState, StepRecord
from wfx.runtime.local import LocalExecutor
from wfx.selection import Selection


async def _no_wait(seconds: float) -> None:
    """A retry wait that does not wait (not anyio.sleep, the default)."""


def _distinct_value(field: dataclasses.Field[Any]) -> Any:
    """A value for `field` that differs from its default (so a dropped field shows)."""
    values: dict[str, Any] = {
        "environ": {"A": "1"},
        "workspace": Path("/nonexistent/workspace"),
        "handle_signals": True,
        "run_id": "run-under-test",
        "seed": 1234,
        "resume": ResumeState.__new__(ResumeState),
        "scratch": Path("/nonexistent/scratch"),
        "executor": LocalExecutor(),
        "executors": {"elsewhere": LocalExecutor()},
        "selection": Selection({}, "run-redriven"),
        "kept": {"build": StepRecord.__new__(StepRecord)},
        "concurrency": Gate(Path("/nonexistent/state"), "group", ConcurrencyMode.QUEUE),
        "python_executor": LocalExecutor(),
        "sleep": _no_wait,
        "faults": {("build", 1): "fail"},
    }
    if field.name not in values:
        pytest.fail(f"new RunOptions field `{field.name}`: give it a value in this test")
    return values[field.name]


@pytest.mark.parametrize("how", ["actions", "events", "both"])
def test_run_keeps_every_option_when_actions_or_events_are_passed(
    how: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    passed = {
        f.name: _distinct_value(f)
        for f in dataclasses.fields(RunOptions)
        if f.name not in ("actions", "events")
    }
    options = RunOptions(**passed)
    seen: list[RunOptions] = []

    class Capture:
        def __init__(self, graph: Any, chosen: RunOptions) -> None:
            seen.append(chosen)

        async def execute(self) -> None:
            return None

    monkeypatch.setattr(engine, "_Run", Capture)
    actions = {"python:m:f": lambda: None}
    sink: list[Any] = []
    extra: dict[str, Any] = {}
    if how in ("actions", "both"):
        extra["actions"] = actions
    if how in ("events", "both"):
        extra["events"] = sink.append

    async def main() -> None:
        await engine.run(None, options=options, **extra)  # type: ignore[arg-type]

    anyio.run(main)
    [chosen] = seen
    for name, value in passed.items():
        assert getattr(chosen, name) is value, f"RunOptions.{name} was dropped"
    if "actions" in extra:
        assert chosen.actions is actions
    if "events" in extra:
        assert chosen.events == sink.append
