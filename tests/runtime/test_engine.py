"""The engine, specified by small workflows run for real: order, conditions, failure
handling, retries, timeouts, rollback, finally, outputs."""

from __future__ import annotations

import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
from harness import run_text

from wfx.runtime import events as ev


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
            members.append(int(name))
    return members


def test_sequential_steps_pass_outputs_along(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: make
            run: |
              echo "name=widget" >> "$WFX_OUTPUT"
              printf 'notes<<EOF\\nline one\\nline two\\nEOF\\n' >> "$WFX_OUTPUT"
          - id: use
            cmd: [echo, "${{ steps.make.outputs.name }}", "${{ steps.make.outputs.notes }}"]
        outputs:
          made: ${{ steps.make.outputs.name }}
        """,
    )
    assert run.result.exit_code == 0
    assert run.result.steps["make"].outputs == {"name": "widget", "notes": "line one\nline two"}
    assert run.output("use") == ["widget line one", "line two"]
    assert run.result.outputs == {"made": "widget"}


def test_parallel_steps_run_together(tmp_path: Path) -> None:
    """Each step marks itself running, then waits until all three are: they can only all
    succeed if they overlap (run one after another, the first gives up after 30 s)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    meet = (
        f"touch {marks}/$0; for i in $(seq 600); do"
        f" [ -e {marks}/a ] && [ -e {marks}/b ] && [ -e {marks}/c ] && exit 0; sleep 0.05;"
        " done; exit 1"
    )
    steps = "".join(f"      - {{id: {name}, cmd: [sh, -c, '{meet}', {name}]}}\n" for name in "abc")
    run = run_text(tmp_path, "wfx: 1\nsteps:\n  - type: parallel\n    steps:\n" + steps)
    assert run.result.exit_code == 0
    assert {run.status(name) for name in "abc"} == {"success"}
    kinds = [type(e) for e in run.events if isinstance(e, ev.StepStarted | ev.StepFinished)]
    assert kinds[:3] == [ev.StepStarted] * 3  # all started before any finished


def _rendezvous(count: int) -> Callable[[], Awaitable[dict[str, int]]]:
    """A Python step that waits until `count` steps are waiting in it (20 s at most)."""
    arrived: list[int] = []
    everyone = anyio.Event()

    async def rendezvous() -> dict[str, int]:
        arrived.append(1)
        if len(arrived) == count:
            everyone.set()
        with anyio.fail_after(20):
            await everyone.wait()
        return {"seen": len(arrived)}

    return rendezvous


def test_hundreds_of_waiting_steps_all_wait_at_once(tmp_path: Path) -> None:
    """Workers start as the backlog asks, yet every waiting step gets one: 600 steps that
    each wait until all 600 are waiting finish (they would hang if any had to queue)."""
    count = 600
    steps = "".join(f"      - {{id: s{i}, uses: 'python:t:meet'}}\n" for i in range(count))
    run = run_text(
        tmp_path,
        "wfx: 1\nsteps:\n  - type: parallel\n    steps:\n" + steps,
        actions={"python:t:meet": _rendezvous(count)},
    )
    assert run.result.exit_code == 0
    assert {s.outputs["seen"] for s in run.result.steps.values()} == {count}


def test_the_workers_of_ended_parallel_steps_do_not_all_wait_for_more(tmp_path: Path) -> None:
    """When 40 parallel steps have ended and only the step after them is left, at most two
    of their workers wait for more work; the others ended (waking 40 idle tasks at the
    end of the phase, only to end them, cost 1.5 ms of every such run)."""
    import asyncio

    count = 40

    async def census() -> dict[str, int]:
        return {"tasks": len(asyncio.all_tasks())}

    steps = "".join(f"      - {{id: s{i}, uses: 'python:t:meet'}}\n" for i in range(count))
    needs = ", ".join(f"s{i}" for i in range(count))
    run = run_text(
        tmp_path,
        "wfx: 1\nsteps:\n  - id: all\n    type: parallel\n    steps:\n"
        + steps
        + f"  - {{id: after, uses: 'python:t:census', needs: [{needs}]}}\n",
        actions={"python:t:meet": _rendezvous(count), "python:t:census": census},
    )
    assert run.result.exit_code == 0
    assert run.result.steps["after"].outputs["tasks"] < 12


def test_a_step_starts_when_its_own_needs_are_done_not_its_stage(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - type: parallel
            steps:
              - {id: slow, run: sleep 0.8}
              - {id: quick, run: "true"}
              - {id: after_quick, run: "true", needs: [quick]}
        """,
    )
    finished = {e.step: e.time for e in run.of(ev.StepFinished)}
    assert finished["after_quick"] < finished["slow"]


def test_max_parallel_bounds_concurrency(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        maxParallel: 2
        steps:
          - type: parallel
            steps:
              - run: sleep 0.15
              - run: sleep 0.15
              - run: sleep 0.15
              - run: sleep 0.15
              - run: sleep 0.15
        """,
    )
    running, peak = 0, 0
    for event in run.events:
        if isinstance(event, ev.StepStarted):
            running += 1
            peak = max(peak, running)
        elif isinstance(event, ev.StepFinished):
            running -= 1
    assert peak == 2


def test_on_error_fail_cancels_running_skips_pending_and_runs_failure_steps(
    tmp_path: Path,
) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - type: parallel
            steps:
              - {id: long, run: sleep 5}
              - {id: broken, run: "sleep 0.2; exit 7"}
          - {id: next, run: echo never}
          - {id: alert, run: echo alerting, condition: failure()}
          - {id: cleanup, run: echo cleaning, condition: always()}
        """,
    )
    assert run.result.exit_code == 1
    assert run.status("broken") == "failed"
    assert run.result.steps["broken"].exit_code == 7
    assert run.status("long") == "cancelled"
    assert run.status("next") == "skipped"
    assert run.status("alert") == "success"
    assert run.status("cleanup") == "success"
    assert "step `broken` failed: exit code 7" in (run.result.reason or "")


def test_on_error_continue_goes_on_and_ends_with_failures(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: flaky, run: exit 1, onError: continue}
          - id: next
            run: echo "flaky was ${{ steps.flaky.status }}"
        """,
    )
    assert run.result.exit_code == 3
    assert run.result.status.value == "completedWithFailures"
    assert run.output("next") == ["flaky was failed"]


