"""Sub-workflows (`uses: ./file.yaml`) before anything runs: loading confined to the project
root (RELIABILITY-TESTS T16), include cycles and depth, `with` and `secrets` checked against
the called file, the child's steps compiled into the graph as CALLER/CHILD, the plan and
`explain` views, the fingerprint over every included file, and root `x-*` keys."""

from __future__ import annotations

import json
import os
import re
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from wfx import api
from wfx.diagnostics import Diagnostic, DiagnosticsError
from wfx.explain import explain, explain_group
from wfx.plan import fingerprint
from wfx.render.diagnostics import as_text
from wfx.render.explain_text import render_explanation, render_group_explanation
from wfx.render.plan_graph import render_dot, render_mermaid
from wfx.render.plan_json import plan_to_dict
from wfx.render.plan_markdown import render_markdown
from wfx.runtime.journal import Journal

CHILD = """\
wfx: 1
name: deploy
inputs:
  environment: {type: choice, enum: [staging, production], required: true}
  replicas: {type: number, default: 1}
secrets: [TOKEN]
outputs:
  url: https://${{ inputs.environment }}.example/${{ steps.push.outputs.tag }}
steps:
  - id: push
    run: echo "tag=v1" >> "$WFX_OUTPUT"
  - id: verify
    run: echo verify ${{ inputs.environment }}
finally:
  - id: cleanup
    run: echo cleanup
"""

PARENT = """\
wfx: 1
secrets: [TOKEN, OTHER]
steps:
  - id: build
    run: echo build
  - id: staging
    uses: ./workflows/deploy.yaml
    with: {environment: staging, replicas: 2}
    secrets: [TOKEN]
  - id: report
    run: echo ${{ steps.staging.outputs.url }}
"""


def write(root: Path, files: dict[str, str]) -> Path:
    """Write each file under `root`; return the path of the first."""
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    return root / next(iter(files))


def problems(path: Path, root: Path | None = None) -> list[Diagnostic]:
    return api.check([path], root=root).diagnostics


def codes(found: list[Diagnostic]) -> list[str]:
    return [d.code for d in found if d.severity.value == "error"]


# -- compiled into one graph -------------------------------------------------------------------


def test_child_steps_are_nodes_of_the_graph_with_prefixed_ids(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": CHILD})
    graph = api.compile_file(top).graph
    steps = [n.id for n in graph.steps()]
    assert steps == ["build", "staging/push", "staging/verify", "staging/cleanup", "report"]
    push = graph.node("staging/push")
    assert push.scope == "staging/"
    assert push.groups == ("staging",)
    assert push.span.file == str(tmp_path / "workflows" / "deploy.yaml")
    assert graph.node("staging/cleanup").cleanup
    # `report` waits for the whole call, the child's `finally` step included
    report = graph.node("report")
    assert graph.node("staging/cleanup").index in graph.step_dependencies(report.index)


def test_a_nested_call_gets_nested_ids(tmp_path: Path) -> None:
    top = write(
        tmp_path,
        {
            "wf.yaml": "wfx: 1\nsteps:\n  - {id: a, uses: ./b.yaml}\n",
            "b.yaml": "wfx: 1\nsteps:\n  - {id: b, uses: ./sub/c.yaml}\n",
            "sub/c.yaml": "wfx: 1\nsteps:\n  - {id: c, run: echo c}\n",
        },
    )
    graph = api.compile_file(top).graph
    assert [n.id for n in graph.steps()] == ["a/b/c"]
    assert graph.node("a/b/c").groups == ("a", "a/b")
    assert set(graph.calls) == {"a/", "a/b/"}


def test_an_error_in_the_child_points_into_the_child_file(tmp_path: Path) -> None:
    child = CHILD.replace("${{ inputs.environment }}\n", "${{ steps.nope.outputs.x }}\n")
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": child})
    found = [d for d in problems(top) if d.code == "expr.unknown-name"]
    assert found, problems(top)
    assert found[0].span is not None
    assert found[0].span.file == str(tmp_path / "workflows" / "deploy.yaml")
    assert found[0].span.line == 13


# -- with: checked against the child's inputs ----------------------------------------------------


def test_an_input_of_the_wrong_type_names_both_files(tmp_path: Path) -> None:
    parent = PARENT.replace("replicas: 2", "replicas: three")
    top = write(tmp_path, {"wf.yaml": parent, "workflows/deploy.yaml": CHILD})
    [found] = [d for d in problems(top) if d.code == "include.input-type"]
    assert found.span is not None
    assert (found.span.file, found.span.line) == (str(top), 8)
    assert found.span.column == parent.splitlines()[7].index("three") + 1
    child_file = tmp_path / "workflows" / "deploy.yaml"
    assert f"{child_file}:5:3" in found.message  # where `replicas` is declared
    assert "expected a number" in found.message


def test_a_choice_outside_its_enum_and_unknown_and_missing_inputs(tmp_path: Path) -> None:
    parent = PARENT.replace("{environment: staging, replicas: 2}", "{environment: prod, colour: 1}")
    top = write(tmp_path, {"wf.yaml": parent, "workflows/deploy.yaml": CHILD})
    assert sorted(codes(problems(top))) == ["include.input-type", "include.unknown-input"]
    missing = PARENT.replace("{environment: staging, replicas: 2}", "{replicas: 2}")
    write(tmp_path, {"wf.yaml": missing})
    [found] = [d for d in problems(top) if d.code == "include.missing-input"]
    assert found.span is not None and found.span.line == 7
    assert "environment" in found.message


def test_a_value_known_only_at_run_time_is_not_checked_statically(tmp_path: Path) -> None:
    parent = PARENT.replace("replicas: 2", "replicas: '${{ steps.build.outputs.n }}'")
    top = write(tmp_path, {"wf.yaml": parent, "workflows/deploy.yaml": CHILD})
    assert codes(problems(top)) == []


# -- secrets ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("secrets: [TOKEN]", []),
        ("secrets: inherit", []),
        ("secrets: [OTHER]", ["include.secret-not-passed"]),
        ("secrets: [TOKEN, MISSING]", ["include.unknown-secret"]),
    ],
)
def test_secrets_are_passed_only_when_named(
    tmp_path: Path, given: str, expected: list[str]
) -> None:
    top = write(
        tmp_path,
        {"wf.yaml": PARENT.replace("secrets: [TOKEN]", given), "workflows/deploy.yaml": CHILD},
    )
    assert codes(problems(top)) == expected


