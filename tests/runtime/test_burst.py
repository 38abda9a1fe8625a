"""A burst of ready steps (a phase's roots, the dependents one step's end makes ready) is
started together: each step's condition and values are decided, every start record is
written in one commit, every process is started, and only then does each step get its
task. Everything a step does must be what it does when it starts alone."""

from __future__ import annotations

import time
from pathlib import Path

from harness import Recorded, run_text

from wfx.runtime import events as ev


def burst(tmp_path: Path, *steps: str, after: str = "", head: str = "") -> Recorded:
    """Run a workflow whose first steps (`steps`, one flow mapping each) start as one
    burst, then the `after` steps."""
    members = "".join(f"      - {step}\n" for step in steps)
    text = f"wfx: 1\n{head}steps:\n  - type: parallel\n    steps:\n{members}{after}"
    return run_text(tmp_path, text)


def test_each_step_of_a_burst_has_its_own_start_outputs_and_status(tmp_path: Path) -> None:
    run = burst(
        tmp_path,
        """{id: a, run: 'echo "v=a$WFX_STEP_ID" >> "$WFX_OUTPUT"; echo said-a'}""",
        """{id: b, run: 'echo "v=b$WFX_ATTEMPT" >> "$WFX_OUTPUT"'}""",
        "{id: c, run: 'true'}",
        after="  - {id: after, run: 'echo ${{ steps.a.outputs.v }} ${{ steps.b.outputs.v }}'}\n",
    )
    assert run.result.exit_code == 0
    starts = [(e.step, e.attempt) for e in run.of(ev.StepStarted)]
    assert sorted(starts[:3]) == [("a", 1), ("b", 1), ("c", 1)]
    assert starts[3:] == [("after", 1)]
    assert run.output("a") == ["said-a"]
    assert run.output("after") == ["aa b1"]


def test_a_step_a_burst_skips_releases_what_needs_it(tmp_path: Path) -> None:
    run = burst(
        tmp_path,
        "{id: skipped, run: 'echo never', condition: 'false'}",
        "{id: ran, run: 'true'}",
        after="  - {id: anyway, run: 'echo anyway', needs: [skipped], condition: 'always()'}\n",
    )
    assert run.status("skipped") == "skipped"
    assert run.status("ran") == "success"
    assert run.output("anyway") == ["anyway"]
    assert "skipped" not in run.started()


def test_a_value_that_does_not_render_fails_its_step_the_usual_way(tmp_path: Path) -> None:
    run = burst(
        tmp_path,
        "{id: bad, run: 'echo ${{ fromJSON(inputs.n) }}', onError: continue}",
        "{id: good, run: 'echo good'}",
        head="inputs:\n  n: {type: string, default: not json}\n",
    )
    assert run.status("bad") == "failed"
    failed = run.of(ev.StepFailed)[0]
    assert "cannot render" in failed.reason and failed.span is not None
    assert run.output("good") == ["good"]
    assert run.started().count("bad") == 1


def test_a_burst_step_retries_after_its_first_attempt(tmp_path: Path) -> None:
    counter = tmp_path / "count"
    run = burst(
        tmp_path,
        f"""{{id: flaky, run: 'echo x >> {counter}; test "$(wc -l < {counter})" -ge 2',"""
        " retries: {max: 2, delay: 10ms}}",
        "{id: other, run: 'true'}",
    )
    assert run.result.exit_code == 0
    assert [e.attempt for e in run.of(ev.StepStarted) if e.step == "flaky"] == [1, 2]
    assert run.result.steps["flaky"].attempts == 2  # type: ignore[index]


def test_a_failing_burst_step_stops_the_others_and_their_processes(tmp_path: Path) -> None:
    began = time.monotonic()
    run = burst(
        tmp_path,
        "{id: fails, run: 'sleep 0.2; exit 3'}",
        *(f"{{id: s{i}, run: 'sleep 30 & sleep 30; wait', killGrace: 200ms}}" for i in range(3)),
    )
    assert time.monotonic() - began < 10
    assert run.status("fails") == "failed"
    assert {run.status(f"s{i}") for i in range(3)} == {"cancelled"}


def test_a_burst_steps_timeout_counts_from_its_own_start(tmp_path: Path) -> None:
    began = time.monotonic()
    run = burst(
        tmp_path,
        *(f"{{id: t{i}, run: 'sleep 30', timeout: 500ms, onError: continue}}" for i in range(3)),
    )
    assert {run.status(f"t{i}") for i in range(3)} == {"timeout"}
    assert time.monotonic() - began < 5
    for event in run.of(ev.StepTimedOut):
        assert 0.45 < event.duration < 2.0
