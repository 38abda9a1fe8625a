"""`wfx runs`, `wfx show` and `wfx logs` on real journals: written by real runs of
`wfx run`, or by feeding engine events to a Journal."""

from __future__ import annotations

import json
import random
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
import pytest
from cli_process import wfx
from click.testing import CliRunner, Result

from wfx.cli_history import logs, parse_age, runs, show
from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime.journal import LOG_LIMIT, Journal

LOCAL_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
RFC3339_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")
DAY = 86400.0

SUCCEEDING = """\
wfx: 1
name: greet
inputs:
  who: {type: string, default: world}
steps:
  - id: hello
    run: |
      echo "hello ${{ inputs.who }}"
      echo "careful" >&2
      echo "greeting=hi ${{ inputs.who }}" >> "$WFX_OUTPUT"
"""

FAILING = """\
wfx: 1
name: release [bold]now[/bold]
steps:
  - id: migrate
    run: echo "schema=42" >> "$WFX_OUTPUT"
    rollback:
      run: echo "restoring schema"
  - id: deploy
    needs: [migrate]
    run: |
      echo "deploying"
      exit 3
outputs:
  schema: ${{ steps.migrate.outputs.schema }}
"""


@pytest.fixture(autouse=True)
def _plain_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No colours to strip, and no journal location leaking in from the environment."""
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    monkeypatch.delenv("WFX_STATE_DIR", raising=False)
    monkeypatch.setenv("NO_COLOR", "1")


def invoke(command: click.Command, *args: str, env: Mapping[str, str] | None = None) -> Result:
    """Run a history command in-process; it must never crash with a Python exception."""
    result = CliRunner().invoke(command, list(args), env=dict(env or {}))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert "Traceback" not in result.output
    return result


def wfx_run(
    path: Path, *args: str, cwd: Path | None = None, code: int = 0
) -> subprocess.CompletedProcess[str]:
    """`wfx run PATH ARGS` in a subprocess, as a user runs it."""
    done = wfx("run", str(path), *args, cwd=cwd)
    assert done.returncode == code, done.stdout + done.stderr
    return done


@contextmanager
def journal_at(directory: Path) -> Iterator[Journal]:
    journal = Journal(directory / "state.db")
    try:
        yield journal
    finally:
        journal.close()


def record_run(
    directory: Path,
    run_id: str,
    *,
    status: ev.RunStatus | None = ev.RunStatus.SUCCESS,
    ended: float | None = None,
    steps: Sequence[str] = ("build",),
    outputs: Mapping[str, Any] | None = None,
    lines: Sequence[tuple[str, str, str]] = (),
    workflow: str = "demo",
) -> None:
    """A run journaled from engine events; `status` None leaves it unfinished."""
    with journal_at(directory) as journal:
        journal.create_run(
            run_id,
            workflow=workflow,
            file="/somewhere/demo.yaml",
            fingerprint="sha256:0",
            definition="{}",
            inputs={"n": 1},
        )
        now = time.time()
        for i, name in enumerate(steps):
            step = StepId(name)
            journal(ev.StepStarted(run_id, now + i, step, 1))
            for _, stream, text in (line for line in lines if line[0] == step):
                journal(ev.StepOutput(run_id, now + i, step, stream, text))
            journal(
                ev.StepSucceeded(
                    run_id,
                    now + i + 0.5,
                    step,
                    ev.StepStatus.SUCCESS,
                    attempts=1,
                    duration=0.5,
                    exit_code=0,
                    outputs=(outputs or {}) if i == 0 else {},
                )
            )
        if status is not None:
            end = ended if ended is not None else now + len(steps)
            journal(ev.RunFinished(run_id, end, status, end - now, {"result": "done"}))


def run_ids(directory: Path) -> list[str]:
    return [
        r["id"] for r in json.loads(invoke(runs, "--json", "--state-dir", str(directory)).output)
    ]


# -- real runs, shared by the tests that only read them ---------------------------------------


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One journal holding a successful run (with an input) and then a failed, compensated one."""
    root = tmp_path_factory.mktemp("real")
    state = root / "state"
    good, bad = root / "good.yaml", root / "bad.yaml"
    good.write_text(SUCCEEDING)
    bad.write_text(FAILING)
    wfx_run(good, "--state-dir", str(state), "-i", "who=ada")
    wfx_run(bad, "--state-dir", str(state), code=1)
    listed = json.loads(invoke(runs, "--json", "--state-dir", str(state)).output)
    return {"state": state, "good": good, "bad": bad, "runs": listed}