def test_no_secrets_key_passes_no_secrets(tmp_path: Path) -> None:
    top = write(
        tmp_path,
        {"wf.yaml": PARENT.replace("    secrets: [TOKEN]\n", ""), "workflows/deploy.yaml": CHILD},
    )
    [found] = problems(top)
    assert found.code == "include.secret-not-passed"
    assert found.span is not None and found.span.line == 7  # the `uses:` of the call
    assert f"{tmp_path / 'workflows' / 'deploy.yaml'}:6:" in found.message


def test_settings_on_the_calling_step_are_refused(tmp_path: Path) -> None:
    parent = PARENT.replace("    secrets: [TOKEN]\n", "    secrets: [TOKEN]\n    timeout: 5m\n")
    top = write(tmp_path, {"wf.yaml": parent, "workflows/deploy.yaml": CHILD})
    [found] = problems(top)
    assert found.code == "include.caller-setting"
    assert "`timeout`" in found.message


# -- T16: confinement to the project root ----------------------------------------------------------


def call(path: str) -> str:
    return f"wfx: 1\nsteps:\n  - id: c\n    uses: {json.dumps(path)}\n"


class Opens(list[str]):
    """Every path `open` is called with between `start()` and the end of the test."""

    recording = False


@pytest.fixture
def audit_opens() -> Iterator[Opens]:
    """An audit hook on `open` (one cannot be removed, so it records only while on)."""
    opened = Opens()

    def hook(event: str, args: tuple[object, ...]) -> None:
        if opened.recording and event == "open" and isinstance(args[0], str | bytes | os.PathLike):
            opened.append(os.fsdecode(args[0]))

    sys.addaudithook(hook)
    yield opened
    opened.recording = False


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../../etc/passwd", "include.escape"),
        ("./../outside.yaml", "include.escape"),
        ("./a/../../outside.yaml", "include.escape"),
        ("/etc/passwd", "include.path"),
        ("/proc/self/environ", "include.path"),
        ("./..\\\\outside.yaml", "include.path"),
        ("..\\\\outside.yaml", "schema.invalid-value"),
        ("./x\x00.yaml", "include.path"),
        ("./%2e%2e/outside.yaml", "include.read"),  # a literal name inside the root
    ],
)
def test_paths_outside_the_root_are_refused_before_any_open(
    tmp_path: Path, audit_opens: Opens, path: str, code: str
) -> None:
    project = tmp_path / "project"
    (tmp_path / "outside.yaml").write_text("wfx: 1\nsteps: [{run: echo}]\n")
    top = write(project, {"wf.yaml": call(path)})
    audit_opens.recording = True
    found = problems(top)
    assert codes(found) == [code], found
    outside = [p for p in audit_opens if not os.path.realpath(p).startswith(str(project))]
    assert not [p for p in outside if "outside" in p or p.startswith(("/etc", "/proc"))]


