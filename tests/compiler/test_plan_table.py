"""Table-driven plans: a workflow in; stages, verdicts, retry waits and compensation out."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from wfx import api
from wfx.render.plan_json import plan_to_dict
from wfx.resources import read_text

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
PLAN_SCHEMA = json.loads(read_text("schema", "plan.schema.json"))

#: example -> (inputs, stages, finally, {step: (verdict, attempts, delays)}, compensation)
TABLE: dict[
    str, tuple[dict[str, str], list[list[str]], list[list[str]], dict[str, Any], list[str]]
] = {
    "production-deployment.yaml": (
        {"environment": "prd"},
        [
            ["unit_tests", "lint", "backup"],
            ["login"],
            ["migrate"],
            ["release"],
            ["smoke", "metrics"],
        ],
        [["report"]],
        {
            "backup": ("always", 2, [0.1]),
            "login": ("runtime", 2, [0.1]),
            "metrics": ("always", 2, [0.1]),
            "report": ("always", 2, [0.1]),
        },
        ["release", "migrate"],
    ),
    "etl-pipeline.yaml": (
        {},
        [["extract"], ["transform"], ["quality"], ["load"]],
        [],
        {
            "extract": ("always", 4, [0.1, 0.2, 0.4]),
            "quality": ("always", 1, []),
            "load": ("always", 4, [0.1, 0.2, 0.4]),
        },
        [],
    ),
    "microservice-release.yaml": (
        {},
        [
            ["cart", "catalog", "checkout", "payments"],
            ["stack_up"],
            ["contract_tests"],
            ["end_to_end"],
            ["tag"],
            ["changelog"],
            ["notify"],
        ],
        [],
        {"contract_tests": ("always", 3, [0.1, 0.2]), "notify": ("always", 1, [])},
        [],
    ),
    "blue-green.yaml": (
        {"switch": "false"},
        [["deploy_idle"], ["health"], ["switch"], ["retire_old"], ["alert"]],
        [["summary"]],
        {
            "health": ("always", 3, [0.1, 0.2]),
            "switch": ("never", 1, []),
            "retire_old": ("runtime", 1, []),
            "alert": ("runtime", 1, []),
            "summary": ("always", 1, []),
        },
        ["switch", "deploy_idle"],
    ),
    "python-script.yaml": (
        {},
        [["numbers"], ["summarise"], ["show"]],
        [],
        {"summarise": ("always", 1, [])},
        [],
    ),
    "dependency-pipeline.yaml": (
        {"environment": "prd"},
        [["python", "lint"], ["docker"], ["terraform"], ["kubernetes"]],
        [],
        {"kubernetes": ("always", 3, [0.1, 0.2]), "terraform": ("always", 1, [])},
        [],
    ),
    "matrix-build.yaml": (
        {},
        [
            [
                "build[api,3.11]",
                "build[api,3.12]",
                "build[web,3.11]",
                "build[web,3.12]",
                "build[worker,3.12]",
            ],
            ["publish"],
        ],
        [],
        {"build[web,3.12]": ("always", 2, [0.1]), "publish": ("always", 1, [])},
        [
            "build[worker,3.12]",
            "build[web,3.12]",
            "build[web,3.11]",
            "build[api,3.12]",
            "build[api,3.11]",
        ],
    ),
    "dynamic-fan-out.yaml": (
        {},
        [["discover"], ["process[*]"], ["merge"]],
        [],
        {"process[*]": ("always", 2, [1.0]), "merge": ("always", 1, [])},
        [],
    ),
    "release-with-reusable-deploy.yaml": (
        {},
        [
            ["build"],
            ["staging/upload"],
            ["staging/rollout"],
            ["staging/smoke"],
            ["staging/record"],
            ["production/upload"],
            ["production/rollout"],
            ["production/smoke"],
            ["production/record"],
            ["announce"],
        ],
        [],
        {
            "build": ("always", 2, [0.1]),
            "staging/smoke": ("always", 3, [0.1, 0.2]),
            "production/record": ("always", 1, []),
        },
        ["production/rollout", "staging/rollout"],
    ),
    "multi-region-release.yaml": (
        {},
        [
            [
                "staging/rollout[eu-west,web]",
                "staging/rollout[eu-west,worker]",
                "staging/rollout[us-east,web]",
            ],
            ["staging/discover"],
            ["staging/verify[*]"],
            [
                "production/rollout[eu-west,web]",
                "production/rollout[eu-west,worker]",
                "production/rollout[us-east,web]",
            ],
            ["production/discover"],
            ["production/verify[*]"],
            ["announce"],
        ],
        [],
        {
            "staging/verify[*]": ("always", 2, [0.1]),
            "production/rollout[eu-west,web]": ("always", 1, []),
            "announce": ("always", 1, []),
        },
        [
            "production/rollout[us-east,web]",
            "production/rollout[eu-west,worker]",
            "production/rollout[eu-west,web]",
            "staging/rollout[us-east,web]",
            "staging/rollout[eu-west,worker]",
            "staging/rollout[eu-west,web]",
        ],
    ),
    "per-service-pipeline.yaml": (
        {},
        [["changed"], ["registry"], ["build[*]"], ["test[*]"], ["package[*]"], ["release"]],
        [],
        {"test[*]": ("always", 2, [1.0]), "release": ("always", 1, [])},
        ["package[*]"],
    ),
    "nested-test-matrix.yaml": (
        {},
        [
            ["lint[api]", "lint[web]"],
            ["test[api][3.11]", "test[api][3.12]", "test[web][3.11]", "test[web][3.12]"],
            ["report[api]", "report[web]"],
        ],
        [],
        {"test[web][3.12]": ("always", 1, []), "report[api]": ("always", 1, [])},
        [],
    ),
    "distributed-build.yaml": (
        {},
        [["api", "web", "worker", "cli"], ["package"]],
        [],
        {"api": ("always", 1, []), "package": ("always", 2, [1.0])},
        [],
    ),
    "flaky-checks.yaml": (
        {},
        [["fetch"], ["lint"], ["start-canary"], ["probe"], ["report"]],
        [],
        {"fetch": ("always", 5, [0.05] * 4), "lint": ("always", 1, [])},
        ["start-canary"],
    ),
    "guarded-deploy.yaml": (
        {"environment": "production"},
        [["build"], ["upload"], ["rollout"]],
        [],
        {"upload": ("always", 1, [])},
        [],
    ),
}


def plan_of(path: Path, inputs: dict[str, str] | None = None) -> dict[str, Any]:
    _, plan = api.plan_file(path, inputs or None)
    data = plan_to_dict(plan)
    jsonschema.Draft202012Validator(PLAN_SCHEMA).validate(data)
    return data


def test_every_example_is_in_the_table() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.yaml")) == sorted(TABLE)


@pytest.mark.parametrize("name", sorted(TABLE))
def test_example_plan(name: str) -> None:
    inputs, stages, final, steps, compensation = TABLE[name]
    plan = plan_of(EXAMPLES / name, inputs)
    assert plan["stages"] == stages
    assert plan["finally"] == final
    assert plan["compensation"] == compensation
    for step_id, (verdict, attempts, delays) in steps.items():
        step = plan["steps"][step_id]
        assert (step["condition"], step["retry"]["attempts"], step["retry"]["delays"]) == (
            verdict,
            attempts,
            delays,
        ), step_id


Write = Callable[[str], Path]

NESTED = """
wfx: 1
defaults: {timeout: 10s, killGrace: 1s}
steps:
  - id: build
    type: parallel
    steps:
      - {id: api, run: echo api}
      - id: web
        steps:
          - {id: web_deps, run: echo deps}
          - {id: web_bundle, run: echo bundle, needs: [schema]}
  - id: schema
    run: echo schema
    needs: [api]
