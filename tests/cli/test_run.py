"""`wfx run` as a user runs it: exit codes, output, events file, summary, signals (T7)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_process import wfx

ROOT = Path(__file__).resolve().parents[2]


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("steps", "code"),
    [
        ("  - run: 'true'\n", 0),
        ("  - run: exit 4\n", 1),
        ("  - {run: exit 4, onError: continue}\n  - run: 'true'\n", 3),
        ("  - run: 'true'\n    bogus: 1\n", 2),
    ],
)
def test_exit_codes(tmp_path: Path, steps: str, code: int) -> None:
    result = wfx("run", str(write(tmp_path, "wfx: 1\nsteps:\n" + steps)))
    assert result.returncode == code, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "step",
    [
        '{id: a, run: "true", workingDirectory: "x\\0y"}',  # the direct start (crashed)
        '{id: a, run: "true; true", workingDirectory: "x\\0y"}',  # through bash
        "{id: a, cmd: [\"true\"], workingDirectory: \"${{ format('x{0}y', '\\0') }}\"}",
    ],
)
def test_a_nul_in_the_working_directory_fails_the_step_saying_why(
    tmp_path: Path, step: str
) -> None:
    result = wfx("run", "--no-journal", str(write(tmp_path, f"wfx: 1\nsteps:\n  - {step}\n")))
    assert result.returncode == 1, result.stdout + result.stderr
    assert "internal error" not in result.stderr and "Traceback" not in result.stderr
    assert "the working directory contains a NUL character" in result.stdout + result.stderr


def test_plain_output_is_prefixed_and_ends_with_a_summary(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - id: hello\n    run: echo hi there\n")
    result = wfx("run", str(path))
    assert result.returncode == 0
    assert "[hello] hi there" in result.stdout
    assert "hello" in result.stdout.splitlines()[-3] or "success" in result.stdout


def test_invalid_inputs_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(
        tmp_path,
        f"wfx: 1\ninputs:\n  n: {{type: number}}\nsteps:\n  - run: touch {marker}\n",
    )
    result = wfx("run", str(path), "-i", "n=many")
    assert result.returncode == 2
    assert not marker.exists()
    assert "input `n`: expected a number" in result.stderr


def test_events_file_holds_cloudevents(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - id: a\n    run: echo x\n")
    events = tmp_path / "events.jsonl"
    result = wfx("run", str(path), "--events", str(events))
    assert result.returncode == 0
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[0]["type"] == "dev.wfx.run.started"
    assert records[-1]["type"] == "dev.wfx.run.finished"
    assert all(r["specversion"] == "1.0" for r in records)


def test_summary_markdown_is_appended(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - id: a\n    run: echo x\n")
    summary = tmp_path / "summary.md"
    summary.write_text("earlier\n")
    assert wfx("run", str(path), "--summary-md", str(summary)).returncode == 0
    text = summary.read_text()
    assert text.startswith("earlier\n")
    assert "| `a` |" in text or "| a |" in text


TRAP = """wfx: 1
steps:
  - id: trapper
    run: |
      trap 'echo TERM >> {log}; sleep 2; echo cleanup_done >> {log}; exit 143' TERM
      trap 'echo INT >> {log}' INT
      echo $$ > {log}.pid
      echo started >> {log}
      sleep 60 &
      wait
    killGrace: 10s
  - id: later
    run: echo later >> {log}
finally:
  - id: final
    run: echo finally >> {log}
"""


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of process group `pgid`, from /proc."""
    members = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{name}/stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        if fields[0] not in (b"Z", b"X") and int(fields[2]) == pgid:
            members.append(int(name))
    return members


