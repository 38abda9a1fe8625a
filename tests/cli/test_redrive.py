"""`wfx retry`, `wfx run --retry-failed|--only|--from|--skip` and `wfx plan --retry`, run
as a user runs them: real shell steps, a real journal (the commands run in this process,
from the workflow's directory, to keep the tests fast)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from wfx.cli import cli

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WFX_STATE_DIR", raising=False)


def wfx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`wfx ARGS` from `cwd` (the current directory already), as a CompletedProcess."""
    assert Path.cwd() == cwd
    result = CliRunner().invoke(cli, list(args), env={"NO_COLOR": "1"})
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return subprocess.CompletedProcess(args, result.exit_code, result.stdout, result.stderr)


# `test` fails until the file `fixed` exists; every step appends its name to `ledger`
FLOW = """wfx: 1
type: parallel
steps:
  - id: build
    run: "echo build >> ledger; echo version=7 >> $WFX_OUTPUT; echo art > $WFX_WORKSPACE/art"
  - {id: lint, needs: [build], run: "echo lint >> ledger"}
  - {id: test, needs: [lint], run: "echo test >> ledger; [ -e fixed ]"}
  - id: deploy
    needs: [test, lint]
    run: "echo deploy ${{ steps.build.outputs.version }} $(cat $WFX_WORKSPACE/art) >> ledger"
finally:
  - {id: cleanup, run: "echo cleanup >> ledger"}
"""


def _ledger(root: Path) -> list[str]:
    path = root / "ledger"
    return path.read_text().splitlines() if path.exists() else []


def _runs(root: Path) -> list[dict[str, object]]:
    listed: list[dict[str, object]] = json.loads(wfx("runs", "--json", cwd=root).stdout)
    return listed


def _failed_run(root: Path) -> str:
    (root / "wf.yaml").write_text(FLOW)
    assert wfx("run", "-q", "wf.yaml", cwd=root).returncode == 1
    assert _ledger(root) == ["build", "lint", "test", "cleanup"]
    return str(_runs(root)[0]["id"])


def test_retry_keeps_what_succeeded_and_runs_the_rest(tmp_path: Path) -> None:
    first = _failed_run(tmp_path)
    (tmp_path / "fixed").touch()
    retried = wfx("retry", first, cwd=tmp_path)
    assert retried.returncode == 0, retried.stderr
    # build and lint succeeded: kept (deploy reads build's output and its workspace file)
    assert _ledger(tmp_path)[4:] == ["test", "deploy 7 art", "cleanup"]
    assert f"[build] success in run {first}: kept, not run again" in retried.stdout
    second = _runs(tmp_path)[0]
    assert second["redrives"] == first and second["status"] == "success"
    shown = json.loads(wfx("show", str(second["id"]), "--json", cwd=tmp_path).stdout)
    kept = {s["id"]: s["keptFrom"] for s in shown["steps"]}
    assert kept == {
        "build": first,
        "lint": first,
        "test": None,
        "deploy": None,
        "cleanup": None,
    }
    assert f"redrives     run {first}" in wfx("show", str(second["id"]), cwd=tmp_path).stdout


def test_run_retry_failed_redrives_the_latest_run(tmp_path: Path) -> None:
    _failed_run(tmp_path)
    again = wfx("run", "-q", "wf.yaml", "--retry-failed", cwd=tmp_path)
    assert again.returncode == 1  # still failing: test runs again, fails again
    assert _ledger(tmp_path)[4:] == ["test", "cleanup"]
    (tmp_path / "fixed").touch()
    # the latest run is now the redrive; its kept steps come from the first run still
    runs = _runs(tmp_path)
    assert wfx("run", "-q", "wf.yaml", "--retry-failed", cwd=tmp_path).returncode == 0
    assert _ledger(tmp_path)[6:] == ["test", "deploy 7 art", "cleanup"]
    newest = json.loads(wfx("show", str(_runs(tmp_path)[0]["id"]), "--json", cwd=tmp_path).stdout)
    assert newest["redrives"] == runs[0]["id"]
    assert {s["id"]: s["keptFrom"] for s in newest["steps"]}["build"] == runs[1]["id"]


