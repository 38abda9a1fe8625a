"""The next step of a chain is readied while the step before it runs: the setup and the
request of its first attempt, made while the copy would otherwise wait for that process,
are taken by its task when it starts. Only a step whose every value is fixed text is
readied so (a `${{ }}` may read what the step before it leaves), and what it gets must be
exactly what it gets when it is set up at its start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import run_text

from wfx.graph import Node
from wfx.runtime import events as ev
from wfx.runtime.steps import StepRunner


class Readied:
    """What `prepare_first` did in a run: each step readied, the events recorded by then,
    and the runners (to see what they still hold at the end)."""

    def __init__(self) -> None:
        self.steps: list[str] = []
        self.seen: list[ev.Event] = []
        self.before: dict[str, list[str]] = {}
        self.runners: list[StepRunner] = []
        self.set_up: list[str] = []

    def finished_before(self, step: str) -> list[str]:
        return self.before[step]


@pytest.fixture
def readied(monkeypatch: pytest.MonkeyPatch) -> Iterator[Readied]:
    found = Readied()
    real = StepRunner.prepare_first

    def watching(runner: StepRunner, node: Node, after: Node | None = None) -> None:
        real(runner, node, after)
        if node.index in runner.prepared:
            found.steps.append(node.id)
            found.before[node.id] = [e.step for e in found.seen if isinstance(e, ev.StepFinished)]
            found.runners.append(runner)

    real_setup = StepRunner.setup

    def counting(runner: StepRunner, node: Node, *args: Any) -> Any:
        found.set_up.append(node.id)
        return real_setup(runner, node, *args)

    monkeypatch.setattr(StepRunner, "prepare_first", watching)
    monkeypatch.setattr(StepRunner, "setup", counting)
    yield found


def chain(tmp_path: Path, readied: Readied, text: str) -> Any:
    return run_text(tmp_path, text, sink=readied.seen.append)


def test_the_next_step_of_a_chain_is_readied_while_the_one_before_runs(
    tmp_path: Path, readied: Readied
) -> None:
    (tmp_path / "sub").mkdir()
    run = chain(
        tmp_path,
        readied,
        """
        wfx: 1
        env: {SHARED: from-workflow}
        steps:
          - {id: a, run: sleep 0.2}
          - id: b
            workingDirectory: sub
            env: {OWN: from-step}
            run: echo "$WFX_STEP_ID $WFX_ATTEMPT $SHARED $OWN $(basename "$PWD")"
          - {id: c, run: 'true'}
        """,
    )
    assert run.result.exit_code == 0
    assert readied.steps == ["b", "c"]
    assert readied.finished_before("b") == []  # while `a` ran
    assert readied.finished_before("c") == ["a"]  # while `b` ran
    assert run.output("b") == ["b 1 from-workflow from-step sub"]
    assert readied.set_up == ["a", "b", "c"]  # each once: the readied ones taken
    assert all(not runner.prepared for runner in readied.runners)


@pytest.mark.parametrize(
    "where",
    [
        "run: echo ${{ steps.a.outputs.v }}",
        "env: {V: '${{ steps.a.outputs.v }}'}\n    run: echo $V",
        "workingDirectory: ${{ steps.a.outputs.v }}\n    run: basename $PWD",
    ],
)
def test_a_step_with_an_expression_is_set_up_at_its_start(
    tmp_path: Path, readied: Readied, where: str
) -> None:
    """What `a` leaves is read by `b` at its start: `b` is never readied early."""
    (tmp_path / "made-by-a").mkdir()
    run = chain(
        tmp_path,
        readied,
        f"""
wfx: 1
steps:
  - id: a
    run: echo v=made-by-a >> "$WFX_OUTPUT"
  - id: b
    {where}
""",
    )
    assert run.result.exit_code == 0, run.of(ev.StepFailed)
    assert run.output("b") == ["made-by-a"]
    assert "b" not in readied.steps


def test_a_readied_step_that_never_starts_is_dropped(tmp_path: Path, readied: Readied) -> None:
    run = chain(
        tmp_path,
        readied,
        """
        wfx: 1
        steps:
          - {id: a, run: 'sleep 0.1; exit 3'}
          - {id: b, run: echo never}
        """,
    )
    assert run.status("a") == "failed"
    assert run.status("b") == "skipped"
    assert readied.steps == ["b"]
    assert all(not runner.prepared for runner in readied.runners)


def test_a_readied_step_keeps_its_retries_deadline(tmp_path: Path, readied: Readied) -> None:
    """Its attempt's timeout is what the retries deadline leaves at its start, as for a
    step set up then: `sleep 30` under a deadline of 500ms stops after half a second."""
    run = chain(
        tmp_path,
        readied,
        """
        wfx: 1
        steps:
          - {id: a, run: sleep 0.1}
          - {id: b, run: sleep 30, timeout: 20s, retries: {max: 1, deadline: 500ms}}
        """,
    )
    assert readied.steps == ["b"]
    assert run.status("b") == "timeout"
    finished = run.of(ev.StepFinished)[-1]
    assert finished.step == "b" and finished.duration < 5


@pytest.mark.parametrize(("steps", "armed"), [(3, False), (9, True)])
def test_the_lookups_watch_is_armed_while_a_step_runs_once_a_run_looked_up_enough(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, steps: int, armed: bool
) -> None:
    """(Here after 5 lookups.) A short run never pays for arming the watch on its PATH
    lookups; a longer chain arms it while one of its steps runs, and its later steps are
    looked up from memory, finding the same programs."""
    from wfx.runtime import direct

    monkeypatch.setattr(direct, "_LOOKUPS", None)
    monkeypatch.setattr(direct, "_DUE", 5)
    monkeypatch.setattr(direct, "_DUE_COLD", 5)
    body = "".join(f"  - {{id: s{n}, run: 'true'}}\n" for n in range(steps))
    try:
        run = run_text(tmp_path, "wfx: 1\nsteps:\n" + body)
        assert run.result.exit_code == 0
        lookups = direct._LOOKUPS
        assert lookups is not None and lookups.armed is armed
        if armed:
            assert lookups.answers  # the last steps were answered from memory
    finally:
        if direct._LOOKUPS is not None:
            direct._LOOKUPS.close()
