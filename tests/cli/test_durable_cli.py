"""Plan-bound runs, journaled statuses and exit codes, as the CLI shows them."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_process import wfx

from wfx.runtime.journal import Journal

FLOW = (
    "wfx: 1\ninputs:\n  env: {type: string, default: dev}\n"
    "steps:\n  - id: a\n    run: echo ${{ inputs.env }}\n"
)


def test_a_run_bound_to_its_plan_refuses_drift(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(FLOW)
    plan = wfx("plan", "wf.yaml", "--format", "json", cwd=tmp_path)
    (tmp_path / "plan.json").write_text(plan.stdout)
    assert wfx("run", "wf.yaml", "--plan", "plan.json", cwd=tmp_path).returncode == 0
    changed_inputs = wfx("run", "wf.yaml", "--plan", "plan.json", "-i", "env=prd", cwd=tmp_path)
    assert changed_inputs.returncode == 2
    assert "changed since plan.json was made: inputs were" in changed_inputs.stderr
    (tmp_path / "wf.yaml").write_text(FLOW.replace("echo", "echo -n"))
    changed_file = wfx("run", "wf.yaml", "--plan", "plan.json", cwd=tmp_path)
    assert changed_file.returncode == 2
    assert "the workflow file differs" in changed_file.stderr


def test_the_journal_records_exact_exit_codes_and_signals(tmp_path: Path) -> None:
    """T9 (journal part): the journal keeps the exact code or signal of each step."""
    steps = {"ok": "exit 0", "three": "exit 3", "big": "exit 300", "segv": "kill -SEGV $$"}
    text = "wfx: 1\nsteps:\n  - type: parallel\n    steps:\n" + "".join(
        f"      - {{id: {name}, run: '{command}', onError: continue}}\n"
        for name, command in steps.items()
    )
    (tmp_path / "wf.yaml").write_text(text)
    assert wfx("run", "wf.yaml", cwd=tmp_path).returncode == 3
    with sqlite3.connect(tmp_path / ".wfx" / "state.db") as db:
        rows = {
            r[0]: r[1:] for r in db.execute("SELECT step_id, status, exit_code, signal FROM steps")
        }
    assert rows["ok"] == ("success", 0, None)
    assert rows["three"] == ("failed", 3, None)
    assert rows["big"] == ("failed", 44, None)
    assert rows["segv"] == ("failed", None, signal.SIGSEGV)


def test_an_interrupted_run_is_journaled_and_resumable(tmp_path: Path) -> None:
    """T7 (journal part): Ctrl-C leaves the run `interrupted` and resumable."""
    ledger = tmp_path / "ledger"
    text = (
        f"wfx: 1\nsteps:\n  - {{id: a, run: 'echo a >> {ledger}'}}\n"
        f"  - {{id: b, run: 'echo b >> {ledger}; [ -f go ] || sleep 30'}}\n"
        f"  - {{id: c, run: 'echo c >> {ledger}'}}\n"
    )
    (tmp_path / "wf.yaml").write_text(text)
    process = subprocess.Popen(
        [sys.executable, "-m", "wfx", "run", "-q", "wf.yaml"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while not (ledger.exists() and "b" in ledger.read_text()):
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 130
    journal = Journal(tmp_path / ".wfx" / "state.db")
    [run] = journal.runs()
    assert (run.status, run.finished) == ("interrupted", None)
    journal.close()
    (tmp_path / "go").touch()
    resumed = wfx("resume", run.id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert ledger.read_text().split() == ["a", "b", "b", "c"]


@pytest.mark.parametrize("command", [["runs"], ["runs", "--json"]])
def test_history_lists_runs(tmp_path: Path, command: list[str]) -> None:
    (tmp_path / "wf.yaml").write_text(FLOW)
    assert wfx("run", "wf.yaml", cwd=tmp_path).returncode == 0
    listed = wfx(*command, cwd=tmp_path)
    assert listed.returncode == 0
    if "--json" in command:
        [run] = json.loads(listed.stdout)
        assert run["status"] == "success"
    else:
        assert "success" in listed.stdout


def test_secrets_never_reach_the_journal_file(tmp_path: Path) -> None:
    """T17 (journal part): grep the raw bytes of the database and its WAL."""
    secret = "tok-3f9a-Zq!7-never-store-me"
    text = (
        "wfx: 1\nsecrets: [API_TOKEN]\nsteps:\n"
        "  - id: leak\n"
        "    run: |\n"
        '      echo "token=$T"\n'
        '      echo "t=$T" >> "$WFX_OUTPUT"\n'
        '      echo "$T" >&2; exit 1\n'
        "    env: {T: '${{ secrets.API_TOKEN }}'}\n"
        "outputs:\n  leaked: ${{ secrets.API_TOKEN }}\n"
    )
    (tmp_path / "wf.yaml").write_text(text)
    result = subprocess.run(
        [sys.executable, "-m", "wfx", "run", "wf.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "API_TOKEN": secret, "NO_COLOR": "1"},
    )
    assert result.returncode == 1
    assert secret not in result.stdout + result.stderr
    journal_files = [f for f in (tmp_path / ".wfx").iterdir() if f.is_file()]
    assert journal_files
    for stored in journal_files:  # the database and its WAL; workspaces/ is the steps' own
        assert secret.encode() not in stored.read_bytes(), stored.name
    logs = wfx("logs", "--state-dir", ".wfx", _only_run(tmp_path), cwd=tmp_path)
    assert "token=***" in logs.stdout


def _only_run(tmp_path: Path) -> str:
    journal = Journal(tmp_path / ".wfx" / "state.db")
    try:
        [run] = journal.runs()
        return run.id
    finally:
        journal.close()


WORKSPACE_FLOW = (
    "wfx: 1\nsteps:\n"
    "  - {id: make, run: 'echo made > \"$WFX_WORKSPACE/artifact\"'}\n"
    '  - {id: use, run: \'test "$(cat "$WFX_WORKSPACE/artifact")" = made\'}\n'
)


def _crash_after_the_first_step(tmp_path: Path) -> str:
    (tmp_path / "wf.yaml").write_text(WORKSPACE_FLOW)
    crashed = subprocess.run(
        [sys.executable, "-m", "wfx", "run", "-q", "wf.yaml"],
        cwd=tmp_path,
        capture_output=True,
        check=False,
        env={**os.environ, "WFX_FAILPOINT": "journal.after-step-finished:1"},
    )
    assert crashed.returncode == 137
    return _only_run(tmp_path)


def test_a_resumed_run_goes_on_in_the_workspace_it_began_in(tmp_path: Path) -> None:
    run_id = _crash_after_the_first_step(tmp_path)
    workspace = tmp_path / ".wfx" / "workspaces" / run_id
    assert (workspace / "artifact").read_text() == "made\n"
    scratch = tmp_path / ".wfx" / "scratch" / run_id  # the killed run's $WFX_OUTPUT files
    assert scratch.is_dir()
    resumed = wfx("resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "workspace" not in resumed.stderr
    assert not scratch.exists()
    with sqlite3.connect(tmp_path / ".wfx" / "state.db") as db:
        rows = dict(db.execute("SELECT step_id, status FROM steps WHERE run_id = ?", (run_id,)))
    assert rows == {"make": "success", "use": "success"}


def test_resuming_without_the_workspace_says_so(tmp_path: Path) -> None:
    run_id = _crash_after_the_first_step(tmp_path)
    shutil.rmtree(tmp_path / ".wfx" / "workspaces" / run_id)
    resumed = wfx("resume", run_id, cwd=tmp_path)
    assert resumed.returncode == 1  # `use` cannot find what `make` left
    assert f"the workspace of run `{run_id}`" in resumed.stderr
    assert "is gone" in resumed.stderr


def test_prune_removes_the_workspaces_wfx_made_and_keeps_chosen_ones(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKSPACE_FLOW)
    chosen = tmp_path / "mine"
    assert wfx("run", "-q", "wf.yaml", cwd=tmp_path).returncode == 0
    assert wfx("run", "-q", "wf.yaml", "--workspace", str(chosen), cwd=tmp_path).returncode == 0
    assert (chosen / "artifact").exists()
    made = list((tmp_path / ".wfx" / "workspaces").iterdir())
    assert len(made) == 1 and (made[0] / "artifact").exists()
    with sqlite3.connect(tmp_path / ".wfx" / "state.db") as db:
        db.execute("UPDATE runs SET finished = 0")
    pruned = wfx("runs", "--prune", "--older-than", "1d", cwd=tmp_path)
    assert pruned.returncode == 0, pruned.stderr
    assert "removed 2 finished runs" in pruned.stdout
    assert not made[0].exists()
    assert (chosen / "artifact").exists()


def test_once_wfx_has_ended_the_journal_file_alone_holds_the_run(tmp_path: Path) -> None:
    """No write-ahead log is left behind: a copy of `.wfx/state.db` alone, made once `wfx`
    has ended, has every run and step (a backup, or a journal moved by hand, misses
    nothing)."""
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - {id: a, run: 'true'}\n")
    for _ in range(2):
        assert wfx("run", "wf.yaml", cwd=tmp_path).returncode == 0
    journal = tmp_path / ".wfx" / "state.db"
    assert not journal.with_name("state.db-wal").exists()
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(journal, alone / "state.db")
    with sqlite3.connect(alone / "state.db") as db:
        runs = db.execute("SELECT status FROM runs").fetchall()
        steps = db.execute("SELECT step_id, status FROM steps").fetchall()
    assert runs == [("success",), ("success",)]
    assert steps == [("a", "success"), ("a", "success")]
