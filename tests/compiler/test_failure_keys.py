"""The failure-handling keys are checked before anything runs, and the plan and `explain`
show them: `retries.on/except/deadline` (and later `continueOn`, `groupTimeout`,
`groupRetries`)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from wfx import api
from wfx.cli import cli as wfx_cli
from wfx.diagnostics import Severity

Write = Callable[[str], Path]


def problems(write: Write, text: str) -> list[tuple[str, int, str]]:
    report = api.check([write(text)])
    return [
        (d.code, d.span.line if d.span else 0, d.message)
        for d in report.diagnostics
        if d.severity is Severity.ERROR
    ]


def cli(*args: str) -> str:
    result = CliRunner().invoke(wfx_cli, list(args), env={"COLUMNS": "250"})
    return result.output


def test_an_exit_code_in_on_and_except_is_an_error_at_except(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        steps:
          - id: a
            run: exit 3
            retries: {max: 2, on: [3, 4, timeout], except: [4, 3]}
        """,
    )
    assert found == [
        ("compile.retry-on-except", 5, "exit codes 3, 4 in both `retries.on` and `retries.except`")
    ]


def test_a_groups_on_and_a_childs_except_overlap_once(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        steps:
          - id: g
            retries: {max: 2, on: [7]}
            steps:
              - {id: a, run: exit 7, retries: {except: [7]}}
              - {id: b, run: exit 7, retries: {except: [7]}}
        """,
    )
    assert [(code, line) for code, line, _ in found] == [
        ("compile.retry-on-except", 6),
        ("compile.retry-on-except", 7),
    ]


def test_exit_code_zero_cannot_be_retried(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        steps:
          - {id: a, run: "true", retries: {max: 1, on: [0]}}
        """,
    )
    assert [code for code, _, _ in found] == ["compile.retry-exit-code-zero"]


def test_the_schema_refuses_codes_out_of_range_and_unknown_words(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        steps:
          - {id: a, run: "true", retries: {max: 1, on: [256]}}
          - {id: b, run: "true", retries: {max: 1, on: sometimes}}
          - {id: c, run: "true", retries: {max: 1, except: [-1]}}
          - {id: d, run: "true", retries: {max: 1, deadline: soon}}
        """,
    )
    assert [line for _, line, _ in found] == [3, 4, 5, 6]
    assert all(code.startswith("schema.") for code, _, _ in found)


RETRYING = """
wfx: 1
steps:
  - id: fetch
    run: curl -f https://example.com
    timeout: 1m
    killGrace: 5s
    retries: {max: 2, delay: 1s, on: [75, timeout], except: [22], deadline: 90s}
"""


def test_the_plan_shows_on_except_and_deadline(workflow_file: Write) -> None:
    path = str(workflow_file(RETRYING))
    text = cli("plan", path, "--format", "text")
    assert "2 (1s, 2s); on 75, timeout; except 22; deadline 1m30s" in " ".join(text.split())
    markdown = cli("plan", path, "--format", "markdown")
    assert "2 (1s, 2s); on 75, timeout; except 22; deadline 1m30s" in markdown
    retry = json.loads(cli("plan", path, "--format", "json"))["steps"]["fetch"]["retry"]
    assert (retry["on"], retry["except"], retry["deadline"]) == ([75, "timeout"], [22], 90)
    # 3 attempts of 1m + 5s and 3s of waits would be 198s: the deadline bounds it
    assert json.loads(cli("plan", path, "--format", "json"))["worstCaseSeconds"] == 95


def test_the_plan_says_how_many_retries_fit_in_the_deadline(workflow_file: Write) -> None:
    """Waits of 1s, 2s, 4s, ... under a 5s deadline: the third wait would end after it, so
    at most 2 of the 10 retries can happen, whatever the attempts take."""
    path = str(
        workflow_file(
            "wfx: 1\nsteps:\n  - id: poll\n    run: exit 75\n"
            "    retries: {max: 10, delay: 1s, on: [75], deadline: 5s}\n"
        )
    )
    text = " ".join(cli("plan", path, "--format", "text").split())
    assert "on 75; deadline 5s (at most 2 retries)" in text
    assert "deadline 5s (at most 2 retries)" in cli("plan", path, "--format", "markdown")
    retry = json.loads(cli("plan", path, "--format", "json"))["steps"]["poll"]["retry"]
    assert retry["retriesWithinDeadline"] == 2
    assert "deadline 5s (at most 2 retries)" in cli("explain", path, "poll")
    roomy = json.loads(cli("plan", str(workflow_file(RETRYING)), "--format", "json"))
    assert roomy["steps"]["fetch"]["retry"]["retriesWithinDeadline"] == 2  # all of them fit


def test_explain_shows_on_except_and_deadline(workflow_file: Write) -> None:
    text = cli("explain", str(workflow_file(RETRYING)), "fetch")
    assert "retries = 2 (waits 1s, 2s); on 75, timeout; except 22; deadline 1m30s" in text
    assert "tried 3 times in all, waiting 1s, 2s; on 75, timeout; except 22; deadline" in text


def test_continue_on_with_on_error_continue_is_an_error(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        steps:
          - id: g
            onError: continue
            steps:
              - {id: a, run: exit 3, continueOn: [3]}
              - {id: b, run: exit 3, continueOn: [3], onError: fail}
          - {id: c, run: exit 3, continueOn: [0]}
        """,
    )
    assert [(code, line) for code, line, _ in found] == [
        ("compile.continue-on-conflict", 6),
        ("compile.continue-on-zero", 8),
    ]
    assert "from group `g` (line 4)" in found[0][2]


