"""A dynamic `forEach` on a group, with real processes: the group's body copied per item
as the run learns the list (`build[0]`, `test[0]`...), each instance with its `item`,
`index` and own `steps`; `maxParallel` counting open instances (measured), failFast on
and off, rollbacks per instance in reverse completion, `needs` across the group's edge."""

from __future__ import annotations

from pathlib import Path

import anyio
from harness import most_at_once, run_text
from test_fanout_run import _run_with_sink

from wfx.api import compile_file
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, RunResult, run
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import ResumeState, StepRecord

GROUP = """
wfx: 1
outputs:
  status: ${{ steps.svc.status }}
  images: ${{ join(steps['build[1]'].outputs.*, ' ') }}
steps:
  - id: list
    run: echo 'items=["api","web","db"]' >> "$WFX_OUTPUT"
  - id: config
    run: echo "region=eu" >> "$WFX_OUTPUT"
  - id: svc
    forEach: ${{ fromJSON(steps.list.outputs.items) }}
    steps:
      - id: build
        run: echo "image=${{ item }}-${{ index }}" >> "$WFX_OUTPUT"
      - id: test
        needs: [config]
        run: |
          echo "$WFX_STEP_ID ${{ steps.build.outputs.image }} ${{ steps.config.outputs.region }}" \\
            >> "$WFX_WORKSPACE/log"
        rollback:
          run: echo "undo $WFX_STEP_ID" >> "$WFX_WORKSPACE/log"
  - id: after
    needs: [svc]
    run: echo "after" >> "$WFX_WORKSPACE/log"
"""


def test_a_dynamic_group_runs_its_body_once_per_item(tmp_path: Path) -> None:
    recorded = run_text(tmp_path, GROUP)
    assert recorded.result.exit_code == 0, recorded.result.reason
    log = (tmp_path / "workspace" / "log").read_text().splitlines()
    assert sorted(log[:3]) == ["test[0] api-0 eu", "test[1] web-1 eu", "test[2] db-2 eu"]
    assert log[3] == "after"  # `needs: [svc]` waits for every instance
    started = recorded.started()
    for index in range(3):
        assert started.index(f"build[{index}]") < started.index(f"test[{index}]")
    assert recorded.result.outputs == {"status": "success", "images": "web-1"}
    [expanded] = recorded.of(ev.FanOutExpanded)
    assert (expanded.step, expanded.items) == ("svc", ("api", "web", "db"))


def test_rollbacks_of_a_dynamic_groups_instances_go_in_reverse_completion(
    tmp_path: Path,
) -> None:
    recorded = run_text(tmp_path, GROUP.replace('echo "after" >>', "exit 1; echo >>"))
    assert recorded.result.exit_code == 1
    finished = [e.step for e in recorded.of(ev.StepSucceeded) if e.step.startswith("test")]
    assert recorded.rolled_back() == list(reversed(finished))
    log = (tmp_path / "workspace" / "log").read_text().splitlines()
    assert log[3:] == [f"undo {step}" for step in reversed(finished)]


def test_max_parallel_on_a_dynamic_group_caps_its_open_instances(tmp_path: Path) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    recorded = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: list
            run: echo 'items=[0,1,2,3,4,5]' >> "$WFX_OUTPUT"
          - id: svc
            forEach: ${{{{ fromJSON(steps.list.outputs.items) }}}}
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
    assert most == 2  # not six (no cap), not four (two steps each)


FAIL_FAST = """\
wfx: 1
steps:
  - id: list
    run: echo 'items=["bad","ok1","ok2"]' >> "$WFX_OUTPUT"
  - id: work
    forEach: ${{ fromJSON(steps.list.outputs.items) }}
    FAILFAST
    steps:
      - id: step
        run: |
          if [ "${{ item }}" = bad ]; then exit 3; fi
          while [ ! -f "$WFX_WORKSPACE/bad-failed" ]; do sleep 0.02; done
      - id: next
        run: echo "${{ item }}"
  - id: after
    run: echo never
"""


def _touch_when_bad_fails(tmp_path: Path) -> ev.EventSink:
    def sink(event: ev.Event) -> None:
        if isinstance(event, ev.StepFailed) and event.step == "step[0]":
            (tmp_path / "workspace" / "bad-failed").touch()

    return sink


def test_fail_fast_on_a_dynamic_group_cancels_the_other_instances(tmp_path: Path) -> None:
    text = FAIL_FAST.replace("FAILFAST", "maxParallel: 3")
    result, finished = _run_with_sink(tmp_path, text, lambda _e: None)
    assert result.exit_code == 1
    assert finished[:2] == ["list success", "step[0] failed"]
    finished.remove("list success")
    assert sorted(finished) == sorted(
        [
            "step[0] failed",
            "next[0] skipped",
            "step[1] cancelled",
            "next[1] skipped",
            "step[2] cancelled",
            "next[2] skipped",
            "after skipped",
        ]
    )


def test_without_fail_fast_a_dynamic_groups_other_instances_finish(tmp_path: Path) -> None:
    text = FAIL_FAST.replace("FAILFAST", "failFast: false")
    result, finished = _run_with_sink(tmp_path, text, _touch_when_bad_fails(tmp_path))
    assert result.exit_code == 1
    assert "next[1] success" in finished and "next[2] success" in finished
    assert finished[-1] == "after skipped"
    assert result.reason == "step `step[0]` failed: exit code 3"


def test_a_dynamic_group_over_an_empty_list_runs_nothing(tmp_path: Path) -> None:
    recorded = run_text(tmp_path, GROUP.replace('["api","web","db"]', "[]"))
    assert recorded.result.exit_code == 0, recorded.result.reason
    assert recorded.result.outputs["status"] == "skipped"
    assert (tmp_path / "workspace" / "log").read_text() == "after\n"


def test_a_resumed_run_keeps_a_tolerated_failure_of_a_body_step(tmp_path: Path) -> None:
    """The journal says `a[0]` failed with `onError: continue`: the resumed run is not
    failing for it; `b[0]` runs, `a[0]` is not run again."""
    path = tmp_path / "wf.yaml"
    path.write_text(
        """
wfx: 1
steps:
  - id: list
    run: echo 'items=["x"]' >> "$WFX_OUTPUT"
  - id: svc
    forEach: ${{ fromJSON(steps.list.outputs.items) }}
    steps:
      - id: a
        onError: continue
        run: exit 1
      - id: b
        run: echo ok
""",
        encoding="utf-8",
    )
    graph = compile_file(path).graph
    failed = StepRecord("a[0]", StepStatus.FAILED, 1, 1.0, 2.0, {}, 1, None, None, 2, None)
    listed = StepRecord("list", StepStatus.SUCCESS, 1, 1.0, 2.0, {}, 0, None, None, 1, None)
    resume = ResumeState(
        "run-1", {"list": listed, "a[0]": failed}, {}, "running", None, fanouts={"svc": ["x"]}
    )
    seen: list[ev.Event] = []
    options = RunOptions(events=seen.append, workspace=tmp_path / "ws", resume=resume)

    async def main() -> RunResult:
        return await run(graph, options=options)

    result = anyio.run(main)
    assert result.status.value == "completedWithFailures", result.reason  # not `failed`
    assert [e.step for e in seen if isinstance(e, ev.StepStarted)] == ["b[0]"]
