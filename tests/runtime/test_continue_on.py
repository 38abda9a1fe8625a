"""`steps.<id>.exitCode` and `continueOn` (docs/language.md, "onError"): the run goes on
after the listed exit codes only, and later steps can read the code."""

from __future__ import annotations

from pathlib import Path

from harness import run_text

from wfx.runtime import events as ev
from wfx.runtime.events import RunStatus


def test_exit_code_is_the_last_attempts_and_null_without_a_process(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: probe, run: 'exit $((${{ attempt }} + 2))', retries: {max: 1, delay: 1ms},
             onError: continue}
          - {id: never, run: "true", condition: "false"}
          - {id: py, uses: "python:os:getcwd"}
          - id: report
            condition: always()
            run: |
              echo "probe=${{ steps.probe.exitCode }} never=${{ steps.never.exitCode }}"
              echo "py=${{ toJSON(steps.py.exitCode) }} same=${{ steps.probe.EXITCODE == 4 }}"
        """,
    )
    assert run.output("report") == ["probe=4 never=", "py=null same=true"]


def test_continue_on_a_listed_code_completes_with_failures(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: lint, run: exit 3, continueOn: [3, 4]}
          - {id: after, run: 'echo "lint said ${{ steps.lint.exitCode }}"'}
        """,
    )
    assert run.result.status is RunStatus.COMPLETED_WITH_FAILURES
    assert run.result.exit_code == 3
    assert run.output("after") == ["lint said 3"]


def test_any_other_code_fails_the_run(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: lint, run: exit 5, continueOn: [3, 4]}
          - {id: after, run: echo after}
        """,
    )
    assert run.result.status is RunStatus.FAILED
    assert run.status("after") == "skipped"


def test_a_groups_continue_on_is_its_childrens_and_retries_come_first(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: checks
            continueOn: [4]
            onError: retry
            retries: {{max: 2, delay: 1ms}}
            steps:
              - {{id: slow, run: 'echo x >> {ledger}; exit 4'}}
          - {{id: after, run: echo after}}
        """,
    )
    assert len(ledger.read_text().split()) == 3
    assert run.result.status is RunStatus.COMPLETED_WITH_FAILURES
    assert run.output("after") == ["after"]
    [finished] = [e for e in run.of(ev.StepFinished) if e.step == "slow"]
    assert finished.exit_code == 4
