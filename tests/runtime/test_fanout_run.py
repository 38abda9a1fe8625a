"""Fan-out at run time, with real processes: instances and their contexts, the aggregate
`steps.<id>`, dynamic `forEach`, failFast on and off, `maxParallel` measured, per-instance
retries and rollbacks, and a resumed run mapping journaled items to the same instances."""

from __future__ import annotations

from pathlib import Path

import anyio
from harness import most_at_once, run_text

from wfx.api import compile_file
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, RunResult, run
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import ResumeState, StepRecord


def test_matrix_instances_run_with_their_values_and_sum_up(tmp_path: Path) -> None:
    recorded = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: build
            matrix:
              service: [api, web]
              python: ["3.11", "3.12"]
              exclude: [{service: web, python: "3.11"}]
              include: [{service: api, extra: yes}]
            run: |
              echo "image=${{ matrix.service }}-${{ matrix.python }}-${{ matrix.extra }}" \
                >> "$WFX_OUTPUT"
          - id: report
            run: |
              echo "all=${{ join(steps.build.outputs.*.image, ' ') }}" >> "$WFX_OUTPUT"
              echo "one=${{ steps['build[web,3.12]'].outputs.image }}" >> "$WFX_OUTPUT"
              echo "status=${{ steps.build.status }}" >> "$WFX_OUTPUT"
        """,
    )
    assert recorded.result.exit_code == 0, recorded.result.reason
    outputs = recorded.result.steps["report"].outputs
    assert outputs == {
        "all": "api-3.11-yes api-3.12-yes web-3.12-",
        "one": "web-3.12-",
        "status": "success",
    }
    assert recorded.started() == ["build[api,3.11]", "build[api,3.12]", "build[web,3.12]", "report"]


def test_a_fanned_out_group_runs_its_steps_per_instance(tmp_path: Path) -> None:
    recorded = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: svc
            forEach: [api, web]
            type: parallel
            steps:
              - id: test
                run: echo "seen=${{ item }}${{ index }}" >> "$WFX_OUTPUT"
              - id: ship
                needs: [test]
                run: echo "got=${{ steps.test.outputs.seen }}" >> "$WFX_OUTPUT"
        """,
    )
    assert recorded.result.exit_code == 0, recorded.result.reason
    assert recorded.result.steps["ship[0]"].outputs == {"got": "api0"}
    assert recorded.result.steps["ship[1]"].outputs == {"got": "web1"}


def test_a_fanned_out_groups_attempts_are_its_steps_attempts(tmp_path: Path) -> None:
    """A group has no attempts of its own: `steps.<fan-out>.attempts` counts its steps'
    (it said 0), and a fanned-out call's are counted once."""
    (tmp_path / "child.yaml").write_text("wfx: 1\nsteps:\n  - {id: one, run: 'true'}\n")
    recorded = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: svc
            matrix: {{name: [api, web]}}
            steps:
              - {{id: build, run: "true"}}
              - id: test
                retries: {{max: 2, delay: 0s}}
                run: |
                  [ -f "{tmp_path}/$WFX_STEP_ID" ] && exit 0
                  touch "{tmp_path}/$WFX_STEP_ID"; exit 1
          - id: rel
            forEach: [eu, us]
            uses: ./child.yaml
          - id: report
            run: |
              echo "svc=${{{{ steps.svc.attempts }}}}" >> "$WFX_OUTPUT"
              echo "rel=${{{{ steps.rel.attempts }}}}" >> "$WFX_OUTPUT"
        """,
    )
    assert recorded.result.exit_code == 0, recorded.result.reason
    assert recorded.result.steps["report"].outputs == {"svc": "6", "rel": "2"}


DYNAMIC = """
wfx: 1
steps:
  - id: list
    run: echo 'items=LIST' >> "$WFX_OUTPUT"
  - id: fetch
    forEach: ${{ fromJSON(steps.list.outputs.items) }}
    run: echo "got=${{ item }}-${{ index }}" >> "$WFX_OUTPUT"
  - id: after
    run: echo "all=${{ join(steps.fetch.outputs.*.got, ',') }}" >> "$WFX_OUTPUT"
