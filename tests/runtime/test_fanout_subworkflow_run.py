"""Fan-out inside a called sub-workflow, with real processes: a reusable deploy workflow
with a static `matrix` group and a dynamic `forEach` over its own step's output, called
twice; instance ids under the caller's prefix, the child's contexts (`matrix`, `item`,
`index`, its own `steps`), its outputs reading the aggregate, rollbacks in reverse
completion order; and a fanned-out call (`matrix` on a `uses: ./x.yaml` step)."""

from __future__ import annotations

from pathlib import Path

from test_subworkflows_run import run_files

from wfx.runtime import events as ev

DEPLOY = """\
wfx: 1
inputs:
  env: {type: string, required: true}
outputs:
  checked: ${{ steps['check[api,3.12]'].outputs.c }} ${{ steps['check[web,3.12]'].outputs.c }}
  fetched: ${{ join(steps.fetch.outputs.*.got, ' ') }}
  status: ${{ steps.fetch.status }}
steps:
  - id: list
    run: echo 'items=["x","y","z"]' >> "$WFX_OUTPUT"
  - id: build
    matrix: {svc: [api, web], py: ["3.12"]}
    type: sequential
    steps:
      - id: compile
        run: echo "r=${{ inputs.env }}-${{ matrix.svc }}-${{ matrix.py }}" >> "$WFX_OUTPUT"
      - id: check
        run: |
          echo "$WFX_STEP_ID ${{ steps.compile.outputs.r }}" >> "$WFX_WORKSPACE/log"
          echo "c=${{ steps.compile.outputs.r }}" >> "$WFX_OUTPUT"
  - id: fetch
    forEach: ${{ fromJSON(steps.list.outputs.items) }}
    maxParallel: 1
    run: |
      echo "$WFX_STEP_ID ${{ inputs.env }} ${{ item }} ${{ index }}" >> "$WFX_WORKSPACE/log"
      echo "got=${{ item }}${{ index }}" >> "$WFX_OUTPUT"
    rollback:
      run: echo "undo $WFX_STEP_ID" >> "$WFX_WORKSPACE/log"
"""

RELEASE = """\
wfx: 1
outputs:
  staging: ${{ steps.staging.outputs.fetched }}
  prod: ${{ steps.prod.outputs.fetched }}
steps:
  - id: staging
    uses: ./deploy.yaml
    with: {env: staging}
  - id: prod
    uses: ./deploy.yaml
    with: {env: prod}
  - id: report
    run: |
      echo "${{ steps.staging.outputs.checked }} / ${{ steps.prod.outputs.status }}" \
        >> "$WFX_WORKSPACE/log"
"""


def test_a_called_workflow_fans_out_under_the_callers_prefix(tmp_path: Path) -> None:
    result, events, log = run_files(tmp_path, {"wf.yaml": RELEASE, "deploy.yaml": DEPLOY})
    assert result.status.value == "success", result.reason
    started = [e.step for e in events if isinstance(e, ev.StepStarted)]
    for call in ("staging", "prod"):
        assert {f"{call}/compile[api,3.12]", f"{call}/check[web,3.12]"} <= set(started)
        assert sorted(s for s in started if s.startswith(f"{call}/fetch")) == [
            f"{call}/fetch[0]",
            f"{call}/fetch[1]",
            f"{call}/fetch[2]",
        ]
    assert "staging/check[api,3.12] staging-api-3.12" in log
    assert "prod/check[web,3.12] prod-web-3.12" in log
    assert "prod/fetch[1] prod y 1" in log
    assert result.outputs == {"staging": "x0 y1 z2", "prod": "x0 y1 z2"}
    assert log[-1] == "staging-api-3.12 staging-web-3.12 / success"


def test_rollbacks_of_a_childs_instances_go_in_reverse_completion(tmp_path: Path) -> None:
    parent = """\
    wfx: 1
    steps:
      - id: staging
        uses: ./deploy.yaml
        with: {env: staging}
      - {id: boom, run: exit 1}
    """
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "deploy.yaml": DEPLOY})
    assert result.status.value == "failed"
    undone = [line for line in log if line.startswith("undo")]
    assert undone == ["undo staging/fetch[2]", "undo staging/fetch[1]", "undo staging/fetch[0]"]


