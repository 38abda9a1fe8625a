"""A real `wfx run` stopped three ways (Ctrl-C, a failing sibling, a timeout): what a step
prints while it is being stopped (a TERM trap) is shown live and kept for `wfx logs`, and
after Ctrl-C the `always()` and `cancelled()` steps still run, as the docs promise."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from cli_process import wfx

TRAPPED = (
    "    run: |\n"
    "      trap 'echo stopping-gracefully; exit 143' TERM\n"
    "      touch ready\n"
    "      sleep 30 & wait\n"
)


def _only_run_id(tmp_path: Path) -> str:
    with sqlite3.connect(tmp_path / ".wfx" / "state.db") as db:
        [(run_id,)] = db.execute("SELECT id FROM runs").fetchall()
    return str(run_id)


def _logs(tmp_path: Path) -> str:
    logs = wfx("logs", _only_run_id(tmp_path), cwd=tmp_path)
    assert logs.returncode == 0, logs.stderr
    return logs.stdout


def test_ctrl_c_keeps_trap_output_and_runs_always_and_cancelled_steps(tmp_path: Path) -> None:
    ledger = tmp_path / "ledger"
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsteps:\n  - id: slow\n"
        + TRAPPED
        + f"  - id: plain\n    run: echo plain >> {ledger}\n"
        "  - id: anyway\n    condition: always()\n"
        f"    run: echo 'anyway cancelled=${{{{ cancelled() }}}}' >> {ledger}\n"
        "  - id: on-cancel\n    condition: cancelled()\n"
        f"    run: echo on-cancel >> {ledger}\n"
        "  - id: on-failure\n    condition: failure()\n"
        f"    run: echo on-failure >> {ledger}\n"
        "finally:\n  - id: report\n"
        f"    run: echo 'finally ${{{{ workflow.status }}}} ${{{{ cancelled() }}}}' >> {ledger}\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-m", "wfx", "run", "wf.yaml"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        start_new_session=True,
    )
    while not (tmp_path / "ready").exists():
        assert process.poll() is None, process.communicate()
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert ledger.read_text().splitlines() == [
        "anyway cancelled=true",
        "on-cancel",
        "finally cancelled true",
    ]
    assert "stopping-gracefully" in stdout + stderr
    assert "stopping-gracefully" in _logs(tmp_path)


def test_a_failing_sibling_keeps_the_trap_output_of_the_step_it_stops(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsteps:\n  - type: parallel\n    steps:\n"
        "      - id: slow\n"
        + TRAPPED.replace("\n    ", "\n        ").replace("    run", "        run", 1)
        + "      - id: boom\n"
        "        run: |\n"
        "          while [ ! -f ready ]; do sleep 0.02; done\n"
        "          exit 1\n"
    )
    result = wfx("run", "wf.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "stopping-gracefully" in result.stdout + result.stderr
    assert "stopping-gracefully" in _logs(tmp_path)


def test_a_timeout_keeps_the_trap_output(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - id: slow\n    timeout: 1s\n" + TRAPPED)
    result = wfx("run", "wf.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "stopping-gracefully" in result.stdout + result.stderr
    assert "stopping-gracefully" in _logs(tmp_path)


_VALID_SIGNALS = """
import signal
from wfx import cli

before = signal.valid_signals()
cli.steady_valid_signals()
kept = signal.valid_signals
cli.steady_valid_signals()  # once is enough: a copy of the server finds it done
assert signal.valid_signals is kept
after = signal.valid_signals()
assert after == before, (after, before)
after.discard(signal.SIGINT)  # a caller's set is its own
assert signal.SIGINT in signal.valid_signals()
print("same")
"""


def test_the_valid_signals_kept_once_are_the_ones_python_lists() -> None:
    """`wfx` keeps `signal.valid_signals()` as a constant of its process (asyncio asks it
    for every handler): the same signals, and a set each caller may change."""
    done = subprocess.run(
        [sys.executable, "-c", _VALID_SIGNALS], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "same"


def test_a_run_started_with_sigint_ignored_keeps_it_ignored(tmp_path: Path) -> None:
    """A script's background job (`wfx run ... &`) starts with SIGINT ignored, so that a
    Ctrl-C meant for the script's foreground command does not stop it: wfx keeps it
    ignored (a SIGINT stops nothing), and SIGTERM still stops the run."""
    (tmp_path / "wf.yaml").write_text(
        "wfx: 1\nsteps:\n"
        "  - id: poke\n    run: kill -INT $PPID; sleep 0.5; touch survived\n"
        "  - id: stop\n    run: kill -TERM $PPID; sleep 30\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        ["bash", "-c", f"trap '' INT; exec {sys.executable} -m wfx run wf.yaml"],
        check=False,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
        timeout=60,
    )
    assert (tmp_path / "survived").exists(), done.stdout + done.stderr
    assert "SIGINT" not in done.stdout + done.stderr
    assert "SIGTERM received" in done.stdout + done.stderr
    assert done.returncode == 130
    assert time.monotonic() - started < 20  # stopped by SIGTERM, not after its sleep