def test_a_symlink_out_of_the_root_is_refused(tmp_path: Path, audit_opens: Opens) -> None:
    project = tmp_path / "project"
    secret = tmp_path / "secret.yaml"
    secret.write_text("wfx: 1\nsteps: [{run: echo}]\n")
    top = write(project, {"wf.yaml": call("./link.yaml")})
    (project / "link.yaml").symlink_to(secret)
    (project / "dir").symlink_to(tmp_path)
    audit_opens.recording = True
    [found] = problems(top)
    assert found.code == "include.symlink"
    write(project, {"wf.yaml": call("./dir/secret.yaml")})
    assert codes(problems(top)) == ["include.symlink"]
    assert str(secret) not in audit_opens


def test_a_symlink_inside_the_root_is_followed(tmp_path: Path) -> None:
    top = write(
        tmp_path, {"wf.yaml": call("./link.yaml"), "real.yaml": "wfx: 1\nsteps: [{run: echo}]\n"}
    )
    (tmp_path / "link.yaml").symlink_to(tmp_path / "real.yaml")
    assert codes(problems(top)) == []


def test_root_widens_the_confinement(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (tmp_path / "shared.yaml").write_text("wfx: 1\nsteps: [{id: s, run: echo}]\n")
    top = write(project, {"wf.yaml": call("../shared.yaml")})
    assert codes(problems(top)) == ["include.escape"]
    assert codes(problems(top, root=tmp_path)) == []
    assert codes(problems(top, root=project / "nowhere")) != []


def test_an_include_cycle_names_each_file_and_line(tmp_path: Path) -> None:
    top = write(
        tmp_path,
        {
            "wf.yaml": "wfx: 1\nsteps:\n  - {id: a, uses: ./a.yaml}\n",
            "a.yaml": "wfx: 1\nsteps:\n  - {id: b, run: echo}\n  - {id: c, uses: ./b.yaml}\n",
            "b.yaml": "wfx: 1\nsteps:\n  - {id: d, uses: ./a.yaml}\n",
        },
    )
    [found] = problems(top)
    assert found.code == "include.cycle"
    assert found.span is not None and found.span.file == str(tmp_path / "b.yaml")
    chain = found.message
    assert chain.index(f"{top}:3:") < chain.index(f"{tmp_path / 'a.yaml'}:4:")
    assert chain.index(f"{tmp_path / 'a.yaml'}:4:") < chain.index(f"{tmp_path / 'b.yaml'}:3:")


def test_a_file_calling_itself_is_a_cycle(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": call("./wf.yaml")})
    assert codes(problems(top)) == ["include.cycle"]


def test_depth_above_ten_is_refused_with_the_chain(tmp_path: Path) -> None:
    files = {f"l{i}.yaml": call(f"./l{i + 1}.yaml") for i in range(12)}
    files["l12.yaml"] = "wfx: 1\nsteps: [{run: echo}]\n"
    top = write(tmp_path, files)
    [found] = problems(top)
    assert found.code == "include.depth"
    assert found.message.count(" uses ") == 11
    files["l10.yaml"] = "wfx: 1\nsteps: [{run: echo}]\n"  # depth 10 is allowed
    write(tmp_path, {"l10.yaml": files["l10.yaml"]})
    assert codes(problems(top)) == []


def test_a_called_file_is_loaded_with_the_safe_loader(tmp_path: Path) -> None:
    top = write(
        tmp_path,
        {
            "wf.yaml": call("./bad.yaml"),
            "bad.yaml": "wfx: 1\nsteps: !!python/object:os.system {}\n",
        },
    )
    [found] = problems(top)
    assert found.code == "include.not-a-workflow"
    assert "YAML does not parse at line 2, column 8" in found.message
    assert "!!python/object:os.system" in found.message
    # said at the call: a file that does not parse may be any file, and is not quoted
    assert found.span is not None and found.span.file == str(tmp_path / "wf.yaml")


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("TOKEN=ghp_abc: def\n", "it has no `wfx:` key"),
        ("[core]\n\textraheader = AUTHORIZATION: basic c2VjcmV0\n", "YAML does not parse"),
        ("just text\n", "it has no `wfx:` key"),
    ],
)
def test_a_called_file_that_is_no_workflow_is_never_quoted(
    tmp_path: Path, text: str, why: str
) -> None:
    """A pull request's workflow calls a file the checkout holds (`.env`, a token):
    `wfx validate` says it is no workflow, at the call, and shows nothing of it."""
    top = write(tmp_path, {"wf.yaml": call("./data.txt"), "data.txt": text})
    report = api.check([top])
    shown = as_text(report.diagnostics, report.sources)
    assert why in shown
    assert "ghp_abc" not in shown and "c2VjcmV0" not in shown
    assert "data.txt:" not in shown  # no position inside it


