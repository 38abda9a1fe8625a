"""`wfx export --to argo`: a Workflow built with hera's models, validated against Argo's
own JSON schema (vendored in tests/export/argo with its licence and source commit) and
round-tripped through hera (dump, load, dump: equal) so that no key is dropped; and every
loss kind an error with its step's line, or with --allow-lossy a warning and a comment."""

from __future__ import annotations

import functools
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from wfx.cli import cli

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))
#: examples without a fan-out (export refuses `matrix`/`forEach`: test_a_fan_out_is_refused)
FAN_OUTS = [e for e in EXAMPLES if "matrix:" in e.read_text() or "forEach:" in e.read_text()]
#: examples that call a sub-workflow (refused as well: test_a_call_is_refused)
CALLS = [e for e in EXAMPLES if "uses: ./" in e.read_text()]
EXPORTABLE = [e for e in EXAMPLES if e not in FAN_OUTS and e not in CALLS]


@functools.cache
def validator() -> jsonschema.protocols.Validator:
    schema = json.loads((HERE / "argo" / "schema.json").read_text(encoding="utf-8"))
    return jsonschema.Draft202012Validator(schema)


def checked(text: str) -> dict[str, Any]:
    """The exported document, after Argo's schema and a hera round trip accepted it, and
    every `{{...}}` resolves where Argo resolves it."""
    document: dict[str, Any] = yaml.safe_load(text)
    errors = [e.message[-300:] for e in validator().iter_errors(document)]
    assert errors == []
    from hera.workflows import models  # heavy: not at collection

    again = models.Workflow.model_validate(document).model_dump(by_alias=True, exclude_none=True)
    assert again == document  # nothing dropped on the way through hera's models
    resolvable(document)
    return document


_TAG = re.compile(r"\{\{([^}]*)\}\}")


def resolvable(document: dict[str, Any]) -> None:
    """What Argo's validation asks of variables, for what export writes: a leaf template
    reads only its own `inputs.parameters` and `workflow.*`; a DAG task reads `tasks.X`
    only of a task of its own DAG (the exit handler sees none of the main DAG's tasks,
    only the workflow's global outputs) and passes every input its template declares."""
    spec = document["spec"]
    templates = {t["name"]: t for t in spec["templates"]}
    names = [t["name"] for t in spec["templates"]]
    assert len(names) == len(set(names))
    globals_ = {
        p["globalName"]
        for t in spec["templates"]
        for p in (t.get("outputs") or {}).get("parameters", [])
        if "globalName" in p
    }
    for template in spec["templates"]:
        if "dag" in template:
            own = {task["name"] for task in template["dag"]["tasks"]}
            for task in template["dag"]["tasks"]:
                declared = {
                    p["name"]
                    for p in (templates[task["template"]].get("inputs") or {}).get("parameters", [])
                }
                passed = {p["name"] for p in (task.get("arguments") or {}).get("parameters", [])}
                assert passed == declared, task["name"]
                for tag in _TAG.findall(json.dumps(task)):
                    head = tag.split(".")
                    if head[0] == "tasks":
                        assert head[1] in own, (template["name"], tag)
                    elif tag.startswith("workflow.outputs.parameters."):
                        assert tag.rsplit(".", 1)[1] in globals_, tag
                    else:
                        assert head[0] == "workflow", tag
        else:
            declared = {p["name"] for p in (template.get("inputs") or {}).get("parameters", [])}
            for tag in _TAG.findall(json.dumps(template)):
                if tag.startswith("inputs.parameters."):
                    assert tag.removeprefix("inputs.parameters.") in declared, tag
                else:
                    assert tag.split(".")[0] == "workflow", (template["name"], tag)


def export(path: Path, *args: str) -> Any:
    return CliRunner().invoke(cli, ["export", str(path), "--to", "argo", *args])


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


FAITHFUL = """
wfx: 1
name: Ship It
timeout: 10m
maxParallel: 3
inputs:
  environment: {type: choice, enum: [dev, prd], default: dev}
secrets: [TOKEN]
steps:
  - id: build
    timeout: 2m
    retries: {max: 2, delay: 5s, backoff: exponential, factor: 2, maxDelay: 1m}
    run: |
      echo "version=1.2.3" >> "$WFX_OUTPUT"
  - id: checks
    type: parallel
    steps:
      - {id: unit_tests, cmd: [echo, "unit ${{ inputs.environment }}", "$(HOME)"], timeout: 1m}
      - {id: lint, run: echo lint, onError: continue, timeout: 1m}
  - id: publish
    condition: ${{ inputs.environment == 'prd' }}
    env: {TOKEN: "${{ secrets.TOKEN }}"}
    timeout: 5m
    run: echo "publishing ${{ steps.build.outputs.version }}" ${{ secrets.TOKEN }}
finally:
  - {id: notify, condition: "${{ failure() }}", run: echo failed, timeout: 1m}
"""


