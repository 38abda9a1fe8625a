"""Sub-workflows at run time: the child's inputs rendered as the call starts, its outputs
as `steps.<caller>.outputs`, secrets only when passed, its `finally` steps before the
calling step ends, its rollbacks in the run's compensation."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio

from wfx.api import compile_file
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, RunResult, run

CHILD = """\
wfx: 1
inputs:
  environment: {type: string, required: true}
  replicas: {type: number, default: 1}
secrets: [TOKEN]
outputs:
  url: https://${{ inputs.environment }}.example/${{ steps.push.outputs.tag }}
  replicas: ${{ inputs.replicas }}
steps:
  - id: push
    run: |
      echo "push ${{ inputs.environment }} x${{ inputs.replicas }}" >> "$WFX_WORKSPACE/log"
      echo "token-length=${#TOKEN}" >> "$WFX_WORKSPACE/log"
      echo "tag=v${{ inputs.replicas }}" >> "$WFX_OUTPUT"
    env:
      TOKEN: ${{ secrets.TOKEN }}
  - id: verify
    run: echo "verify ${{ inputs.environment }}" >> "$WFX_WORKSPACE/log"
finally:
  - id: cleanup
    run: echo "cleanup ${{ inputs.environment }} ${{ steps.verify.status }}" >> "$WFX_WORKSPACE/log"
"""


def run_files(
    tmp_path: Path, files: dict[str, str], environ: dict[str, str] | None = None
) -> tuple[RunResult, list[ev.Event], list[str]]:
    """Write the files, run the first; return the result, the events and the lines the
    steps appended to $WFX_WORKSPACE/log."""
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
    graph = compile_file(tmp_path / next(iter(files))).graph
    events: list[ev.Event] = []
    workspace = tmp_path / "workspace"
    options = RunOptions(
        events=events.append,
        environ={"PATH": "/usr/bin:/bin", **(environ or {})},
        workspace=workspace,
    )

    async def main() -> RunResult:
        return await run(graph, options=options)

    result = anyio.run(main)
    log = workspace / "log"
    return result, events, log.read_text().splitlines() if log.exists() else []


PARENT = """\
wfx: 1
secrets: [TOKEN]
outputs:
  staging: ${{ steps.staging.outputs.url }}
steps:
  - id: build
    run: echo "n=3" >> "$WFX_OUTPUT"
  - id: staging
    uses: ./deploy.yaml
    with:
      environment: staging
      replicas: ${{ steps.build.outputs.n }}
    secrets: [TOKEN]
  - id: production
    uses: ./deploy.yaml
    with: {environment: production}
    secrets: inherit
  - id: report
    run: |
      echo "report ${{ steps.staging.outputs.url }} ${{ steps.production.outputs.replicas }}" \
        >> "$WFX_WORKSPACE/log"
"""


def test_a_reusable_workflow_called_twice_with_different_inputs(tmp_path: Path) -> None:
    result, _, log = run_files(
        tmp_path, {"wf.yaml": PARENT, "deploy.yaml": CHILD}, {"TOKEN": "s3cr3t-value"}
    )
    assert result.status.value == "success", result.reason
    assert log == [
        "push staging x3",
        "token-length=12",
        "verify staging",
        "cleanup staging success",
        "push production x1",
        "token-length=12",
        "verify production",
        "cleanup production success",
        "report https://staging.example/v3 1",
    ]
    assert result.outputs == {"staging": "https://staging.example/v3"}
    assert result.steps["staging/push"].outputs == {"tag": "v3"}  # type: ignore[index]


def test_a_secret_not_passed_is_not_in_the_child_contexts(tmp_path: Path) -> None:
    child = """\
    wfx: 1
    steps:
      - run: echo "seen=${{ toJSON(secrets) }}" >> "$WFX_WORKSPACE/log"
    """
    parent = "wfx: 1\nsecrets: [TOKEN]\nsteps:\n  - {id: c, uses: ./child.yaml}\n"
    result, _, log = run_files(
        tmp_path, {"wf.yaml": parent, "child.yaml": child}, {"TOKEN": "s3cr3t-value"}
    )
    assert result.status.value == "success"
    assert log == ["seen={}"]


def test_a_child_failure_runs_its_finally_before_the_caller_ends(tmp_path: Path) -> None:
    child = CHILD.replace(
        'echo "verify ${{ inputs.environment }}" >> "$WFX_WORKSPACE/log"', "exit 4"
    )
    parent = PARENT.replace("with: {environment: production}", "with: {environment: prod}")
    result, _, log = run_files(
        tmp_path,
        {
            "wf.yaml": parent + 'finally:\n  - run: echo top-finally >> "$WFX_WORKSPACE/log"\n',
            "deploy.yaml": child,
        },
        {"TOKEN": "x"},
    )
    assert result.status.value == "failed"
    assert log == [
        "push staging x3",
        "token-length=1",
        "cleanup staging failed",
        "top-finally",
    ]
    statuses = {step: r.status.value for step, r in result.steps.items()}
    assert statuses["staging/verify"] == "failed"
    assert statuses["staging/cleanup"] == "success"
    assert statuses["production/push"] == "skipped"
    assert statuses["production/cleanup"] == "skipped"
    assert statuses["report"] == "skipped"
    assert "staging/verify" in (result.reason or "")


def test_an_input_that_renders_to_the_wrong_type_fails_the_call(tmp_path: Path) -> None:
    parent = PARENT.replace('echo "n=3"', 'echo "n=three"')
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "deploy.yaml": CHILD}, {"TOKEN": "x"})
    assert result.status.value == "failed"
    assert log == []
    assert result.steps["staging/push"].status.value == "skipped"  # type: ignore[index]
    assert "expected a number" in (result.reason or "")
    assert f"{tmp_path / 'wf.yaml'}:12:" in (result.reason or "")


def test_rollbacks_of_child_steps_join_the_run_compensation(tmp_path: Path) -> None:
    child = """\
    wfx: 1
    steps:
      - id: one
        run: echo one >> "$WFX_WORKSPACE/log"
        rollback: {run: echo undo-one >> "$WFX_WORKSPACE/log"}
    """
    parent = """\
    wfx: 1
    steps:
      - id: first
        run: echo first >> "$WFX_WORKSPACE/log"
        rollback: {run: echo undo-first >> "$WFX_WORKSPACE/log"}
      - {id: call, uses: ./child.yaml}
      - {id: boom, run: exit 1}
    """
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "child.yaml": child})
    assert result.status.value == "failed"
    assert log == ["first", "one", "undo-one", "undo-first"]


def test_the_child_type_and_max_parallel_apply_to_its_steps(tmp_path: Path) -> None:
    child = """\
    wfx: 1
    type: parallel
    maxParallel: 1
    steps:
      - run: echo a-start >> "$WFX_WORKSPACE/log"; sleep 0.05; echo a-end >> "$WFX_WORKSPACE/log"
      - run: echo b-start >> "$WFX_WORKSPACE/log"; sleep 0.05; echo b-end >> "$WFX_WORKSPACE/log"
    """
    parent = "wfx: 1\nsteps:\n  - {id: c, uses: ./child.yaml}\n"
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "child.yaml": child})
    assert result.status.value == "success"
    assert [line[2:] for line in log] == ["start", "end", "start", "end"]
