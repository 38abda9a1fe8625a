"""Starting a step's process without Popen's per-process work: the child must be the one
Popen makes (wfx.runtime.spawn).

A differential test: the same program is started by `subprocess.Popen` (as the engine
started every step before) and by `spawn`, on its fast path and on its Popen fallback,
and what the child sees of itself must be the same: arguments, environment in order,
working directory, session, signal dispositions and mask, open descriptors. Start
failures must raise what Popen raises, with the same `filename`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from wfx.runtime import spawn as spawn_module
from wfx.runtime.spawn import Environment, Process, spawn

SHOW = r"""
import os, sys
print("args", sys.argv[1:])
print("cwd", os.getcwd())
print("env", list(os.environ.items()))
print("session leader", os.getsid(0) == os.getpid(), os.getpgid(0) == os.getpid())
for line in open("/proc/self/status"):
    if line.startswith(("SigIgn", "SigBlk")):
        print(line.strip())
print("fds", sorted(int(fd) for fd in os.listdir("/proc/self/fd")))
"""


@pytest.fixture(params=["fast", "popen"])
def path_taken(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run each case on the fast path (where this Python has it) and on the fallback."""
    if request.param == "fast" and not spawn_module.FAST:
        pytest.skip("this Python has no known fork_exec helper")
    if request.param == "popen":
        monkeypatch.setattr(spawn_module, "_FORK_EXEC", None)
    return str(request.param)


def _spawn(
    argv: list[str], env: list[bytes], path: str | None, cwd: str | None, out: int | None
) -> Process:
    """Start `argv` with stdin on /dev/null and both outputs on `out` (None: /dev/null)."""
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    try:
        target = devnull if out is None else out
        return spawn(
            argv,
            program=None,
            env=env,
            path=path,
            cwd=cwd,
            stdin=devnull,
            stdout=target,
            stderr=target,
        )
    finally:
        os.close(devnull)


def _start(argv: list[str], env: list[bytes], cwd: str | None, out: int) -> int:
    """Start `argv` on this process's PATH and wait for its status."""
    return _spawn(argv, env, os.environ.get("PATH"), cwd, out).wait()


def _run_both(tmp_path: Path, argv: list[str], variables: dict[str, str]) -> tuple[str, str]:
    """What the child printed when Popen started it, and when `spawn` did."""
    popen_out, spawn_out = tmp_path / "popen.txt", tmp_path / "spawn.txt"
    with popen_out.open("wb") as handle:
        devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            subprocess.run(
                argv,
                stdin=devnull,
                stdout=handle,
                stderr=handle,
                cwd=tmp_path,
                env=variables,
                start_new_session=True,
                check=True,
            )
        finally:
            os.close(devnull)
    fd = os.open(spawn_out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC)
    try:
        entries = Environment(variables).encoded({})
        assert _start(argv, entries, str(tmp_path), fd) == 0
    finally:
        os.close(fd)
    return popen_out.read_text(), spawn_out.read_text()


def test_the_child_is_the_one_popen_makes(tmp_path: Path, path_taken: str) -> None:
    variables = {"PATH": os.environ["PATH"], "B": "2", "A": "1", "ÉTÉ": "chaud ☀"}
    previous = signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # ignored here, as in wfx
    try:
        popen_said, spawn_said = _run_both(
            tmp_path, [sys.executable, "-c", SHOW, "x y", "ü"], variables
        )
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert spawn_said == popen_said
    assert "session leader True True" in spawn_said
    assert "fds [0, 1, 2, 3]" in spawn_said  # 3: the listing's own descriptor
    assert "SigIgn:\t0000000000000000" not in spawn_said  # SIGUSR1 stays ignored, as in Popen


def test_a_program_is_looked_up_on_the_given_path(tmp_path: Path, path_taken: str) -> None:
    here = tmp_path / "bin"
    here.mkdir()
    program = here / "hello"
    program.write_text("#!/bin/sh\necho hello from $0\n")
    program.chmod(0o755)
    out = tmp_path / "out"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC)
    try:
        searched = f"/nonexistent:{here}"
        assert _spawn(["hello"], [f"PATH={searched}".encode()], searched, None, fd).wait() == 0
    finally:
        os.close(fd)
    assert out.read_text() == f"hello from {program}\n"


@pytest.mark.parametrize(
    ("argv", "cwd", "kind", "filename"),
    [
        (["no-such-program-wfx"], None, FileNotFoundError, "no-such-program-wfx"),
        (["true"], "missing", FileNotFoundError, "missing"),
        (["true"], "a-file", NotADirectoryError, "a-file"),
        (["./not-executable"], None, PermissionError, "./not-executable"),
        (["./no-shebang"], None, OSError, "./no-shebang"),
    ],
)
def test_start_failures_raise_what_popen_raises(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    path_taken: str,
    argv: list[str],
    cwd: str | None,
    kind: type[OSError],
    filename: str,
) -> None:
    (tmp_path / "a-file").write_text("")
    (tmp_path / "not-executable").write_text("#!/bin/sh\n")
    (tmp_path / "no-shebang").write_bytes(b"\x7fELF-not-really")
    (tmp_path / "no-shebang").chmod(0o755)
    directory = str(tmp_path / cwd) if cwd else None
    where = directory if cwd else str(tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(OSError) as by_popen:
        subprocess.Popen(argv, cwd=where, env={"PATH": os.environ["PATH"]})
    with pytest.raises(OSError) as by_spawn:
        _start(argv, [b"PATH=" + os.environb[b"PATH"]], where, 1)
    assert type(by_spawn.value) is type(by_popen.value)
    assert isinstance(by_spawn.value, kind)
    assert by_spawn.value.errno == by_popen.value.errno
    assert by_spawn.value.filename == by_popen.value.filename
    assert str(by_spawn.value.filename).endswith(filename)


def test_a_nul_byte_is_refused_before_anything_starts(path_taken: str) -> None:
    with pytest.raises(ValueError, match="null"):
        _start(["echo", "a\0b"], [], None, 1)
    with pytest.raises(ValueError, match="null"):
        _start(["true"], [b"A=1\0B=2"], None, 1)


def test_an_environment_keeps_popens_order_and_lays_variables_over_it() -> None:
    base = Environment({"PATH": "/bin", "HOME": "/root", "OLD": "x"})
    entries = base.encoded({"HOME": "/home/me", "OLD": None, "NEW": "é"})
    assert entries == [b"PATH=/bin", b"HOME=/home/me", "NEW=é".encode()]
    assert base.encoded({}) == [b"PATH=/bin", b"HOME=/root", b"OLD=x"]  # unchanged
    assert base.get("HOME") == "/root"
    assert base.get("NOPE") is None


def test_a_name_with_an_equals_sign_is_refused_as_popen_refuses_it() -> None:
    with pytest.raises(ValueError, match="illegal environment variable name"):
        Environment({"A=B": "1"})
    with pytest.raises(ValueError, match="illegal environment variable name"):
        Environment({}).encoded({"A=B": "1"})


def test_a_reaped_child_reports_its_signal_as_popen_does(path_taken: str) -> None:
    process = _spawn(["sleep", "30"], [], "/usr/bin:/bin", None, None)
    assert process.poll() is None
    with pytest.raises(subprocess.TimeoutExpired):
        process.wait(timeout=0.05)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=10) == -signal.SIGTERM
    assert process.returncode == -signal.SIGTERM
    assert process.poll() == -signal.SIGTERM