"""


def test_nested_groups_with_needs_across_groups_is_a_cycle_when_it_must_be(
    workflow_file: Write,
) -> None:
    # `schema` comes after the whole `build` group, but `web_bundle` inside it needs `schema`
    report = api.check([workflow_file(NESTED)])
    [problem] = report.diagnostics
    assert problem.code == "compile.cycle"
    assert "`web_bundle`" in problem.message and "`schema`" in problem.message


def test_needs_across_groups_orders_leaves(workflow_file: Write) -> None:
    text = """
    wfx: 1
    defaults: {timeout: 10s, killGrace: 1s, retries: {max: 2, delay: 1s}}
    steps:
      - id: prepare
        type: parallel
        steps:
          - {id: api, run: echo api}
          - {id: schema, run: echo schema, needs: [api]}
          - id: web
            steps:
              - {id: web_deps, run: echo deps}
              - {id: web_bundle, run: echo bundle, needs: [schema]}
      - id: ship
        type: parallel
        steps:
          - {id: push, run: echo push, rollback: {run: echo unpush}}
          - {id: docs, run: echo docs, needs: [web_deps], retries: 0}
    """
    plan = plan_of(workflow_file(text))
    assert plan["stages"] == [["api", "web_deps"], ["schema"], ["web_bundle"], ["push", "docs"]]
    assert plan["steps"]["web_bundle"]["needs"] == ["schema", "web_deps"]
    # `ship` waits for the whole `prepare` group
    assert plan["steps"]["push"]["needs"] == ["api", "schema", "web_bundle"]
    assert plan["steps"]["push"]["retry"] == {
        "attempts": 3,
        "delays": [1.0, 2.0],
        "waitRanges": [[1.0, 1.0], [2.0, 2.0]],
        "backoff": "exponential",
        "delay": 1.0,
        "factor": 2.0,
        "maxDelay": 30,
        "jitter": 0.0,
        "on": "any",
        "except": [],
        "deadline": None,
    }
    assert plan["steps"]["docs"]["retry"]["attempts"] == 1
    assert plan["steps"]["docs"]["provenance"]["retries"]["origin"] == "step"
    assert plan["steps"]["push"]["provenance"]["retries"]["origin"] == "defaults"
    # every attempt times out (10s) and is killed after its grace (1s), plus the waits
    assert plan["steps"]["push"]["worstCaseSeconds"] == 3 * 11 + 1 + 2


def test_provenance_names_the_group(workflow_file: Write) -> None:
    text = """
    wfx: 1
    defaults: {timeout: 1m}
    steps:
      - id: outer
        timeout: 30s
        env: {A: outer}
        steps:
          - id: inner
            onError: continue
            steps:
              - {id: leaf, run: echo, env: {B: leaf}}
    """
    plan = plan_of(workflow_file(text))
    provenance = plan["steps"]["leaf"]["provenance"]
    assert provenance["timeout"] == {"origin": "group", "line": 5, "group": "outer"}
    assert provenance["onError"] == {"origin": "group", "line": 9, "group": "inner"}
    assert provenance["killGrace"] == {"origin": "built-in", "line": None, "group": None}
    assert provenance["env.A"]["group"] == "outer"
    assert provenance["env.B"]["origin"] == "step"


def test_static_expressions_are_resolved_and_runtime_ones_marked(workflow_file: Write) -> None:
    text = """
    wfx: 1
    inputs:
      env: {type: choice, enum: [dev, prd], default: dev}
    secrets: [TOKEN]
    env:
      TARGET: app-${{ inputs.env }}
      DERIVED: ${{ env.TARGET }}.example.com
    steps:
      - id: a
        run: echo ${{ env.DERIVED }} ${{ secrets.TOKEN }}
        condition: inputs.env == 'prd' || steps.a.outputs.x == 'y'
    """
    plan = plan_of(workflow_file(text), {"env": "prd"})
    assert plan["env"] == {"TARGET": "app-prd", "DERIVED": "app-prd.example.com"}
    resolved = plan["steps"]["a"]["resolved"]
    assert resolved[0] == {
        "where": "run",
        "expression": "env.DERIVED",
        "value": "app-prd.example.com",
    }
    assert resolved[1] == {
        "where": "run",
        "expression": "secrets.TOKEN",
        "runtime": "secrets.TOKEN",
    }
    assert plan["steps"]["a"]["condition"] == "always"


def test_never_running_step_is_a_warning(workflow_file: Write) -> None:
    text = """
    wfx: 1
    inputs:
      deploy: {type: boolean, default: false}
    steps:
      - {id: ship, run: echo, condition: "${{ inputs.deploy }}"}
    """
    plan = plan_of(workflow_file(text))
    assert plan["steps"]["ship"]["condition"] == "never"
    assert [w["code"] for w in plan["warnings"]] == ["plan.never-runs"]


def test_worst_case_is_capped_by_the_workflow_timeout_and_widened_by_max_parallel(
    workflow_file: Write,
) -> None:
    text = """
    wfx: 1
    maxParallel: 1
    defaults: {timeout: 10s, killGrace: 0}
    steps:
      - type: parallel
        steps:
          - run: echo 1
          - run: echo 2
          - run: echo 3
    """
    assert plan_of(workflow_file(text))["worstCaseSeconds"] == 30
    capped = text.replace("maxParallel: 1", "maxParallel: 1\n    timeout: 25s")
    assert plan_of(workflow_file(capped))["worstCaseSeconds"] == 25


def test_fingerprint_changes_with_the_file_and_the_inputs(workflow_file: Write) -> None:
    text = "wfx: 1\ninputs:\n  x: {type: string, default: a}\nsteps:\n  - run: echo\n"
    base = plan_of(workflow_file(text))["fingerprint"]
    assert plan_of(workflow_file("# a comment\n" + text))["fingerprint"] == base
    assert plan_of(workflow_file(text), {"x": "b"})["fingerprint"] != base
    assert plan_of(workflow_file(text.replace("echo", "echo hi")))["fingerprint"] != base


def test_groups_are_described_for_exporters(workflow_file: Write) -> None:
    text = """
    wfx: 1
    inputs:
      go: {type: boolean, default: true}
    steps:
      - id: outer
        type: parallel
        maxParallel: 2
        condition: inputs.go
        steps:
          - {id: a, run: echo a}
          - id: inner
            name: Inner steps
            steps:
              - {id: b, run: echo b}
    """
    plan = plan_of(workflow_file(text))
    assert plan["groups"] == {
        "outer": {
            "name": None,
            "type": "parallel",
            "maxParallel": 2,
            "conditionText": "inputs.go",
            "groups": [],
            "section": "main",
            "line": 5,
            "column": 5,
            "groupTimeout": None,
            "groupRetries": None,
        },
        "inner": {
            "name": "Inner steps",
            "type": "sequential",
            "maxParallel": None,
            "conditionText": None,
            "groups": ["outer"],
            "section": "main",
            "line": 11,
            "column": 9,
            "groupTimeout": None,
            "groupRetries": None,
        },
    }
    assert plan["steps"]["b"]["groups"] == ["outer", "inner"]
