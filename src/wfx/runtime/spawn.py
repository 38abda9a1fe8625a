"""Start a step's process: what `subprocess.Popen` gives the child, for less per process.

A step process is started with `vfork` and `exec` by CPython's own C helper, the one
`subprocess.Popen` calls, with the same arguments Popen passes it for
`start_new_session=True` and `restore_signals=True`: the child is the same, bit for bit
(its session, signal dispositions and mask, descriptors, environment). What this module
saves is Popen's work around that call, measured at 258 µs per spawn against 142 µs with
a 48-variable environment (docs/performance.md, seventh pass): most of it was
encoding every variable of the environment again for every process. Here the inherited
environment is encoded once per run (:class:`Environment`) and only a step's own
variables are encoded per process.

The helper's argument list is not a public API. It is used only on the CPython versions
whose list is known (3.11 to 3.13, all the same); on any other Python every process is
started by `subprocess.Popen` itself (:data:`FAST`), which the tests also cover.
"""

from __future__ import annotations

import builtins
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

#: the Pythons whose `_posixsubprocess.fork_exec` takes the argument list used here
_KNOWN = {(3, 11), (3, 12), (3, 13)}


def _helper() -> Any:
    """CPython's fork-and-exec helper, when this Python's argument list is the known one."""
    if sys.version_info[:2] not in _KNOWN or sys.implementation.name != "cpython":
        return None
    try:
        import _posixsubprocess  # noqa: PLC0415 - CPython only
    except ImportError:  # pragma: no cover - every CPython on Linux has it
        return None
    helper = getattr(_posixsubprocess, "fork_exec", None)
    # Popen must be calling this very helper: then the same call makes the same child
    same = helper is not None and getattr(subprocess, "_fork_exec", None) is helper
    return helper if same else None


_FORK_EXEC = _helper()

FAST = _FORK_EXEC is not None
"""Whether processes start through CPython's helper directly (else through Popen)."""

#: what the child sends back on the error pipe when exec (or chdir) failed, at most
_ERROR_REPORT = 50_000


