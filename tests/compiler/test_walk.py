"""The one step walker (`wfx.walk`): the order every stage sees the steps in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wfx import api
from wfx.compiler import assign_ids
from wfx.model import Action, Step
from wfx.walk import StepVisitor, all_actions, all_steps

Write = Callable[[str], Path]

WORKFLOW = """
wfx: 1
steps:
  - id: build
    run: echo build
    rollback: {run: echo undo}
  - type: parallel
    steps:
      - {id: lint, cmd: [echo, lint]}
      - steps:
          - {run: echo deep}
  - id: call
    uses: python:tools:call
finally:
  - {id: notify, run: echo notify}
  - {run: echo last}
"""


def test_every_step_groups_before_children_then_finally(workflow_file: Write) -> None:
    workflow = api.load(workflow_file(WORKFLOW))
    ids = assign_ids(workflow)
    walked = [ids[s.path] for s in all_steps(workflow)]
    assert walked == [
        "build",
        "step-2",
        "lint",
        "step-2-2",
        "step-2-2-1",
        "call",
        "notify",
        "finally-2",
    ]


def test_actions_come_with_their_rollbacks(workflow_file: Write) -> None:
    workflow = api.load(workflow_file(WORKFLOW))
    seen = [(a.kind.value, a.span.line, rollback) for a, _, rollback in all_actions(workflow)]
    assert seen == [
        ("run", 3, False),
        ("run", 5, True),
        ("cmd", 8, False),
        ("run", 10, False),
        ("uses", 11, False),
        ("run", 14, False),
        ("run", 15, False),
    ]


def test_visit_dispatches_on_the_kind(workflow_file: Write) -> None:
    class Kinds(StepVisitor):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def visit_group(self, step: Step) -> None:
            self.seen.append("group")
            self.generic_visit(step)

        def visit_cmd(self, step: Step) -> None:
            self.seen.append("cmd")

        def visit_action(self, action: Action, step: Step, *, rollback: bool) -> None:
            self.seen.append("rollback" if rollback else "action")

    visitor = Kinds()
    visitor.visit_workflow(api.load(workflow_file(WORKFLOW)))
    assert visitor.seen == [
        "action",
        "rollback",
        "group",
        "cmd",
        "group",
        "action",
        "action",
        "action",
        "action",
    ]
