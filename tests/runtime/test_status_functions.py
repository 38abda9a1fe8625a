"""Status functions give one answer per step: the same in `run`, `cmd`, `env` and `with`
text as in its `condition`. And what a step prints while it is being stopped is kept."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

from harness import run_text

SHOW = "${{ success() }} ${{ failure() }} ${{ cancelled() }} ${{ always() }}"


def test_text_sees_the_status_its_condition_saw_after_a_failure(tmp_path: Path) -> None:
    seen: list[Any] = []

    def record(**values: Any) -> None:
        seen.append(values)

    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: broken
            run: exit 1
          - id: anyway
            condition: always()
            env: {{SHOWN: "{SHOW}"}}
            run: |
              echo "run {SHOW}"
              echo "env $SHOWN"
          - id: argv
            condition: always()
            cmd: [echo, "cmd {SHOW}"]
          - id: python
            condition: always()
            uses: python:t:record
            with: {{failed: "${{{{ failure() }}}}", cancelled: "${{{{ cancelled() }}}}"}}
          - id: on-failure
            condition: failure()
            run: echo ran
          - id: on-cancel
            condition: cancelled()
            run: echo ran
        finally:
          - id: report
            run: echo "finally {SHOW}"
        """,
        actions={"python:t:record": record},
    )
    assert run.output("anyway") == ["run false true false true", "env false true false true"]
    assert run.output("argv") == ["cmd false true false true"]
    assert seen == [{"failed": True, "cancelled": False}]
    assert run.status("on-failure") == "success"
    assert run.status("on-cancel") == "skipped"
    assert run.output("report") == ["finally false true false true"]


def test_text_sees_cancelled_when_an_independent_step_failed(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - type: parallel
            steps:
              - id: broken
                run: exit 1
              - id: slowish
                condition: always()
                run: sleep 0.3
              - id: independent
                needs: slowish
                condition: cancelled()
                run: echo "{SHOW}"
        """,
    )
    assert run.status("independent") == "success"
    assert run.output("independent") == ["false false true true"]


def test_a_quiet_run_reports_success(tmp_path: Path) -> None:
    run = run_text(tmp_path, f"wfx: 1\nsteps:\n  - {{id: a, run: 'echo \"{SHOW}\"'}}\n")
    assert run.output("a") == ["true false false true"]


TRAPPED = """\
id: slow
run: |
  trap 'echo stopping-gracefully; exit 143' TERM
  touch ready
  sleep 30 & wait
"""


def test_output_while_stopped_by_a_failing_sibling_is_an_event(tmp_path: Path) -> None:
    slow = textwrap.indent(TRAPPED, "    ").replace("    id", "  - id", 1)
    run = run_text(
        tmp_path,
        "wfx: 1\nsteps:\n  - type: parallel\n    steps:\n"
        + textwrap.indent(slow, "    ")
        + "      - id: boom\n"
        "        run: |\n"
        "          while [ ! -f ready ]; do sleep 0.02; done\n"
        "          exit 1\n",
    )
    assert run.status("slow") == "cancelled"
    assert "stopping-gracefully" in run.output("slow")


def test_output_while_stopped_by_a_timeout_is_an_event(tmp_path: Path) -> None:
    slow = textwrap.indent(TRAPPED, "    ").replace("    id", "  - id", 1)
    run = run_text(tmp_path, "wfx: 1\nsteps:\n" + slow + "    timeout: 1s\n")
    assert run.status("slow") == "timeout"
    assert "stopping-gracefully" in run.output("slow")