class Process(Protocol):
    """What a started process is to its caller: `subprocess.Popen`'s own interface."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None:
        """Reap the process if it exited; its status, or None while it runs."""
        ...

    def wait(self, timeout: float | None = None) -> int:
        """Wait (blocking) until it exits; subprocess.TimeoutExpired after `timeout`."""
        ...


class Environment:
    """An environment encoded once, over which each process lays its own variables.

    Encoding is what Popen does to every variable of every process it starts; a run
    starts hundreds of processes from one inherited environment, so that is encoded
    here once, and each process pays only for its own few variables."""

    __slots__ = ("_entries", "_memo", "names", "values")

    def __init__(self, variables: Mapping[str, str]) -> None:
        """Encode `variables`; ValueError (as Popen raises it) for a name with `=`."""
        self.values = dict(variables)
        """The variables as text, for lookups (PATH, SHLVL...)."""
        self.names = frozenset(self.values)
        self._entries = dict(map(_entry, self.values.items()))
        self._memo: dict[tuple[str, str], tuple[bytes, bytes]] = {}

    def get(self, name: str) -> str | None:
        """The value of `name`, or None when it is not set."""
        return self.values.get(name)

    def encoded(self, overlay: Mapping[str, str | None]) -> list[bytes]:
        """Every `NAME=value` the process gets: these variables with `overlay` laid over
        them (a None value removes the variable), in Popen's order: inherited ones where
        they are, new ones after them."""
        merged = self._entries.copy()
        memo = self._memo
        for name, value in overlay.items():
            if value is None:
                merged.pop(os.fsencode(name), None)
                continue
            pair = memo.get((name, value))  # most of a step's own variables repeat
            if pair is None:
                if len(memo) >= _MEMO_SIZE:
                    memo.clear()
                pair = memo[name, value] = _entry((name, value))
            merged[pair[0]] = pair[1]
        return list(merged.values())


#: how many of the variables processes lay over an environment it keeps encoded
_MEMO_SIZE = 1024


def _entry(variable: tuple[str, str]) -> tuple[bytes, bytes]:
    """A variable as a name and the `NAME=value` bytes the process receives."""
    name, value = variable
    key = os.fsencode(name)
    if b"=" in key:
        raise ValueError("illegal environment variable name")
    return key, key + b"=" + os.fsencode(value)


def spawn(
    argv: Sequence[str],
    *,
    program: str | None,
    env: list[bytes],
    path: str | None,
    cwd: str | None,
    stdin: int,
    stdout: int,
    stderr: int,
) -> Process:
    """Start `argv` (the file `program` when given, else `argv[0]` looked up on `path`,
    which must be the PATH of `env`, given here as text) in a new session, its signals
    restored to their defaults, with exactly the variables `env`, and descriptors
    `stdin`, `stdout`, `stderr` as 0, 1, 2.
    Raises OSError (FileNotFoundError, PermissionError...) with Popen's `filename` when
    it cannot be started, ValueError for a NUL byte in an argument or variable."""
    if _FORK_EXEC is None:
        return _popen(argv, program, env, cwd, stdin, stdout, stderr)
    name = program if program is not None else argv[0]
    executable = os.fsencode(name)
    if os.path.dirname(executable):
        candidates: tuple[bytes, ...] = (executable,)
    else:
        search = os.get_exec_path({"PATH": path} if path is not None else {})
        candidates = tuple(os.path.join(os.fsencode(d), executable) for d in search)
    report_read, report_write = os.pipe2(os.O_CLOEXEC)
    try:
        try:
            pid = _FORK_EXEC(
                argv,
                candidates,
                True,  # close every other descriptor in the child
                (report_write,),
                cwd,
                env,
                stdin,
                -1,
                -1,
                stdout,
                -1,
                stderr,
                report_read,
                report_write,
                True,  # restore_signals: SIGPIPE, SIGXFSZ back to their defaults
                True,  # call_setsid: a session (and process group) of its own
                -1,  # no process group to join
                None,  # gid
                None,  # supplementary groups
                None,  # uid
                -1,  # umask unchanged
                None,  # no preexec_fn
                getattr(subprocess, "_USE_VFORK", True),
            )
        finally:
            os.close(report_write)
        report = _read_report(report_read)
    finally:
        os.close(report_read)
    process = _OwnProcess(pid)
    if report:
        process.wait()  # it exited at once (_exit(255)): do not leave a zombie
        raise _start_error(report, name, cwd)
    return process


def _read_report(fd: int) -> bytes:
    """What the child wrote on the error pipe before it closed (on exec) or exited."""
    report = b""
    while len(report) < _ERROR_REPORT and (chunk := os.read(fd, _ERROR_REPORT)):
        report += chunk
    return report


def _start_error(report: bytes, name: str, cwd: str | None) -> Exception:
    """The exception the child's report describes: `Type:hex errno:what`, where `what`
    is `noexec` when it failed before exec (changing to the working directory, as Popen
    reads it) and empty when exec itself failed."""
    try:
        kind, number, what = report.split(b":", 2)
        detail = what.decode(errors="replace")
        exception = getattr(builtins, kind.decode("ascii"), None)
        errno_value = int(number, 16) if number else 0
    except ValueError:
        return subprocess.SubprocessError(f"bad report from the child: {report!r}")
    if not (isinstance(exception, type) and issubclass(exception, Exception)):
        return subprocess.SubprocessError(detail)
    if not issubclass(exception, OSError) or not errno_value:
        return exception(detail)
    filename = cwd if detail.startswith("noexec") else name
    return exception(errno_value, os.strerror(errno_value), filename)


class _OwnProcess:
    """A child started here, reaped with `waitpid` (Popen's `poll` and `wait`, no more)."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Reap the process if it exited (never waits); its status, or None."""
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until the process exits (a blocking wait; polled when `timeout` is set)."""
        if timeout is None:
            while self.returncode is None:
                self._reap(0)
            return self.returncode
        ends = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() >= ends:
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
            time.sleep(0.001)
        assert self.returncode is not None
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:  # reaped by someone else (SIGCHLD ignored): as Popen does
            self.returncode = 0
            return
        if pid == self.pid:
            self.returncode = os.waitstatus_to_exitcode(status)


def _popen(
    argv: Sequence[str],
    program: str | None,
    env: list[bytes],
    cwd: str | None,
    stdin: int,
    stdout: int,
    stderr: int,
) -> Process:
    """The same start through `subprocess.Popen` (a Python whose helper is unknown)."""
    variables = dict(entry.split(b"=", 1) for entry in env)  # Popen encodes them again
    return subprocess.Popen(
        list(argv),
        executable=program,
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        cwd=cwd,
        env=variables,
        start_new_session=True,
    )