def test_nothing_is_read_from_git(tmp_path: Path) -> None:
    top = write(
        tmp_path, {"wf.yaml": call("./.git/wf.yaml"), ".git/wf.yaml": "wfx: 1\nsteps: []\n"}
    )
    assert codes(problems(top)) == ["include.git"]


def test_a_call_is_loaded_once_however_often_it_is_called(
    tmp_path: Path, audit_opens: Opens
) -> None:
    parent = PARENT + (
        "  - id: production\n    uses: ./workflows/deploy.yaml\n"
        "    with: {environment: production}\n    secrets: inherit\n"
    )
    top = write(tmp_path, {"wf.yaml": parent, "workflows/deploy.yaml": CHILD})
    audit_opens.recording = True
    api.compile_file(top)
    child = str(tmp_path / "workflows" / "deploy.yaml")
    assert audit_opens.count(child) == 1


# -- plan, explain, fingerprint ----------------------------------------------------------------


def test_the_plan_nests_the_child_steps_under_the_call(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": CHILD})
    _, plan = api.plan_file(top)
    data = plan_to_dict(plan)
    group = data["groups"]["staging"]
    assert group["uses"] == "./workflows/deploy.yaml"
    assert group["with"] == {"environment": "staging", "replicas": 2}
    assert group["secrets"] == ["TOKEN"]
    verify = data["steps"]["staging/verify"]
    assert verify["groups"] == ["staging"]
    assert verify["file"].endswith("deploy.yaml") and verify["line"] == 12
    # the child's expressions are planned with the child's inputs
    assert verify["action"]["run"] == "echo verify staging"
    assert data["steps"]["staging/cleanup"]["cleanup"] is True
    markdown = render_markdown(plan)
    assert "- `staging` uses `./workflows/deploy.yaml`" in markdown
    assert "  - `staging/cleanup` (finally)" in markdown


def test_explain_works_on_child_steps_and_on_the_call(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": CHILD})
    graph, plan = api.plan_file(top)
    text = render_explanation(explain(graph, plan, "staging/push"))
    assert text.startswith("step `staging/push` (run, ")
    assert "deploy.yaml line 10" in text
    skipped = next(line for line in text.splitlines() if "skipped (they depend on it)" in line)
    assert "staging/verify" in skipped and "staging/cleanup" not in skipped
    group = render_group_explanation(explain_group(graph, plan, "staging"))
    assert "calls " in group and "staging/push, staging/verify, staging/cleanup" in group


def test_the_fingerprint_changes_when_a_child_changes(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": CHILD})
    graph = api.compile_file(top).graph
    before = fingerprint(graph.workflow, graph.inputs)
    write(tmp_path, {"workflows/deploy.yaml": CHILD.replace("echo cleanup", "echo tidy")})
    graph = api.compile_file(top).graph
    assert fingerprint(graph.workflow, graph.inputs) != before


def test_run_with_a_reviewed_plan_refuses_drift_in_a_child(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": CHILD})
    _, plan = api.plan_file(top)
    reviewed = tmp_path / "plan.json"
    reviewed.write_text(json.dumps(plan_to_dict(plan)))
    api.check_plan_binding(reviewed, api.compile_file(top).graph)
    write(tmp_path, {"workflows/deploy.yaml": CHILD.replace("echo cleanup", "rm -rf /")})
    with pytest.raises(DiagnosticsError) as caught:
        api.check_plan_binding(reviewed, api.compile_file(top).graph)
    assert caught.value.diagnostics[0].code == "plan.mismatch"


# -- x-* keys ----------------------------------------------------------------------------------


def test_x_keys_at_the_root_hold_anchors_and_are_ignored(tmp_path: Path) -> None:
    top = write(
        tmp_path,
        {
            "wf.yaml": """\
            wfx: 1
            x-retrying: &retrying
              retries: {max: 2, delay: 1s}
              timeout: 30s
            x-note: anything at all, [1, 2]
            steps:
              - id: a
                <<: *retrying
                run: echo a
              - id: b
                <<: *retrying
                timeout: 5s
                run: echo b
            """
        },
    )
    graph = api.compile_file(top).graph
    a, b = graph.node("a"), graph.node("b")
    assert a.settings is not None and b.settings is not None
    assert a.settings.retry.value.attempts == 3 and a.settings.timeout.value == 30
    assert b.settings.retry.value.attempts == 3 and b.settings.timeout.value == 5


def test_other_unknown_root_keys_are_still_errors(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": "wfx: 1\ny-anchor: 1\nsteps: [{run: echo}]\n"})
    assert codes(problems(top)) == ["schema.unknown-key"]
    nested = "wfx: 1\nsteps:\n  - {run: echo, x-note: 1}\n"
    write(tmp_path, {"wf.yaml": nested})
    assert codes(problems(top)) == ["schema.unknown-key"]


def test_graph_drawings_give_child_steps_valid_node_ids(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": CHILD})
    graph, plan = api.plan_file(top)
    mermaid = render_mermaid(graph, plan)
    assert 'x_staging_2f_push["staging/push"]' in mermaid
    assert "x_staging_2f_cleanup --> n_report" in mermaid
    assert not re.search(r"^\s*\S*/\S*\[", mermaid, re.MULTILINE)
    dot = render_dot(graph, plan)
    assert 'x_staging_2f_push [label="staging/push"];' in dot


def test_a_resume_refuses_a_changed_child_and_says_so(tmp_path: Path) -> None:
    top = write(tmp_path, {"wf.yaml": PARENT, "workflows/deploy.yaml": CHILD})
    journal = Journal(tmp_path / "state" / "journal.db")
    try:
        api.record_new_run(journal, api.compile_file(top).graph, top, "run-1", tmp_path / "ws")
        api.resume_target(journal, "run-1", False, str)  # unchanged: accepted
        write(tmp_path, {"workflows/deploy.yaml": CHILD.replace("echo cleanup", "echo tidy")})
        with pytest.raises(DiagnosticsError) as refused:
            api.resume_target(journal, "run-1", False, str)
        (problem,) = refused.value.diagnostics
        assert problem.code == "resume.changed"
        assert problem.message.endswith("a sub-workflow it calls changed")
    finally:
        journal.close()


def test_the_call_condition_is_planned_with_the_callers_inputs(tmp_path: Path) -> None:
    parent = """\
    wfx: 1
    inputs:
      deploy: {type: boolean, default: false}
    steps:
      - id: call
        uses: ./child.yaml
        condition: inputs.deploy
    """
    child = """\
    wfx: 1
    inputs:
      deploy: {type: boolean, default: true}
    steps:
      - {id: inner, run: echo, condition: inputs.deploy}
    """
    top = write(tmp_path, {"wf.yaml": parent, "child.yaml": child})
    _, plan = api.plan_file(top)
    assert plan.steps["call/inner"].condition.verdict.value == "never"
    _, plan = api.plan_file(top, {"deploy": "true"})
    assert plan.steps["call/inner"].condition.verdict.value == "always"


def test_calls_that_multiply_are_refused_before_the_graph_is_built(tmp_path: Path) -> None:
    files = {}
    for level in range(8):  # each file calls the next ten times: 10^8 steps
        calls = "".join(f"  - {{id: c{i}, uses: ./l{level + 1}.yaml}}\n" for i in range(10))
        files[f"l{level}.yaml"] = f"wfx: 1\nsteps:\n{calls}"
    files["l8.yaml"] = "wfx: 1\nsteps: [{run: echo}]\n"
    top = write(tmp_path, files)
    found = problems(top)
    assert codes(found) == ["include.too-large"]
    assert found[0].span is not None and found[0].span.file == str(top)
