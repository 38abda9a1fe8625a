"""The next step of a chain is made ready to start while the step before it runs (its
files named, its marker made, its environment encoded, and, once the PATH lookups are
answered from memory, its program looked up), and started as soon as that step succeeds
(docs/performance.md, eighteenth pass). What it gets must be what it would have got had
it all been done at its start: a program that appears, or an environment that changes,
in between is the one it gets."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from harness import run_text

from wfx.runtime import direct, process
from wfx.runtime.actions import Attempt
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest
from wfx.runtime.local import LocalExecutor


@pytest.fixture
def made_ready(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Any]]:
    """Every process made ready ahead of its start, as it was then; PATH lookups armed
    at the first moment offered, so that later lookups are answered from memory."""
    monkeypatch.setattr(direct, "_LOOKUPS", None)
    monkeypatch.setattr(direct, "_DUE", 0)
    monkeypatch.setattr(direct, "_DUE_COLD", 0)
    found: list[Any] = []
    real = process.ReadyProcess.__init__

    def noting(self: process.ReadyProcess, *args: Any, **kwargs: Any) -> None:
        real(self, *args, **kwargs)
        if kwargs.get("ahead"):
            found.append((list(args[0]), self._found, self._encoded))

    monkeypatch.setattr(process.ReadyProcess, "__init__", noting)
    yield found
    if direct._LOOKUPS is not None:
        direct._LOOKUPS.close()


def _tool(folder: Path, says: str) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "tool").write_text(f"#!/bin/sh\necho {says}\n")
    (folder / "tool").chmod(0o755)


def _chain_running_tool(tmp_path: Path, path: str, then: str) -> Any:
    """Two steps running `tool` (the lookups armed and filled), `a` doing `then` while
    `b`, which runs `tool` after it, is made ready."""
    return run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - {{id: w1, run: tool}}
          - {{id: w2, run: tool, needs: [w1]}}
          - {{id: a, run: "sleep 0.2; {then}", needs: [w2]}}
          - {{id: b, run: tool, needs: [a]}}
        """,
        environ={"PATH": path},
    )


def test_a_program_that_appears_while_the_step_before_runs_is_the_one_started(
    tmp_path: Path, made_ready: list[Any]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    _tool(second, "second")
    path = f"{first}:{second}:{os.environ['PATH']}"
    install = f"cp {second}/tool {first}/tool; sed -i s/second/first/ {first}/tool"
    run = _chain_running_tool(tmp_path, path, install)
    assert run.result.exit_code == 0
    assert run.output("w2") == ["second"]
    assert run.output("b") == ["first"]
    # b was made ready while `a` ran, its lookup answered from memory: the old program
    ahead = [found for argv, found, _ in made_ready if argv[-1] == "tool"]
    assert ahead and ahead[-1] is not None and ahead[-1][0] == f"{second}/tool"


def test_a_program_removed_while_the_step_before_runs_is_not_started(
    tmp_path: Path, made_ready: list[Any]
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    _tool(first, "first")
    _tool(second, "second")
    path = f"{first}:{second}:{os.environ['PATH']}"
    run = _chain_running_tool(tmp_path, path, f"rm {first}/tool")
    assert run.result.exit_code == 0
    assert run.output("b") == ["second"]
    assert any(found and found[0] == f"{first}/tool" for _, found, _ in made_ready[2:])


def test_an_attempt_made_ready_gets_wfxs_environment_as_it_is_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local executor given no environment passes on wfx's own, as it is when each
    attempt starts (a Python step may change it): an attempt made ready before a change
    is started with the environment after it. (A run's executor is given the environment
    of the run's start, which nothing changes.)"""
    monkeypatch.delenv("WFX_TEST_CHANGED", raising=False)
    executor = LocalExecutor()
    lines: list[str] = []
    req = AttemptRequest(
        key="ready:step:1",
        argv=("bash", "-c", 'echo "[$WFX_TEST_CHANGED]"'),
        env={},
        cwd=None,
        timeout=None,
        kill_grace=1.0,
    )

    async def main() -> Any:
        await executor.start()
        try:
            made = executor.ready(req, lambda stream, text: lines.append(text))
            assert not isinstance(made, Attempt)
            monkeypatch.setenv("WFX_TEST_CHANGED", "after")
            begun = made.start()
            assert not isinstance(begun, Attempt)
            return await begun.finish()
        finally:
            await executor.close()

    result = anyio.run(main)
    assert result.status is StepStatus.SUCCESS
    assert lines == ["[after]"]


@pytest.mark.parametrize("ahead", [False, True])
@pytest.mark.parametrize("script", ["true", "true; true"])
def test_a_variable_no_process_can_receive_fails_the_attempt(ahead: bool, script: str) -> None:
    """A variable name with `=` in it: the attempt fails saying why, whether it is made
    ready ahead or started at once, exec'd directly or through bash; nothing raises."""
    executor = LocalExecutor(environ={"PATH": os.environ["PATH"]})
    req = AttemptRequest(
        key="ready:step:1",
        argv=("bash", "-c", script),
        env={"A=B": "1"},
        cwd=None,
        timeout=None,
        kill_grace=1.0,
        direct=("true",) if script == "true" else None,
    )

    async def main() -> Any:
        await executor.start()
        try:
            if ahead:
                made = executor.ready(req, lambda stream, text: None)
                begun = made if isinstance(made, Attempt) else made.start()
            else:
                begun = executor.begin(req, lambda stream, text: None)
            return begun if isinstance(begun, Attempt) else await begun.finish()
        finally:
            await executor.close()

    result = anyio.run(main)
    assert result.status is StepStatus.FAILED
    assert "illegal environment variable name" in (result.reason or "")
