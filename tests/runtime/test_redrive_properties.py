"""Property: for random DAGs and random sets of failing steps, a redrive runs exactly the
steps its plan says run, none that succeeded, and ends in success with the kept outputs."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfx import api
from wfx.plan import Change
from wfx.runtime.engine import RunOptions, RunResult, run
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import Journal
from wfx.selection import Disposition


@st.composite
def dags_and_failures(draw: st.DrawFn) -> tuple[list[list[int]], set[int]]:
    """Each step's dependencies (earlier steps only), and a non-empty set of failing steps."""
    count = draw(st.integers(min_value=2, max_value=7))
    needs = [
        sorted(draw(st.sets(st.integers(min_value=0, max_value=i - 1), max_size=3)) if i else [])
        for i in range(count)
    ]
    failing = draw(st.sets(st.integers(min_value=0, max_value=count - 1), min_size=1))
    return needs, failing


def _workflow(needs: list[list[int]]) -> str:
    lines = ["wfx: 1", "type: parallel", "steps:"]
    for i, deps in enumerate(needs):
        listed = ", ".join(f"s{d}" for d in deps)
        lines.append(
            f"  - {{id: s{i}, needs: [{listed}], uses: 'python:t:work', with: {{name: s{i}}}}}"
        )
    return "\n".join(lines) + "\n"


def _run(graph: Any, journal: Journal, run_id: str, work: Any, part: Any = None) -> RunResult:
    options = RunOptions(
        actions={"python:t:work": work},
        events=journal,
        run_id=run_id,
        workspace=journal.workspace_for(run_id),
        selection=None if part is None else part.selection,
        kept={} if part is None else part.kept,
    )

    async def main() -> RunResult:
        return await run(graph, options=options)

    return anyio.run(main)


def _describe(changes: list[Change]) -> str:
    return str(len(changes))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dags_and_failures())
def test_a_redrive_runs_exactly_what_its_plan_says(case: tuple[list[list[int]], set[int]]) -> None:
    needs, failing = case
    with tempfile.TemporaryDirectory() as root:
        path = Path(root) / "wf.yaml"
        path.write_text(_workflow(needs), encoding="utf-8")
        journal = Journal(Path(root) / "state" / "state.db")
        try:
            first_calls: list[str] = []

            def flaky(name: str) -> dict[str, str]:
                first_calls.append(name)
                if int(name[1:]) in failing:
                    raise RuntimeError("boom")
                return {"from": f"first {name}"}

            graph = api.compile_file(path).graph
            api.record_new_run(journal, graph, path, "run-1")
            first = _run(graph, journal, "run-1", flaky)
            assert first.status.value == "failed"
            succeeded = {s for s, r in first.steps.items() if r.status is StepStatus.SUCCESS}

            graph2, part = api.redrive_target(journal, "run-1", False, _describe)
            planned = set(part.selection.with_(Disposition.RUN))
            assert set(part.selection.with_(Disposition.KEEP)) == succeeded
            assert planned == set(first.steps) - succeeded

            second_calls: list[str] = []

            def steady(name: str) -> dict[str, str]:
                second_calls.append(name)
                return {"from": f"second {name}"}

            api.record_new_run(journal, graph2, path, "run-2", None, part)
            second = _run(graph2, journal, "run-2", steady, part)
            assert set(second_calls) == planned
            assert len(second_calls) == len(planned)
            assert not set(second_calls) & succeeded
            assert second.status.value == "success"
            for step in succeeded:
                assert second.steps[step].outputs == {"from": f"first {step}"}  # type: ignore[index]
            kept = {s: r.kept_from for s, r in journal.steps("run-2").items() if r.kept_from}
            assert kept == dict.fromkeys(succeeded, "run-1")
        finally:
            journal.close()
