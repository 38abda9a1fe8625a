"""Nested fan-out with real processes: a matrix and a `forEach` inside a fanned-out group
(static, and dynamic from the instance's own step), each inner instance with the outer's
values and steps; failFast: false at both levels lets the other outer instances finish."""

from __future__ import annotations

from pathlib import Path

from harness import run_text

NESTED = """
wfx: 1
outputs:
  web: ${{ steps['report[web]'].outputs.r }}
steps:
  - id: svc
    matrix: {service: [api, web]}
    env: {SERVICE: "${{ matrix.service }}"}
    steps:
      - id: prep
        run: echo "items=[\\"$SERVICE-1\\",\\"$SERVICE-2\\"]" >> "$WFX_OUTPUT"
      - id: test
        matrix: {python: ["3.11", "3.12"]}
        run: |
          echo "$WFX_STEP_ID $SERVICE ${{ matrix.service }} ${{ matrix.python }}" \\
            >> "$WFX_WORKSPACE/log"
          echo "ok=${{ matrix.python }}" >> "$WFX_OUTPUT"
      - id: fetch
        forEach: ${{ fromJSON(steps.prep.outputs.items) }}
        run: |
          echo "$WFX_STEP_ID ${{ matrix.service }} ${{ item }} ${{ index }}" \\
            >> "$WFX_WORKSPACE/log"
          echo "got=${{ item }}" >> "$WFX_OUTPUT"
      - id: report
        run: |
          echo "r=${{ join(steps.test.outputs.*.ok, ' ') }}/$GOT" >> "$WFX_OUTPUT"
        env:
          GOT: ${{ join(steps.fetch.outputs.*.got, ' ') }}
"""


def test_inner_fan_outs_run_per_outer_instance_with_both_values(tmp_path: Path) -> None:
    recorded = run_text(tmp_path, NESTED)
    assert recorded.result.exit_code == 0, recorded.result.reason
    log = sorted((tmp_path / "workspace" / "log").read_text().splitlines())
    assert log == [
        "fetch[api][0] api api-1 0",
        "fetch[api][1] api api-2 1",
        "fetch[web][0] web web-1 0",
        "fetch[web][1] web web-2 1",
        "test[api][3.11] api api 3.11",
        "test[api][3.12] api api 3.12",
        "test[web][3.11] web web 3.11",
        "test[web][3.12] web web 3.12",
    ]
    assert recorded.result.outputs == {"web": "3.11 3.12/web-1 web-2"}


def test_without_fail_fast_an_inner_failure_lets_the_other_outer_instances_finish(
    tmp_path: Path,
) -> None:
    text = """
    wfx: 1
    steps:
      - id: svc
        matrix: {service: [api, web]}
        failFast: false
        steps:
          - id: test
            matrix: {python: ["3.11", "3.12"]}
            failFast: false
            run: |
              if [ "${{ matrix.service }}${{ matrix.python }}" = api3.11 ]; then exit 4; fi
              if [ "${{ matrix.service }}" = web ]; then sleep 0.4; fi
          - id: after
            run: echo done
    """
    recorded = run_text(tmp_path, text)
    assert recorded.result.exit_code == 1
    assert recorded.status("test[api][3.11]") == "failed"
    assert recorded.status("test[api][3.12]") == "success"  # the inner fan-out went on
    assert recorded.status("after[web]") == "success"  # and so did the other outer instance
    assert recorded.status("after[api]") == "skipped"
    assert recorded.result.reason == "step `test[api][3.11]` failed: exit code 4"


def test_a_static_fan_out_inside_a_dynamic_group_runs_in_every_instance(
    tmp_path: Path,
) -> None:
    text = """
    wfx: 1
    outputs:
      web: ${{ steps['report[1]'].outputs.r }}
    steps:
      - id: list
        run: echo 'items=["api","web"]' >> "$WFX_OUTPUT"
      - id: svc
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        env: {SERVICE: "${{ item }}"}
        steps:
          - id: prep
            run: echo "p=${{ item }}" >> "$WFX_OUTPUT"
          - id: test
            matrix: {python: ["3.11", "3.12"]}
            run: |
              echo "$WFX_STEP_ID ${{ item }} ${{ matrix.python }} ${{ steps.prep.outputs.p }}" \\
                >> "$WFX_WORKSPACE/log"
              echo "ok=${{ matrix.python }}" >> "$WFX_OUTPUT"
          - id: shard
            forEach: [x, y]
            maxParallel: 1
            steps:
              - id: part
                run: |
                  echo "$WFX_STEP_ID ${{ steps.prep.outputs.p }} $SERVICE" \
                    "${{ item }} ${{ index }}" >> "$WFX_WORKSPACE/log"
          - id: report
            needs: [test]
            run: |
              echo "r=${{ join(steps.test.outputs.*.ok, ' ') }} ${{ steps.shard.status }}" \\
                >> "$WFX_OUTPUT"
    """
    recorded = run_text(tmp_path, text)
    assert recorded.result.exit_code == 0, recorded.result.reason
    log = sorted((tmp_path / "workspace" / "log").read_text().splitlines())
    assert log == [
        # the inner item shadows the outer; the outer one is reached through a step of
        # the outer instance, or through the outer group's `env` (rendered with its item)
        "part[0][0] api api x 0",
        "part[0][1] api api y 1",
        "part[1][0] web web x 0",
        "part[1][1] web web y 1",
        "test[0][3.11] api 3.11 api",
        "test[0][3.12] api 3.12 api",
        "test[1][3.11] web 3.11 web",
        "test[1][3.12] web 3.12 web",
    ]
    assert recorded.result.outputs == {"web": "3.11 3.12 success"}


def test_dynamic_instances_count_against_the_limit_for_all_fan_outs(tmp_path: Path) -> None:
    text = """
    wfx: 1
    maxInstances: 5
    steps:
      - id: svc
        matrix: {service: [api, web]}
        steps:
          - id: list
            run: echo 'items=[1,2]' >> "$WFX_OUTPUT"
          - id: fetch
            forEach: ${{ fromJSON(steps.list.outputs.items) }}
            run: echo
    """
    recorded = run_text(tmp_path, text)
    assert recorded.result.exit_code == 1
    reason = recorded.result.reason or ""
    assert "wf.yaml:10:18: `forEach` gave 2 items; with the run's 4 other instances" in reason
    assert "more than the limit of 5 instances in all" in reason


def test_a_static_fan_out_in_a_dynamic_body_counts_once_per_item(tmp_path: Path) -> None:
    text = """
    wfx: 1
    maxInstances: 8
    steps:
      - id: list
        run: echo 'items=[1,2,3]' >> "$WFX_OUTPUT"
      - id: svc
        forEach: ${{ fromJSON(steps.list.outputs.items) }}
        steps:
          - id: test
            matrix: {python: ["3.11", "3.12"]}
            run: echo
    """
    recorded = run_text(tmp_path, text)  # 3 items x (1 + 2 inner) = 9 instances
    assert recorded.result.exit_code == 1
    assert "more than the limit of 8 instances in all" in (recorded.result.reason or "")
