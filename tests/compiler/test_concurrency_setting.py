"""`concurrency:` in the language: the group may read only declared inputs (checked with
positions), the plan shows it resolved, and a string is a `queue` group."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console

from wfx.api import plan_file
from wfx.diagnostics import DiagnosticsError
from wfx.plan import Plan
from wfx.render.plan_json import render_json
from wfx.render.plan_text import render_text

HEAD = """\
wfx: 1
inputs:
  environment: {type: choice, enum: [dev, prd], default: dev}
"""


def test_the_plan_shows_the_group_resolved(workflow_file: Callable[..., Path]) -> None:
    path = workflow_file(
        HEAD + "concurrency: {group: 'deploy-${{ inputs.environment }}', mode: cancel}\n"
        "steps:\n  - run: 'true'\n"
    )
    _, the_plan = plan_file(path, {"environment": "prd"})
    assert json.loads(render_json(the_plan))["concurrency"] == {
        "group": "deploy-prd",
        "mode": "cancel",
    }
    assert 'concurrency: group "deploy-prd" (cancel)' in text_of(the_plan)


def test_a_string_is_a_queue_group(workflow_file: Callable[..., Path]) -> None:
    path = workflow_file(HEAD + "concurrency: nightly\nsteps:\n  - run: 'true'\n")
    assert plan_file(path)[1].concurrency == {"group": "nightly", "mode": "queue"}


@pytest.mark.parametrize(
    ("group", "expected"),
    [
        (
            "d-${{ env.REGION }}",
            "5:16: model.concurrency-context: the concurrency group may use"
            " only `inputs`, not `env.REGION`",
        ),
        (
            "d-${{ steps.a.outputs.x }}",
            "5:16: model.concurrency-context: the concurrency group"
            " may use only `inputs`, not `steps.a`",
        ),
        (
            "d-${{ inputs.nope }}",
            "5:16: compile.concurrency-input: the concurrency group reads"
            " `inputs.nope`, which is not a declared input",
        ),
    ],
)
def test_the_group_may_read_only_declared_inputs(
    workflow_file: Callable[..., Path], group: str, expected: str
) -> None:
    path = workflow_file(HEAD + f"concurrency:\n  group: {group}\nsteps:\n  - id: a\n    run: x\n")
    with pytest.raises(DiagnosticsError) as caught:
        plan_file(path)
    found = [
        f"{d.span.line}:{d.span.column}: {d.code}: {d.message}"
        for d in caught.value.diagnostics
        if d.span
    ]
    assert found == [expected]


def test_a_bad_mode_is_a_schema_error(workflow_file: Callable[..., Path]) -> None:
    path = workflow_file(HEAD + "concurrency: {group: x, mode: later}\nsteps:\n  - run: 'true'\n")
    with pytest.raises(DiagnosticsError) as caught:
        plan_file(path)
    assert "must be a group name, or a mapping" in str(caught.value.diagnostics[0].message) or any(
        "queue, cancel or fail" in d.message or "`queue`, `cancel` or `fail`" in d.message
        for d in caught.value.diagnostics
    )


def text_of(the_plan: Plan) -> str:
    """The verbose text plan as a colourless terminal shows it."""
    console = Console(width=200, color_system=None, record=True, file=io.StringIO())
    console.print(render_text(the_plan, verbose=True))
    return console.export_text()