def test_a_fanned_out_call_runs_the_child_once_per_instance(tmp_path: Path) -> None:
    parent = """\
    wfx: 1
    outputs:
      all: ${{ join(steps.rel.outputs.*.fetched, ' | ') }}
    steps:
      - id: rel
        matrix: {region: [eu, us]}
        uses: ./deploy.yaml
        with: {env: "${{ matrix.region }}"}
    """
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "deploy.yaml": DEPLOY})
    assert result.status.value == "success", result.reason
    assert "rel[us]/fetch[2] us z 2" in log and "rel[eu]/check[web,3.12] eu-web-3.12" in log
    assert result.outputs == {"all": "x0 y1 z2 | x0 y1 z2"}


def test_a_fanned_out_calls_fail_fast_decides_for_its_childs_failures(tmp_path: Path) -> None:
    child = """\
    wfx: 1
    inputs:
      env: {type: string, required: true}
    steps:
      - id: work
        run: |
          if [ "${{ inputs.env }}" = eu ]; then exit 5; fi
          sleep 0.3
          echo "${{ inputs.env }} done" >> "$WFX_WORKSPACE/log"
    """
    parent = """\
    wfx: 1
    steps:
      - id: rel
        matrix: {region: [eu, us]}
        failFast: false
        uses: ./child.yaml
        with: {env: "${{ matrix.region }}"}
    """
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "child.yaml": child})
    assert result.status.value == "failed"
    assert log == ["us done"]  # not cancelled when `rel[eu]/work` failed
    assert result.reason == "step `rel[eu]/work` failed: exit code 5"


def test_max_parallel_on_a_fanned_out_call_counts_calls(tmp_path: Path) -> None:
    child = """\
    wfx: 1
    inputs:
      env: {type: string, required: true}
    type: parallel
    steps:
      - id: one
        run: |
          echo "start ${{ inputs.env }}" >> "$WFX_WORKSPACE/log"
          mark="$WFX_WORKSPACE/two-${{ inputs.env }}"
          for _ in $(seq 100); do [ -f "$mark" ] && break; sleep 0.01; done
          [ -f "$mark" ] && echo "together ${{ inputs.env }}" >> "$WFX_WORKSPACE/log"
          true
      - id: two
        run: touch "$WFX_WORKSPACE/two-${{ inputs.env }}"
    """
    parent = """\
    wfx: 1
    steps:
      - id: rel
        forEach: [a, b, c]
        maxParallel: 1
        uses: ./child.yaml
        with: {env: "${{ item }}"}
    """
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "child.yaml": child})
    assert result.status.value == "success", result.reason
    # one call at a time, its two steps together (a cap on steps would run them apart)
    assert sorted(zip(log[::2], log[1::2], strict=True)) == [
        ("start a", "together a"),
        ("start b", "together b"),
        ("start c", "together c"),
    ]


def test_a_dynamic_group_in_a_fanned_out_calls_child(tmp_path: Path) -> None:
    child = """\
    wfx: 1
    inputs:
      env: {type: string, required: true}
    steps:
      - id: list
        run: echo 'items=["x","y"]' >> "$WFX_OUTPUT"
      - id: grp
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        steps:
          - id: a
            run: echo "w=${{ inputs.env }}-${{ item }}" >> "$WFX_OUTPUT"
          - id: b
            run: echo "$WFX_STEP_ID ${{ steps.a.outputs.w }}" >> "$WFX_WORKSPACE/log"
    """
    parent = """\
    wfx: 1
    steps:
      - id: rel
        matrix: {region: [eu, us]}
        uses: ./child.yaml
        with: {env: "${{ matrix.region }}"}
    """
    result, _, log = run_files(tmp_path, {"wf.yaml": parent, "child.yaml": child})
    assert result.status.value == "success", result.reason
    assert sorted(log) == [
        "rel[eu]/b[0] eu-x",
        "rel[eu]/b[1] eu-y",
        "rel[us]/b[0] us-x",
        "rel[us]/b[1] us-y",
    ]