def test_runs_table_lists_real_runs_newest_first(real: dict[str, Any]) -> None:
    result = invoke(runs, "--state-dir", str(real["state"]))
    assert result.exit_code == 0
    newest, oldest = (r["id"] for r in real["runs"])
    out = result.output
    assert out.index(newest) < out.index(oldest)
    header = out.splitlines()[0].split()
    assert header == ["id", "workflow", "status", "started", "duration"]
    assert "greet" in out
    assert "release [bold]now[/bold]" in out  # names are text, never rich markup
    assert "✓ success" in out
    assert "✗ failed" in out
    assert len(LOCAL_TIME.findall(out)) == 2


def test_runs_json_describes_each_run(real: dict[str, Any]) -> None:
    failed, succeeded = real["runs"]
    assert set(succeeded) == {
        "id",
        "workflow",
        "file",
        "status",
        "reason",
        "started",
        "finished",
        "durationSeconds",
        "inputs",
        "workspace",
        "redrives",
    }
    assert succeeded["redrives"] is None
    assert succeeded["workflow"] == "greet"
    assert Path(succeeded["workspace"]).parent.name == "workspaces"
    assert Path(succeeded["workspace"]).name == succeeded["id"]
    assert succeeded["file"] == str(real["good"].resolve())
    assert succeeded["status"] == "success"
    assert succeeded["reason"] is None
    assert succeeded["inputs"] == {"who": "ada"}
    assert RFC3339_UTC.fullmatch(succeeded["started"])
    assert RFC3339_UTC.fullmatch(succeeded["finished"])
    assert succeeded["started"] <= succeeded["finished"]
    assert 0 <= succeeded["durationSeconds"] < 60
    assert failed["status"] == "failed"
    assert "deploy" in failed["reason"]
    assert failed["started"] >= succeeded["started"]


def test_runs_file_keeps_only_that_workflows_runs(real: dict[str, Any]) -> None:
    result = invoke(runs, "--json", "--file", str(real["good"]), "--state-dir", str(real["state"]))
    assert [r["workflow"] for r in json.loads(result.output)] == ["greet"]
    other = real["good"].parent / "never-ran.yaml"
    result = invoke(runs, "--file", str(other), "--state-dir", str(real["state"]))
    assert result.exit_code == 0
    assert "no runs yet" in result.output


def test_show_a_real_run(real: dict[str, Any]) -> None:
    failed = real["runs"][0]
    result = invoke(show, failed["id"][:-2], "--state-dir", str(real["state"]))
    assert result.exit_code == 0, result.output
    out = result.output
    for expected in (
        failed["id"],
        "release [bold]now[/bold]",
        str(real["bad"].resolve()),
        "✗ failed",
        failed["reason"],
        "sha256:",
        '{"schema": "42"}',  # the step's outputs, as JSON on one line
        "rollbacks",
        "↩ rolledBack",
        "workflow outputs",
        '"42"',
    ):
        assert expected in out, expected
    step_rows = [
        line.split() for line in out.splitlines() if line.startswith(("migrate", "deploy"))
    ]
    assert step_rows[0][0] == "migrate"
    assert step_rows[1][:4] == ["deploy", "✗", "failed", "1"]
    assert "3" in step_rows[1]  # the exit code


def test_show_json_of_a_real_run(real: dict[str, Any]) -> None:
    failed = real["runs"][0]
    record = json.loads(
        invoke(show, failed["id"], "--json", "--state-dir", str(real["state"])).output
    )
    assert record["id"] == failed["id"]
    assert record["fingerprint"].startswith("sha256:")
    assert [s["id"] for s in record["steps"]] == ["migrate", "deploy"]
    migrate, deploy = record["steps"]
    assert migrate["outputs"] == {"schema": "42"}
    assert migrate["status"] == "rolledBack"
    assert deploy["status"] == "failed"
    assert deploy["exitCode"] == 3
    assert deploy["attempts"] == 1
    assert record["rollbacks"] == [{"step": "migrate", "status": "rolledBack"}]
    assert record["outputs"] == {"schema": "42"}