def start_run(tmp_path: Path, text: str) -> tuple[subprocess.Popen[str], Path]:
    log = tmp_path / "log"
    path = write(tmp_path, text.format(log=log))
    process = subprocess.Popen(
        [sys.executable, "-m", "wfx", "run", str(path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        start_new_session=True,
    )
    deadline = time.monotonic() + 20
    while not (log.exists() and "started" in log.read_text()):
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    return process, log


def test_sigint_forwards_term_once_waits_for_cleanup_and_exits_130(tmp_path: Path) -> None:
    process, log = start_run(tmp_path, TRAP)
    os.killpg(process.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the whole foreground group
    out, err = process.communicate(timeout=30)
    lines = log.read_text().splitlines()
    assert process.returncode == 130, out + err
    assert lines.count("TERM") == 1
    assert "INT" not in lines  # the step's group is not the terminal's: no double signal
    assert "cleanup_done" in lines
    assert "later" not in lines
    assert lines[-1] == "finally"


def test_second_sigint_kills_at_once_and_says_so(tmp_path: Path) -> None:
    process, log = start_run(tmp_path, TRAP)
    step = int(Path(f"{log}.pid").read_text())
    os.killpg(process.pid, signal.SIGINT)
    while "TERM" not in log.read_text():  # the step's TERM trap runs its 2 s cleanup
        assert process.poll() is None, "wfx ended on the first interrupt"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130
    assert "second interrupt" in (out + err)
    # Killed, not waited for: once its process group is gone, the cleanup never finished
    # (waited for or left running, it would have written cleanup_done).
    deadline = time.monotonic() + 30
    while _group_members(step):
        assert time.monotonic() < deadline, "the step's processes were left running"
        time.sleep(0.05)
    assert "cleanup_done" not in log.read_text().splitlines()
    assert "finally" not in log.read_text()


# (arguments, extra environment, the message): every path an option names is checked
# before a run is recorded; `afile` is a file, `nodir` does not exist
BAD_PATHS = [
    (["--events", "nodir/ev.jsonl"], {}, "--events nodir/ev.jsonl: the directory nodir does"),
    (["--events", "afile/ev.jsonl"], {}, "--events afile/ev.jsonl: afile is a file, not a dir"),
    (["--summary-md", "nodir/s.md"], {}, "--summary-md nodir/s.md: the directory nodir does"),
    (["--summary-md", "afile/x/s.md"], {}, "--summary-md afile/x/s.md: afile is a file, not"),
    (["--workspace", "nodir/ws"], {}, "--workspace nodir/ws: the directory nodir does not"),
    (["--workspace", "afile/ws"], {}, "--workspace afile/ws: afile is a file, not a directory"),
    (["--workspace", "afile"], {}, "'--workspace': Directory 'afile' is a file"),
    (["--state-dir", "nodir/st"], {}, "--state-dir nodir/st: the directory nodir does not"),
    (["--state-dir", "afile/st"], {}, "--state-dir afile/st: afile is a file, not a directory"),
    (["--state-dir", "afile"], {}, "'--state-dir': Directory 'afile' is a file"),
    ([], {"WFX_STATE_DIR": "nodir/st"}, "$WFX_STATE_DIR nodir/st: the directory nodir does not"),
    ([], {"WFX_STATE_DIR": "afile"}, "$WFX_STATE_DIR afile: is a file, not a directory"),
]


@pytest.mark.parametrize(("args", "env", "message"), BAD_PATHS)
@pytest.mark.parametrize("command", ["run", "resume"])
def test_a_path_an_option_names_is_checked_before_anything_is_recorded(
    tmp_path: Path, command: str, args: list[str], env: dict[str, str], message: str
) -> None:
    """Exit 2 with which option, which path and what is wrong: never an internal error
    (70), a step run, or a run left `running (owner died)` in the journal."""
    write(tmp_path, f"wfx: 1\nsteps:\n  - run: touch {tmp_path}/ran\n")
    (tmp_path / "afile").write_text("")
    target = ["run", "wf.yaml"] if command == "run" else ["resume", "20260101T000000Z-0000"]
    result = wfx(*target, *args, cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "internal error" not in result.stderr
    assert not (tmp_path / "ran").exists()
    assert not (tmp_path / ".wfx").exists(), "a run was recorded"
    assert not (tmp_path / "nodir").exists()


def test_a_file_where_the_default_journal_directory_belongs(tmp_path: Path) -> None:
    write(tmp_path, f"wfx: 1\nsteps:\n  - run: touch {tmp_path}/ran\n")
    (tmp_path / ".wfx").write_text("not a directory")
    result = wfx("run", "wf.yaml", cwd=tmp_path)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the journal at .wfx: is a file, not a directory" in result.stderr
    assert not (tmp_path / "ran").exists()


# -- choosing the executor --------------------------------------------------------------------


def _dask_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("distributed") is not None


def _recorded_runs(state: Path) -> list[object]:
    listed = wfx("runs", "--json", "--state-dir", str(state))
    return list(json.loads(listed.stdout)) if listed.returncode == 0 else []


def test_executor_local_runs_here_by_option_and_by_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - id: a\n    run: echo ran\n")
    state = tmp_path / "state"
    by_option = wfx("run", str(path), "--executor", "local", "--state-dir", str(state))
    assert by_option.returncode == 0, by_option.stderr
    assert "[a] ran" in by_option.stdout
    by_environment = wfx("run", str(path), "--state-dir", str(state), env={"WFX_EXECUTOR": "local"})
    assert by_environment.returncode == 0, by_environment.stderr
    assert "[a] ran" in by_environment.stdout
    assert len(_recorded_runs(state)) == 2


def test_the_option_wins_over_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - run: 'true'\n")
    result = wfx(
        "run", str(path), "--executor", "local", "--no-journal", env={"WFX_EXECUTOR": "nope"}
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("how", ["option", "environment"])
def test_an_unknown_executor_is_exit_2_and_nothing_is_recorded(tmp_path: Path, how: str) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path, f"wfx: 1\nsteps:\n  - run: touch {marker}\n")
    state = tmp_path / "state"
    args = ["--executor", "nope"] if how == "option" else []
    env = {"WFX_EXECUTOR": "nope"} if how == "environment" else {}
    result = wfx("run", str(path), "--state-dir", str(state), *args, env=env)
    assert result.returncode == 2
    assert "unknown executor `nope`" in result.stderr
    assert "hint: choose `local`, `dask://HOST:PORT` or `dask:local`" in result.stderr
    assert "Traceback" not in result.stderr
    assert not marker.exists()
    assert _recorded_runs(state) == []


def test_an_unreachable_dask_scheduler_is_exit_2_and_nothing_is_recorded(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = write(tmp_path, f"wfx: 1\nsteps:\n  - run: touch {marker}\n")
    state = tmp_path / "state"
    result = wfx("run", str(path), "--state-dir", str(state), "--executor", "dask://127.0.0.1:1")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "dask://127.0.0.1:1" in result.stderr
    if not _dask_installed():
        assert "pip install 'wfx[dask]'" in result.stderr
    assert not marker.exists()
    assert _recorded_runs(state) == []


def test_a_steps_executor_wins_and_python_steps_stay_local(tmp_path: Path) -> None:
    text = (
        "wfx: 1\n"
        "defaults: {executor: 'dask://127.0.0.1:1'}\n"
        "steps:\n"
        "  - id: here\n    executor: local\n    run: echo here\n"
    )
    path = write(tmp_path, text)
    # the defaults' scheduler is never opened: the one step names `local`
    result = wfx("run", str(path), "--no-journal")
    assert result.returncode == 0, result.stderr
    assert "[here] here" in result.stdout
    # and `--executor local` replaces the defaults' executor
    path.write_text(text.replace("    executor: local\n", ""))
    replaced = wfx("run", str(path), "--no-journal", "--executor", "local")
    assert replaced.returncode == 0, replaced.stderr
    refused = wfx("run", str(path), "--no-journal")
    assert refused.returncode == 2
    assert "dask://127.0.0.1:1" in refused.stderr


def test_a_bad_executor_name_in_the_file_is_a_schema_error(tmp_path: Path) -> None:
    path = write(tmp_path, "wfx: 1\nsteps:\n  - run: 'true'\n    executor: ssh://box\n")
    result = wfx("run", str(path))
    assert result.returncode == 2
    assert ":4:15: error:" in result.stderr
    assert "must be `local`, `dask:local` or `dask://HOST:PORT`" in result.stderr