def test_retries_follow_the_planned_waits(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: flaky
            run: '[ "${{ attempt }}" -ge 3 ]'
            retries: {max: 4, delay: 100ms, backoff: exponential}
        """,
    )
    assert run.status("flaky") == "success"
    assert run.result.steps["flaky"].attempts == 3
    assert [e.delay for e in run.of(ev.StepRetrying)] == [0.1, 0.2]
    starts = [e.time for e in run.of(ev.StepStarted)]
    assert starts[1] - starts[0] >= 0.1 and starts[2] - starts[1] >= 0.2


def test_a_timeout_is_a_failure_that_is_retried(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: hang
            run: sleep 30
            timeout: 200ms
            killGrace: 100ms
            retries: {max: 1, delay: 50ms}
        """,
    )
    assert run.status("hang") == "timeout"
    assert run.result.steps["hang"].attempts == 2
    assert run.result.exit_code == 1
    # each attempt was killed by the timeout (TERM), not waited for: sleep 30 exits 0
    assert [e.reason for e in run.of(ev.StepRetrying)] == ["timed out after 200ms"]
    assert run.result.steps["hang"].signal == signal.SIGTERM


def test_rollbacks_run_in_reverse_completion_order_and_survive_a_failing_one(
    tmp_path: Path,
) -> None:
    ledger = tmp_path / "ledger"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - {{id: a, run: echo a >> {ledger}, rollback: {{run: echo undo-a >> {ledger}}}}}
          - {{id: b, run: echo b >> {ledger}}}
          - {{id: c, run: echo c >> {ledger}, rollback: {{run: "echo undo-c >> {ledger}; exit 1"}}}}
          - {{id: d, run: echo d >> {ledger}, rollback: {{run: echo undo-d >> {ledger}}}}}
          - {{id: e, run: exit 1, rollback: {{run: echo undo-e >> {ledger}}}}}
        finally:
          - run: echo "finally ${{{{ workflow.status }}}}" >> {ledger}
        """,
    )
    assert ledger.read_text().split("\n")[:-1] == [
        "a",
        "b",
        "c",
        "d",
        "undo-d",
        "undo-c",
        "undo-a",
        "finally failure",
    ]
    assert run.rolled_back() == ["d", "c", "a"]
    assert run.status("c") == "rollbackFailed"
    assert run.status("d") == "rolledBack"
    assert run.status("e") == "failed"
    assert run.result.exit_code == 1


def test_rollback_reads_the_outputs_of_its_step(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: backup
            run: echo "id=b-42" >> "$WFX_OUTPUT"
            rollback: {run: 'echo "restore ${{ steps.backup.outputs.id }}"'}
          - run: exit 1
        """,
    )
    outputs = [e.text for e in run.of(ev.StepOutput) if e.rollback]
    assert outputs == ["restore b-42"]


