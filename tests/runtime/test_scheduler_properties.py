"""Hypothesis: random DAGs with random failures, onError and rollbacks keep the engine's
invariants: at most one run per attempt, never before dependencies, compensation in
reverse completion order, and an exit code that matches the statuses."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from harness import run_text
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfx.runtime import events as ev


@dataclass(frozen=True)
class Spec:
    needs: tuple[int, ...]
    failures: int  # how many first attempts fail
    retries: int
    on_error: str
    rollback: bool
    sleep: bool


@st.composite
def workflows(draw: st.DrawFn) -> list[Spec]:
    count = draw(st.integers(min_value=1, max_value=9))
    specs = []
    for index in range(count):
        needs = draw(st.sets(st.integers(0, index - 1), max_size=3)) if index else set()
        specs.append(
            Spec(
                needs=tuple(sorted(needs)),
                failures=draw(st.sampled_from([0, 0, 0, 1, 3])),
                retries=draw(st.integers(0, 2)),
                on_error=draw(st.sampled_from(["fail", "fail", "continue"])),
                rollback=draw(st.booleans()),
                sleep=draw(st.booleans()),
            )
        )
    return specs


def to_yaml(specs: list[Spec]) -> str:
    lines = ["wfx: 1", "steps:", "  - id: dag", "    type: parallel", "    steps:"]
    for index, spec in enumerate(specs):
        lines += [
            f"      - id: s{index}",
            "        uses: python:t:work",
            f"        with: {{step: s{index}, attempt: '${{{{ attempt }}}}'}}",
            f"        retries: {{max: {spec.retries}, delay: 0}}",
            f"        onError: {spec.on_error}",
        ]
        if spec.needs:
            lines.append(f"        needs: [{', '.join(f's{n}' for n in spec.needs)}]")
        if spec.rollback:
            lines.append(f"        rollback: {{uses: 'python:t:undo', with: {{step: s{index}}}}}")
    return "\n".join(lines) + "\n"


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(workflows())
def test_engine_invariants(specs: list[Spec]) -> None:
    ledger: list[tuple[str, str, int]] = []

    async def work(step: str, attempt: str) -> dict[str, Any]:
        spec = specs[int(step[1:])]
        ledger.append(("run", step, int(attempt)))
        if spec.sleep:
            await anyio.sleep(0.001)
        if int(attempt) <= spec.failures:
            raise RuntimeError(f"{step} attempt {attempt} fails")
        return {"done": step}

    async def undo(step: str) -> None:
        ledger.append(("undo", step, 0))

    with tempfile.TemporaryDirectory() as tmp:
        run = run_text(
            Path(tmp), to_yaml(specs), actions={"python:t:work": work, "python:t:undo": undo}
        )

    runs = [(s, a) for kind, s, a in ledger if kind == "run"]
    assert len(runs) == len(set(runs)), "a step ran twice in one attempt"

    position: dict[tuple[str, str], int] = {}
    for index, event in enumerate(run.events):
        if isinstance(event, ev.StepStarted):
            position.setdefault(("start", event.step), index)
        elif isinstance(event, ev.StepFinished):
            position[("end", event.step)] = index
    for index, spec in enumerate(specs):
        if ("start", f"s{index}") in position:
            for need in spec.needs:
                assert position[("end", f"s{need}")] < position[("start", f"s{index}")]

    succeeded = [e.step for e in run.of(ev.StepSucceeded)]
    failed_hard = [
        f"s{i}"
        for i, spec in enumerate(specs)
        if run.status(f"s{i}") in ("failed", "timeout") and spec.on_error == "fail"
    ]
    tolerated = [
        f"s{i}"
        for i, spec in enumerate(specs)
        if run.status(f"s{i}") == "failed" and spec.on_error == "continue"
    ]
    undone = [s for kind, s, _ in ledger if kind == "undo"]
    if failed_hard:
        expected = [s for s in reversed(succeeded) if specs[int(s[1:])].rollback]
        assert undone == expected
        assert run.result.exit_code == 1
    else:
        assert undone == []
        assert run.result.exit_code == (3 if tolerated else 0)
    for index, spec in enumerate(specs):
        attempts = run.result.steps[f"s{index}"].attempts
        assert attempts <= spec.retries + 1