def test_exit_code_is_a_step_property(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        steps:
          - {id: a, run: exit 3, continueOn: [3]}
          - {id: b, run: 'echo ${{ steps.a.exitCode }} ${{ steps.a.exitcodes }}'}
        """,
    )
    assert [code for code, _, _ in found] == ["expr.unknown-name"]
    assert "exitcodes" in found[0][2]


def test_the_plan_and_explain_show_continue_on(workflow_file: Write) -> None:
    path = str(
        workflow_file(
            """
            wfx: 1
            steps:
              - {id: lint, run: ./lint.sh, continueOn: [3, 4]}
            """
        )
    )
    assert "fail; continue on 3, 4" in cli("plan", path, "--format", "text")
    assert "fail; continue on 3, 4" in cli("plan", path, "--format", "markdown")
    planned = json.loads(cli("plan", path, "--format", "json"))["steps"]["lint"]
    assert planned["continueOn"] == [3, 4]
    assert planned["provenance"]["continueOn"]["origin"] == "step"
    assert "continueOn: exit code 3, 4 -> it is marked failed and the run goes on" in cli(
        "explain", path, "lint"
    )


def test_group_keys_belong_to_groups(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        steps:
          - {id: a, run: "true", groupTimeout: 1m}
          - {id: b, run: "true", groupRetries: 2}
        """,
    )
    assert [(code, line) for code, line, _ in found] == [
        ("schema.misplaced-key", 3),
        ("schema.misplaced-key", 4),
    ]


def test_the_plan_and_explain_show_a_group_timeout(workflow_file: Write) -> None:
    path = str(
        workflow_file(
            """
            wfx: 1
            steps:
              - id: deploy
                timeout: 1m
                groupTimeout: 10m
                steps:
                  - {id: a, run: ./a.sh}
            """
        )
    )
    assert "group deploy: groupTimeout 10m" in cli("plan", path, "--format", "text")
    assert "- `deploy`: groupTimeout 10m" in cli("plan", path, "--format", "markdown")
    planned = json.loads(cli("plan", path, "--format", "json"))
    assert planned["groups"]["deploy"]["groupTimeout"] == 600
    assert planned["steps"]["a"]["timeout"] == 60
    explained = cli("explain", path, "deploy")
    assert "groupTimeout = 10m: then its running steps are killed" in explained
    assert "timeout = 1m" in explained


def test_a_step_outside_a_retried_group_cannot_need_a_step_inside(workflow_file: Write) -> None:
    found = problems(
        workflow_file,
        """
        wfx: 1
        type: parallel
        steps:
          - id: g
            groupRetries: 2
            steps:
              - {id: a, run: "true"}
              - {id: b, run: "true", needs: a}
          - {id: c, run: "true", needs: [a]}
          - {id: d, run: "true", needs: [g]}
        """,
    )
    assert [(code, line) for code, line, _ in found] == [("compile.needs-into-retried-group", 9)]


def test_the_plan_shows_group_retries(workflow_file: Write) -> None:
    path = str(
        workflow_file(
            """
            wfx: 1
            steps:
              - id: deploy
                retries: 1
                groupRetries: {max: 2, delay: 5s, on: [timeout]}
                steps:
                  - {id: a, run: ./a.sh}
            """
        )
    )
    text = cli("plan", path, "--format", "text")
    assert "group deploy: groupRetries 2 (5s, 10s); on timeout" in text
    planned = json.loads(cli("plan", path, "--format", "json"))
    assert planned["groups"]["deploy"]["groupRetries"] == {
        "attempts": 3,
        "delays": [5, 10],
        "jitter": 0,
        "on": ["timeout"],
        "except": [],
        "deadline": None,
    }
    assert planned["steps"]["a"]["retry"]["attempts"] == 2
    assert "groupRetries = 2 (waits 5s, 10s); on timeout: after a failure" in cli(
        "explain", path, "deploy"
    )
    assert "group `deploy` has groupRetries: first its succeeded steps are rolled back" in cli(
        "explain", path, "a"
    )


def test_the_worst_case_counts_group_timeouts_and_retries(workflow_file: Write) -> None:
    def worst(group: str) -> float:
        text = f"""
        wfx: 1
        defaults: {{timeout: 10s, killGrace: 1s}}
        steps:
          - id: g
            {group}
            steps:
              - {{id: a, run: ./a.sh, rollback: {{run: ./undo.sh, timeout: 2s}}}}
              - {{id: b, run: ./b.sh}}
          - {{id: c, run: ./c.sh}}
        """
        path = str(workflow_file(text))
        return float(json.loads(cli("plan", path, "--format", "json"))["worstCaseSeconds"])

    # a and b: 11s each; c: 11s; a's rollback at the end: 3s
    assert worst("type: sequential") == 22 + 11 + 3
    assert worst("groupTimeout: 5s") == (5 + 1) + 11 + 3
    # two runs of the group, a's rollback between them, a 4s wait
    assert worst("groupRetries: {max: 1, delay: 4s}") == 2 * 22 + 3 + 4 + 11 + 3


def test_the_plan_diff_shows_changed_group_limits(workflow_file: Write, tmp_path: Path) -> None:
    text = """
    wfx: 1
    steps:
      - id: deploy
        groupTimeout: 10m
        steps:
          - {id: a, run: ./a.sh}
    """
    base = workflow_file(text)
    (tmp_path / "head").mkdir()
    head = tmp_path / "head" / "wf.yaml"
    head.write_text(
        base.read_text().replace("groupTimeout: 10m", "groupTimeout: 5m\n    groupRetries: 1")
    )
    shown = cli("plan", str(head), "--diff", str(base), "--format", "text")
    assert "~ run groups.deploy.groupTimeout: 10m -> 5m" in shown
    assert "~ run groups.deploy.groupRetries: none -> 1 (1s)" in shown
