"""Nested fan-out before anything runs: ids with the outer key then the inner
(`test[api][3.12]`), the inner fan-out once per outer instance, `matrix` checks seeing the
outer axes too, `needs` meaning the same instance's copies, and the instance limit counted
over all fan-outs together, with its position."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wfx import api
from wfx.diagnostics import Severity
from wfx.explain import explain
from wfx.render.explain_text import render_explanation
from wfx.render.plan_json import plan_to_dict

Write = Callable[[str], Path]

NESTED = """
wfx: 1
steps:
  - id: svc
    matrix: {service: [api, web]}
    steps:
      - id: prep
        run: echo ${{ matrix.service }}
      - id: test
        matrix: {python: ["3.11", "3.12"]}
        maxParallel: 1
        run: echo ${{ matrix.service }} ${{ matrix.python }}
      - id: shard
        forEach: [a, b]
        run: echo ${{ matrix.service }} ${{ item }}
      - id: report
        needs: [test]
        run: echo ${{ steps.test.status }}
"""


def errors(write: Write, text: str) -> list[str]:
    report = api.check([write(text)])
    return [
        f"{d.span.line}:{d.span.column} {d.message}"
        for d in report.diagnostics
        if d.severity is Severity.ERROR and d.span
    ]


def test_inner_instances_are_keyed_by_the_outer_key_then_their_own(workflow_file: Write) -> None:
    graph, plan = api.plan_file(workflow_file(NESTED))
    data = plan_to_dict(plan)
    assert data["stages"][1] == [
        "test[api][3.11]",
        "test[api][3.12]",
        "test[web][3.11]",
        "test[web][3.12]",
    ]
    assert data["fanOuts"]["test[web]"]["instances"] == ["test[web][3.11]", "test[web][3.12]"]
    assert data["fanOuts"]["test[web]"]["maxParallel"] == 1
    assert data["fanOuts"]["shard[api]"]["instances"] == ["shard[api][0]", "shard[api][1]"]
    node = graph.node("test[web][3.12]")
    assert node.groups == ("svc", "svc[web]", "test[web]")
    assert node.instance is not None and node.instance.visible() == {
        "matrix": {"service": "web", "python": "3.12"}
    }
    # the outer matrix and the inner item are both known to the plan
    assert data["steps"]["test[web][3.12]"]["action"]["run"] == "echo web 3.12"
    assert data["steps"]["shard[api][1]"]["action"]["run"] == "echo api b"
    # `needs: [test]` inside instance `svc[api]` is that instance's inner fan-out
    needs = data["steps"]["report[api]"]["needs"]
    assert {"test[api][3.11]", "test[api][3.12]"} <= set(needs)
    assert not any("web" in n for n in needs)
    text = render_explanation(explain(graph, plan, "test[api][3.12]"))
    assert "inside group `test[api]`" in text


def test_matrix_checks_see_the_outer_axes_and_still_catch_unknown_ones(
    workflow_file: Write,
) -> None:
    text = NESTED.replace("${{ matrix.python }}", "${{ matrix.python }} ${{ matrix.pyhton }}")
    [found] = errors(workflow_file, text)
    assert found.startswith("11:66 unknown matrix axis `pyhton`")


def test_the_instance_limit_counts_every_fan_out_together(workflow_file: Write) -> None:
    values = ", ".join(str(i) for i in range(100))
    text = f"""
    wfx: 1
    steps:
      - id: outer
        matrix: {{a: [{values}], b: [{values}]}}
        steps:
          - id: inner
            matrix: {{c: [{values}], d: [{values}]}}
            run: echo
    """
    [found] = errors(workflow_file, text)
    assert found.startswith("7:17 fan-out `inner[0,0]` would create too many instances")
    assert "20000 or more, the limit is 10000" in found
    small = """
    wfx: 1
    maxInstances: 5
    steps:
      - id: outer
        matrix: {a: [1, 2]}
        steps:
          - id: inner
            forEach: [x, y]
            run: echo
    """
    [found] = errors(workflow_file, small)
    assert found.startswith("8:18 fan-out `inner[2]` would create too many instances")


def test_an_outer_groups_env_is_planned_with_the_outer_instances_values(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    steps:
      - id: svc
        forEach: [api, web]
        env: {SERVICE: "${{ item }}"}
        steps:
          - id: part
            forEach: [x, y]
            env: {PART: "${{ item }}"}
            run: echo "$SERVICE $PART"
    """
    _, plan = api.plan_file(workflow_file(text))
    data = plan_to_dict(plan)
    assert data["steps"]["part[1][0]"]["action"]["env"] == {"SERVICE": "web", "PART": "x"}
