"""`WFX_FAILPOINT`'s step faults: `step-fail:STEP[@ATTEMPT]` and `step-timeout:STEP[@ATTEMPT]`
end that attempt as a real failure (exit 1) or timeout would, without starting its process
or calling its code; the engine reacts as to a real failure. How the items are read, what
is refused, and what a real `wfx run` does with them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import anyio
import pytest

from wfx.api import compile_file
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, run
from wfx.runtime.failpoints import parse

# -- reading WFX_FAILPOINT ---------------------------------------------------------------------


def test_crash_points_and_step_faults_in_one_value() -> None:
    armed, faults, problems = parse(
        "step-fail:deploy@2, step-timeout:smoke,journal.run-finished:3,journal.create-run"
    )
    assert armed == {"journal.run-finished": 3, "journal.create-run": 1}
    assert faults == {("deploy", 2): "fail", ("smoke", None): "timeout"}
    assert problems == []


@pytest.mark.parametrize(
    ("spec", "step"),
    [
        ("step-fail:test[a@b]", ("test[a@b]", None)),
        ("step-fail:test[a@b]@2", ("test[a@b]", 2)),
        ("step-fail:test[x,y]@1", ("test[x,y]", 1)),
        ("step-fail:test[a:b]", ("test[a:b]", None)),
    ],
)
def test_a_fan_out_instance_may_hold_at_signs_commas_and_colons(
    spec: str, step: tuple[str, int | None]
) -> None:
    """Declared step ids cannot hold `@`, `,` or `:` (the schema's pattern); the key of a
    fan-out instance can, inside its brackets."""
    armed, faults, problems = parse(spec + ",journal.run-finished:1")
    assert faults == {step: "fail"}
    assert armed == {"journal.run-finished": 1}
    assert problems == []


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("step-fail:", "names no step"),
        ("step-fail:@2", "names no step"),
        ("step-fail:deploy@0", "`0` is not an attempt number"),
        ("step-fail:deploy@", "`` is not an attempt number"),
        ("step-timeout:deploy@two", "`two` is not an attempt number"),
        ("step-fail=deploy", "a step fault is step-fail:STEP[@ATTEMPT]"),
        ("step-fail", "a step fault is step-fail:STEP[@ATTEMPT]"),
        ("step-crash:deploy", "a step fault is step-fail:STEP[@ATTEMPT]"),
        ("journal.nope:1", "no such failpoint"),
        ("journal.run-finished:0", "`0` is not a pass number"),
        ("journal.run-finished:x", "`x` is not a pass number"),
    ],
)
def test_an_item_that_arms_nothing_is_a_problem(spec: str, problem: str) -> None:
    armed, faults, problems = parse(f"{spec},step-fail:ok")
    assert armed == {}
    assert faults == {("ok", None): "fail"}
    assert len(problems) == 1
    assert problems[0].startswith(f"`{spec}`: ")
    assert problem in problems[0]


def test_unset_or_empty_arms_nothing() -> None:
    assert parse("") == ({}, {}, [])
    assert parse(" , ,") == ({}, {}, [])


# -- what a real run does with them -------------------------------------------------------------

#: each step appends `id attempt` to the ledger when its process really runs
LEDGER_STEP = "echo $WFX_STEP_ID $WFX_ATTEMPT >> ledger"

STEPS = f"""
wfx: 1
steps:
  - id: flaky
    run: "{LEDGER_STEP}"
    retries: {{max: 2, delay: 10ms, backoff: constant}}
    rollback: {{run: "echo undo-flaky >> ledger"}}
  - {{id: tolerated, run: "{LEDGER_STEP}", continueOn: [1]}}
  - {{id: report, run: "echo exit=${{{{ steps.tolerated.exitCode }}}} >> ledger"}}
  - id: slow
    run: "{LEDGER_STEP}"
    timeout: 200ms
    retries: {{max: 1, delay: 10ms, on: [timeout]}}
finally:
  - {{id: last, run: "{LEDGER_STEP}"}}
"""


def wfx_run(tmp_path: Path, text: str, failpoint: str) -> tuple[int, list[dict[str, Any]], str]:
    """A real `wfx run` with `WFX_FAILPOINT=failpoint`: its exit code, its CloudEvents and
    what it printed."""
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    events = tmp_path / "events.jsonl"
    ran = subprocess.run(
        [sys.executable, "-m", "wfx", "run", "wf.yaml", "--events", str(events)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "WFX_FAILPOINT": failpoint, "NO_COLOR": "1"},
    )
    shown = (
        [json.loads(line) for line in events.read_text().splitlines()] if events.exists() else []
    )
    return ran.returncode, shown, ran.stdout + ran.stderr


def ledger(tmp_path: Path) -> list[str]:
    path = tmp_path / "ledger"
    return path.read_text().splitlines() if path.exists() else []


def finished(events: list[dict[str, Any]]) -> dict[str, tuple[str, int, int | None]]:
    """Each step's end: status, attempts, exit code."""
    return {
        e["subject"]: (e["data"]["status"], e["data"]["attempts"], e["data"]["exitCode"])
        for e in events
        if e["type"].startswith("dev.wfx.step.") and "attempts" in e["data"]
    }


def test_a_faulted_attempt_starts_no_process_and_the_engine_reacts_as_to_a_real_one(
    tmp_path: Path,
) -> None:
    code, events, printed = wfx_run(
        tmp_path, STEPS, "step-fail:flaky@1,step-fail:flaky@2,step-fail:tolerated,step-timeout:slow"
    )
    # flaky's first two attempts never ran: the third did; tolerated and slow never ran
    assert ledger(tmp_path) == ["flaky 3", "exit=1", "undo-flaky", "last 1"]
    assert finished(events) == {
        "flaky": ("success", 3, 0),
        "tolerated": ("failed", 1, 1),  # exit code 1: continueOn [1] lets the run go on
        "slow": ("timeout", 2, None),  # retried, since retries.on lists timeout
        "report": ("success", 1, 0),
        "last": ("success", 1, 0),
    }
    assert code == 1  # slow timed out: the run failed and flaky was rolled back
    said = [e["data"]["text"] for e in events if e["type"] == "dev.wfx.step.output"]
    assert "wfx: this attempt fails on purpose: WFX_FAILPOINT step-fail:flaky@2;" in "\n".join(said)
    assert "its process is not started" in said[0]
    assert "timed out after 200ms (on purpose: WFX_FAILPOINT step-timeout:slow@2)" in printed
    assert "exit code 1 (on purpose: WFX_FAILPOINT step-fail:tolerated@1)" in printed


def test_a_crash_point_and_a_step_fault_together(tmp_path: Path) -> None:
    """The step fault fails `flaky` for good; the crash point kills wfx as the compensation
    of the steps before it begins; the resume finishes the compensation, and the run
    stays failed."""
    text = """
    wfx: 1
    steps:
      - {id: first, run: "echo first >> ledger", rollback: {run: "echo undo-first >> ledger"}}
      - {id: flaky, run: "echo flaky >> ledger"}
    """
    code, _, _ = wfx_run(tmp_path, text, "step-fail:flaky,journal.rollback-started:1")
    assert code == 137
    assert ledger(tmp_path) == ["first"]
    resumed = subprocess.run(
        [sys.executable, "-m", "wfx", "run", "wf.yaml", "--resume"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k != "WFX_FAILPOINT"},
    )
    assert resumed.returncode == 1, resumed.stdout + resumed.stderr
    assert ledger(tmp_path) == ["first", "undo-first"]  # flaky's process never ran


@pytest.mark.parametrize("failpoint", ["step-fail:flaky@0", "step-fail=flaky", "journal.nope:1"])
def test_wfx_run_refuses_an_item_that_arms_nothing(tmp_path: Path, failpoint: str) -> None:
    code, events, printed = wfx_run(tmp_path, STEPS, failpoint)
    assert code == 2
    assert f"error: WFX_FAILPOINT: `{failpoint}`: " in printed
    assert events == []
    assert ledger(tmp_path) == []


def test_the_what_if_takes_no_step_fault_from_the_environment(tmp_path: Path) -> None:
    """`wfx plan --fail` answers for the failures it is asked about, whatever
    `WFX_FAILPOINT` says."""
    (tmp_path / "wf.yaml").write_text(textwrap.dedent(STEPS).lstrip("\n"), encoding="utf-8")
    shown = subprocess.run(
        [sys.executable, "-m", "wfx", "plan", "wf.yaml", "--fail", "slow", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "WFX_FAILPOINT": "step-fail:flaky,step-fail:report"},
    )
    assert shown.returncode == 0, shown.stderr
    status = {s["id"]: s["status"] for s in json.loads(shown.stdout)["steps"]}
    assert status["flaky"] == status["report"] == "success"
    assert status["slow"] == "failed"


# -- Python steps, in-process ------------------------------------------------------------------


def test_a_faulted_python_step_is_not_called_and_fails_as_one_that_raised(tmp_path: Path) -> None:
    called: list[int] = []

    def step(**_: Any) -> None:
        called.append(1)

    path = tmp_path / "wf.yaml"
    text = """
    wfx: 1
    steps:
      - {id: py, uses: "python:tools:step", continueOn: [1], retries: {max: 1, delay: 10ms}}
      - {id: pyslow, uses: "python:tools:step", timeout: 50ms, onError: continue}
    """
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    recorded: list[ev.Event] = []
    options = RunOptions(
        actions={"python:tools:step": step},
        events=recorded.append,
        workspace=tmp_path / "workspace",
        faults={("py", 1): "fail", ("pyslow", None): "timeout"},
    )
    result = anyio.run(lambda: run(compile_file(path).graph, options=options))
    ends = {e.step: e for e in recorded if isinstance(e, ev.StepFinished)}
    assert (ends["py"].status.value, ends["py"].attempts) == ("success", 2)
    assert called == [1]  # attempt 2 only
    assert ends["pyslow"].status.value == "timeout"
    assert ends["pyslow"].exit_code is None
    assert (
        ends["pyslow"].reason
        == "timed out after 50ms (on purpose: WFX_FAILPOINT step-timeout:pyslow@1)"
    )
    retried = next(e for e in recorded if isinstance(e, ev.StepRetrying))
    assert retried.reason == "raised an exception (on purpose: WFX_FAILPOINT step-fail:py@1)"
    assert result.exit_code == 3  # pyslow's timeout is tolerated (onError: continue)


def test_a_step_without_a_timeout_times_out_at_once(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    text = """
    wfx: 1
    steps:
      - {id: endless, run: "echo ran >> ledger", rollback: {run: "echo undone >> ledger"}}
      - {id: after, run: "echo after >> ledger"}
    """
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    recorded: list[ev.Event] = []
    options = RunOptions(
        events=recorded.append,
        workspace=tmp_path / "workspace",
        faults={("after", None): "timeout"},
    )
    result = anyio.run(lambda: run(compile_file(path).graph, options=options))
    ends = {e.step: e for e in recorded if isinstance(e, ev.StepFinished)}
    assert ends["after"].status.value == "timeout"
    assert ends["after"].reason == "timed out (on purpose: WFX_FAILPOINT step-timeout:after@1)"
    assert result.exit_code == 1
    assert ledger(tmp_path) == ["ran", "undone"]  # the rollback is no attempt: it runs