def test_finally_runs_after_success_with_the_status(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - run: "true"
        finally:
          - {id: report, run: 'echo "status=${{ workflow.status }}"'}
        """,
    )
    assert run.output("report") == ["status=success"]
    assert run.result.exit_code == 0


def test_workflow_timeout_cancels_compensates_and_runs_finally(tmp_path: Path) -> None:
    pid, woke = tmp_path / "stuck.pid", tmp_path / "woke"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        timeout: 500ms
        defaults: {{killGrace: 100ms}}
        steps:
          - {{id: done, run: "true", rollback: {{run: echo undone}}}}
          - {{id: stuck, run: "echo $$ > {pid}; sleep 30; touch {woke}"}}
        finally:
          - {{id: last, run: echo finally}}
        """,
    )
    # the stuck step was killed, not waited for: it never woke and nothing of it is left
    assert not woke.exists()
    assert _group_members(int(pid.read_text())) == []
    assert run.result.exit_code == 1
    assert "timed out after 500ms" in (run.result.reason or "")
    assert run.status("stuck") == "cancelled"
    assert run.status("done") == "rolledBack"
    assert run.output("last") == ["finally"]


def test_false_conditions_skip_without_failing(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        inputs:
          deploy: {type: boolean, default: false}
        steps:
          - {id: ship, run: echo ship, condition: "${{ inputs.deploy }}"}
          - id: group
            condition: inputs.deploy
            steps:
              - {id: inside, run: echo inside}
          - {id: after, run: echo after}
        """,
    )
    assert run.result.exit_code == 0
    assert [run.status(s) for s in ("ship", "inside", "after")] == ["skipped", "skipped", "success"]
    [skipped] = [e for e in run.of(ev.StepSkipped) if e.step == "inside"]
    assert skipped.reason == "group `group` was skipped"


def async_step(**kwargs: Any) -> dict[str, Any]:
    return {"seen": kwargs}


def test_python_steps_sync_async_and_overrides(tmp_path: Path) -> None:
    calls: list[dict[str, Any]] = []

    async def deploy(image: str, replicas: int) -> dict[str, Any]:
        calls.append({"image": image, "replicas": replicas})
        return {"url": f"https://{image}/{replicas}"}

    def broken(**_: Any) -> None:
        raise RuntimeError("cluster unreachable")

    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: deploy
            uses: python:tools:deploy
            with: {image: "app:${{ 1 == 1 }}", replicas: "${{ fromJSON('3') }}"}
          - id: report
            uses: python:tools:broken
            onError: continue
        """,
        actions={"python:tools:deploy": deploy, "python:tools:broken": broken},
    )
    assert calls == [{"image": "app:true", "replicas": 3}]
    assert run.result.steps["deploy"].outputs == {"url": "https://app:true/3"}
    assert run.status("report") == "failed"
    assert "RuntimeError: cluster unreachable" in (run.result.steps["report"].reason or "")
    assert run.result.exit_code == 3


def test_python_step_imported_from_the_workflow_directory(tmp_path: Path) -> None:
    (tmp_path / "wfx_test_tools.py").write_text(
        "def greet(name):\n    return {'greeting': 'hello ' + name}\n"
    )
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: hi, uses: "python:wfx_test_tools:greet", with: {name: ada}}
        """,
    )
    assert run.result.steps["hi"].outputs == {"greeting": "hello ada"}


def test_env_layers_workflow_group_step(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        env: {A: workflow, B: workflow, C: workflow}
        steps:
          - env: {B: group, C: group}
            steps:
              - id: show
                run: echo "$A $B $C ${{ env.C }}"
                env: {C: step}
        """,
    )
    assert run.output("show") == ["workflow group step step"]


def test_working_directory_is_relative_to_the_workflow(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: here, run: pwd}
          - {id: there, run: pwd, workingDirectory: sub}
        """,
    )
    assert run.output("here") == [str(tmp_path)]
    assert run.output("there") == [str(tmp_path / "sub")]


def test_a_missing_program_is_a_clear_failure(tmp_path: Path) -> None:
    run = run_text(tmp_path, "wfx: 1\nsteps:\n  - {id: x, cmd: [no-such-program-wfx]}\n")
    assert run.status("x") == "failed"
    assert "no-such-program-wfx" in (run.result.steps["x"].reason or "")
