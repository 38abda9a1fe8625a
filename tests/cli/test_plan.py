"""`wfx plan` formats, `--diff`, and `wfx explain`, as a reviewer would read them."""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from wfx.cli import cli

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
