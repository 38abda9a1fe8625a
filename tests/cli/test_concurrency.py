"""`concurrency:` with real `wfx run` processes sharing a state dir: `queue` serializes and
says what it waits for, `fail` exits 75 recording nothing, `cancel` stops the holder as
Ctrl-C does (compensation and `finally` run) and takes over; a holder killed with kill -9
lets the next run in, and a queued run killed with kill -9 leaves nothing that blocks."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

WORKFLOW = """\
wfx: 1
inputs:
  environment: {{type: string, default: prd}}
  who: {{type: string}}
concurrency:
  group: deploy-${{{{ inputs.environment }}}}
  mode: {mode}
env: {{WHO: "${{{{ inputs.who }}}}"}}
steps:
  - id: deploy
    run: |
      echo $$ > {log}.$WHO.pid
      echo "$WHO start" >> {log}
      while [ ! -e {release} ]; do sleep 0.05; done
      echo "$WHO end" >> {log}
    rollback:
      run: echo "$WHO rolled back" >> {log}
  - run: echo "$WHO after" >> {log}
finally:
  - run: echo "$WHO finally" >> {log}
"""


#: what each run writes to the shared log, in order
STEP_LINES = ("start", "end", "after", "finally")


class Runs:
    """Workflows of one group in `tmp_path`, their runs sharing one state dir."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp = tmp_path
        self.log = tmp_path / "log"
        self.release = tmp_path / "release"
        self.state = tmp_path / "state"

    def file(self, mode: str) -> Path:
        path = self.tmp / f"{mode}.yaml"
        text = WORKFLOW.format(mode=mode, log=self.log, release=self.release)
        path.write_text(text)
        return path

    def start(self, who: str, mode: str = "queue", *more: str) -> subprocess.Popen[str]:
        command = [sys.executable, "-m", "wfx", "run", str(self.file(mode)), "-i", f"who={who}"]
        with (self.tmp / f"{who}.out").open("w") as out:  # the child keeps its own copy
            return subprocess.Popen(
                [*command, "--state-dir", str(self.state), *more],
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
                env={**os.environ, "NO_COLOR": "1"},
            )

    def output(self, who: str) -> str:
        return (self.tmp / f"{who}.out").read_text()

    def lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def wait_for(self, what: str, found: object) -> None:
        """Wait (at most 20 s) until `found()` is true."""
        deadline = time.monotonic() + 20
        while not found():  # type: ignore[operator]
            assert time.monotonic() < deadline, f"never: {what}"
            time.sleep(0.02)

    def holding(self, who: str) -> None:
        self.wait_for(f"{who} starts its step", lambda: f"{who} start" in self.lines())

    def queued(self, who: str) -> None:
        self.wait_for(f"{who} is queued", lambda: "waiting for" in self.output(who))

    def members(self) -> list[tuple[str, int]]:
        with sqlite3.connect(self.state / "concurrency.db") as db:
            return db.execute("SELECT run_id, pid FROM members").fetchall()

    def run_ids(self) -> list[str]:
        with sqlite3.connect(self.state / "state.db") as db:
            return [r[0] for r in db.execute("SELECT id FROM runs ORDER BY started")]


@pytest.fixture
def runs(tmp_path: Path) -> Runs:
    return Runs(tmp_path)


def alive(pid: int) -> bool:
    """Whether process `pid` runs (a zombie waiting for its parent does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def holder_id(runs: Runs) -> str:
    [run_id] = re.findall(r"run (\S+) started", runs.output("A"))
    return run_id


def finish(process: subprocess.Popen[str]) -> int:
    return process.wait(timeout=30)


def test_queue_runs_one_at_a_time_and_says_what_it_waits_for(runs: Runs) -> None:
    first = runs.start("A")
    runs.holding("A")
    second = runs.start("B")
    runs.queued("B")
    assert runs.lines() == ["A start"]  # B's step did not start while A holds the group
    holder = runs.run_ids()[0]
    said = runs.output("B")
    assert f"waiting for concurrency group `deploy-prd`: run {holder} (pid {first.pid})" in said
    assert "holds it since" in said
    runs.release.touch()
    assert finish(first) == 0
    assert finish(second) == 0
    one_after_the_other = [f"{who} {what}" for who in "AB" for what in STEP_LINES]
    assert runs.lines() == one_after_the_other
    assert runs.members() == []


def test_fail_exits_75_naming_the_holder_and_records_nothing(runs: Runs) -> None:
    first = runs.start("A")
    runs.holding("A")
    refused = runs.start("F", "fail")
    assert finish(refused) == 75
    holder = runs.run_ids()[0]
    assert f"concurrency group `deploy-prd` is taken: run {holder} (pid {first.pid})" in (
        runs.output("F")
    )
    assert runs.run_ids() == [holder]  # the refused run was never recorded
    runs.release.touch()
    assert finish(first) == 0
    assert "F start" not in runs.lines()


def test_cancel_stops_the_holder_as_ctrl_c_does_then_takes_over(runs: Runs) -> None:
    first = runs.start("A")
    runs.holding("A")
    second = runs.start("C", "cancel")
    assert finish(first) == 130
    runs.release.touch()
    assert finish(second) == 0
    lines = runs.lines()
    # A's step was stopped, then A's finally ran before C started anything
    assert lines[: lines.index("C start")] == ["A start", "A finally"]
    assert "C finally" in lines
    assert "SIGTERM received: stopping" in runs.output("A")
    assert f"stopping run {runs.run_ids()[0]} (pid {first.pid})" in runs.output("C")
    assert runs.members() == []


def test_kill_9_of_a_queued_run_and_of_the_holder_blocks_nobody(runs: Runs) -> None:
    """A (holding), B, C, D queued: B killed -9, D interrupted, A killed -9: C runs."""
    holder = runs.start("A")
    runs.holding("A")
    killed_in_queue = runs.start("B")
    runs.queued("B")
    last = runs.start("C")
    runs.queued("C")
    interrupted = runs.start("D")
    runs.queued("D")
    killed_in_queue.send_signal(signal.SIGKILL)
    killed_in_queue.wait(timeout=10)
    interrupted.send_signal(signal.SIGINT)  # Ctrl-C while queued: nothing of D runs
    assert finish(interrupted) == 130
    assert "stopped while waiting for concurrency group `deploy-prd`" in runs.output("D")
    assert runs.lines() == ["A start"]  # C still waits for A
    orphan = int(Path(f"{runs.log}.A.pid").read_text())
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=10)
    runs.wait_for("C takes over from the dead holder", lambda: "C start" in runs.lines())
    # the dead holder's step was stopped before C took the group: never two deploys at once
    assert not alive(orphan)
    said = f"stopped (1 process|2 processes) run {holder_id(runs)} left running first: {orphan} "
    assert re.search(said, runs.output("C"))  # its shell, and maybe the `sleep` it waits for
    runs.release.touch()  # lets C end
    assert finish(last) == 0
    assert "A end" not in runs.lines()
    assert not [line for line in runs.lines() if line[0] in "BD"]  # not even `finally`
    assert runs.members() == []  # the dead runs' places are gone too
    # B died waiting: nothing of it ran, and nothing of it is left in the journal either
    [killed_id] = re.findall(r"run (\S+) started", runs.output("B"))
    assert killed_id not in runs.run_ids()
    assert runs.run_ids()  # the others' runs are there
