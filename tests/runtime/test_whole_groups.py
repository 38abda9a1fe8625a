"""A group as a whole (docs/language.md, "Groups as a whole"): `groupTimeout` bounds the
whole group and kills what runs in it; `groupRetries` runs the whole group again after
rolling back what its failed attempt did."""

from __future__ import annotations

import os
from pathlib import Path

from harness import run_text

from wfx.runtime import events as ev
from wfx.runtime.events import RunStatus


def gone(pid: int) -> bool:
    """Whether process `pid` no longer runs (reaped, or a zombie waiting to be)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "\nState:\tZ" in status.read_text()


def test_group_timeout_kills_the_running_child_and_skips_the_rest(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: deploy
            groupTimeout: 300ms
            killGrace: 100ms
            steps:
              - {{id: a, run: echo a, rollback: {{run: echo undo a}}}}
              - id: inner
                steps:
                  - id: b
                    run: |
                      sleep 30 &
                      echo $! >> {pids}
                      echo $$ >> {pids}
                      wait
              - {{id: c, run: echo c}}
          - {{id: after, run: echo after}}
        finally:
          - {{id: report, run: 'echo "${{{{ workflow.status }}}}"'}}
        """,
    )
    reason = "group `deploy` timed out after 300ms (groupTimeout)"
    assert run.result.status is RunStatus.FAILED
    assert run.result.reason == reason
    assert (run.status("a"), run.status("b"), run.status("c")) == (
        "rolledBack",
        "timeout",
        "skipped",
    )
    assert run.result.steps["b"].reason == run.result.steps["c"].reason == reason  # type: ignore[index]
    assert run.status("after") == "skipped"
    assert run.output("report") == ["failure"]
    assert all(gone(int(pid)) for pid in pids.read_text().split())


def test_a_group_that_ends_in_time_is_not_stopped(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: quick
            groupTimeout: 30s
            steps:
              - {id: a, run: echo a}
          - {id: after, run: echo after}
        """,
    )
    assert run.result.status is RunStatus.SUCCESS
    assert run.output("after") == ["after"]


def test_a_groups_timeout_still_bounds_each_childs_attempt(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: g
            timeout: 100ms
            killGrace: 50ms
            groupTimeout: 30s
            steps:
              - {id: slow, run: sleep 30}
        """,
    )
    [finished] = run.of(ev.StepTimedOut)
    assert finished.reason == "timed out after 100ms"


def _ledger(tmp_path: Path) -> list[str]:
    return (tmp_path / "ledger").read_text().split()


GROUP = """
wfx: 1
steps:
  - id: deploy
    groupRetries: POLICY
    steps:
      - id: push
        run: echo "push:$WFX_ATTEMPT" >> LEDGER
        rollback: {run: echo undo-push >> LEDGER}
      - id: check
        run: |
          echo check >> LEDGER
          [ "$(grep -c '^check$' LEDGER)" -ge PASSES ] || exit CODE
  - {id: after, run: echo after >> LEDGER}
"""


def _group(tmp_path: Path, policy: str, passes: int, code: int = 1) -> str:
    return (
        GROUP.replace("POLICY", policy)
        .replace("LEDGER", str(tmp_path / "ledger"))
        .replace("PASSES", str(passes))
        .replace("CODE", str(code))
    )


def test_group_retries_roll_back_then_run_every_child_again(tmp_path: Path) -> None:
    run = run_text(tmp_path, _group(tmp_path, "{max: 2, delay: 1ms}", passes=3))
    assert run.result.status is RunStatus.SUCCESS
    assert _ledger(tmp_path) == [
        "push:1",
        "check",
        "undo-push",
        "push:2",  # a new attempt number: the undone push's idempotency key is not reused
        "check",
        "undo-push",
        "push:3",
        "check",
        "after",
    ]
    retried = run.of(ev.GroupRetrying)
    assert [(e.group, e.attempt, e.next_attempt) for e in retried] == [
        ("deploy", 1, 2),
        ("deploy", 2, 3),
    ]
    assert retried[0].steps == ("push", "check")
    assert retried[0].reason == "step `check` failed: exit code 1"
    assert run.result.steps["check"].attempts == 3  # type: ignore[index]


