"""How the `wfx` process ends: without Python's teardown (wfx.cli.entry), yet with every
byte of output delivered, the atexit handlers run, the journal closed and the exit status
`sys.exit` would have given."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from cli_process import wfx

LOUD = """\
wfx: 1
steps:
  - id: loud
    run: |
      i=0
      while [ $i -lt 4000 ]; do echo "line $i of some output that fills the pipe"; i=$((i+1)); done
"""


def _as_users_run_it(*command: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`COMMAND` (a shell command line when it is one string) with Python's output
    buffered and its bytecode caches written, as most users run wfx; `env` added."""
    dropped = ("PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", "WFX_STATE_DIR")
    inherited = {k: v for k, v in os.environ.items() if k not in dropped}
    return subprocess.run(
        command[0] if len(command) == 1 else list(command),
        shell=len(command) == 1,
        cwd=cwd,
        env={**inherited, "NO_COLOR": "1", **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def _buffered_wfx(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """`python -m wfx ARGS`, as users run it."""
    return _as_users_run_it(sys.executable, "-m", "wfx", *args, cwd=cwd)


def test_all_output_reaches_a_pipe(tmp_path: Path) -> None:
    """Buffered output is flushed before the process ends (os._exit would drop it)."""
    (tmp_path / "wf.yaml").write_text(LOUD)
    done = _buffered_wfx("run", "wf.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("of some output that fills the pipe") == 4000
    assert "line 3999 of some output" in done.stdout
    assert done.stdout.rstrip().splitlines()[-1].strip()  # the summary, last, is there


def test_exit_statuses_are_the_ones_sys_exit_gives(tmp_path: Path) -> None:
    (tmp_path / "ok.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    (tmp_path / "bad.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'exit 3'\n")
    (tmp_path / "invalid.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    runn: x\n")
    assert wfx("run", "ok.yaml", cwd=tmp_path).returncode == 0
    assert wfx("run", "bad.yaml", cwd=tmp_path).returncode == 1
    invalid = _buffered_wfx("validate", "invalid.yaml", cwd=tmp_path)
    assert invalid.returncode == 2
    assert "invalid.yaml:4:5" in invalid.stdout + invalid.stderr
    assert wfx("--version", cwd=tmp_path).returncode == 0
    assert wfx("no-such-command", cwd=tmp_path).returncode == 2


def test_the_journal_is_closed_before_the_process_ends(tmp_path: Path) -> None:
    """A closed SQLite connection checkpoints its write-ahead log and removes it: a
    journal left open at exit would leave `state.db-wal` behind."""
    (tmp_path / "ok.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    assert wfx("run", "ok.yaml", cwd=tmp_path).returncode == 0
    state = tmp_path / ".wfx"
    assert (state / "state.db").exists()
    assert not (state / "state.db-wal").exists()
    with sqlite3.connect(state / "state.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("success",)]


def test_atexit_handlers_still_run(tmp_path: Path) -> None:
    """The class cache is written by an atexit handler: it is there after one run."""
    (tmp_path / "ok.yaml").write_text("wfx: 1\nsteps:\n  - id: a\n    run: 'true'\n")
    done = _as_users_run_it(
        sys.executable,
        "-m",
        "wfx",
        "run",
        "ok.yaml",
        cwd=tmp_path,
        XDG_CACHE_HOME=str(tmp_path / "xdg"),
    )
    assert done.returncode == 0, done.stderr
    assert list((tmp_path / "xdg" / "wfx").glob("classes-*.bin"))


def test_a_reader_that_goes_away_gets_no_traceback(tmp_path: Path) -> None:
    """`wfx plan … | head -1`: the pipe closes early; nothing but the plan's first line."""
    steps = "".join(f"  - id: s{i}\n    run: echo {i}\n" for i in range(300))
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n" + steps)
    done = _as_users_run_it(f"{sys.executable} -m wfx plan wf.yaml | head -1", cwd=tmp_path)
    assert done.stdout.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert "Exception ignored" not in done.stderr


def test_the_lookups_watch_is_left_to_the_teardown(tmp_path: Path) -> None:
    """A chain long enough to arm the PATH lookups' inotify watch: the process says its
    last word (a warm server's copy tells `wfx` then) with that descriptor still open.
    Closing it first would wait for the kernel to free its watches, 1-19 ms."""
    chain = "".join(
        f"  - id: s{i}\n    run: 'true'\n" + (f"    needs: [s{i - 1}]\n" if i else "")
        for i in range(48)
    )
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n" + chain)
    script = f"""
import os, sys
import inotify_simple  # loaded, as in a warm server: the watch arms after 32 lookups
from wfx import cli

def link(fd):
    try:
        return os.readlink(f"/proc/self/fd/{{fd}}")
    except OSError:  # the descriptor listdir itself had open
        return ""

def last_word(code, final):
    links = [link(fd) for fd in os.listdir("/proc/self/fd")]
    with open({str(tmp_path / "said")!r}, "w") as said:
        said.write(f"{{code}} {{final}} {{sum('inotify' in link for link in links)}}")

sys.argv = ["wfx", "run", "-q", "--no-journal", {str(tmp_path / "wf.yaml")!r}]
cli.entry(last_word)
"""
    done = _as_users_run_it(sys.executable, "-c", script, cwd=tmp_path, WFX_SERVER="0")
    assert done.returncode == 0, done.stderr
    code, final, watches = (tmp_path / "said").read_text().split()
    assert (code, final) == ("0", "True")
    assert int(watches) == 1