def test_a_changed_workflow_is_refused_unless_forced(tmp_path: Path) -> None:
    first = _failed_run(tmp_path)
    (tmp_path / "wf.yaml").write_text(FLOW.replace("echo lint", "echo LINT"))
    refused = wfx("retry", first, cwd=tmp_path)
    assert refused.returncode == 2
    assert f"changed since run `{first}`" in refused.stderr
    assert "lint" in refused.stderr and "--force" in refused.stderr
    assert len(_runs(tmp_path)) == 1  # nothing recorded, nothing ran
    (tmp_path / "fixed").touch()
    forced = wfx("retry", first, "--force", "-q", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert "retrying a changed workflow (--force)" in forced.stderr
    # the changed step runs again (and test, which needs it); build is kept
    assert _ledger(tmp_path)[4:] == ["LINT", "test", "deploy 7 art", "cleanup"]


def test_retry_refuses_a_run_that_succeeded_and_an_unknown_one(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(FLOW)
    (tmp_path / "fixed").touch()
    assert wfx("run", "-q", "wf.yaml", cwd=tmp_path).returncode == 0
    done = wfx("retry", str(_runs(tmp_path)[0]["id"]), cwd=tmp_path)
    assert done.returncode == 2 and "succeeded: there is nothing to retry" in done.stderr
    unknown = wfx("retry", "nope", cwd=tmp_path)
    assert unknown.returncode == 2 and "no run `nope`" in unknown.stderr
    nothing = wfx("run", "wf.yaml", "--retry-failed", "--state-dir", "other", cwd=tmp_path)
    assert nothing.returncode == 2 and "no run of wf.yaml" in nothing.stderr


def test_an_ambiguous_run_id_prefix_says_so_everywhere_a_run_is_named(tmp_path: Path) -> None:
    _failed_run(tmp_path)
    assert wfx("run", "-q", "wf.yaml", cwd=tmp_path).returncode == 1
    prefix = str(_runs(tmp_path)[0]["id"])[:4]  # the year: both runs
    for args in (
        ["retry", prefix],
        ["plan", "wf.yaml", "--retry", prefix],
        ["resume", prefix],
        ["show", prefix],
        ["logs", prefix],
    ):
        result = wfx(*args, cwd=tmp_path)
        assert result.returncode == 2
        assert f"run id `{prefix}` is ambiguous: it matches 2 runs" in result.stderr, args


ENV_FLOW = """wfx: 1
secrets: [TOKEN]
steps:
  - {id: a, run: "echo a >> ledger"}
  - {id: b, run: "[ -e fixed ]"}
  - {id: c, run: 'echo "c $REGION $TOKEN" >> ledger; echo "c $TOKEN"'}
"""


@pytest.mark.parametrize("how", ["retry", "retry-failed", "plan"])
def test_a_redrive_reads_the_env_files_it_is_given(tmp_path: Path, how: str) -> None:
    """`wfx retry --env-file`, `wfx run --retry-failed --env-file` and `wfx plan --retry
    --env-file` read the files as `wfx run` does (the secret among them masked)."""
    (tmp_path / "wf.yaml").write_text(ENV_FLOW)
    (tmp_path / "s.env").write_text("REGION=eu-west-1\nTOKEN=tok-secret-77\n")
    assert wfx("run", "-q", "wf.yaml", "--env-file", "s.env", cwd=tmp_path).returncode == 1
    run_id = str(_runs(tmp_path)[0]["id"])
    (tmp_path / "fixed").touch()
    if how == "plan":
        shown = wfx("plan", "wf.yaml", "--retry", run_id, "-v", "--env-file", "s.env", cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert 'env REGION = "eu-west-1"' in shown.stdout
        assert "tok-secret-77" not in shown.stdout + shown.stderr
        return
    args = ["retry", run_id] if how == "retry" else ["run", "wf.yaml", "--retry-failed"]
    result = wfx(*args, "--env-file", "s.env", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert _ledger(tmp_path) == ["a", "c eu-west-1 tok-secret-77"]
    assert "[c] c ***" in result.stdout
    assert "tok-secret-77" not in result.stdout + result.stderr
    assert "is not set" not in result.stderr


def test_a_compensated_step_is_redone_by_the_redrive(tmp_path: Path) -> None:
    """Same rule as resume: a step whose effects a compensation undid runs again."""
    flow = """wfx: 1
steps:
  - {id: a, run: "echo a >> ledger", rollback: {run: "echo undo-a >> ledger"}}
  - {id: b, run: "echo b >> ledger"}
  - {id: c, run: "echo c >> ledger; [ -e fixed ]"}
"""
    flow = (
        flow.replace("steps:", "type: parallel\nsteps:")
        .replace("{id: b,", "{id: b, needs: [a],")
        .replace("{id: c,", "{id: c, needs: [b],")
    )
    (tmp_path / "wf.yaml").write_text(flow)
    assert wfx("run", "-q", "wf.yaml", cwd=tmp_path).returncode == 1
    assert _ledger(tmp_path) == ["a", "b", "c", "undo-a"]
    first = str(_runs(tmp_path)[0]["id"])
    planned = wfx("plan", "wf.yaml", "--retry", first, "--format", "json", cwd=tmp_path)
    steps = json.loads(planned.stdout)["selection"]["steps"]
    assert steps["a"]["disposition"] == "run"
    assert steps["a"]["reason"] == f"compensated in run {first}: its effects were undone"
    # b needs a, which runs again: b runs again too
    assert steps["b"] == {
        "disposition": "run",
        "reason": "needs a step that runs again",
        "from": None,
    }
    (tmp_path / "fixed").touch()
    assert wfx("retry", first, "-q", cwd=tmp_path).returncode == 0
    assert _ledger(tmp_path)[4:] == ["a", "b", "c"]


def test_plan_retry_in_every_format(tmp_path: Path) -> None:
    first = _failed_run(tmp_path)
    text = wfx("plan", "wf.yaml", "--retry", first, cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    assert f"Redrive of run {first}: 2 runs, 2 kept" in text.stdout
    assert f"✓ build   kept from run {first}" in text.stdout
    assert f"▶ test    runs: failed in run {first}" in text.stdout
    assert f"▶ deploy  runs: skipped in run {first}" in text.stdout
    assert "finally (always runs): cleanup" in text.stdout
    markdown = wfx("plan", "wf.yaml", "--retry", first, "--format", "markdown", cwd=tmp_path)
    assert "| `build` | kept | from run " in markdown.stdout
    shown = wfx("plan", "wf.yaml", "--retry", first, "--format", "json", cwd=tmp_path)
    data = json.loads(shown.stdout)
    schema = json.loads((ROOT / "schema" / "plan.schema.json").read_text())
    jsonschema.validate(data, schema)
    assert data["selection"]["redrives"] == first
    dispositions = {k: v["disposition"] for k, v in data["selection"]["steps"].items()}
    assert dispositions == {"build": "keep", "lint": "keep", "test": "run", "deploy": "run"}
    assert _ledger(tmp_path) == ["build", "lint", "test", "cleanup"]  # planning ran nothing
    mermaid = wfx("plan", "wf.yaml", "--retry", first, "--format", "mermaid", cwd=tmp_path)
    assert mermaid.returncode == 2


def test_plan_retry_needs_no_file_it_plans_the_runs_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`wfx plan --retry RUN_ID`, as `wfx retry RUN_ID`, knows the run's file; without
    --retry, FILE is still required (exit 2, saying so)."""
    first = _failed_run(tmp_path)
    with_file = wfx("plan", "wf.yaml", "--retry", first, "--format", "json", cwd=tmp_path)
    without = wfx("plan", "--retry", first, "--format", "json", cwd=tmp_path)
    assert without.returncode == 0, without.stderr
    assert json.loads(without.stdout)["selection"] == json.loads(with_file.stdout)["selection"]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    state = ("--state-dir", str(tmp_path / ".wfx"))
    monkeypatch.chdir(elsewhere)
    moved = wfx("plan", "--retry", first, *state, cwd=elsewhere)
    monkeypatch.chdir(tmp_path)
    assert moved.returncode == 0, moved.stderr
    assert f"Redrive of run {first}: 2 runs, 2 kept" in moved.stdout
    neither = wfx("plan", cwd=tmp_path)
    assert neither.returncode == 2
    assert "Missing argument 'FILE'" in neither.stderr
    assert _ledger(tmp_path) == ["build", "lint", "test", "cleanup"]  # planning ran nothing


def test_only_from_and_skip(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(FLOW)
    (tmp_path / "fixed").touch()
    only = wfx("run", "-q", "wf.yaml", "--only", "lint", cwd=tmp_path)
    assert only.returncode == 0, only.stderr
    assert _ledger(tmp_path) == ["build", "lint", "cleanup"]
    skip = wfx("run", "-q", "wf.yaml", "--skip", "test", cwd=tmp_path)
    assert skip.returncode == 0
    assert _ledger(tmp_path)[3:] == ["build", "lint", "cleanup"]  # deploy needs test
    source = str(_runs(tmp_path)[0]["id"])
    planned = wfx("plan", "wf.yaml", "--from", "test", cwd=tmp_path)
    assert f"✓ build   kept from run {source}" in planned.stdout
    assert "▶ deploy  runs: selected" in planned.stdout
    start = wfx("run", "-q", "wf.yaml", "--from", "test", cwd=tmp_path)
    assert start.returncode == 0, start.stderr
    # deploy reads the kept build's output, and the file it left in its run's workspace
    assert _ledger(tmp_path)[6:] == ["test", "deploy 7 art", "cleanup"]
    with sqlite3.connect(tmp_path / ".wfx" / "state.db") as db:
        rows = db.execute(
            "SELECT step_id, status, reason FROM steps WHERE run_id = ?", (source,)
        ).fetchall()
    assert ("test", "skipped", "not selected") in rows
    assert ("deploy", "skipped", "not selected") in rows


def test_from_without_earlier_results_and_unknown_steps_are_exit_2(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(FLOW)
    missing = wfx("run", "wf.yaml", "--from", "deploy", cwd=tmp_path)
    assert missing.returncode == 2
    assert "no earlier result of `build`, `lint`, `test`" in missing.stderr
    unknown = wfx("run", "wf.yaml", "--only", "test,deplyo", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "no step `deplyo`" in unknown.stderr and "did you mean `deploy`?" in unknown.stderr
    both = wfx("run", "wf.yaml", "--resume", "--only", "test", cwd=tmp_path)
    assert both.returncode == 2
    assert _ledger(tmp_path) == [] and _runs(tmp_path) == []


def test_from_with_no_journal_says_no_journal_was_read(tmp_path: Path) -> None:
    """The journal holds every earlier result, but --no-journal reads none: the error must
    not claim that no run succeeded at them."""
    (tmp_path / "fixed").touch()
    (tmp_path / "wf.yaml").write_text(FLOW)
    assert wfx("run", "-q", "wf.yaml", cwd=tmp_path).returncode == 0
    refused = wfx("run", "wf.yaml", "--from", "deploy", "--no-journal", cwd=tmp_path)
    assert refused.returncode == 2
    assert "no earlier result of `build`, `lint`, `test`" in refused.stderr
    assert "--no-journal reads no journal" in refused.stderr
    assert "no run in the journal succeeded" not in refused.stderr
    assert len(_runs(tmp_path)) == 1


@pytest.mark.parametrize("command", ["run", "plan"])
@pytest.mark.parametrize(
    "option", [("--only", ""), ("--from", " "), ("--skip", ","), ("--only", "test,")]
)
def test_an_empty_step_list_is_exit_2_not_the_whole_workflow(
    tmp_path: Path, command: str, option: tuple[str, str]
) -> None:
    """`--only "$STEPS"` with STEPS empty must not run (or plan) every step."""
    (tmp_path / "fixed").touch()
    (tmp_path / "wf.yaml").write_text(FLOW)
    name, value = option
    result = wfx(command, "wf.yaml", name, value, cwd=tmp_path)
    if value == "test,":  # a trailing comma names `test` all the same
        assert result.returncode == 0, result.stderr
        return
    assert result.returncode == 2
    assert f"Invalid value for '{name}'" in result.stderr
    assert "names no step" in result.stderr
    assert _ledger(tmp_path) == []


def test_a_journal_of_schema_3_is_migrated(tmp_path: Path) -> None:
    """Runs recorded before redrives existed read as runs that redrive nothing and keep
    nothing, and a retry of one works."""
    from wfx.runtime import journal as journal_module

    (tmp_path / "wf.yaml").write_text(FLOW)
    with sqlite3.connect(tmp_path / "old.db") as db:
        for version in (1, 2, 3):
            for statement in journal_module._MIGRATIONS[version]:
                db.execute(statement)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', '3')")
    db.close()
    state = tmp_path / ".wfx"
    state.mkdir()
    (tmp_path / "old.db").rename(state / "state.db")
    first = _failed_run(tmp_path)
    shown = json.loads(wfx("show", first, "--json", cwd=tmp_path).stdout)
    assert shown["redrives"] is None
    assert {s["keptFrom"] for s in shown["steps"]} == {None}


def test_a_redrive_whose_workspace_is_gone_says_so(tmp_path: Path) -> None:
    first = _failed_run(tmp_path)
    workspace = Path(
        str(json.loads(wfx("show", first, "--json", cwd=tmp_path).stdout)["workspace"])
    )
    (workspace / "art").unlink()
    workspace.rmdir()
    (tmp_path / "fixed").touch()
    retried = wfx("retry", first, "-q", cwd=tmp_path)
    assert f"the workspace of run `{first}`, {workspace}, is gone" in retried.stderr
    assert _ledger(tmp_path)[-2] == "deploy 7"  # build's file is missing; its output is kept


def test_the_guarded_deploy_example_is_redriven_after_an_outage(tmp_path: Path) -> None:
    """examples/guarded-deploy.yaml as its description says: the upload fails while the
    registry is down; `wfx retry` keeps the build and redoes the upload and the rollout."""
    example = str(ROOT / "examples" / "guarded-deploy.yaml")
    workspace = tmp_path / "ws"
    workspace.mkdir()
    (workspace / "registry.down").touch()
    failed = wfx("run", example, "--workspace", str(workspace), cwd=tmp_path)
    assert failed.returncode == 1
    assert "upload    ✗ failed" in failed.stdout
    run_id = str(_runs(tmp_path)[0]["id"])
    (workspace / "registry.down").unlink()
    planned = wfx("plan", example, "--retry", run_id, cwd=tmp_path)
    assert f"✓ build    kept from run {run_id}" in planned.stdout
    assert f"▶ upload   runs: failed in run {run_id}" in planned.stdout
    redriven = wfx("retry", run_id, "--format", "json", cwd=tmp_path)
    assert redriven.returncode == 0, redriven.stderr
    assert json.loads(redriven.stdout)["outputs"] == {
        "image": "registry.example.com/shop:3.1.0",
        "url": "https://staging.shop.example.com",
    }
    assert "with token ***" in redriven.stderr and "stand-in-token" not in redriven.stderr
    assert (workspace / "builds.log").read_text() == "built\n"  # kept, not built again
    assert (workspace / "rollouts.log").read_text().count("staging runs") == 1
