"""What-if plans (`wfx plan --fail/--timeout`) against real runs: the simulation's step
outcomes, attempts, rollback order, `finally` steps and exit code equal those of a real
`wfx run` in which `WFX_FAILPOINT` fails the named attempts (`step-fail:STEP@N`,
`step-timeout:STEP`), and those of a real run in which the steps' own scripts fail (exit 1,
or sleep past their timeout, when an environment variable names the step and attempt)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from harness import Recorded, run_text

from wfx.api import compile_file, what_if
from wfx.cli import cli
from wfx.diagnostics import DiagnosticsError
from wfx.runtime import events as ev

#: every step runs this: it exits 1 when $FAIL_AT names it (as `id` or `id@attempt`),
#: sleeps past any timeout when $HANG_AT does, else sleeps $PACE_<id> seconds (or none)
CHAOS_SCRIPT = """
case " $FAIL_AT " in *" $WFX_STEP_ID "*|*" $WFX_STEP_ID@$WFX_ATTEMPT "*) exit 1;; esac
case " $HANG_AT " in *" $WFX_STEP_ID "*|*" $WFX_STEP_ID@$WFX_ATTEMPT "*) exec sleep 5;; esac
eval "pace=\\${PACE_$WFX_STEP_ID:-0}"
exec sleep "$pace"
"""
CHAOS = "sh chaos.sh"

SAGA = """
wfx: 1
defaults: {killGrace: 100ms}
steps:
  - {id: a, run: "CHAOS", rollback: {run: "true"}}
  - {id: b, run: "CHAOS"}
  - {id: c, run: "CHAOS", rollback: {run: "true"}}
  - {id: d, run: "CHAOS", rollback: {run: "true"}}
  - {id: e, run: "CHAOS"}
  - {id: cleanup, condition: "${{ failure() }}", run: "CHAOS"}
finally:
  - {id: always_report, run: "CHAOS"}
  - {id: on_failure, condition: "${{ failure() }}", run: "CHAOS"}
  - {id: on_success, condition: "${{ success() }}", run: "CHAOS"}
"""

PARALLEL = """
wfx: 1
defaults: {killGrace: 100ms, retries: {max: 1, delay: 50ms, backoff: constant}}
steps:
  - {id: prepare, run: "CHAOS", rollback: {run: "true"}}
  - id: fan
    type: parallel
    steps:
      - {id: slow, run: "CHAOS", rollback: {run: "true"}}
      - {id: quick, run: "CHAOS", rollback: {run: "true"}}
      - {id: tolerant, run: "CHAOS", onError: continue}
  - {id: publish, run: "CHAOS", rollback: {run: "true"}}
finally:
  - {id: notify, run: "CHAOS"}
"""

RETRIES = """
wfx: 1
defaults: {killGrace: 100ms}
steps:
  - id: flaky
    run: "CHAOS"
    timeout: 300ms
    retries: {max: 2, delay: 50ms, backoff: exponential}
    rollback: {run: "true"}
  - {id: after, run: "CHAOS", timeout: 300ms}
finally:
  - {id: tidy, run: "CHAOS", condition: "${{ always() }}"}
