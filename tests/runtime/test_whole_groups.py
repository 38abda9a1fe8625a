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
