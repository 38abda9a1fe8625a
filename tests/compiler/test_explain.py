"""`wfx explain` for `finally` steps and for groups."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from wfx import api
from wfx.cli import cli
from wfx.explain import explain, explain_group
from wfx.graph import Origin
from wfx.render.explain_text import render_explanation, render_group_explanation

Write = Callable[[str], Path]

WORKFLOW = """
wfx: 1
defaults: {killGrace: 3s}
steps:
  - id: build
    run: echo build
    rollback: {run: echo undo}
  - id: checks
    type: parallel
    timeout: 5m
    maxParallel: 2
    env: {A: "1"}
    steps:
      - {id: lint, run: echo lint}
      - {id: test, run: echo test, timeout: 1m}
  - id: deploy
    run: echo deploy
finally:
  - id: notify
    run: echo notify
  - id: cleanup
    run: echo cleanup
  - id: report
    run: echo report
    condition: success()
"""


def test_a_finally_step_starts_after_the_main_steps_and_its_failure_cancels_nothing(
    workflow_file: Write,
) -> None:
    graph, plan = api.plan_file(workflow_file(WORKFLOW))
    found = explain(graph, plan, "notify")
    assert found.cancelled_on_failure == []  # the main steps have all ended
    assert found.compensated == []  # compensation ran before `finally`
    assert found.still_run_on_failure == ["cleanup"]
    assert found.skipped_on_failure == ["report"]  # its condition asks for success
    text = render_explanation(found)
    assert "it can start as soon as the run starts" not in text
    assert "starts once every main step has ended and compensation (if any) is done" in text
    assert "then the `finally` steps run" not in text
    assert "running steps are cancelled" not in text
    assert "the other `finally` steps still run: cleanup" in text


def test_a_main_step_still_says_the_finally_steps_run_after_it_fails(
    workflow_file: Write,
) -> None:
    graph, plan = api.plan_file(workflow_file(WORKFLOW))
    text = render_explanation(explain(graph, plan, "deploy"))
    assert "then the `finally` steps run" in text
    assert "rollbacks, in this order: build" in text


def test_a_group_shows_its_children_and_the_settings_they_inherit(
    workflow_file: Write,
) -> None:
    graph, plan = api.plan_file(workflow_file(WORKFLOW))
    found = explain_group(graph, plan, "checks")
    assert [c.id for c in found.children] == ["lint", "test"]
    assert found.steps == ["lint", "test"]
    assert found.settings["timeout"].value == 300
    assert found.settings["timeout"].origin is Origin.GROUP
    assert found.settings["killGrace"].origin is Origin.DEFAULTS
    assert [h.waits_for for h in found.chain] == ["build"]
    text = render_group_explanation(found)
    assert text.startswith("group `checks` (parallel, line 7)")
    assert "they all start together, at most 2 at once" in text
    assert "timeout = 5m  (from group `checks` (line 9))" in text
    assert "killGrace = 3s  (from defaults (line 2))" in text


def test_explain_accepts_a_group_id_on_the_command_line(workflow_file: Write) -> None:
    result = CliRunner().invoke(cli, ["explain", str(workflow_file(WORKFLOW)), "checks"])
    assert result.exit_code == 0, result.stderr
    assert "`lint` (run, line 13)" in result.stdout
