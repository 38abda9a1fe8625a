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