"""

#: the parallel siblings outlast the failure, as the what-if assumes
PACE = {"PACE_slow": "3", "PACE_tolerant": "3"}
#: parallel siblings finish in declaration order, as the what-if assumes (left to the
#: race, `quick` sometimes finished first, which reverses their rollbacks)
IN_ORDER = {"PACE_quick": "0.5", "PACE_tolerant": "0.5"}


def workflow(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    (tmp_path / "chaos.sh").write_text(CHAOS_SCRIPT, encoding="utf-8")
    body = textwrap.dedent(text).lstrip("\n").replace("CHAOS", CHAOS)
    path.write_text(body, encoding="utf-8")
    return path


def real_run(
    tmp_path: Path, text: str, fail: str = "", hang: str = "", pace: dict[str, str] | None = None
) -> Recorded:
    body = workflow(tmp_path, text).read_text(encoding="utf-8")
    environ = {**os.environ, "FAIL_AT": fail, "HANG_AT": hang, **(pace or {})}
    return run_text(tmp_path, body, environ=environ)


def observed(recorded: Recorded) -> dict[str, Any]:
    """What a real run did, in the terms a what-if answers."""
    finished = {e.step: e for e in recorded.of(ev.StepFinished)}
    return {
        "steps": {k: (e.status.value, e.attempts) for k, e in sorted(finished.items())},
        "rollbacks": [e.step for e in recorded.of(ev.RollbackStarted)],
        "rollback_status": {e.step: e.status.value for e in recorded.of(ev.RollbackFinished)},
        "exit_code": recorded.result.exit_code,
    }


def predicted(path: Path, fail: str = "", hang: str = "") -> dict[str, Any]:
    """What the what-if says for the same failures."""
    graph = compile_file(path).graph
    result = what_if(graph, fail.split(), hang.split())
    return {
        "steps": {s.id: (s.status.value, s.attempts) for s in sorted(result.steps, key=_id)},
        "rollbacks": list(result.compensation),
        "rollback_status": {
            s.id: s.rolled_back.value for s in result.steps if s.rolled_back is not None
        },
        "exit_code": result.exit_code,
    }


def _id(outcome: Any) -> str:
    return str(outcome.id)


CASES = pytest.mark.parametrize(
    ("text", "fail", "hang", "pace"),
    [
        pytest.param(SAGA, "", "", None, id="saga-nothing-fails"),
        pytest.param(SAGA, "a", "", None, id="saga-first-fails"),
        pytest.param(SAGA, "d", "", None, id="saga-rolls-back-c-then-a"),
        pytest.param(SAGA, "e", "", None, id="saga-last-fails"),
        pytest.param(SAGA, "d cleanup", "", None, id="saga-cleanup-fails-too"),
        pytest.param(SAGA, "always_report", "", None, id="saga-finally-fails"),
        pytest.param(PARALLEL, "quick", "", PACE, id="parallel-sibling-cancelled"),
        pytest.param(PARALLEL, "tolerant", "", None, id="parallel-tolerated-exit-3"),
        pytest.param(PARALLEL, "quick@1", "", None, id="parallel-retry-recovers"),
        pytest.param(PARALLEL, "publish", "", IN_ORDER, id="parallel-rollback-order"),
        pytest.param(RETRIES, "flaky@1 flaky@2", "", None, id="retries-third-attempt"),
        pytest.param(RETRIES, "flaky", "", None, id="retries-spent"),
        pytest.param(RETRIES, "", "after", None, id="timeout-every-attempt"),
        pytest.param(RETRIES, "", "flaky@1", None, id="timeout-then-recover"),
    ],
)


@CASES
def test_what_if_equals_the_real_run(
    tmp_path: Path, text: str, fail: str, hang: str, pace: dict[str, str] | None
) -> None:
    real = observed(real_run(tmp_path, text, fail, hang, pace))
    assert predicted(tmp_path / "wf.yaml", fail, hang) == real


def failpoint_spec(fail: str, hang: str) -> str:
    """The what-if's failures as `WFX_FAILPOINT` step faults (`d cleanup` ->
    `step-fail:d,step-fail:cleanup`)."""
    faults = [f"step-fail:{f}" for f in fail.split()] + [f"step-timeout:{h}" for h in hang.split()]
    return ",".join(faults)


def failpoint_run(
    tmp_path: Path, text: str, fail: str, hang: str, pace: dict[str, str] | None
) -> dict[str, Any]:
    """A real `wfx run` (journal and all) in which `WFX_FAILPOINT` fails the attempts the
    what-if names; the steps' own scripts fail nothing ($FAIL_AT and $HANG_AT are empty).
    What it did, in the terms a what-if answers, read from its CloudEvents."""
    path = workflow(tmp_path, text)
    events_file = tmp_path / "events.jsonl"
    environ = {
        **os.environ,
        **(pace or {}),
        "FAIL_AT": "",
        "HANG_AT": "",
        "WFX_FAILPOINT": failpoint_spec(fail, hang),
    }
    args = ("run", "-q", str(path), "--events", str(events_file))
    ran = wfx(*args, "--state-dir", str(tmp_path / "state"), env=environ)
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    of = [(e["type"].removeprefix("dev.wfx."), e.get("subject"), e["data"]) for e in events]
    return {
        "steps": dict(
            sorted(
                (step, (data["status"], data["attempts"]))
                for kind, step, data in of
                if kind.startswith("step.") and "attempts" in data
            )
        ),
        "rollbacks": [step for kind, step, _ in of if kind == "rollback.started"],
        "rollback_status": {
            step: data["status"] for kind, step, data in of if kind == "rollback.finished"
        },
        "exit_code": ran.returncode,
        "faulted": [
            d["text"] for k, _, d in of if k == "step.output" and "WFX_FAILPOINT" in d["text"]
        ],
    }


@CASES
def test_what_if_equals_the_real_run_under_wfx_failpoint(
    tmp_path: Path, text: str, fail: str, hang: str, pace: dict[str, str] | None
) -> None:
    """The acceptance's test: the same failures, given to a real run by `WFX_FAILPOINT`."""
    real = failpoint_run(tmp_path, text, fail, hang, pace)
    faulted = real.pop("faulted")
    assert predicted(tmp_path / "wf.yaml", fail, hang) == real
    # the failures came from the failpoint (the scripts fail nothing), and said so
    attempts = {step: n for step, (_, n) in real["steps"].items()}
    assert sorted(faulted) == sorted(
        f"wfx: this attempt {verb} on purpose: WFX_FAILPOINT step-{kind}:{step}@{attempt};"
        " its process is not started"
        for kind, verb, specs in (("fail", "fails", fail), ("timeout", "times out", hang))
        for step, attempt in _attempts_named(specs, attempts)
    )