"""


def test_a_dynamic_for_each_expands_over_what_a_step_produced(tmp_path: Path) -> None:
    recorded = run_text(tmp_path, DYNAMIC.replace("LIST", '["a","b","c"]'))
    assert recorded.result.exit_code == 0, recorded.result.reason
    assert recorded.result.steps["after"].outputs == {"all": "a-0,b-1,c-2"}
    [expanded] = recorded.of(ev.FanOutExpanded)
    assert (expanded.step, expanded.items) == ("fetch", ("a", "b", "c"))


def test_a_dynamic_for_each_over_nothing_runs_no_instance(tmp_path: Path) -> None:
    recorded = run_text(tmp_path, DYNAMIC.replace("LIST", "[]"))
    assert recorded.result.exit_code == 0, recorded.result.reason
    assert recorded.result.steps["after"].outputs == {"all": ""}
    assert recorded.started() == ["list", "after"]


def test_a_dynamic_list_that_is_no_list_fails_the_fan_out_with_its_position(
    tmp_path: Path,
) -> None:
    recorded = run_text(tmp_path, DYNAMIC.replace("LIST", '{"a":1}'))
    assert recorded.result.exit_code == 1
    [failed] = [e for e in recorded.of(ev.StepFailed) if e.step == "fetch"]
    assert failed.reason.endswith(
        "wf.yaml:6:17: `forEach` must give a list;"
        " `${{ fromJSON(steps.list.outputs.items) }}` gave a dict"
    )
    assert failed.span is not None and (failed.span.line, failed.span.column) == (6, 17)
    assert recorded.status("after") == "skipped"


def test_a_dynamic_list_over_the_limit_fails_the_fan_out(tmp_path: Path) -> None:
    text = DYNAMIC.replace("LIST", "[1,2,3]").replace("wfx: 1\n", "wfx: 1\nmaxInstances: 2\n")
    recorded = run_text(tmp_path, text)
    assert recorded.result.exit_code == 1
    assert "`forEach` gave 3 items, more than the limit of 2" in (recorded.result.reason or "")
    assert recorded.started() == ["list"]


FAIL_FAST = """
wfx: 1
steps:
  - id: work
    forEach: [bad, slow, slow2]
    FAILFAST
    run: |
      if [ "${{ item }}" = bad ]; then exit 3; fi
      while [ ! -f "$WFX_WORKSPACE/bad-failed" ]; do sleep 0.02; done
      echo "done=yes" >> "$WFX_OUTPUT"
  - id: after
    run: echo never
"""


def _touch_when_bad_fails(tmp_path: Path) -> ev.EventSink:
    def sink(event: ev.Event) -> None:
        if isinstance(event, ev.StepFailed) and event.step == "work[0]":
            (tmp_path / "workspace" / "bad-failed").touch()

    return sink


def _run_with_sink(tmp_path: Path, text: str, sink: ev.EventSink) -> tuple[RunResult, list[str]]:
    path = tmp_path / "wf.yaml"
    path.write_text(text, encoding="utf-8")
    graph = compile_file(path).graph
    seen: list[ev.Event] = []

    def both(event: ev.Event) -> None:
        seen.append(event)
        sink(event)

    options = RunOptions(events=both, workspace=tmp_path / "workspace")

    async def main() -> RunResult:
        return await run(graph, options=options)

    result = anyio.run(main)
    return result, [f"{e.step} {e.status.value}" for e in seen if isinstance(e, ev.StepFinished)]


def test_fail_fast_cancels_the_other_instances(tmp_path: Path) -> None:
    text = FAIL_FAST.replace("FAILFAST", "maxParallel: 3")
    result, finished = _run_with_sink(tmp_path, text, lambda _e: None)
    assert result.exit_code == 1
    assert sorted(finished) == sorted(
        ["work[0] failed", "work[1] cancelled", "work[2] cancelled", "after skipped"]
    )


def test_without_fail_fast_the_others_finish_and_the_fan_out_fails_after(tmp_path: Path) -> None:
    text = FAIL_FAST.replace("FAILFAST", "failFast: false")
    result, finished = _run_with_sink(tmp_path, text, _touch_when_bad_fails(tmp_path))
    assert result.exit_code == 1
    assert finished[0] == "work[0] failed"
    assert sorted(finished[1:]) == ["after skipped", "work[1] success", "work[2] success"]
    assert finished[-1] == "after skipped"
    assert result.reason == "step `work[0]` failed: exit code 3"


def test_max_parallel_caps_the_instances_measured_with_markers(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    recorded = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: list
            run: echo 'items=[0,1,2,3,4,5,6,7,8,9]' >> "$WFX_OUTPUT"
          - id: work
            forEach: ${{{{ fromJSON(steps.list.outputs.items) }}}}
            maxParallel: 3
            run: |
              echo "start $(date +%s%N)" > "{markers}/$WFX_STEP_ID.start"
              sleep 0.05
              echo "end $(date +%s%N)" > "{markers}/$WFX_STEP_ID.end"
        """,
    )
    assert recorded.result.exit_code == 0, recorded.result.reason
    most = most_at_once(markers, (f"work[{index}]" for index in range(10)))
    assert most <= 3
    assert most >= 2  # they did overlap: the cap was what held them back