def test_logs_of_a_real_run(real: dict[str, Any]) -> None:
    succeeded = real["runs"][1]
    state = str(real["state"])
    result = invoke(logs, succeeded["id"], "--state-dir", state)
    assert result.exit_code == 0
    # the two streams are two pipes: which line was read first is the reader's race
    lines = result.output.splitlines()
    assert sorted(lines) == ["[hello:stderr] careful", "[hello] hello ada"]
    result = invoke(logs, succeeded["id"], "hello", "--state-dir", state)
    assert sorted(result.output.splitlines()) == sorted(line.split("] ", 1)[1] for line in lines)
    assert sorted(result.output.splitlines()) == ["careful", "hello ada"]
    failed = real["runs"][0]
    lines = invoke(logs, failed["id"], "--state-dir", state).output.splitlines()
    # in time order: deploy failed, then migrate's rollback ran
    assert lines.index("[deploy] deploying") < lines.index("[migrate] restoring schema")


def test_every_command_finds_a_run_of_a_file_in_another_directory(tmp_path: Path) -> None:
    """One rule for every command: the journal is `.wfx/` in the current directory (never
    beside the file), so `runs`, `show`, `logs` and `--resume` started where `wfx run
    sub/x.yaml` was find its run, and `wfx run` from elsewhere does not share it."""
    sub = tmp_path / "sub"
    sub.mkdir()
    (sub / "x.yaml").write_text(INTERRUPTIBLE)
    # killed once step `one`'s end (and its output) is durable: with step two's start record
    crash_point = {"WFX_FAILPOINT": "journal.after-step-finished:1"}
    first = wfx("run", "sub/x.yaml", cwd=tmp_path, env=crash_point)
    assert first.returncode == 137
    assert (tmp_path / ".wfx" / "state.db").exists()
    assert not (sub / ".wfx").exists()
    listed = json.loads(wfx("runs", "--json", cwd=tmp_path).stdout)
    assert [r["file"] for r in listed] == [str(sub / "x.yaml")]
    run_id = listed[0]["id"]
    filtered = wfx("runs", "--json", "--file", "sub/x.yaml", cwd=tmp_path)
    assert [r["id"] for r in json.loads(filtered.stdout)] == [run_id]
    assert run_id in wfx("show", run_id, cwd=tmp_path).stdout
    assert wfx("logs", run_id, "one", cwd=tmp_path).stdout == "one\n"
    resumed = wfx("run", "sub/x.yaml", "--resume", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert f"run {run_id} success" in resumed.stdout
    elsewhere = wfx("runs", "--json", cwd=sub)
    assert json.loads(elsewhere.stdout) == []


INTERRUPTIBLE = """\
wfx: 1
steps:
  - {id: one, run: echo one}
  - {id: two, run: echo two}
"""


def test_state_dir_from_the_environment(tmp_path: Path) -> None:
    record_run(tmp_path / "env-state", "r-1")
    result = invoke(runs, "--json", env={"WFX_STATE_DIR": str(tmp_path / "env-state")})
    assert [r["id"] for r in json.loads(result.output)] == ["r-1"]


# -- journals written from engine events ------------------------------------------------------


def test_unfinished_runs_say_running_or_that_their_owner_died(tmp_path: Path) -> None:
    record_run(tmp_path, "alive-1", status=None)
    record_run(tmp_path, "dead-1", status=None)
    with journal_at(tmp_path) as journal:
        journal.db.execute("UPDATE runs SET owner_pid = 999999999 WHERE id = 'dead-1'")
    table = invoke(runs, "--state-dir", str(tmp_path)).output
    alive_row = next(line for line in table.splitlines() if line.startswith("alive-1"))
    dead_row = next(line for line in table.splitlines() if line.startswith("dead-1"))
    assert alive_row.rstrip().endswith("running")
    assert "(owner died)" not in alive_row
    assert "(owner died)" in dead_row
    assert dead_row.rstrip().endswith("-")
    shown = invoke(show, "dead-1", "--state-dir", str(tmp_path)).output
    assert "wfx resume dead-1" in shown
    record = json.loads(invoke(show, "alive-1", "--json", "--state-dir", str(tmp_path)).output)
    assert record["finished"] is None
    assert record["durationSeconds"] is None
    assert record["outputs"] is None


def test_show_truncates_long_outputs_in_the_table_not_in_json(tmp_path: Path) -> None:
    blob = "x" * 1000
    record_run(tmp_path, "long-1", outputs={"markup": "[red]no[/red]", "blob": blob})
    out = invoke(show, "long-1", "--state-dir", str(tmp_path)).output
    assert '{"markup": "[red]no[/red]", "blob": ' in out  # text, never rich markup
    assert "…" in out
    assert blob not in out
    assert 150 < out.count("x") < 200
    record = json.loads(invoke(show, "long-1", "--json", "--state-dir", str(tmp_path)).output)
    assert record["steps"][0]["outputs"] == {"markup": "[red]no[/red]", "blob": blob}


def test_show_unknown_and_ambiguous_ids(tmp_path: Path) -> None:
    record_run(tmp_path, "abc-1")
    record_run(tmp_path, "abc-2")
    record_run(tmp_path, "abd-1")
    state = str(tmp_path)
    unknown = invoke(show, "zzz", "--state-dir", state)
    assert unknown.exit_code == 2
    assert "no run `zzz`" in unknown.output
    ambiguous = invoke(show, "abc", "--state-dir", state)
    assert ambiguous.exit_code == 2
    assert "ambiguous" in ambiguous.output
    assert "abc-1" in ambiguous.output
    assert "abc-2" in ambiguous.output
    unique = invoke(show, "abd", "--json", "--state-dir", state)
    assert unique.exit_code == 0
    assert json.loads(unique.output)["id"] == "abd-1"
    for command in (logs,):
        assert invoke(command, "abc", "--state-dir", state).exit_code == 2
        assert invoke(command, "zzz", "--state-dir", state).exit_code == 2


def test_logs_with_and_without_a_step(tmp_path: Path) -> None:
    lines = [
        ("build", "stdout", "compiling [not markup]"),
        ("build", "stderr", "warning: deprecated"),
        ("build", "stdout", "done"),
        ("test", "stdout", "42 passed"),
    ]
    record_run(tmp_path, "log-1", steps=("build", "test"), lines=lines)
    state = str(tmp_path)
    everything = invoke(logs, "log-1", "--state-dir", state)
    assert everything.exit_code == 0
    assert everything.output.splitlines() == [
        "[build] compiling [not markup]",
        "[build:stderr] warning: deprecated",
        "[build] done",
        "[test] 42 passed",
    ]
    raw = invoke(logs, "log-1", "build", "--state-dir", state)
    assert raw.output.splitlines() == ["compiling [not markup]", "warning: deprecated", "done"]
    unknown = invoke(logs, "log-1", "biuld", "--state-dir", state)
    assert unknown.exit_code == 2
    assert "no step `biuld`" in unknown.output
    assert "did you mean `build`?" in unknown.output


def test_logs_of_a_fan_out_show_every_instance_prefixed(tmp_path: Path) -> None:
    lines = [
        ("fetch[0]", "stdout", "got a"),
        ("other", "stdout", "unrelated"),
        ("fetch[1]", "stdout", "got b"),
    ]
    record_run(tmp_path, "fan-1", steps=("fetch[0]", "other", "fetch[1]"), lines=lines)
    state = str(tmp_path)
    every = invoke(logs, "fan-1", "fetch", "--state-dir", state)
    assert every.exit_code == 0
    assert every.output.splitlines() == ["[fetch[0]] got a", "[fetch[1]] got b"]
    one = invoke(logs, "fan-1", "fetch[1]", "--state-dir", state)
    assert one.output.splitlines() == ["got b"]


def test_logs_say_when_a_step_reached_the_journal_cap(tmp_path: Path) -> None:
    chunk = "y" * (64 * 1024)
    flood = [("big", "stdout", chunk)] * (LOG_LIMIT // len(chunk) + 3)
    record_run(tmp_path, "cap-1", steps=("big", "small"), lines=[*flood, ("small", "stdout", "ok")])
    state = str(tmp_path)
    with journal_at(tmp_path) as journal:
        assert sum(len(t) for _, _, t in journal.logs("cap-1", "big")) == LOG_LIMIT
    everything = invoke(logs, "cap-1", "--state-dir", state).output.splitlines()
    assert everything.count("[big] (log truncated at 1 MiB)") == 1
    assert everything[-1] == "[small] ok"
    assert not any("small" in line and "truncated" in line for line in everything)
    raw = CliRunner().invoke(logs, ["cap-1", "big", "--state-dir", state])
    assert raw.exit_code == 0
    assert raw.stderr.strip() == "(log truncated at 1 MiB)"
    assert "truncated" not in raw.stdout
    assert len(raw.stdout.replace("\n", "")) == LOG_LIMIT


def test_prune_deletes_finished_runs_older_than_the_age(tmp_path: Path) -> None:
    now = time.time()
    record_run(tmp_path, "old-1", ended=now - 40 * DAY)
    record_run(tmp_path, "old-2", status=ev.RunStatus.FAILED, ended=now - 31 * DAY)
    record_run(tmp_path, "recent-1", ended=now - 2 * DAY)
    record_run(tmp_path, "unfinished-1", status=None)
    state = str(tmp_path)
    result = invoke(runs, "--prune", "--older-than", "30d", "--state-dir", state)
    assert result.exit_code == 0
    assert "removed 2 finished runs" in result.output
    assert sorted(run_ids(tmp_path)) == ["recent-1", "unfinished-1"]
    again = invoke(runs, "--prune", "--older-than", "24h", "--json", "--state-dir", state)
    assert json.loads(again.output) == {"removed": 1}
    assert run_ids(tmp_path) == ["unfinished-1"]


@pytest.mark.parametrize(
    "args",
    [
        ["--prune", "--older-than", "30x"],
        ["--prune", "--older-than", "thirty days"],
        ["--prune", "--older-than", ""],
        ["--prune", "--older-than", "-5d"],
        ["--prune"],
        ["--older-than", "30d"],
        ["--prune", "--older-than", "30d", "--file", "wf.yaml"],
    ],
)
def test_prune_usage_errors(tmp_path: Path, args: list[str]) -> None:
    record_run(tmp_path, "old-1", ended=time.time() - 400 * DAY)
    result = invoke(runs, *args, "--state-dir", str(tmp_path))
    assert result.exit_code == 2, result.output
    assert run_ids(tmp_path) == ["old-1"]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30d", 30 * DAY), ("12h", 43200), ("90m", 5400), ("3600s", 3600), ("1w", 7 * DAY)],
)
def test_ages(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds
    assert parse_age("1d12h") == 1.5 * DAY


# -- no journal, a damaged journal ------------------------------------------------------------


def test_a_missing_journal_means_no_runs_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    state = tmp_path / "nothing-here"
    for args in ([], ["--state-dir", str(state)]):
        result = invoke(runs, *args)
        assert result.exit_code == 0
        assert "no runs yet" in result.output
    assert invoke(runs, "--json", "--state-dir", str(state)).output.strip() == "[]"
    pruned = invoke(runs, "--prune", "--older-than", "1d", "--state-dir", str(state))
    assert pruned.exit_code == 0
    assert "removed 0" in pruned.output
    for command in (show, logs):
        result = invoke(command, "some-run", "--state-dir", str(state))
        assert result.exit_code == 2
        assert "no runs yet" in result.output
    assert not state.exists()  # reading history never creates a journal
    assert not (tmp_path / ".wfx").exists()


def test_an_empty_journal_has_no_runs(tmp_path: Path) -> None:
    with journal_at(tmp_path):
        pass
    result = invoke(runs, "--state-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "no runs yet" in result.output


def _random_bytes(path: Path) -> None:
    path.write_bytes(random.Random(74).randbytes(8192))


def _foreign_database(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE invoices (id INTEGER)")
    db.close()


def _newer_journal(path: Path) -> None:
    with journal_at(path.parent) as journal:
        journal.db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_random_bytes, "damaged"),
        (_foreign_database, "not a wfx journal"),
        (_newer_journal, "newer wfx"),
    ],
)
@pytest.mark.parametrize(
    "args",
    [
        (runs, []),
        (runs, ["--json"]),
        (runs, ["--prune", "--older-than", "1d"]),
        (show, ["some-run"]),
        (logs, ["some-run"]),
        (logs, ["some-run", "build"]),
    ],
)
def test_a_damaged_journal_exits_74(
    tmp_path: Path, damage: Any, message: str, args: tuple[click.Command, list[str]]
) -> None:
    database = tmp_path / "state.db"
    damage(database)
    before = database.read_bytes()
    command, rest = args
    result = invoke(command, *rest, "--state-dir", str(tmp_path))
    assert result.exit_code == 74, result.output
    assert isinstance(result.exception, SystemExit)
    assert result.stdout == ""
    assert result.stderr.startswith("wfx: error: ")
    assert message in result.stderr
    assert str(database) in result.stderr
    if damage is _random_bytes:
        assert database.read_bytes() == before  # nothing was written over it


def test_a_journal_of_schema_1_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    from wfx.runtime import journal as journal_module

    with sqlite3.connect(tmp_path / "state.db") as db:
        for statement in journal_module._MIGRATIONS[1]:
            db.execute(statement)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', '1')")
        db.execute(
            "INSERT INTO runs (id, workflow, file, fingerprint, definition, inputs, status,"
            " started, finished) VALUES ('v1-run', 'w', '/w.yaml', 'f', '{}', '{}', 'success',"
            " 1.0, 2.0)"
        )
    db.close()
    with journal_at(tmp_path) as journal:
        [run] = journal.runs()
        assert (run.id, run.status, run.workspace) == ("v1-run", "success", None)
        version = journal.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        assert version == (str(journal_module.SCHEMA_VERSION),)
    result = invoke(runs, "--state-dir", str(tmp_path))
    assert result.exit_code == 0
    assert "v1-run" in result.output


def test_a_journal_of_schema_5_keeps_its_steps_and_attempts_in_tables_without_rowid(
    tmp_path: Path,
) -> None:
    """Schema 6 rebuilds `steps` and `attempts` keyed by their primary key alone (half the
    pages written per step): every row of a schema 5 journal survives, and is read back
    as it was written."""
    from wfx.runtime import journal as journal_module

    with sqlite3.connect(tmp_path / "state.db") as db:
        for version in range(1, 6):
            for statement in journal_module._MIGRATIONS[version]:
                db.execute(statement)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', '5')")
        db.execute(
            "INSERT INTO runs (id, workflow, file, fingerprint, definition, inputs, status,"
            " started, finished) VALUES ('v5-run', 'w', '/w.yaml', 'f', '{}', '{}', 'failed',"
            " 1.0, 2.0)"
        )
        db.execute(
            "INSERT INTO steps (run_id, step_id, status, attempts, started, finished, outputs,"
            " exit_code, reason, completed, ran_on, kept_from) VALUES ('v5-run', 'build',"
            " 'success', 2, 1.0, 1.5, '{\"tag\": \"v1\"}', 0, NULL, 1, 'local', 'older-run')"
        )
        db.execute(
            "INSERT INTO steps (run_id, step_id, status, attempts, started, finished, exit_code,"
            " reason) VALUES ('v5-run', 'test', 'failed', 1, 1.5, 2.0, 3, 'exit code 3')"
        )
        db.executemany(
            "INSERT INTO attempts (run_id, step_id, attempt, ran_on) VALUES (?, ?, ?, ?)",
            [("v5-run", "build", 1, "worker-1"), ("v5-run", "build", 2, "local")],
        )
    with journal_at(tmp_path) as journal:
        steps = journal.steps("v5-run")
        assert sorted(steps) == ["build", "test"]
        build, test = steps["build"], steps["test"]
        assert (build.status, build.attempts, build.outputs) == (
            ev.StepStatus.SUCCESS,
            2,
            {"tag": "v1"},
        )
        assert (build.completed, build.kept_from) == (1, "older-run")
        assert dict(build.attempts_where) == {1: "worker-1", 2: "local"}
        assert (test.status, test.exit_code, test.reason) == (
            ev.StepStatus.FAILED,
            3,
            "exit code 3",
        )
        tables = dict(journal.db.execute("SELECT name, sql FROM sqlite_master WHERE type='table'"))
        assert "WITHOUT ROWID" in tables["steps"]
        assert "WITHOUT ROWID" in tables["attempts"]
        assert not {"steps_by_key", "attempts_by_key"} & set(tables)


# Two parallel steps that take turns: each waits until wfx has received the other's last
# line (the --events file is written and flushed as each event arrives), so the order in
# which wfx got the lines is known: a1, b1 (stderr), a2 (stderr), b2.
TAKING_TURNS = """\
wfx: 1
steps:
  - type: parallel
    steps:
      - id: a
        run: |
          echo a1
          until grep -q '"text": "b1"' "$EVENTS"; do sleep 0.01; done
          echo a2 >&2
      - id: b
        run: |
          until grep -q '"text": "a1"' "$EVENTS"; do sleep 0.01; done
          echo b1 >&2
          until grep -q '"text": "a2"' "$EVENTS"; do sleep 0.01; done
          echo b2
"""


def test_logs_of_parallel_steps_are_in_time_order(tmp_path: Path) -> None:
    """`wfx logs RUN` interleaves steps and streams as the lines were written."""
    (tmp_path / "wf.yaml").write_text(TAKING_TURNS)
    events = tmp_path / "events.jsonl"
    done = wfx("run", "wf.yaml", "--events", str(events), cwd=tmp_path, env={"EVENTS": str(events)})
    assert done.returncode == 0, done.stdout + done.stderr
    [run] = json.loads(wfx("runs", "--json", cwd=tmp_path).stdout)
    shown = wfx("logs", run["id"], cwd=tmp_path).stdout.splitlines()
    assert shown == ["[a] a1", "[b:stderr] b1", "[a:stderr] a2", "[b] b2"]
    assert wfx("logs", run["id"], "b", cwd=tmp_path).stdout.splitlines() == ["b1", "b2"]


def test_a_journal_of_schema_2_is_migrated_and_records_where_attempts_ran(tmp_path: Path) -> None:
    from wfx.runtime import journal as journal_module

    with sqlite3.connect(tmp_path / "state.db") as db:
        for version in (1, 2):
            for statement in journal_module._MIGRATIONS[version]:
                db.execute(statement)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema', '2')")
        db.execute(
            "INSERT INTO runs (id, workflow, file, fingerprint, definition, inputs, status,"
            " started, finished) VALUES ('v2-run', 'w', '/w.yaml', 'f', '{}', '{}', 'success',"
            " 1.0, 2.0)"
        )
        db.execute(
            "INSERT INTO steps (run_id, step_id, status, attempts) VALUES"
            " ('v2-run', 'old', 'success', 1)"
        )
    db.close()
    with journal_at(tmp_path) as journal:
        version = journal.db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        assert version == (str(journal_module.SCHEMA_VERSION),)
        [old] = journal.steps("v2-run").values()
        assert (old.status, old.where, old.attempts_where) == (ev.StepStatus.SUCCESS, None, {})
    record_run(tmp_path, "v3-run", steps=())
    with journal_at(tmp_path) as journal:
        step = StepId("flaky")
        journal(ev.StepStarted("v3-run", 1.0, step, 1))
        journal(ev.StepRetrying("v3-run", 2.0, step, 1, 2, 0.5, "exit code 1", "worker-a"))
        journal(ev.StepStarted("v3-run", 3.0, step, 2))
        journal(
            ev.StepSucceeded(
                "v3-run", 4.0, step, ev.StepStatus.SUCCESS, attempts=2, where="worker-b"
            )
        )
        [flaky] = journal.steps("v3-run").values()
    assert flaky.where == "worker-b"
    assert flaky.attempts_where == {1: "worker-a", 2: "worker-b"}
    shown = invoke(show, "v3-run", "--state-dir", str(tmp_path)).output
    assert "1: worker-a, 2: worker-b" in shown
    record = json.loads(invoke(show, "v3-run", "--json", "--state-dir", str(tmp_path)).output)
    [flaky_json] = record["steps"]
    assert flaky_json["where"] == "worker-b"
    assert flaky_json["attemptsWhere"] == [
        {"attempt": 1, "where": "worker-a"},
        {"attempt": 2, "where": "worker-b"},
    ]


def test_a_single_attempts_place_is_kept_once_in_the_steps_row(tmp_path: Path) -> None:
    """A step that ends after one attempt keeps its place only as its `ran_on` (no
    `attempts` row: a write less per step); retried steps keep a row per attempt that
    ran. All read back alike, and nothing is claimed for an attempt that has not ended
    or ran nowhere."""
    record_run(tmp_path, "run-1", steps=())
    with journal_at(tmp_path) as journal:
        once, twice, nowhere, running = (StepId(s) for s in ("once", "twice", "nowhere", "on"))
        journal(ev.StepStarted("run-1", 1.0, once, 1))
        journal(ev.StepSucceeded("run-1", 2.0, once, ev.StepStatus.SUCCESS, 1, where="local"))
        journal(ev.StepStarted("run-1", 3.0, twice, 1))
        journal(ev.StepRetrying("run-1", 4.0, twice, 1, 2, 0.0, "exit code 1", "worker-a"))
        journal(ev.StepStarted("run-1", 5.0, twice, 2))
        journal(ev.StepFailed("run-1", 6.0, twice, ev.StepStatus.FAILED, 2, where="worker-b"))
        journal(ev.StepStarted("run-1", 7.0, nowhere, 1))
        journal(ev.StepRetrying("run-1", 8.0, nowhere, 1, 2, 0.0, "exit code 1", "worker-a"))
        journal(ev.StepStarted("run-1", 9.0, nowhere, 2))
        journal(ev.StepFailed("run-1", 10.0, nowhere, ev.StepStatus.FAILED, 2, where=None))
        journal(ev.StepStarted("run-1", 11.0, running, 1))
        journal(ev.StepRetrying("run-1", 12.0, running, 1, 2, 0.0, "exit code 1", "worker-a"))
        journal(ev.StepStarted("run-1", 13.0, running, 2))
        journal.commit_pending()
        rows = journal.db.execute(
            "SELECT step_id, attempt, ran_on FROM attempts ORDER BY step_id, attempt"
        ).fetchall()
        steps = journal.steps("run-1")
    assert rows == [
        ("nowhere", 1, "worker-a"),
        ("on", 1, "worker-a"),
        ("twice", 1, "worker-a"),
        ("twice", 2, "worker-b"),
    ]
    assert steps[once].attempts_where == {1: "local"}
    assert steps[twice].attempts_where == {1: "worker-a", 2: "worker-b"}
    assert steps[nowhere].attempts_where == {1: "worker-a"}  # attempt 2 ran nowhere
    assert steps[running].attempts_where == {1: "worker-a"}  # attempt 2 has not ended
    assert (steps[once].where, steps[twice].where) == ("local", "worker-b")


def test_show_says_where_each_step_ran(tmp_path: Path) -> None:
    workflow = tmp_path / "where.yaml"
    workflow.write_text(
        "wfx: 1\nsteps:\n  - id: shell\n    run: echo hi\n  - id: argv\n    cmd: ['true']\n"
    )
    state = tmp_path / "state"
    wfx_run(workflow, "--state-dir", str(state))
    record = json.loads(invoke(show, "--json", "--state-dir", str(state), *run_ids(state)).output)
    assert {s["id"]: s["where"] for s in record["steps"]} == {"shell": "local", "argv": "local"}
    lines = invoke(show, "--state-dir", str(state), *run_ids(state)).output.splitlines()
    header = next(line.split() for line in lines if line.split()[:2] == ["step", "status"])
    assert "where" in header
    shell_row = next(line.split() for line in lines if line.split()[:1] == ["shell"])
    assert "local" in shell_row
