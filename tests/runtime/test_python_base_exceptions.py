"""A Python step that raises SystemExit, KeyboardInterrupt or any other BaseException is a
failed step like any other: onError, rollback and `finally` run and the run ends properly."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from harness import run_text

from wfx.runtime import events as ev


class Custom(BaseException):
    """A BaseException that is none of Python's own."""


RAISED: list[BaseException] = [
    SystemExit(3),
    KeyboardInterrupt(),
    GeneratorExit(),
    Custom("x"),
    asyncio.CancelledError(),  # raised by the step itself, not a cancellation of the run
]

FLOW = """
wfx: 1
steps:
  - id: prep
    run: echo prepared
    rollback: {run: echo undone}
  - id: boom
    uses: python:t:boom
finally:
  - id: report
    run: echo "ended ${{ workflow.status }}"
"""


def _raising(exc: BaseException, is_async: bool) -> Callable[..., Any]:
    def boom() -> None:
        raise exc

    async def boom_async() -> None:
        raise exc

    return boom_async if is_async else boom


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_a_base_exception_fails_the_step_and_the_run_ends_properly(
    tmp_path: Path, exc: BaseException, is_async: bool
) -> None:
    run = run_text(tmp_path, FLOW, actions={"python:t:boom": _raising(exc, is_async)})
    assert run.result.exit_code == 1
    assert run.status("boom") == "failed"
    assert (run.result.steps["boom"].reason or "").startswith(type(exc).__name__)
    assert run.rolled_back() == ["prep"]
    assert run.status("prep") == "rolledBack"
    assert run.output("report") == ["ended failure"]
    [finished] = run.of(ev.RunFinished)
    assert finished.status is ev.RunStatus.FAILED


@pytest.mark.parametrize("exc", RAISED, ids=lambda e: type(e).__name__)
def test_on_error_continue_tolerates_a_base_exception(tmp_path: Path, exc: BaseException) -> None:
    flow = FLOW.replace("uses: python:t:boom", "uses: python:t:boom\n    onError: continue")
    run = run_text(tmp_path, flow, actions={"python:t:boom": _raising(exc, False)})
    assert run.result.exit_code == 3
    assert run.status("boom") == "failed"
    assert run.rolled_back() == []
    assert run.output("report") == ["ended success"]


def test_a_module_that_exits_while_imported_fails_the_step(tmp_path: Path) -> None:
    (tmp_path / "exits_on_import.py").write_text("raise SystemExit(4)\n")
    flow = FLOW.replace("python:t:boom", "python:exits_on_import:main")
    run = run_text(tmp_path, flow)
    assert run.result.exit_code == 1
    assert "SystemExit" in (run.result.steps["boom"].reason or "")
    assert run.rolled_back() == ["prep"]


def test_a_timeout_still_cancels_a_python_step(tmp_path: Path) -> None:
    async def forever() -> None:
        await asyncio.sleep(60)

    flow = FLOW.replace("uses: python:t:boom", "uses: python:t:boom\n    timeout: 50ms")
    run = run_text(tmp_path, flow, actions={"python:t:boom": forever})
    assert run.status("boom") == "timeout"
    assert run.rolled_back() == ["prep"]
    assert run.output("report") == ["ended failure"]
