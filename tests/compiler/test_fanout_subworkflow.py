"""A fan-out inside a called sub-workflow, before anything runs: its instances get the
caller's prefix (`staging/build[api,3.12]`), and so do the fan-out's facts; the plan nests
them under the call, `explain` works on them; a `matrix` on a calling step fans out the
call itself (`rel[eu]/...`)."""

from __future__ import annotations

from pathlib import Path

from test_subworkflows import write

from wfx import api
from wfx.explain import explain, explain_group
from wfx.graph import template_id
from wfx.render.explain_text import render_explanation, render_group_explanation
from wfx.render.plan_json import plan_to_dict
from wfx.render.plan_markdown import render_markdown

DEPLOY = """\
wfx: 1
inputs:
  env: {type: string, required: true}
outputs:
  fetched: ${{ toJSON(steps.fetch.outputs) }}
steps:
  - id: list
    run: echo 'items=["x"]' >> "$WFX_OUTPUT"
  - id: build
    matrix: {svc: [api, web], py: ["3.12"]}
    maxParallel: 1
    steps:
      - id: compile
        run: echo ${{ inputs.env }}-${{ matrix.svc }}
  - id: fetch
    forEach: ${{ fromJSON(steps.list.outputs.items) }}
    run: echo ${{ inputs.env }}-${{ item }}
"""

RELEASE = """\
wfx: 1
steps:
  - id: staging
    uses: ./deploy.yaml
    with: {env: staging}
  - id: prod
    uses: ./deploy.yaml
    with: {env: prod}
"""


def test_a_childs_instances_and_fan_out_facts_carry_the_callers_prefix(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": RELEASE, "deploy.yaml": DEPLOY})
    graph = api.compile_file(top).graph
    for call in ("staging", "prod"):
        node = graph.node(f"{call}/compile[web,3.12]")
        assert node.scope == f"{call}/"
        assert node.groups == (call, f"{call}/build", f"{call}/build[web,3.12]")
        assert node.instance is not None
        assert node.instance.fan_out == f"{call}/build"
        assert node.instance.members == frozenset({f"{call}/compile"})
        build = graph.node(f"{call}/build").fan_out
        assert build is not None and build.instances == (
            f"{call}/build[api,3.12]",
            f"{call}/build[web,3.12]",
        )
        assert template_id(f"{call}/fetch") in graph.templates()


def test_the_plan_shows_a_childs_fan_outs_under_the_call(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": RELEASE, "deploy.yaml": DEPLOY})
    _, plan = api.plan_file(top)
    data = plan_to_dict(plan)
    assert data["fanOuts"]["prod/build"]["instances"] == [
        "prod/build[api,3.12]",
        "prod/build[web,3.12]",
    ]
    assert data["fanOuts"]["prod/build"]["maxParallel"] == 1
    assert data["fanOuts"]["staging/fetch"]["dynamic"] is True
    # the child's expressions are planned with this call's inputs and the instance's matrix
    assert data["steps"]["prod/compile[web,3.12]"]["action"]["run"] == "echo prod-web"
    assert data["steps"]["staging/compile[api,3.12]"]["groups"][0] == "staging"
    markdown = render_markdown(plan)
    assert "  - `prod/compile[web,3.12]`" in markdown
    assert "  - `staging/fetch[*]`" in markdown


def test_explain_works_on_a_childs_instances_and_template(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": RELEASE, "deploy.yaml": DEPLOY})
    graph, plan = api.plan_file(top)
    text = render_explanation(explain(graph, plan, "prod/compile[api,3.12]"))
    assert text.startswith("step `prod/compile[api,3.12]` (run, ")
    assert "deploy.yaml line 13" in text
    assert "inside group `prod/build[api,3.12]`" in text
    template = render_explanation(explain(graph, plan, "staging/fetch[*]"))
    assert template.startswith("step `staging/fetch[*]` (run, ")
    group = render_group_explanation(explain_group(graph, plan, "prod/build[web,3.12]"))
    assert "`prod/compile[web,3.12]`" in group and "[api," not in group


def test_a_matrix_on_a_calling_step_fans_out_the_call(tmp_path: Path) -> None:
    parent = """\
    wfx: 1
    steps:
      - id: rel
        matrix: {region: [eu, us]}
        uses: ./deploy.yaml
        with: {env: "${{ matrix.region }}"}
      - id: after
        needs: [rel]
        run: echo ${{ steps.rel.status }}
    """
    top = write(tmp_path, {"wf.yaml": parent, "deploy.yaml": DEPLOY})
    graph, plan = api.plan_file(top)
    assert set(graph.calls) >= {"rel[eu]/", "rel[us]/"}
    assert graph.node("rel[us]/compile[web,3.12]").scope == "rel[us]/"
    data = plan_to_dict(plan)
    # the call's input comes from the instance's matrix, known to the plan
    assert data["steps"]["rel[us]/compile[web,3.12]"]["action"]["run"] == "echo us-web"
    assert data["groups"]["rel[us]"]["with"] == {"env": "us"}
    assert data["groups"]["rel[eu]"]["uses"] == "./deploy.yaml"
    after = graph.node("after")
    waits = {graph.nodes[i].id for i in graph.step_dependencies(after.index)}
    assert waits == {"rel[eu]/fetch", "rel[us]/fetch"}  # each call's last step: a fan-out