def test_each_instance_retries_on_its_own_and_rollbacks_go_in_reverse_completion(
    tmp_path: Path,
) -> None:
    recorded = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: deploy
            forEach: [a, b, c]
            maxParallel: 1
            retries: {max: 2, delay: 0s}
            run: |
              if [ "${{ item }}" = b ] && [ "$WFX_ATTEMPT" = 1 ]; then exit 1; fi
              echo "deployed ${{ item }}"
            rollback:
              run: echo "undo ${{ item }}"
          - id: verify
            run: exit 1
        """,
    )
    assert recorded.result.exit_code == 1
    attempts = {
        s: recorded.result.steps[s].attempts for s in ("deploy[0]", "deploy[1]", "deploy[2]")
    }
    assert attempts == {"deploy[0]": 1, "deploy[1]": 2, "deploy[2]": 1}
    finished = [e.step for e in recorded.of(ev.StepSucceeded) if e.step.startswith("deploy")]
    assert recorded.rolled_back() == list(reversed(finished))
    undone = [e.text.strip() for e in recorded.of(ev.StepOutput) if e.rollback]
    assert undone == [f"undo {item}" for item in "cba"]


def _record(step: str, status: StepStatus, outputs: dict[str, object], done: int) -> StepRecord:
    return StepRecord(step, status, 1, 1.0, 2.0, outputs, 0, None, None, done, None)


def test_a_resumed_run_maps_the_journaled_items_to_the_same_instances(tmp_path: Path) -> None:
    """The journal says: `list` gave [x, y, z] and `fetch[0]` finished. Now `list`'s
    restored output would give something else; the journaled list wins, `fetch[0]` is
    restored (not run), `fetch[1]` and `fetch[2]` run with their own items."""
    path = tmp_path / "wf.yaml"
    path.write_text(DYNAMIC.replace("LIST", '["x","y","z"]'), encoding="utf-8")
    graph = compile_file(path).graph
    resume = ResumeState(
        "run-1",
        {
            "list": _record("list", StepStatus.SUCCESS, {"items": '["other"]'}, 1),
            "fetch[0]": _record("fetch[0]", StepStatus.SUCCESS, {"got": "x-0"}, 2),
        },
        {},
        "running",
        None,
        fanouts={"fetch": ["x", "y", "z"]},
    )
    seen: list[ev.Event] = []
    options = RunOptions(events=seen.append, workspace=tmp_path / "ws", resume=resume)

    async def main() -> RunResult:
        return await run(graph, options=options)

    result = anyio.run(main)
    assert result.exit_code == 0, result.reason
    started = [e.step for e in seen if isinstance(e, ev.StepStarted)]
    assert started == ["fetch[1]", "fetch[2]", "after"]
    assert result.steps["after"].outputs == {"all": "x-0,y-1,z-2"}


def test_a_condition_is_decided_per_instance_with_its_values(tmp_path: Path) -> None:
    recorded = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: test
            matrix: {os: [linux, mac, windows]}
            condition: ${{ matrix.os != 'windows' }}
            run: echo "ran=${{ matrix.os }}" >> "$WFX_OUTPUT"
          - id: after
            run: echo "status=${{ steps.test.status }}" >> "$WFX_OUTPUT"
        """,
    )
    assert recorded.result.exit_code == 0, recorded.result.reason
    assert [recorded.status(f"test[{os}]") for os in ("linux", "mac", "windows")] == [
        "success",
        "success",
        "skipped",
    ]
    assert recorded.result.steps["after"].outputs == {"status": "success"}


def test_a_run_result_lists_dynamic_instances_where_their_fan_out_stands(
    tmp_path: Path,
) -> None:
    recorded = run_text(tmp_path, DYNAMIC.replace("LIST", '["a","b"]'))
    assert list(recorded.result.steps) == ["list", "fetch[0]", "fetch[1]", "after"]


def test_max_parallel_on_a_fanned_out_group_caps_its_open_instances(tmp_path: Path) -> None:
    """Each instance is two steps in a row; at most two instances are open at once (from
    the start of the first step to the end of the second), not two steps."""
    markers = tmp_path / "markers"
    markers.mkdir()
    recorded = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: svc
            forEach: [0, 1, 2, 3, 4, 5]
            maxParallel: 2
            steps:
              - run: |
                  echo "$(date +%s%N)" > "{markers}/${{{{ index }}}}.start"
                  sleep 0.03
              - run: |
                  sleep 0.06
                  echo "$(date +%s%N)" > "{markers}/${{{{ index }}}}.end"
        """,
    )
    assert recorded.result.exit_code == 0, recorded.result.reason
    most = most_at_once(markers, map(str, range(6)))
    assert most <= 2  # without the cap on instances all six are open at once
