"""A dynamic `forEach` on a group before anything runs: the body is compiled once, as a
template the run copies per item (not in the graph's nodes), `needs` from inside to
outside become the fan-out's own, and the plan shows "N times the template" with the body's steps
(`test[*]`) at their levels, its cap and what the worst case assumes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from wfx import api
from wfx.explain import explain
from wfx.fanout import PLACEHOLDER
from wfx.graph import NodeKind
from wfx.render.explain_text import render_explanation
from wfx.render.plan_json import plan_to_dict
from wfx.render.units import fan_out_line

Write = Callable[[str], Path]

GROUP = """
wfx: 1
steps:
  - id: list
    run: echo 'items=["a"]' >> "$WFX_OUTPUT"
  - id: config
    run: echo
  - id: svc
    forEach: ${{ fromJSON(steps.list.outputs.items) }}
    maxParallel: 2
    steps:
      - id: build
        timeout: 1m
        run: echo ${{ item }}
      - id: test
        needs: [config]
        timeout: 2m
        run: echo ${{ steps.build.outputs.x }}
        rollback: {run: echo undo}
  - id: after
    needs: [svc]
    timeout: 10s
    run: echo
"""


def test_a_dynamic_groups_body_is_a_template_beside_the_graph(workflow_file: Write) -> None:
    graph = api.compile_file(workflow_file(GROUP)).graph
    assert [n.id for n in graph.nodes if n.is_step] == ["list", "config", "after"]
    start = next(n for n in graph.nodes if n.id == "svc" and n.kind is NodeKind.GROUP_START)
    info = start.fan_out
    assert info is not None and info.dynamic
    body = [(n.id, n.kind.value, n.deps) for n in info.body]
    key = f"[{PLACEHOLDER}]"
    assert body == [
        (f"svc{key}", "group-start", (-1,)),
        (f"build{key}", "step", (0,)),
        (f"test{key}", "step", (1,)),
        (f"svc{key}", "group-end", (2,)),
    ]
    assert info.body[2].groups == ("svc", f"svc{key}")
    # `test` needs `config`, outside the group: the whole fan-out waits for it
    assert graph.ids["config"] in start.deps
    assert info.template_steps() == ("build[*]", "test[*]")


def test_the_plan_shows_n_times_the_groups_body(workflow_file: Write) -> None:
    _, plan = api.plan_file(workflow_file(GROUP))
    data = plan_to_dict(plan)
    assert data["stages"] == [["list"], ["config"], ["build[*]"], ["test[*]"], ["after"]]
    fan_out = data["fanOuts"]["svc"]
    assert fan_out["template"] == ["build[*]", "test[*]"]
    assert fan_out["dynamic"] and fan_out["maxParallel"] == 2
    assert "at most 2 items" in fan_out["assumption"]
    assert "each wave up to 3m" in fan_out["assumption"]
    assert data["steps"]["test[*]"]["action"]["run"] == "echo ${{ steps.build.outputs.x }}"
    assert data["steps"]["after"]["needs"] == ["build[*]", "test[*]"]
    assert data["compensation"] == ["test[*]"]
    assert data["criticalPath"][-3:] == ["build[*]", "test[*]", "after"]
    line = fan_out_line(plan.fan_outs["svc"])
    assert line.startswith("svc[*]: N × template (build[*], test[*]), N known at run time")


def test_a_static_fan_out_in_a_dynamic_groups_body_is_planned_in_it(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    steps:
      - id: list
        run: echo
      - id: svc
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        steps:
          - id: prep
            run: echo
          - id: test
            matrix: {python: ["3.11", "3.12"]}
            run: echo ${{ matrix.python }}
          - id: report
            run: echo
    """
    _, plan = api.plan_file(workflow_file(text))
    data = plan_to_dict(plan)
    assert data["stages"] == [
        ["list"],
        ["prep[*]"],
        ["test[*][3.11]", "test[*][3.12]"],
        ["report[*]"],
    ]
    assert data["steps"]["test[*][3.12]"]["action"]["run"] == "echo 3.12"
    assert data["steps"]["test[*][3.11]"]["needs"] == ["prep[*]"]
    assert data["steps"]["prep[*]"]["needs"] == ["list"]
    assert data["steps"]["report[*]"]["needs"] == ["test[*][3.11]", "test[*][3.12]"]


def test_explain_works_on_a_dynamic_groups_body_steps(workflow_file: Write) -> None:
    path = workflow_file(GROUP.replace("  - id: config\n    run: echo\n", CONFIG))
    graph, plan = api.plan_file(path)
    text = render_explanation(explain(graph, plan, "test[*]"))
    assert text.startswith("step `test[*]` (run, line ")
    # the fan-out's start stands for it: it waits for what the fan-out waits for
    assert "`svc` waits for `unrelated`" in text
    assert "skipped (they depend on it): after" in text


CONFIG = """  - id: config
    run: echo
  - id: unrelated
    run: echo
"""