def _attempts_named(specs: str, attempts: dict[str, int]) -> list[tuple[str, int]]:
    """The attempts `specs` (`d`, `quick@1`...) name among those that started."""
    named = []
    for spec in specs.split():
        step, _, at = spec.partition("@")
        started = range(1, attempts[step] + 1)
        named += [(step, n) for n in started if not at or n == int(at)]
    return named


def test_the_saga_case_in_detail(tmp_path: Path) -> None:
    """Not only equal to the real run: the answer is the one the rules give."""
    path = workflow(tmp_path, SAGA)
    result = what_if(compile_file(path).graph, ["d"])
    status = {s.id: s.status.value for s in result.steps}
    assert status == {
        "a": "success",
        "b": "success",
        "c": "success",
        "d": "failed",
        "e": "skipped",
        "cleanup": "success",
        "always_report": "success",
        "on_failure": "success",
        "on_success": "skipped",
    }
    assert result.compensation == ("c", "a")
    assert result.exit_code == 1


def test_parallel_failure_cancels_the_running_siblings(tmp_path: Path) -> None:
    path = workflow(tmp_path, PARALLEL)
    result = what_if(compile_file(path).graph, ["quick"])
    assert result.outcome("slow").status.value == "cancelled"
    assert result.outcome("publish").status.value == "skipped"
    assert result.outcome("quick").retry_waits == (0.05,)
    assert any(n.startswith("`slow` cancelled: the failure is taken") for n in result.notes)
    assert result.compensation == ("prepare",)


def test_retry_waits_are_not_slept(tmp_path: Path) -> None:
    retries = "retries: {max: 3, delay: 20s, backoff: constant}"
    text = SAGA.replace("{id: a, run:", "{id: a, " + retries + ", run:")
    path = workflow(tmp_path, text)
    result = what_if(compile_file(path).graph, ["a"])  # a minute of waits, simulated
    assert result.outcome("a").retry_waits == (20.0, 20.0, 20.0)
    assert result.outcome("a").attempts == 4


def test_python_steps_are_simulated_not_called(tmp_path: Path) -> None:
    (tmp_path / "boom.py").write_text(
        "def go(**kw):\n    raise SystemExit('a what-if must never call me')\n"
    )
    text = """
    wfx: 1
    steps:
      - {id: py, uses: "python:boom:go", rollback: {uses: "python:boom:go"}}
      - {id: py2, uses: "python:boom:go", timeout: 1s}
    """
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    graph = compile_file(path).graph
    assert what_if(graph, []).exit_code == 0
    result = what_if(graph, [], ["py2"])
    assert result.outcome("py2").status.value == "timeout"
    assert result.compensation == ("py",)
    assert "boom" not in sys.modules