def test_a_faithful_workflow_maps_without_loss(tmp_path: Path) -> None:
    result = export(write(tmp_path, FAITHFUL), "--image", "alpine:3")
    assert result.exit_code == 0, result.output
    assert "LOSSY" not in result.output
    document = checked(result.output)
    spec = document["spec"]
    assert document["metadata"] == {"generateName": "ship-it-"}
    assert spec["activeDeadlineSeconds"] == 600 and spec["parallelism"] == 3
    assert spec["arguments"]["parameters"] == [
        {"enum": ["dev", "prd"], "name": "environment", "value": "dev"}
    ]
    assert spec["onExit"] == "finally"
    tasks = {t["name"]: t for t in spec["templates"][0]["dag"]["tasks"]}
    assert tasks["unit-tests"]["dependencies"] == ["build"]
    assert tasks["publish"]["dependencies"] == ["unit-tests", "lint"]
    assert tasks["publish"]["when"] == "'{{workflow.parameters.environment}}' == 'prd'"
    assert tasks["lint"]["continueOn"] == {"failed": True}
    finally_task = spec["templates"][1]["dag"]["tasks"][0]
    assert finally_task["when"] == "{{workflow.status}} != Succeeded"
    templates = {t["name"]: t for t in spec["templates"]}
    build = templates["build"]
    assert build["activeDeadlineSeconds"] == "120"
    assert build["retryStrategy"] == {
        "backoff": {"cap": "60s", "duration": "5s", "factor": "2"},
        "limit": "2",
        "retryPolicy": "Always",
    }
    assert build["outputs"]["parameters"][0]["name"] == "version"
    assert build["script"]["image"] == "alpine:3"
    unit = templates["unit-tests"]["container"]
    assert unit["command"] == ["echo"]
    assert unit["args"] == ["$(WFX_ARG_2)", "$$(HOME)"]  # values as data; `$(` kept literal
    env = {e["name"]: e for e in unit["env"]}
    assert env["WFX_ARG_2"]["value"] == "unit {{workflow.parameters.environment}}"
    publish = {e["name"]: e for e in templates["publish"]["script"]["env"]}
    assert publish["TOKEN"]["valueFrom"] == {
        "secretKeyRef": {"key": "TOKEN", "name": "wfx-secrets"}
    }
    # a leaf template cannot read `{{tasks...}}`: its task passes the output as an argument
    assert publish["WFX_EXPR_1"]["value"] == "{{inputs.parameters.wfx-build-version}}"
    assert templates["publish"]["inputs"] == {"parameters": [{"name": "wfx-build-version"}]}
    assert tasks["publish"]["arguments"] == {
        "parameters": [
            {"name": "wfx-build-version", "value": "{{tasks.build.outputs.parameters.version}}"}
        ]
    }
    assert publish["WFX_EXPR_2"]["valueFrom"] == publish["TOKEN"]["valueFrom"]
    assert "{{" not in templates["publish"]["script"]["source"]


LOSSES = {
    "python": "{id: s, uses: 'python:tools:go', timeout: 1m}",
    "jitter": "{id: s, run: 'true', timeout: 1m, retries: {max: 2, delay: 1s, jitter: 0.5}}",
    "backoff": "{id: s, run: 'true', timeout: 1m, retries: {max: 2, delay: 1s, backoff: linear}}",
    "expression": "{id: s, run: 'echo ${{ toJSON(1) }}', timeout: 1m}",
    "working-directory": "{id: s, run: 'true', timeout: 1m, workingDirectory: sub}",
    "rollback": "{id: s, run: 'true', timeout: 1m, rollback: {run: 'true'}}",
    "workspace": "{id: s, run: 'ls $WFX_WORKSPACE', timeout: 1m}",
    "kill-grace": "{id: s, run: 'true', timeout: 1m, killGrace: 3s}",
    "timeout": "{id: s, run: 'true', timeout: 1500ms}",
    "max-parallel": "{id: s, maxParallel: 1, steps: [{id: s_in, run: 'true', timeout: 1m}]}",
    "group-timeout": "{id: s, groupTimeout: 5m, steps: [{id: s_in, run: 'true', timeout: 1m}]}",
    "group-retries": "{id: s, groupRetries: 2, steps: [{id: s_in, run: 'true', timeout: 1m}]}",
    "continue-on": "{id: s, run: 'exit 3', timeout: 1m, continueOn: [3]}",
    "executor": "{id: s, run: 'true', executor: 'dask://10.0.0.1:8786'}",
    "retry-filter": "{id: s, run: 'true', timeout: 1m, retries: {max: 2, on: [75]}}",
    "retry-deadline": "{id: s, run: 'true', timeout: 1m, retries: {max: 2, deadline: 30s}}",
    "outputs": "{id: s, run: 'print(1)', shell: 'python3 {0}', timeout: 1m}\n"
    "  - {id: s_reader, run: 'echo ${{ steps.s.outputs.x }}', timeout: 1m}",
}