def test_a_group_out_of_retries_fails_and_is_compensated(tmp_path: Path) -> None:
    run = run_text(tmp_path, _group(tmp_path, "1", passes=9))
    assert run.result.status is RunStatus.FAILED
    assert run.result.reason == "step `check` failed: exit code 1"
    assert _ledger(tmp_path) == ["push:1", "check", "undo-push", "push:2", "check", "undo-push"]
    assert run.status("push") == "rolledBack"
    assert run.status("after") == "skipped"


def test_group_retries_on_skips_a_failure_it_does_not_list(tmp_path: Path) -> None:
    run = run_text(tmp_path, _group(tmp_path, "{max: 3, on: [75]}", passes=2, code=4))
    assert run.result.status is RunStatus.FAILED
    assert _ledger(tmp_path) == ["push:1", "check", "undo-push"]
    assert not run.of(ev.GroupRetrying)


def test_group_retries_deadline_stops_the_reruns(tmp_path: Path) -> None:
    run = run_text(tmp_path, _group(tmp_path, "{max: 5, delay: 30s, deadline: 1s}", passes=3))
    assert run.result.status is RunStatus.FAILED
    assert "not run again: its groupRetries deadline of 1s passed" in (run.result.reason or "")
    assert _ledger(tmp_path) == ["push:1", "check", "undo-push"]


def test_a_timed_out_group_attempt_is_killed_and_run_again(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    ledger = tmp_path / "ledger"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: g
            type: parallel
            groupTimeout: 300ms
            killGrace: 100ms
            groupRetries: {{max: 1, delay: 1ms, on: [timeout]}}
            steps:
              - {{id: quick, run: echo quick >> {ledger}}}
              - id: slow
                run: |
                  echo $$ >> {pids}
                  if [ "$WFX_ATTEMPT" = 1 ]; then exec sleep 30; fi
        """,
    )
    assert run.result.status is RunStatus.SUCCESS
    assert ledger.read_text().split() == ["quick", "quick"]
    first, _second = pids.read_text().split()
    assert gone(int(first))
    [retried] = run.of(ev.GroupRetrying)
    assert retried.reason == "group `g` timed out after 300ms (groupTimeout)"


def test_a_failing_child_of_a_parallel_group_stops_its_siblings_first(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    ledger = tmp_path / "ledger"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: g
            type: parallel
            killGrace: 100ms
            groupRetries: {{max: 1, delay: 1ms}}
            steps:
              - id: long
                run: |
                  echo long >> {ledger}
                  if [ "$WFX_ATTEMPT" = 1 ]; then echo $$ > {pids}; exec sleep 30; fi
              - id: flaky
                run: |
                  sleep 0.1
                  [ "$WFX_ATTEMPT" = 2 ]
        """,
    )
    assert run.result.status is RunStatus.SUCCESS
    assert ledger.read_text().split() == ["long", "long"]
    assert gone(int(pids.read_text()))
    [cancelled] = [e for e in run.of(ev.StepCancelled) if e.step == "long"]
    assert "group `g` attempt 1 failed (step `flaky` failed: exit code 1)" in (
        cancelled.reason or ""
    )


def test_the_innermost_group_runs_again_first_then_the_outer_one(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: outer
            groupRetries: {{max: 1, delay: 1ms}}
            steps:
              - {{id: o1, run: echo o1 >> {ledger}, rollback: {{run: echo undo-o1 >> {ledger}}}}}
              - id: inner
                groupRetries: {{max: 1, delay: 1ms}}
                steps:
                  - id: i1
                    run: echo i1 >> {ledger}
                    rollback: {{run: echo undo-i1 >> {ledger}}}
                  - {{id: i2, run: echo i2 >> {ledger}; exit 1}}
        """,
    )
    assert run.result.status is RunStatus.FAILED
    one_outer_attempt = ["o1", "i1", "i2", "undo-i1", "i1", "i2", "undo-i1", "undo-o1"]
    assert ledger.read_text().split() == one_outer_attempt * 2
    assert [(e.group, e.next_attempt) for e in run.of(ev.GroupRetrying)] == [
        ("inner", 2),
        ("outer", 2),
        ("inner", 2),  # the outer group's new attempt gives the inner group its retries again
    ]
