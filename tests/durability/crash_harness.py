"""Crash-test harness: a side-effect ledger, wfx in a subprocess, kill -9 at will."""

from __future__ import annotations

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

LEDGER_MODULE = '''
"""Python steps for crash tests: append (step, kind, attempt, pid) to the ledger, durably."""
import os

def record(step, attempt, ledger):
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{step} python {attempt} {os.getpid()}\\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"step": step}
'''

#: the `wfx` command, as a user runs it (through a warm server when one runs for it)
WFX = str(Path(sys.executable).parent / "wfx")


@dataclass
class Crashable:
    """A workflow in its own directory, run by `wfx` subprocesses that tests may kill: each
    in a process of its own (`python -m wfx`, as under CI), or, given the variables of a
    warm server (the `warm_server` fixture), by the `wfx` command through that server."""

    root: Path
    server: dict[str, str] | None = None

    @property
    def workflow(self) -> Path:
        return self.root / "wf.yaml"

    @property
    def ledger(self) -> Path:
        return self.root / "ledger"

    @property
    def state(self) -> Path:
        return self.root / "state"

    def write(self, text: str) -> None:
        self.workflow.write_text(text)
        (self.root / "crash_ledger.py").write_text(LEDGER_MODULE)

    def start(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """`wfx run -q WORKFLOW ARGS` in the background."""
        return self._spawn(["run", "-q", str(self.workflow), *args], env)

    def start_resume(self, run_id: str) -> subprocess.Popen[bytes]:
        """`wfx resume RUN_ID` in the background."""
        return self._spawn(["resume", run_id, "-q"], None)

    def _spawn(self, args: list[str], env: dict[str, str] | None) -> subprocess.Popen[bytes]:
        """wfx in its own session, on this harness's journal, its output appended to wfx.log."""
        if self.server is None:
            command = [sys.executable, "-m", "wfx"]
            variables = {**os.environ, "NO_COLOR": "1", **(env or {})}
            cwd = None
        else:
            command = [WFX]
            variables = {**os.environ, "NO_COLOR": "1", **self.server, **(env or {})}
            # the copy works in `wfx`'s directory: `wait_for_quiet` then also waits for
            # the copy of a killed `wfx`, which the server kills a moment later
            cwd = self.root
        with open(self.root / "wfx.log", "ab") as log:
            return subprocess.Popen(
                [*command, *args, "--state-dir", str(self.state)],
                stdout=log,
                stderr=log,
                env=variables,
                cwd=cwd,
                start_new_session=True,
            )

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> int:
        process = self.start(*args, env=env)
        try:
            process.wait(timeout=timeout)
        finally:
            kill_group(process)
        return process.returncode

    def entries(self) -> list[str]:
        if not self.ledger.exists():
            return []
        return [line.split()[0] for line in self.ledger.read_text().splitlines() if line]

    def journal(self) -> sqlite3.Connection:
        return sqlite3.connect(self.state / "state.db")

    def journaled(self, status: str = "success") -> set[str]:
        with self.journal() as db:
            rows = db.execute("SELECT step_id FROM steps WHERE status = ?", (status,)).fetchall()
        return {r[0] for r in rows}

    def run_statuses(self) -> list[str]:
        with self.journal() as db:
            return [r[0] for r in db.execute("SELECT status FROM runs ORDER BY started")]

    def integrity(self) -> str:
        with self.journal() as db:
            return str(db.execute("PRAGMA integrity_check").fetchone()[0])


def kill_group(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL wfx and everything in its session (steps have their own groups: see below)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def kill_wfx_only(process: subprocess.Popen[bytes]) -> None:
    """SIGKILL the wfx process alone, as a crash would; its step processes live on."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGKILL)
    process.wait()


def wait_for_quiet(ledger: Path, seconds: float = 0.3) -> None:
    """Let orphaned steps of a killed wfx finish writing (they are short): wait until none
    is left (twice in a row: none found in the harness's directory or carrying it in its
    environment), for at most `seconds`."""
    deadline = time.monotonic() + seconds
    clean = 0
    while clean < 2 and time.monotonic() < deadline:
        clean = 0 if _working_in(ledger.parent) else clean + 1
        time.sleep(0.01)


def _working_in(root: Path) -> bool:
    """Whether a process other than this one works in `root` or has it in its environment
    (every step wfx starts there has: its workspace and scratch are beside the journal)."""
    mine = str(root.resolve())
    marker = mine.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            cwd = os.readlink(f"/proc/{entry}/cwd")
            with open(f"/proc/{entry}/environ", "rb") as environ:
                variables = environ.read()
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if cwd == mine or cwd.startswith(mine + "/") or marker in variables:
            return True
    return False


def wait_until(condition: Callable[[], object], seconds: float = 30.0) -> None:
    """Wait (polling every 20 ms, at most `seconds`) until `condition()` is true."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (not a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
