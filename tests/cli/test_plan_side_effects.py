"""`wfx plan` and `wfx explain` have no side effects: no process, no written file, no socket,
no import of step code. Proven twice: with a Python audit hook, and with strace."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").glob("*.yaml"))

# HOME is set because without it the interpreter's own start-up (site.py) asks the
# password database, which may try nscd's socket: that would be Python, not wfx.
CLEAN_ENV = {"PATH": "/usr/bin:/bin", "HOME": str(Path.home()), "PYTHONDONTWRITEBYTECODE": "1"}

AUDITED = r"""
import os, sys
violations = []
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
FORBIDDEN = ("subprocess.Popen", "os.system", "os.exec", "os.posix_spawn", "os.spawn",
             "os.fork", "os.forkpty", "socket.connect", "socket.bind", "socket.sendto",
             "os.remove", "os.rename", "os.mkdir", "os.rmdir", "os.truncate", "os.chmod",
             "shutil.copyfile", "shutil.rmtree", "ctypes.dlopen")
STEP_MODULES = {"example_tools"}

def hook(event, args):
    if event == "open":
        path, mode, flags = args
        writes = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
            isinstance(flags, int) and flags & WRITE_FLAGS)
        if writes:
            violations.append(f"open for write: {path!r} mode={mode!r} flags={flags!r}")
    elif event.startswith(FORBIDDEN):
        violations.append(f"{event}: {args!r:.200}")
    elif event == "import" and args[0].split(".")[0] in STEP_MODULES:
        violations.append(f"imported step code: {args[0]}")

sys.addaudithook(hook)
import json
from wfx.cli import main
codes = []
for command in json.loads(sys.argv[1]):
    sys.argv = ["wfx", *command]
    try:
        main()
    except SystemExit as exit_:
        codes.append(exit_.code or 0)
    else:
        codes.append(0)
    sys.stdout.write(END_OF_COMMAND)
    sys.stdout.flush()
sys.stderr.write("\nAUDIT " + json.dumps({"codes": codes, "violations": violations}) + "\n")
"""
#: what the audited process prints after each command's output
END_OF_COMMAND = "\n\x1e\n"
AUDITED = AUDITED.replace("END_OF_COMMAND", repr(END_OF_COMMAND))


def audited_runs(*commands: list[str]) -> tuple[list[tuple[int, str]], list[str]]:
    """Each command's exit code and output, run one after the other in one audited
    process (which starts Python and imports wfx once for all of them), and every side
    effect any of them had."""
    completed = subprocess.run(
        [sys.executable, "-c", AUDITED, json.dumps(commands)],
        capture_output=True,
        text=True,
        check=False,
        env={**CLEAN_ENV, "NO_COLOR": "1"},
    )
    match = re.search(r"^AUDIT (.*)$", completed.stderr, re.M)
    assert match, completed.stderr
    report = json.loads(match.group(1))
    outputs = completed.stdout.split(END_OF_COMMAND)[: len(commands)]
    assert len(report["codes"]) == len(outputs) == len(commands), completed.stderr
    return list(zip(report["codes"], outputs, strict=True)), report["violations"]


def audited_run(*args: str) -> tuple[int, str, list[str]]:
    """One command's exit code, output and side effects, in an audited process."""
    [(code, out)], violations = audited_runs(list(args))
    return code, out, violations


FORMATS = ["text", "json", "markdown", "mermaid", "dot"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_plan_has_no_side_effects_in_any_format(example: Path) -> None:
    """Every format, each the first of its kind in the audited process (renderers are
    imported as a format first needs them, and that import is audited too)."""
    results, violations = audited_runs(*(["plan", str(example), "--format", f] for f in FORMATS))
    for fmt, (code, out) in zip(FORMATS, results, strict=True):
        assert code == 0, fmt
        assert out.strip(), fmt
    assert violations == []


def test_explain_has_no_side_effects() -> None:
    example = ROOT / "examples" / "etl-pipeline.yaml"
    plan = json.loads(audited_run("plan", str(example), "--format", "json")[1])
    step = next(iter(plan["steps"]))
    code, out, violations = audited_run("explain", str(example), step)
    assert code == 0 and step in out
    assert violations == []


def test_the_audit_hook_does_catch_side_effects(tmp_path: Path) -> None:
    """The harness itself must fail when something writes, or it proves nothing."""
    target = tmp_path / "written.txt"
    script = AUDITED.replace(
        "from wfx.cli import main", f"open({str(target)!r}, 'w').close()\nfrom wfx.cli import main"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script, json.dumps([["--version"]])],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "open for write" in completed.stderr


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed")
def test_strace_sees_no_exec_write_or_connect(tmp_path: Path) -> None:
    log = tmp_path / "trace.log"
    example = ROOT / "examples" / "production-deployment.yaml"
    completed = subprocess.run(
        [
            "strace",
            "-f",
            "-qq",
            "-o",
            str(log),
            "-e",
            "trace=execve,openat,connect,socket",
            sys.executable,
            "-m",
            "wfx",
            "plan",
            str(example),
            "--format",
            "json",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=CLEAN_ENV,
    )
    if completed.returncode != 0 and "ptrace" in completed.stderr:
        pytest.skip(f"strace cannot trace here: {completed.stderr.strip()[:200]}")
    assert completed.returncode == 0, completed.stderr
    calls = log.read_text().splitlines()
    execs = [c for c in calls if "execve(" in c and "= 0" in c]
    writes = [
        c
        for c in calls
        if "openat(" in c and re.search(r"O_WRONLY|O_RDWR|O_CREAT|O_TRUNC|O_APPEND", c)
    ]
    network = [c for c in calls if re.search(r"\b(connect|socket)\(", c)]
    assert len(execs) == 1, execs  # the interpreter itself, nothing more
    assert writes == []
    assert network == []
