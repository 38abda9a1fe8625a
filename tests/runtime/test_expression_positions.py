"""An expression that fails at run time names the file, line and column of the
expression: in the step's reason, its StepFinished event (`span`) and notices."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness import run_text

from wfx.runtime import events as ev

FLOW = """\
wfx: 1
inputs:
  n: {type: string, default: "not json"}
steps:
  - id: script
    onError: continue
    run: echo ${{ fromJSON(inputs.n) }}
  - id: argv
    onError: continue
    cmd: [echo, "${{ fromJSON(inputs.n) }}"]
  - id: environment
    onError: continue
    env: {X: "${{ fromJSON(inputs.n) }}"}
    run: echo "$X"
  - id: python
    onError: continue
    uses: python:t:f
    with: {x: "${{ fromJSON(inputs.n) }}"}
  - id: conditional
    condition: always() && fromJSON(inputs.n)
    run: echo never
outputs:
  o: ${{ fromJSON(inputs.n) }}
"""

#: step -> (line, column) of its failing expression in FLOW
WHERE = {
    "script": (7, 19),
    "argv": (10, 22),
    "environment": (13, 19),
    "python": (18, 20),
    "conditional": (20, 28),
}


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[ev.Event]:
    run = run_text(tmp_path_factory.mktemp("positions"), FLOW, actions={"python:t:f": print})
    return run.events


@pytest.mark.parametrize("step", WHERE)
def test_the_step_names_where_its_expression_is(recorded: list[ev.Event], step: str) -> None:
    [event] = [e for e in recorded if isinstance(e, ev.StepFinished) and e.step == step]
    line, column = WHERE[step]
    assert event.span is not None
    where = (Path(event.span.file).name, event.span.line, event.span.column)
    assert where == ("wf.yaml", line, column)
    assert event.reason is not None
    assert event.reason.startswith(f"{event.span}: ")
    assert "fromJSON" in event.reason


def test_a_workflow_output_notice_names_where_it_is(recorded: list[ev.Event]) -> None:
    [notice] = [e for e in recorded if isinstance(e, ev.Notice) and "workflow output" in e.message]
    assert notice.span is not None
    assert (notice.span.line, notice.span.column) == (23, 10)
    assert notice.message.startswith(f"{notice.span}: workflow output `o`")


def test_the_span_reaches_cloudevents_as_file_line_column(recorded: list[ev.Event]) -> None:
    from wfx.render.cloudevents import to_cloudevent

    [event] = [e for e in recorded if isinstance(e, ev.StepFinished) and e.step == "script"]
    line = json.loads(json.dumps(to_cloudevent(event, "wfx://test"), default=str))
    assert line["data"]["span"].endswith("wf.yaml:7:19")