@pytest.mark.parametrize("kind", sorted(LOSSES))
def test_each_loss_is_an_error_with_the_step_line(tmp_path: Path, kind: str) -> None:
    path = write(tmp_path, f"wfx: 1\nsteps:\n  - {LOSSES[kind]}\n")
    refused = export(path)
    assert refused.exit_code == 2
    assert f"{path}:3:5: error: [{kind}]" in refused.output, refused.output


def test_a_concurrency_group_is_a_loss(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nconcurrency: deploy\nsteps:\n  - {id: s, run: 'true'}\n")
    refused = export(path)
    assert refused.exit_code == 2
    assert f"{path}:1:1: error: [concurrency] concurrency group `deploy` (queue)" in (
        refused.output
    )


def _renamed(kind: str, step: str) -> str:
    """A LOSSES step with ids of its own (`s` becomes `s_<kind>`), to put them all in one file."""
    own = "s_" + kind.replace("-", "_")
    return step.replace("id: s", "id: " + own).replace("steps.s.", f"steps.{own}.")


def test_allow_lossy_output_is_still_valid_argo(tmp_path: Path) -> None:
    steps = "".join(f"  - {_renamed(kind, step)}\n" for kind, step in LOSSES.items())
    path = write(
        tmp_path, f"wfx: 1\ninputs: {{v: {{type: string, pattern: '^v'}}}}\nsteps:\n{steps}"
    )
    result = export(path, "--allow-lossy", "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code == 0, result.output
    text = (tmp_path / "out.yaml").read_text()
    head = text.split("\napiVersion:", 1)[0]
    for kind in [*LOSSES, "input-pattern"]:
        assert f"[{kind}]" in head
    assert result.output.count("warning:") == head.count("#   - ")
    checked(text)


def test_every_example_exports_to_a_valid_argo_workflow(tmp_path: Path) -> None:
    for example in EXPORTABLE:
        result = export(example, "--allow-lossy", "-o", str(tmp_path / "out.yaml"))
        assert result.exit_code == 0, (example, result.output)
        checked((tmp_path / "out.yaml").read_text())


def test_a_fan_out_is_refused_even_when_lossy_is_allowed() -> None:
    assert FAN_OUTS
    for example in FAN_OUTS:
        result = export(example, "--allow-lossy")
        assert result.exit_code == 2, result.output
        assert "fans out (`matrix` or `forEach`)" in result.output


def test_a_call_is_refused_even_when_lossy_is_allowed() -> None:
    assert CALLS
    for example in CALLS:
        result = export(example, "--allow-lossy")
        assert result.exit_code == 2, result.output
        assert "calls the sub-workflow" in result.output


def test_a_rollbacks_timeout_is_kept(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wfx: 1\nsteps:\n  - {id: a, run: 'true', rollback: {run: undo, timeout: 20s}}\n",
    )
    result = export(path, "--allow-lossy", "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code == 0, result.output
    document = checked((tmp_path / "out.yaml").read_text())
    templates = {t["name"]: t for t in document["spec"]["templates"]}
    assert templates["rollback-a"]["activeDeadlineSeconds"] == "20"
    assert "activeDeadlineSeconds" not in templates["a"]


@pytest.mark.parametrize("image", ["", " ", "ubuntu 24.04"])
def test_an_image_that_is_no_image_is_refused(tmp_path: Path, image: str) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - {id: a, run: 'true'}\n")
    result = export(path, "--image", image)
    assert result.exit_code == 2
    assert "is not a container image" in result.output


def test_step_ids_argo_writes_alike_get_names_of_their_own(tmp_path: Path) -> None:
    """`a_b`, `a-b` and `A_B` are one Argo name, and `main`, `finally` and `rollback-…`
    are the exporter's own: every task and template keeps a name of its own."""
    path = write(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: a_b, run: echo one}
          - {id: a-b, run: echo two, rollback: {run: echo undo}}
          - {id: A_B, run: echo three}
          - {id: main, run: echo four}
          - {id: rollback-a-b-2, run: echo five}
        finally:
          - {id: finally, run: echo six}
        """,
    )
    result = export(path, "--allow-lossy", "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code == 0, result.output
    document = checked((tmp_path / "out.yaml").read_text())
    templates = [t["name"] for t in document["spec"]["templates"]]
    assert len(set(templates)) == len(templates)
    sources = {
        t["name"]: t["script"]["source"] for t in document["spec"]["templates"] if "script" in t
    }
    assert sources == {
        "a-b": "echo one",
        "a-b-2": "echo two",
        "a-b-3": "echo three",
        "main-2": "echo four",
        "rollback-a-b-2": "echo five",
        "finally-2": "echo six",
        "rollback-a-b-2-2": "echo undo",
    }
    main = next(t for t in document["spec"]["templates"] if t["name"] == "main")
    assert [t["name"] for t in main["dag"]["tasks"]] == [
        "a-b",
        "a-b-2",
        "a-b-3",
        "main-2",
        "rollback-a-b-2",
    ]


def test_finally_steps_and_rollbacks_read_outputs_through_the_workflows_outputs(
    tmp_path: Path,
) -> None:
    """The exit handler sees none of the main DAG's tasks: an output a `finally` step (or a
    rollback) reads is a global output of the workflow, passed to its template."""
    path = write(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: build
            run: echo "version=1" >> "$WFX_OUTPUT"
            rollback: {run: 'echo undo ${{ steps.build.outputs.version }}'}
        finally:
          - id: report
            condition: ${{ always() && steps.build.outputs.version != '' }}
            run: echo "built ${{ steps.build.outputs.version }}"
        """,
    )
    result = export(path, "--allow-lossy", "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code == 0, result.output
    document = checked((tmp_path / "out.yaml").read_text())
    templates = {t["name"]: t for t in document["spec"]["templates"]}
    (output,) = templates["build"]["outputs"]["parameters"]
    assert output["globalName"] == "wfx-build-version"
    handler = {t["name"]: t for t in templates["finally"]["dag"]["tasks"]}
    read = "{{workflow.outputs.parameters.wfx-build-version}}"
    for name in ("report", "rollback-build"):
        assert handler[name]["arguments"]["parameters"] == [
            {"name": "wfx-build-version", "value": read}
        ]
    assert read in handler["report"]["when"]


def test_a_script_that_cannot_take_its_values_as_data_fails_in_its_place(
    tmp_path: Path,
) -> None:
    """Kept as written, `${{ inputs.n }}` would be a variable Argo cannot resolve, and code
    in bash arithmetic: the task fails instead, and still declares the outputs read."""
    path = write(
        tmp_path,
        """
        wfx: 1
        inputs:
          n: {type: number, default: 3}
        steps:
          - id: count
            run: for (( i = 0; i < ${{ inputs.n }}; i++ )); do echo "i=$i" >> "$WFX_OUTPUT"; done
          - id: show
            run: echo "${{ steps.count.outputs.i }}"
        """,
    )
    result = export(path, "--allow-lossy", "-o", str(tmp_path / "out.yaml"))
    assert result.exit_code == 0, result.output
    assert "the task fails in its place" in result.output
    document = checked((tmp_path / "out.yaml").read_text())
    count = next(t for t in document["spec"]["templates"] if t["name"] == "count")
    assert count["container"]["command"][:2] == ["sh", "-c"]
    assert "inputs.n" not in json.dumps(count)
    assert [p["name"] for p in count["outputs"]["parameters"]] == ["i"]


def test_the_workflows_outputs_are_a_loss(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wfx: 1\noutputs:\n  version: ${{ steps.s.outputs.v }}\nsteps:\n"
        "  - {id: s, run: 'echo v=1 >> \"$WFX_OUTPUT\"'}\n",
    )
    refused = export(path)
    assert refused.exit_code == 2
    assert "error: [workflow-outputs] the workflow's outputs (version)" in refused.output


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) else []


def test_a_script_with_line_breaking_characters_comes_out_unchanged(tmp_path: Path) -> None:
    """NEL, U+2028 and U+2029 are line breaks to a YAML reader unless escaped: written raw,
    a script that held one came out changed."""
    script = "echo a\x85b\u2028c\u2029d"
    path = tmp_path / "wf.yaml"
    path.write_text(f"wfx: 1\nsteps:\n  - id: a\n    run: {json.dumps(script)}\n")
    out = tmp_path / "out.yaml"
    result = export(path, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert any(script in text for text in _strings(checked(out.read_text())))
