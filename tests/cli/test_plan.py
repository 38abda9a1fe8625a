"""`wfx plan` formats, `--diff`, and `wfx explain`, as a reviewer would read them."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from wfx.cli import cli
from wfx.resources import read_text

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "examples" / "production-deployment.yaml"

BASE = textwrap.dedent(
    """
    wfx: 1
    defaults: {timeout: 10s}
    steps:
      - id: build
        run: make
      - id: test
        run: make test
        retries: 2
      - id: deploy
        run: ./deploy
        rollback: {run: ./undeploy}
    """
).lstrip()


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"})
    return result.exit_code, result.stdout, result.stderr


def test_text_plan_shows_stages_and_worst_case_without_colour() -> None:
    code, out, _ = invoke("plan", str(DEPLOY), "-i", "environment=prd")
    assert code == 0
    assert "\x1b[" not in out
    for text in (
        "Stages",
        "unit_tests",
        "Finally",
        "compensation order: release → migrate",
        "worst case: 7m8.1s",
        'environment = "prd"',
    ):
        assert text in out, text


def test_markdown_plan_reads_as_a_pull_request_comment() -> None:
    code, out, _ = invoke("plan", str(DEPLOY), "--format", "markdown")
    assert code == 0
    assert out.startswith("### wfx plan: Production Deployment\n\nParallel pre\\-deployment checks")
    assert "\n**9 steps** in 5 stages" in out
    assert "| stage | step | kind | condition |" in out
    assert "<details><summary>Step details</summary>" in out
    assert "**Compensation order** (if the last step fails): `release` → `migrate`" in out


@pytest.mark.parametrize(
    ("fmt", "group"), [("mermaid", "subgraph n_checks_group"), ("dot", "subgraph cluster_n_checks")]
)
def test_graph_formats_draw_groups_as_subgraphs(fmt: str, group: str) -> None:
    code, out, _ = invoke("plan", str(DEPLOY), "--format", fmt)
    assert code == 0
    assert group in out
    assert ("n_migrate --> n_release" if fmt == "mermaid" else "n_migrate -> n_release;") in out


def test_invalid_inputs_exit_2_and_nothing_is_planned() -> None:
    code, out, err = invoke("plan", str(DEPLOY), "-i", "environment=staging", "-i", "nope=1")
    assert code == 2
    assert out == ""
    assert "input `environment`: 'staging' is not one of 'dev', 'test', 'prd'" in err
    assert "unknown input `nope`" in err


def test_inputs_file_errors_point_into_that_file(tmp_path: Path) -> None:
    inputs = tmp_path / "inputs.yaml"
    inputs.write_text("environment: prd\nversion: 1.2\n")
    code, _, err = invoke("plan", str(DEPLOY), "--inputs", str(inputs))
    assert code == 2
    assert f"{inputs}:2:1: error: input `version`: expected a string, got 1.2" in err


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_diff_against_a_file_lists_what_changed(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE)
    head_text = BASE.replace("retries: 2", "retries: 4").replace("timeout: 10s", "timeout: 20s")
    head_text += "  - id: notify\n    run: echo done\n"
    head = write(tmp_path / "head.yaml", head_text)
    code, out, _ = invoke("plan", str(head), "--diff", str(base), "--format", "json")
    assert code == 0
    changes = {
        (c["step"], c["field"]): (c["before"], c["after"]) for c in json.loads(out)["changes"]
    }
    assert changes[("notify", "step")] == ("absent", "added")
    assert changes[("test", "retries")] == (
        {"attempts": 3, "delays": [1, 2], "waitRanges": [[1, 1], [2, 2]], "jitter": 0},
        {
            "attempts": 5,
            "delays": [1, 2, 4, 8],
            "waitRanges": [[1, 1], [2, 2], [4, 4], [8, 8]],
            "jitter": 0,
        },
    )
    assert changes[("build", "timeout")] == (10, 20)
    assert (None, "worstCaseSeconds") in changes


def test_diff_text_and_markdown(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", BASE)
    head = write(
        tmp_path / "head.yaml", BASE.replace("rollback: {run: ./undeploy}", "onError: continue")
    )
    code, out, _ = invoke("plan", str(head), "--diff", str(base))
    assert code == 0
    assert "~ step deploy onError: fail -> continue" in out
    assert "~ step deploy rollback: true -> false" in out
    assert "~ step deploy rollback.run: ./undeploy -> none" in out
    assert "~ run compensation: deploy -> (empty)" in out
    code, out, _ = invoke("plan", str(head), "--diff", str(base), "--format", "markdown")
    assert "| ✏️ | step `deploy` onError | fail | continue |" in out


def test_diff_against_a_git_revision(tmp_path: Path) -> None:
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "root")
    flow = write(tmp_path / "flow.yaml", BASE)
    git("add", "flow.yaml")
    git("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "-m", "flow")
    flow.write_text(BASE.replace("./deploy", "./deploy --fast"))
    code, out, _ = invoke("plan", str(flow), "--diff", "git:HEAD")
    assert code == 0
    assert out.strip() == "~ step deploy run: ./deploy -> ./deploy --fast"
    code, out, _ = invoke("plan", str(flow), "--diff", "git:HEAD~1")
    assert "+ step build" in out and "+ step deploy" in out
    code, _, err = invoke("plan", str(flow), "--diff", "git:no-such-rev")
    assert code == 2 and "cannot read flow.yaml at `no-such-rev`" in err
    written = tmp_path / "written"
    code, _, err = invoke("plan", str(flow), "--diff", f"git:--output={written}")
    assert code == 2 and "a revision cannot start with `-`" in err
    assert not list(tmp_path.glob("written*"))  # git never took it as its `--output`


def test_explain_tells_position_provenance_and_failure_path() -> None:
    code, out, _ = invoke("explain", str(DEPLOY), "release")
    assert code == 0
    assert "Position: stage 4 of the main steps" in out
    assert "`release` waits for `migrate`: comes after it in a sequential group" in out
    assert "timeout = 30s  (from defaults (line 15))" in out
    assert "retries = 1 (waits 100ms)  (from defaults (line 17))" in out
    assert "it is tried 2 times in all, waiting 100ms" in out
    assert "skipped (they depend on it): smoke, metrics" in out
    assert "rollbacks, in this order: migrate" in out


def test_explain_an_unknown_step_suggests_one() -> None:
    code, _, err = invoke("explain", str(DEPLOY), "relase")
    assert code == 2
    assert "no step `relase`" in err and "did you mean `release`?" in err


COMMANDS = textwrap.dedent(
    """
    wfx: 1
    name: Commands
    description: Ships the app.
    inputs:
      target: {type: string, default: staging, description: Where to ship}
      fast: {type: boolean, default: false}
    secrets: [TOKEN]
    env:
      TARGET: ${{ inputs.target }}
    defaults: {timeout: 10s}
    steps:
      - id: ship
        run: |
          ./ship --to ${{ inputs.target }} --token ${{ secrets.TOKEN }}
          echo "${{ steps.ship.outputs.x }}"
        shell: bash -eu
        workingDirectory: deploy/${{ inputs.target }}
        env: {MODE: "fast=${{ inputs.fast }}"}
        retries: {max: 2, delay: 1s, jitter: 0.5}
        rollback:
          name: unship
          cmd: [./unship, "${{ env.TARGET }}"]
          workingDirectory: rollback
          timeout: 5s
      - id: call
        uses: python:tools:notify
        with:
          to: ${{ inputs.target }}
          fast: ${{ inputs.fast }}
          later: ${{ steps.ship.outputs.x }}
    """
).lstrip()


def test_text_plan_shows_what_runs_and_verbose_shows_how(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", COMMANDS)
    code, out, _ = invoke("plan", str(flow))
    assert code == 0
    for text in (
        "Plan for Commands (2 steps)",
        "Ships the app.",
        'target = "staging"  (Where to ship)',
        "fast = false",
        "│ ./ship --to staging --token ***",
        '│ echo "${{ steps.ship.outputs.x }}"',
        "rollback (unship):",
        '│ argv ["./unship", "staging"]',
        "│ python:tools:notify",
        '│ with {"to": "staging", "fast": false, "later": "${{ steps.ship.outputs.x }}"}',
        "2 (1s–1.5s, 2s–3s)",
    ):
        assert text in out, text
    # a shell, directory or env of the step's own changes what its script does: shown
    for text in (
        "  shell: bash -eu",
        "  working directory: deploy/staging",
        '  env MODE = "fast=false"',
        'env:\n  TARGET = "staging"',
        "    working directory: rollback",
    ):
        assert text in out, text
    assert "False" not in out and "'staging'" not in out
    assert 'env TARGET = "staging"' not in out  # the workflow's env is shown once
    code, out, _ = invoke("plan", str(flow), "--verbose")
    for text in (
        'env TARGET = "staging"',
        "${{ inputs.fast }} in with.fast = false",
        "timeout from defaults (line 10)",
    ):
        assert text in out, text


def test_json_plan_carries_every_action_for_exporters(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", COMMANDS)
    code, out, _ = invoke("plan", str(flow), "--format", "json")
    assert code == 0
    plan = json.loads(out)
    schema = json.loads(read_text("schema", "plan.schema.json"))
    jsonschema.Draft202012Validator(schema).validate(plan)
    assert plan["description"] == "Ships the app."
    assert plan["inputDescriptions"] == {"target": "Where to ship"}
    ship = plan["steps"]["ship"]
    source = ship["action"].pop("source")  # as written, for exporters (wfx export)
    assert source["run"].startswith("./ship --to ${{ inputs.target }} --token ${{ secrets.TOKEN }}")
    assert source["env"] == {"TARGET": "${{ inputs.target }}", "MODE": "fast=${{ inputs.fast }}"}
    assert ship["rollbackAction"].pop("source")["cmd"] == ["./unship", "${{ env.TARGET }}"]
    assert ship["action"] == {
        "kind": "run",
        "name": None,
        "run": './ship --to staging --token ***\necho "${{ steps.ship.outputs.x }}"\n',
        "env": {"TARGET": "staging", "MODE": "fast=false"},
        "shell": "bash -eu",
        "workingDirectory": "deploy/staging",
        "timeout": 10,
    }
    assert ship["rollbackAction"] == {
        "kind": "cmd",
        "name": "unship",
        "cmd": ["./unship", "staging"],
        "env": {"TARGET": "staging", "MODE": "fast=false"},
        "shell": None,
        "workingDirectory": "rollback",
        "timeout": 5,
    }
    assert ship["retry"]["waitRanges"] == [[1, 1.5], [2, 3]]
    call = plan["steps"]["call"]["action"]
    assert call["uses"] == "python:tools:notify"
    assert call["with"] == {"to": "staging", "fast": False, "later": "${{ steps.ship.outputs.x }}"}
    assert call["env"] == {} and call["shell"] is None


def test_markdown_plan_shows_commands_and_descriptions(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", COMMANDS)
    code, out, _ = invoke("plan", str(flow), "--format", "markdown")
    assert code == 0
    assert "\nShips the app\\.\n" in out
    assert '| `target` | \\"staging\\" | Where to ship |' in out
    assert "| `fast` | false |  |" in out
    assert "```sh\n./ship --to staging --token ***\n" in out
    assert '"later": "${{ steps.ship.outputs.x }}"' in out
    assert "rollback of `ship` (unship):" in out
    assert "- shell: `bash -eu`\n- working directory: `deploy/staging`" in out
    assert "- env `MODE` = `fast=false`" in out
    assert '| `TARGET` | \\"staging\\" |' in out
    assert "2 (1s–1.5s, 2s–3s)" in out


def test_a_single_step_is_one_step(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", "wfx: 1\nsteps:\n  - {id: a, run: 'true'}\n")
    assert "(1 step)" in invoke("plan", str(flow))[1]
    assert "**1 step** in 1 stage," in invoke("plan", str(flow), "--format", "markdown")[1]


def test_diff_shows_changed_scripts_and_values_in_plan_units(tmp_path: Path) -> None:
    base = write(tmp_path / "base.yaml", COMMANDS)
    head = write(
        tmp_path / "head.yaml",
        COMMANDS.replace("default: false", "default: true")
        .replace('echo "${{ steps', 'echo changed "${{ steps')
        .replace("timeout: 5s", "timeout: 7s"),
    )
    code, out, _ = invoke("plan", str(head), "--diff", str(base))
    assert code == 0
    assert "~ step ship run:\n" in out
    assert '    -echo "${{ steps.ship.outputs.x }}"\n' in out
    assert '    +echo changed "${{ steps.ship.outputs.x }}"' in out
    assert '~ step ship env.MODE: "fast=false" -> "fast=true"' in out
    assert "~ step ship rollback.timeout: 5s -> 7s" in out
    assert '~ step call with: {"to": "staging", "fast": false' in out
    assert "False" not in out and "True" not in out and "5.0" not in out
    code, out, _ = invoke("plan", str(head), "--diff", str(base), "--format", "markdown")
    assert "```diff\n@@ -1,2 +1,2 @@\n" in out
    assert "| ✏️ | step `ship` rollback\\.timeout | 5s | 7s |" in out


@pytest.mark.parametrize("fmt", ["mermaid", "dot"])
def test_diff_in_a_format_that_cannot_show_one_is_refused(tmp_path: Path, fmt: str) -> None:
    flow = write(tmp_path / "flow.yaml", BASE)
    code, out, err = invoke("plan", str(flow), "--diff", str(flow), "--format", fmt)
    assert code == 2
    assert out == ""
    assert f"--diff cannot be shown as {fmt}" in err
    assert "use --format text, markdown or json with --diff" in err


def test_explain_shows_the_jitter_range_and_plain_values(tmp_path: Path) -> None:
    flow = write(tmp_path / "flow.yaml", COMMANDS)
    code, out, _ = invoke("explain", str(flow), "ship")
    assert code == 0
    assert "retries = 2 (waits 1s–1.5s, 2s–3s)  (from step (line 19))" in out
    assert "it is tried 3 times in all, waiting 1s–1.5s, 2s–3s" in out
    assert "shell = bash -eu  (from step (line 16))" in out


class _Edge:
    """A random source that always picks one end of the range asked for."""

    def __init__(self, high: bool) -> None:
        self.high = high

    def uniform(self, low: float, high: float) -> float:
        return high if self.high else low


def test_the_jitter_range_shown_is_the_one_the_engine_draws_from() -> None:
    from wfx.graph import RetrySchedule
    from wfx.render.units import jitter_range
    from wfx.runtime.retry import wait_before

    schedule = RetrySchedule(3, 1.0, "exponential", 2.0, 30.0, 0.5, (1.0, 2.0))
    for attempt, delay in enumerate(schedule.delays, start=1):
        drawn = tuple(
            wait_before(schedule, attempt, _Edge(high))  # type: ignore[arg-type]
            for high in (False, True)
        )
        assert jitter_range(delay, schedule.jitter) == drawn


def test_every_format_says_how_the_whole_run_is_bounded(tmp_path: Path) -> None:
    flow = write(
        tmp_path / "flow.yaml",
        "wfx: 1\ntype: parallel\ntimeout: 5m\nmaxParallel: 2\n"
        "steps:\n  - {id: a, run: 'true'}\n  - {id: b, run: 'true'}\n",
    )
    _, out, _ = invoke("plan", str(flow), "--format", "json")
    plan = json.loads(out)
    jsonschema.Draft202012Validator(json.loads(read_text("schema", "plan.schema.json"))).validate(
        plan
    )
    assert (plan["type"], plan["timeout"], plan["maxParallel"]) == ("parallel", 300, 2)
    _, out, _ = invoke("plan", str(flow), "--format", "markdown")
    assert "top-level steps in parallel, timeout 5m, maxParallel 2." in out
    _, out, _ = invoke("plan", str(flow))
    assert "run: top-level steps in parallel, timeout 5m, maxParallel 2" in out


def test_a_remote_executor_says_the_workspace_must_be_shared(tmp_path: Path) -> None:
    flow = write(
        tmp_path / "flow.yaml",
        "wfx: 1\ndefaults: {executor: 'dask://scheduler:8786'}\n"
        "steps:\n  - {id: a, run: 'true'}\n  - {id: b, run: 'true', executor: local}\n",
    )
    _, out, _ = invoke("plan", str(flow), "--format", "json")
    [found] = [w for w in json.loads(out)["warnings"] if w["code"] == "plan.workspace-not-shared"]
    assert "1 step runs on `dask://scheduler:8786` (`a`)" in found["message"]
    assert "--workspace" in found["hint"]
    local = write(tmp_path / "local.yaml", "wfx: 1\nsteps:\n  - {id: a, run: 'true'}\n")
    _, out, _ = invoke("plan", str(local), "--format", "json")
    assert json.loads(out)["warnings"] == []