def test_conditions_on_outputs_and_secrets_are_noted(tmp_path: Path) -> None:
    text = """
    wfx: 1
    secrets: [TOKEN]
    steps:
      - {id: probe, run: "true"}
      - {id: gated, condition: "${{ steps.probe.outputs.ok == 'yes' }}", run: "true"}
      - {id: login, condition: "${{ secrets.TOKEN != '' }}", run: "true"}
    """
    path = tmp_path / "wf.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    result = what_if(compile_file(path).graph, [])
    assert result.outcome("gated").status.value == "skipped"
    assert result.outcome("login").status.value == "success"
    assert any("`gated` skipped" in n and "step outputs" in n for n in result.notes)
    assert any("`login` ran" in n and "secrets" in n for n in result.notes)


@pytest.mark.parametrize(
    ("fails", "timeouts", "message"),
    [
        (["nope"], [], "no step `nope`"),
        (["flaky@4"], [], "has 3 attempt(s), not 4"),
        (["flaky@x"], [], "is not an attempt number"),
        ([], ["tidy"], "has no timeout"),
    ],
)
def test_bad_failure_names_are_diagnostics(
    tmp_path: Path, fails: list[str], timeouts: list[str], message: str
) -> None:
    graph = compile_file(workflow(tmp_path, RETRIES)).graph
    with pytest.raises(DiagnosticsError) as caught:
        what_if(graph, fails, timeouts)
    assert message in caught.value.diagnostics[0].message


def wfx(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wfx", *args],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )


#: the status each step event's CloudEvents type stands for
_STATUS_OF_TYPE = {"succeeded": "success", "timedout": "timeout"}


def test_cli_what_if_agrees_with_a_real_wfx_run(tmp_path: Path) -> None:
    path = workflow(tmp_path, SAGA)
    shown = CliRunner().invoke(cli, ["plan", str(path), "--fail", "d", "--format", "json"])
    assert shown.exit_code == 0, shown.output
    said = json.loads(shown.output)
    environ = {**os.environ, "FAIL_AT": "d", "HANG_AT": ""}
    events_file = tmp_path / "events.jsonl"
    ran = wfx("run", str(path), "--events", str(events_file), env=environ)
    assert ran.returncode == said["exitCode"] == 1
    events = [json.loads(line) for line in events_file.read_text().splitlines()]
    finished = {
        e["subject"]: e["type"].rsplit(".", 1)[1]
        for e in events
        if e["type"].startswith("dev.wfx.step.") and e.get("subject")
    }
    rolled = [e["subject"] for e in events if e["type"] == "dev.wfx.rollback.started"]
    assert rolled == said["compensation"] == ["c", "a"]
    assert {s["id"]: s["status"] for s in said["steps"]} == {
        k: _STATUS_OF_TYPE.get(v, v)
        for k, v in finished.items()
        if v not in ("started", "output", "retrying")
    }
    assert [f["id"] for f in said["finally"]] == ["always_report", "on_failure", "on_success"]


def test_cli_what_if_text_and_markdown(tmp_path: Path) -> None:
    path = str(workflow(tmp_path, SAGA))
    runner = CliRunner()
    text = runner.invoke(cli, ["plan", path, "--fail", "d"])
    assert text.exit_code == 0, text.output
    assert "Compensation (in order): c → a" in text.output
    assert "Run: failed, exit code 1" in text.output
    markdown = runner.invoke(cli, ["plan", path, "--fail", "b", "--format", "markdown"])
    assert "**Compensation** (in order): `a`" in markdown.output
    assert "| `e` | main | skipped |" in markdown.output
    no_timeout = runner.invoke(cli, ["plan", path, "--timeout", "e", "--format", "markdown"])
    assert no_timeout.exit_code == 2
    assert "has no timeout" in no_timeout.output
    refused = runner.invoke(cli, ["plan", path, "--fail", "b", "--format", "mermaid"])
    assert refused.exit_code == 2
    assert "cannot be combined with --format mermaid" in refused.output


def test_the_example_in_plan_md_is_what_wfx_prints() -> None:
    """docs/plan.md's what-if, run as it is written there."""
    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "plan.md").read_text(encoding="utf-8")
    command = "wfx plan examples/production-deployment.yaml --fail release"
    shown = docs.split(f"```console\n$ {command}\n", 1)[1].split("```", 1)[0]
    ran = subprocess.run(
        [sys.executable, "-m", "wfx", *command.split()[1:]],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == shown
