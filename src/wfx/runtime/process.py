"""Run one step process and leave nothing behind.

The child starts in its own session with stdin on /dev/null; stdout and stderr are drained
concurrently, counted, logged up to a limit and split into bounded lines. Every process
spawned here carries a unique marker in its environment (``WFX_PROCESS_TOKEN``), so its
descendants can be found in ``/proc`` even after they left the process group with
``setsid`` and were re-parented to init. On a timeout, a cancellation, or descendants
outliving the main process, the whole tree gets SIGTERM once, then SIGKILL after a grace
period. Linux only.
"""

from __future__ import annotations

import codecs
import contextlib
import errno
import functools
import itertools
import math
import os
import select
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import BinaryIO, Literal, ParamSpec

import anyio
import anyio.lowlevel

from wfx.diagnostics import WfxError
from wfx.runtime.direct import answered_from_memory, look_up_direct, unchanged_since
from wfx.runtime.spawn import Environment, Process, spawn

Stream = Literal["stdout", "stderr"]
"""Which pipe a line of output came from."""

TOKEN_VARIABLE = "WFX_PROCESS_TOKEN"
"""The environment variable that marks every process a step spawned, however deep."""

_MARKER = TOKEN_VARIABLE.encode() + b"="
# Processes that exit while we look at them raise one of these; they are simply gone.
_VANISHED = (FileNotFoundError, ProcessLookupError, PermissionError)
# After SIGKILL a process still needs a moment to exit; a fork racing the kill needs a
# second round. Both are bounded so a process stuck in the kernel cannot hang a run.
_KILL_WAIT = 1.0
_KILL_ROUNDS = 5
_CHUNK = 65536
_P = ParamSpec("_P")


class ProcessStartError(WfxError):
    """The program could not be started: not found, not executable, bad working directory."""


@dataclass(frozen=True, slots=True)
class Leftover:
    """A descendant still alive after the main process ended (or timed out); we killed it."""

    pid: int
    command: str


@dataclass(frozen=True, slots=True)
class ProcessOutcome:
    """How a step process ended, what it wrote and what it left behind."""

    returncode: int | None
    signal: int | None
    timed_out: bool
    leftovers: tuple[Leftover, ...]
    stdout_bytes: int
    stderr_bytes: int
    duration: float

    @property
    def succeeded(self) -> bool:
        """True when the process exited with 0, in time and not by a signal."""
        return self.returncode == 0 and self.signal is None and not self.timed_out


class ProcessTracker:
    """Every live step process of a run, so the engine can escalate (second Ctrl-C)."""

    def __init__(self, run_id: str = "") -> None:
        self._trees: set[_ProcessTree] = set()
        self._prefix = run_token_prefix(run_id) if run_id else ""

    def new_token(self) -> str:
        """A fresh marker for one step process; it names the run, so a resume of the run
        finds what a dead wfx left (:func:`stop_leftovers`)."""
        return self._prefix + _MARKERS.fresh()

    def kill_all(self) -> None:
        """SIGKILL every tracked process group and marked descendant, now."""
        trees = list(self._trees)
        for tree in trees:
            tree.signal_group(signal.SIGKILL)
        tokens = {tree.token for tree in trees}
        groups = {tree.pgid for tree in trees}
        for info in _census(tokens, groups, exclude=()):
            _kill_quietly(info.pid, signal.SIGKILL)

    def live(self) -> int:
        """How many tracked processes are running (or still being cleaned up)."""
        return len(self._trees)

    def _add(self, tree: _ProcessTree) -> None:
        self._trees.add(tree)

    def _discard(self, tree: _ProcessTree) -> None:
        self._trees.discard(tree)


def _start_now(make: Callable[_P, ReadyProcess]) -> Callable[_P, StartedProcess]:
    """`make`, then the start of what it made ready: one call with `make`'s arguments."""

    def start_now(*args: _P.args, **kwargs: _P.kwargs) -> StartedProcess:
        return make(*args, **kwargs).start()

    return start_now


class ReadyProcess:
    """A step process made ready to start (:data:`start_process`'s arguments): its
    marker, and with `ahead`, the program a direct command execs looked up and the
    environment it gets encoded, while the step before it still runs. :meth:`start`
    then starts it: the lookup holds as long as the PATH lookups' watch saw nothing
    change on its way since (a program may have come or gone), and is made again
    otherwise; the environment encoded ahead is used only when that finds what it found
    then (docs/performance.md, eighteenth pass)."""

    __slots__ = (
        "_argv",
        "_capture",
        "_cwd",
        "_direct",
        "_encoded",
        "_found",
        "_inherited",
        "_kill_grace",
        "_mark",
        "_overlay",
        "_pipe_grace",
        "_timeout",
        "_token",
        "_tracker",
    )

    def __init__(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: str | None,
        timeout: float | None,
        kill_grace: float,
        on_output: Callable[[Stream, str], None] | None = None,
        log: BinaryIO | None = None,
        log_limit: int = 16 * 1024 * 1024,
        tracker: ProcessTracker | None = None,
        max_line: int = 64 * 1024,
        pipe_grace: float = 0.5,
        direct: Sequence[str] | None = None,
        base: Environment | None = None,
        ahead: bool = False,
    ) -> None:
        self._argv, self._cwd, self._direct, self._tracker = argv, cwd, direct, tracker
        self._timeout, self._kill_grace, self._pipe_grace = timeout, kill_grace, pipe_grace
        self._capture = _Capture(on_output, log, log_limit, max_line)
        self._token = tracker.new_token() if tracker is not None else _MARKERS.fresh()
        inherited, overlay = (base, env) if base is not None else (encoded_environment(env), {})
        self._inherited, self._overlay = inherited, overlay
        self._found: _Found | None = None
        self._mark: int | None = None
        self._encoded: list[bytes] | None = None
        if ahead and (not direct or answered_from_memory()):  # else looked up at the start
            self._found, self._mark = self._look_up()
            with contextlib.suppress(ProcessStartError):  # said when it starts
                self._encoded = self._encode(self._found)

    def start(self) -> StartedProcess:
        """Start the process now (ProcessStartError when it cannot be started)."""
        if not self._argv:
            raise ProcessStartError("empty command")
        started = time.monotonic()
        mark = self._mark
        found = self._found if mark is not None and unchanged_since(mark) else self._look_up()[0]
        child = None
        if found is not None:
            encoded = self._encoded if found == self._found else None
            child = _Child.spawn_found(
                self._direct or (), found, self._encoded_for(found, encoded), self._cwd
            )
        if child is None:
            encoded = self._encoded if self._found is None else None
            child = _Child.spawn(
                self._argv,
                self._encoded_for(None, encoded),
                self._path(),
                self._cwd,
            )
        tree = _ProcessTree(child, self._token)
        if self._tracker is not None:
            self._tracker._add(tree)
        return StartedProcess(
            child,
            tree,
            self._capture,
            self._tracker,
            self._timeout,
            self._kill_grace,
            self._pipe_grace,
            started,
        )

    def _look_up(self) -> tuple[_Found | None, int | None]:
        """The program to exec without the shell and bash's changes (or None), and the
        mark that says when that answer is still the one (wfx.runtime.direct)."""
        if not self._direct:
            return None, None
        return look_up_direct(self._direct, self._inherited, self._overlay, self._cwd)

    def _encode(self, found: _Found | None) -> list[bytes]:
        """The environment of the process: bash's changes too when `found` is exec'd.
        ProcessStartError for a variable no process can receive (`=` in its name)."""
        overlay = {**self._overlay, **found[1]} if found is not None else self._overlay
        try:
            return self._inherited.encoded({**overlay, TOKEN_VARIABLE: self._token})
        except ValueError as exc:
            program = self._argv[0] if self._argv else "the command"
            raise ProcessStartError(f"cannot start {program}: {exc}") from exc

    def _encoded_for(self, found: _Found | None, encoded: list[bytes] | None) -> list[bytes]:
        return encoded if encoded is not None else self._encode(found)

    def _path(self) -> str | None:
        overlay = self._overlay
        return overlay["PATH"] if "PATH" in overlay else self._inherited.get("PATH")


#: what wfx.runtime.direct finds for a direct command: the program, bash's changes
_Found = tuple[str, dict[str, str | None]]

start_process = _start_now(ReadyProcess)
"""Start `argv` now, without waiting; the caller must then await
:meth:`StartedProcess.finish`, which supervises it to its end (or timeout) and kills
whatever it leaves running. A burst of steps is started this way back to back, each
then handed to its own task. ProcessStartError when it cannot be started.

`env`: the process's environment; with `base`, the variables laid over that one
(encoded once for many processes). `direct`: the words of the one simple command
`argv`'s shell would only exec; they are exec'd without the shell when
wfx.runtime.direct finds that to be the same."""


def _and_finish(start: Callable[_P, StartedProcess]) -> Callable[_P, Awaitable[ProcessOutcome]]:
    """`start`, then the wait for what it started: one call with `start`'s arguments."""

    async def start_and_finish(*args: _P.args, **kwargs: _P.kwargs) -> ProcessOutcome:
        return await start(*args, **kwargs).finish()

    return start_and_finish


run_process = _and_finish(start_process)
"""Run `argv` to completion (or timeout) and kill whatever it leaves running (the
arguments are :func:`start_process`'s)."""


@dataclass(slots=True)
class StartedProcess:
    """A step process that runs, not yet supervised: :meth:`finish` must follow (until it
    does, its tracker still knows it, so a second Ctrl-C kills it like any other)."""

    _child: _Child
    _tree: _ProcessTree
    _capture: _Capture
    _tracker: ProcessTracker | None
    _timeout: float | None
    _kill_grace: float
    _pipe_grace: float
    _started: float
    on_end: Callable[[ProcessOutcome], None] | None = None
    """Called with the outcome as soon as it is known (the process reaped, its output
    read to the end, nothing of its group left), before its descriptors are released:
    whoever waits for that outcome can act on it a few dozen microseconds earlier."""

    async def finish(self) -> ProcessOutcome:
        """Wait for the process and its output, stop what it leaves behind (its timeout
        counts from the start, not from this call); a cancellation stops the tree too."""
        child, tree, capture = self._child, self._tree, self._capture
        timeout = self._timeout
        if timeout is not None:
            timeout = max(0.0, timeout - (time.monotonic() - self._started))
        try:
            timed_out = await _supervise(
                child, tree, capture, timeout, self._kill_grace, self._pipe_grace
            )
            outcome = _outcome(child, tree, capture, timed_out, time.monotonic() - self._started)
            if self.on_end is not None:
                self.on_end(outcome)
        finally:
            if self._tracker is not None:
                self._tracker._discard(tree)
            child.close()
        return outcome


class _Markers:
    """Where markers come from: a random stem for this process and a counter behind it
    (a uuid4 per step cost a system call and a few microseconds on every step; this is
    as unique). A child made by fork gets a stem of its own."""

    def __init__(self) -> None:
        self.renew()
        os.register_at_fork(after_in_child=self.renew)

    def renew(self) -> None:
        """A new random stem, and the counter from 1."""
        self.stem = os.urandom(8).hex()
        self.numbers = itertools.count(1)

    def fresh(self) -> str:
        """A marker no other process of this or any wfx carries."""
        return f"{self.stem}{next(self.numbers):x}"


_MARKERS = _Markers()


def run_token_prefix(run_id: str) -> str:
    """How the markers of every step process of run `run_id` begin."""
    return f"{run_id}/"


def stop_leftovers(run_id: str, grace: float) -> list[Leftover]:
    """Stop what is left of a dead wfx's step processes for run `run_id` (found by their
    marker, however deep): SIGTERM to them and their process groups, `grace` seconds to
    exit, then SIGKILL. Returns what was found, so a resumed step never runs twice at once."""
    prefix = run_token_prefix(run_id).encode()
    victims = _leftovers_of(prefix)
    if not victims:
        return []
    found = [Leftover(v.pid, v.command) for v in victims]
    try:
        _signal_all(victims, signal.SIGTERM)
        _wait_gone(victims, grace)
        for _ in range(_KILL_ROUNDS):
            victims += [v for v in _leftovers_of(prefix) if v.pid not in {w.pid for w in victims}]
            alive = [v for v in victims if not v.exited()]
            if not alive:
                break
            _signal_all(alive, signal.SIGKILL)
            _wait_gone(alive, _KILL_WAIT)
    finally:
        for victim in victims:
            victim.close()
    return found


def _leftovers_of(prefix: bytes) -> list[_Victim]:
    victims = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            token = _token(int(name))
            info = _stat(int(name)) if token and token.startswith(prefix) else None
        except _VANISHED:
            continue
        if info is not None and info.pgid == os.getpgrp():
            continue  # never ourselves, whoever started this wfx
        victim = _Victim.open(info) if info is not None else None
        if victim is not None:
            victims.append(victim)
    return victims


def _signal_all(victims: list[_Victim], signum: int) -> None:
    own_group = os.getpgrp()
    for group in {v.pgid for v in victims} - {0, 1, own_group}:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(group, signum)
    for victim in victims:
        victim.send(signum)


def _wait_gone(victims: list[_Victim], seconds: float) -> None:
    """Wait (on their pidfds, no polling loop) until every victim exited or `seconds` passed."""
    deadline = time.monotonic() + seconds
    waiting = [v for v in victims if not v.exited()]
    while waiting and (left := deadline - time.monotonic()) > 0:
        poller = select.poll()
        for victim in waiting:
            poller.register(victim.fileno(), select.POLLIN)
        poller.poll(left * 1000)
        waiting = [v for v in waiting if not v.exited()]


def encoded_environment(env: Mapping[str, str]) -> Environment:
    """`env` encoded for many processes; ProcessStartError for a name no process can take."""
    try:
        return Environment(env)
    except ValueError as exc:  # a name with '=' in it
        raise ProcessStartError(f"cannot start the process: {exc}") from exc


#: wfx's own environment as last encoded: a copy of `os.environ`'s encoded data, and it
_OWN_ENVIRONMENT: tuple[dict[bytes, bytes], Environment] | None = None


def own_environment() -> Environment:
    """wfx's own environment (`os.environ`) as it is now, encoded; encoded again only when
    it changed since the last call (a Python step, or a program embedding wfx, may change
    it between two attempts). Encoding it costs about 100 µs for 50 variables; comparing
    it with the copy kept, a few."""
    global _OWN_ENVIRONMENT  # noqa: PLW0603 - one cache for the process's one environment
    data = getattr(os.environ, "_data", None)  # the encoded variables, on POSIX
    if not isinstance(data, dict):  # pragma: no cover - CPython on POSIX always has it
        return encoded_environment(os.environ)
    kept = _OWN_ENVIRONMENT
    if kept is not None and kept[0] == data:
        return kept[1]
    encoded = encoded_environment(os.environ)
    _OWN_ENVIRONMENT = (dict(data), encoded)
    return encoded


def _output_pipes(program: str, cwd: str | None) -> tuple[int, int, int, int]:
    """The read and write ends of a new process's stdout and stderr pipes; out of
    descriptors (EMFILE), ProcessStartError: the step fails saying so, and the run goes
    on as with any step that cannot start."""
    made: list[int] = []
    try:
        made += os.pipe2(os.O_CLOEXEC)
        made += os.pipe2(os.O_CLOEXEC)
    except OSError as exc:
        _close_all(*made)
        raise ProcessStartError(_start_failure(program, cwd, exc)) from exc
    out_read, out_write, err_read, err_write = made
    return out_read, out_write, err_read, err_write


class _Child:
    """A started step process: its pid, a pidfd that becomes readable when it exits, and
    the read ends of its stdout and stderr pipes (non-blocking, read on the event loop).

    Spawned with vfork and exec (wfx.runtime.spawn, Popen's own helper; no shell) rather
    than an event-loop subprocess transport: the loop only ever waits on three file
    descriptors, so nothing per process runs on a thread or through a SIGCHLD handler.
    Not with `os.posix_spawn`, though it costs less: glibc's leaves its two internal
    signals ignored in the child, across the exec, where Popen's child has them at their
    defaults (and Python 3.11's has no working-directory action)."""

    def __init__(self, process: Process, pidfd: int, stdout: int, stderr: int, watch: select.epoll):
        self._process = process
        self.pidfd = pidfd
        self.pid = process.pid
        self.stdout = stdout
        self.stderr = stderr
        self._open = [stdout, stderr, pidfd]
        self._watch: select.epoll | None = watch
        """An epoll set of the pidfd and both pipes (made at the start, with the rest of the
        process's descriptors: a burst of steps that ran the process out of them fails a
        step that cannot start, never one that runs unwatched)."""

    def watch_set(self) -> select.epoll:
        """The epoll set of the pidfd and both pipes, until :meth:`close_watch_set`."""
        assert self._watch is not None
        return self._watch

    def close_watch_set(self) -> None:
        """Release the epoll set (the wait for the exit is over)."""
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    @classmethod
    def spawn_found(
        cls, words: Sequence[str], found: _Found, env: list[bytes], cwd: str | None
    ) -> _Child | None:
        """Start the simple command `words` without its shell: the program wfx.runtime.direct
        `found` for it, with `env` (bash's changes in it); None (nothing started) when
        only its shell can run it after all (a script with no #! line: bash runs it)."""
        try:
            return cls.spawn(words, env, None, cwd, program=found[0])
        except ProcessStartError:
            return None

    @classmethod
    def spawn(
        cls,
        argv: Sequence[str],
        env: list[bytes],
        path: str | None,
        cwd: str | None,
        program: str | None = None,
    ) -> _Child:
        """Start `argv` (the file `program`, when given, with `argv` as its arguments; else
        `argv[0]` looked up on `path`) in a new session with stdin on /dev/null and both
        outputs piped; `env` is its whole environment, encoded."""
        if not argv:
            raise ProcessStartError("empty command")
        out_read, out_write, err_read, err_write = _output_pipes(argv[0], cwd)
        try:
            process = spawn(
                argv,
                program=program,
                env=env,
                path=path,
                cwd=cwd,
                stdin=_devnull(),
                stdout=out_write,
                stderr=err_write,
            )
        except OSError as exc:
            _close_all(out_read, err_read)
            raise ProcessStartError(_start_failure(argv[0], cwd, exc)) from exc
        except ValueError as exc:  # a NUL byte or '=' where the OS cannot take it
            _close_all(out_read, err_read)
            raise ProcessStartError(f"cannot start {argv[0]}: {exc}") from exc
        finally:
            _close_all(out_write, err_write)
        pidfd = -1
        try:
            pidfd = os.pidfd_open(process.pid)
            watch = select.epoll(3)
        except OSError as exc:  # out of descriptors: do not leave the child unwatched
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            _close_all(out_read, err_read, *([pidfd] if pidfd >= 0 else []))
            raise ProcessStartError(f"cannot watch {argv[0]}: {exc.strerror or exc}") from exc
        for fd in (pidfd, out_read, err_read):
            watch.register(fd, select.EPOLLIN)
        os.set_blocking(out_read, False)
        os.set_blocking(err_read, False)
        return cls(process, pidfd, out_read, err_read, watch)

    @property
    def returncode(self) -> int | None:
        """The exit status once reaped: negative for a signal, None while running."""
        return self._process.returncode

    def reaped(self) -> bool:
        """Whether the process has exited, reaping it if so (never waits)."""
        return self._process.poll() is not None

    async def wait(self) -> int:
        """Wait on the event loop until the process exits, reap it, return its status."""
        while (code := self._process.poll()) is None:
            await anyio.wait_readable(self.pidfd)
        return code

    def close(self) -> None:
        """Release the pipes and the pidfd; kill and reap the process if it is somehow
        still there (never blocking the loop for long on one stuck in the kernel)."""
        if self._process.returncode is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=_KILL_WAIT)
        self.close_watch_set()
        _close_all(*self._open)
        self._open = []


def _close_all(*fds: int) -> None:
    for fd in fds:
        try:  # noqa: SIM105 - not contextlib.suppress: this runs three times for every step
            os.close(fd)
        except OSError:
            pass


@functools.cache
def _devnull() -> int:
    """A descriptor on /dev/null, opened once for every child's stdin (Popen's DEVNULL
    opens and closes one for each process). Close-on-exec, so it never leaks into a
    child other than as its stdin."""
    return os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)


def _start_failure(program: str, cwd: str | None, exc: OSError) -> str:
    if cwd is not None and exc.filename == cwd:
        if isinstance(exc, FileNotFoundError):
            return f"working directory does not exist: {cwd}"
        if isinstance(exc, NotADirectoryError):
            return f"working directory is not a directory: {cwd}"
        if isinstance(exc, PermissionError):
            return f"permission denied: working directory {cwd}"
    if isinstance(exc, FileNotFoundError):
        if "/" in program and os.path.exists(os.path.join(cwd or "", program)):
            return f"interpreter not found (check the #! line): {program}"
        return f"command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {program}"
    if exc.errno == errno.ENOEXEC:
        return f"not an executable (missing #! line?): {program}"
    return f"cannot start {program}: {exc.strerror or exc}"


async def _supervise(
    process: _Child,
    tree: _ProcessTree,
    capture: _Capture,
    timeout: float | None,
    kill_grace: float,
    pipe_grace: float,
) -> bool:
    """Wait for the process and its output; True when the timeout fired.

    The usual case runs in this one task: one epoll set watches the process and both
    pipes, and the pipes are read as they fill. Whatever is not that case (a timeout,
    a cancellation, a pipe a descendant still holds after the exit, a group still
    alive) winds down with a reading task per open pipe, shielded from a cancellation
    (Ctrl-C, a failing sibling): what the step prints while it is being stopped (a TERM
    trap) is still read and reported."""
    try:
        exited = await _watch(process, capture, timeout)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _wind_down(process, tree, capture, kill_grace, pipe_grace, stop=True)
        raise
    if exited and not capture.open_pipes() and not tree.group_alive():
        return False  # exited, both pipes closed, group empty: no /proc scan, no task
    await _wind_down(process, tree, capture, kill_grace, pipe_grace, stop=not exited)
    # a cancellation that came while the tree was stopped (shielded) is the caller's:
    # passed on here, even when nothing after the grace waited again
    await anyio.lowlevel.checkpoint_if_cancelled()
    return not exited


async def _watch(process: _Child, capture: _Capture, timeout: float | None) -> bool:
    """Read both pipes until the process exits (True) or `timeout` passes (False); at the
    exit, what its pipes still hold is read, up to an EOF or to what a descendant holding
    a pipe has not written yet."""
    with _Watch(process, capture) as watch:
        if timeout is None:
            await watch.until_exit()
            return True
        with anyio.move_on_after(timeout):
            await watch.until_exit()
            return True
    return False


class _Watch:
    """An epoll set of a step's pidfd and its open pipes, itself waited on by the loop:
    one wait per wake-up, whichever of the three is ready."""

    def __init__(self, process: _Child, capture: _Capture) -> None:
        self._process = process
        self._capture = capture
        self._poll = process.watch_set()
        self._pipes: dict[int, Stream] = {process.stdout: "stdout", process.stderr: "stderr"}

    def __enter__(self) -> _Watch:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._process.close_watch_set()

    async def until_exit(self) -> None:
        """Read what arrives until the process has exited and been reaped."""
        process = self._process
        while True:
            await anyio.wait_readable(self._poll.fileno())
            for fd, _events in self._poll.poll(0):
                stream = self._pipes.get(fd)
                if stream is not None and self._capture.read(fd, stream):
                    self._poll.unregister(fd)  # at EOF a pipe stays "ready" for good
            if process.reaped():
                for fd, stream in list(self._pipes.items()):
                    if stream in self._capture.open_pipes():
                        self._capture.read(fd, stream)
                return


async def _wind_down(
    process: _Child,
    tree: _ProcessTree,
    capture: _Capture,
    kill_grace: float,
    pipe_grace: float,
    *,
    stop: bool,
) -> None:
    """Read the pipes still open while the tree is stopped (`stop`: timed out or
    cancelled), or, after the exit, while a descendant holds a pipe or the group lives."""
    pipes = (process.stdout, process.stderr)
    async with anyio.create_task_group() as drains:
        capture.drain_open_pipes(drains, pipes)
        try:
            if stop or not await _closed(capture, pipes, pipe_grace) or tree.group_alive():
                with anyio.CancelScope(shield=True):
                    await tree.terminate(kill_grace)
                await _stop_reading(capture, pipes, pipe_grace)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await tree.terminate(kill_grace)
                await _stop_reading(capture, pipes, pipe_grace)
            raise


async def _closed(capture: _Capture, pipes: tuple[int, int], pipe_grace: float) -> bool:
    """Whether both pipes reach EOF: within `pipe_grace`, or later when no writer is left.
    A busy event loop (hundreds of steps starting at once) can let the grace run out
    before the drains saw an EOF that was already there; taking that for a descendant
    holding the pipe would cost a /proc scan per step."""
    if await capture.closed_within(pipe_grace):
        return True
    if _hung_up(pipes):
        await capture.closed_within(math.inf)  # only buffered output is left to read
        return True
    return False


def _hung_up(pipes: tuple[int, int]) -> bool:
    """Whether every writer of these pipe read ends has closed its end (POLLHUP)."""
    poller = select.poll()
    for fd in pipes:
        poller.register(fd, select.POLLIN)
    hung_up = {fd for fd, events in poller.poll(0) if events & select.POLLHUP}
    return hung_up == set(pipes)


async def _stop_reading(capture: _Capture, pipes: tuple[int, int], pipe_grace: float) -> None:
    """Read the pipes until they close; whoever still holds one after `pipe_grace` is
    beyond our reach, so stop reading it."""
    if not await _closed(capture, pipes, pipe_grace):
        capture.stop()


def _outcome(
    process: _Child, tree: _ProcessTree, capture: _Capture, timed_out: bool, duration: float
) -> ProcessOutcome:
    code = process.returncode
    assert code is not None
    return ProcessOutcome(
        returncode=code if code >= 0 else None,
        signal=-code if code < 0 else None,
        timed_out=timed_out,
        leftovers=tuple(tree.leftovers.values()),
        stdout_bytes=capture.counts["stdout"],
        stderr_bytes=capture.counts["stderr"],
        duration=duration,
    )


class _Capture:
    """Counts both streams, appends raw bytes to the log up to its limit, splits lines.

    A pipe is read by _Watch while the process runs, and by a task of its own
    (`drain`) while a run winds down; either way its bytes go through `read`."""

    def __init__(
        self,
        on_output: Callable[[Stream, str], None] | None,
        log: BinaryIO | None,
        log_limit: int,
        max_line: int,
    ) -> None:
        self.counts: dict[Stream, int] = {"stdout": 0, "stderr": 0}
        self._on_output = on_output
        self._log = log
        self._log_room = log_limit if log is not None else 0
        self._max_line = max_line
        self._open: set[Stream] = {"stdout", "stderr"}
        self._lines: dict[Stream, _LineSplitter] = {}
        self._closed: dict[Stream, anyio.Event] = {}
        self._scopes: list[anyio.CancelScope] = []

    def open_pipes(self) -> set[Stream]:
        """The streams not read to their end yet."""
        return self._open

    def read(self, fd: int, stream: Stream) -> bool:
        """Read what the non-blocking pipe `fd` holds now; True once it reached EOF."""
        while True:
            try:
                chunk = os.read(fd, _CHUNK)
            except BlockingIOError:
                return False
            if not chunk:
                self._end(stream)
                return True
            self.counts[stream] += len(chunk)
            self._write_log(chunk)
            if self._on_output is not None:
                lines = self._lines.get(stream)
                if lines is None:
                    lines = self._lines[stream] = _LineSplitter(
                        stream, self._on_output, self._max_line
                    )
                lines.feed(chunk)

    def drain_open_pipes(self, group: anyio.abc.TaskGroup, pipes: tuple[int, int]) -> None:
        """Start a reading task for each pipe not read to its end yet."""
        for fd, stream in zip(pipes, ("stdout", "stderr"), strict=True):
            if stream in self._open:
                self._closed[stream] = anyio.Event()
                group.start_soon(self.drain, fd, stream)

    async def drain(self, fd: int, stream: Stream) -> None:
        """Read the non-blocking pipe `fd` until EOF (or `stop()`)."""
        try:
            with anyio.CancelScope(shield=True) as scope:
                self._scopes.append(scope)
                while not self.read(fd, stream):
                    await anyio.wait_readable(fd)
        finally:
            self._end(stream)

    def _end(self, stream: Stream) -> None:
        """The stream ended (EOF, or we stopped reading it): emit its last line."""
        if stream not in self._open:
            return
        self._open.discard(stream)
        closed = self._closed.get(stream)
        if closed is not None:
            closed.set()
        lines = self._lines.pop(stream, None)
        if lines is not None:
            lines.finish()

    def stop(self) -> None:
        """Stop reading both pipes (their writers are out of reach)."""
        for scope in self._scopes:
            scope.cancel()

    async def closed_within(self, limit: float) -> bool:
        """Wait up to `limit` seconds for EOF on both pipes."""
        with anyio.move_on_after(limit):
            for stream, event in self._closed.items():
                if stream in self._open:
                    await event.wait()
            return True
        return False

    def _write_log(self, chunk: bytes) -> None:
        if self._log is None or self._log_room <= 0:
            return
        part = chunk if len(chunk) <= self._log_room else chunk[: self._log_room]
        self._log.write(part)
        self._log_room -= len(part)


class _LineSplitter:
    """Decodes one stream as UTF-8 and hands out lines of at most `max_line` characters."""

    def __init__(self, stream: Stream, emit: Callable[[Stream, str], None], max_line: int) -> None:
        self._stream = stream
        self._emit = emit
        self._max = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def feed(self, data: bytes) -> None:
        """Take the next bytes; emit every complete line and every full chunk of a long one."""
        *lines, tail = (self._partial + self._decoder.decode(data)).split("\n")
        for line in lines:
            self._emit_line(line)
        # Keep 1..max characters so a line of exactly k*max ends without an empty chunk.
        cut = (len(tail) - 1) // self._max * self._max
        if cut > 0:
            self._emit_line(tail[:cut])
            tail = tail[cut:]
        self._partial = tail

    def finish(self) -> None:
        """Emit the last line when the stream ended without a newline."""
        tail = self._partial + self._decoder.decode(b"", final=True)
        self._partial = ""
        if tail:
            self._emit_line(tail)

    def _emit_line(self, line: str) -> None:
        if len(line) <= self._max:
            self._emit(self._stream, line)
            return
        for start in range(0, len(line), self._max):
            self._emit(self._stream, line[start : start + self._max])


class _ProcessTree:
    """A step process, its process group and every process that inherited its marker."""

    def __init__(self, process: _Child, token: str) -> None:
        self.process = process
        # A session leader cannot change its group, so the group always includes the child.
        self.pgid = process.pid
        self.token = token.encode()
        self.leftovers: dict[int, Leftover] = {}
        self._victims: dict[int, _Victim] = {}
        self._termed = False

    def group_alive(self) -> bool:
        """True while any process (a zombie included) is left in the group."""
        try:
            os.killpg(self.pgid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def signal_group(self, signum: int) -> None:
        """Send `signum` to the whole process group, if anyone is left in it."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pgid, signum)

    async def terminate(self, grace: float) -> None:
        """SIGTERM the group and marked descendants once, wait `grace`, SIGKILL the rest, reap."""
        try:
            if not self._termed:
                self._termed = True
                await self._term(grace)
            await self._kill_survivors()
            await self.process.wait()
        finally:
            self._release()

    async def _term(self, grace: float) -> None:
        victims = self._census()
        self.signal_group(signal.SIGTERM)
        for victim in victims:
            # Group members already got it: a trap must run once, not twice.
            if victim.pgid != self.pgid:
                victim.send(signal.SIGTERM)
        with anyio.move_on_after(grace):
            await self._all_gone(victims)

    async def _kill_survivors(self) -> None:
        for _ in range(_KILL_ROUNDS):
            victims = self._census()
            if not victims and self.process.returncode is not None:
                return
            self.signal_group(signal.SIGKILL)
            for victim in victims:
                victim.send(signal.SIGKILL)
            with anyio.move_on_after(_KILL_WAIT):
                await self._all_gone(victims)

    async def _all_gone(self, victims: list[_Victim]) -> None:
        await self.process.wait()
        for victim in victims:
            await victim.gone()

    def _census(self) -> list[_Victim]:
        """Every live process of the group or carrying our marker, held by a pidfd."""
        alive = []
        for info in _census({self.token}, {self.pgid}, exclude=(self.pgid,)):
            victim = self._victims.get(info.pid)
            if victim is None or victim.start != info.start:
                victim = _Victim.open(info)
                if victim is None:
                    continue
                self._victims[info.pid] = victim
                self.leftovers.setdefault(info.pid, Leftover(info.pid, victim.command))
            alive.append(victim)
        return alive

    def _release(self) -> None:
        for victim in self._victims.values():
            victim.close()
        self._victims.clear()


class _Victim:
    """A descendant held by a pidfd, so a reused pid can never receive our signals."""

    def __init__(self, info: _ProcInfo, fd: int, command: str) -> None:
        self.pid = info.pid
        self.pgid = info.pgid
        self.start = info.start
        self.command = command
        self._fd = fd

    @classmethod
    def open(cls, info: _ProcInfo) -> _Victim | None:
        """A pidfd on the process `info` describes, or None when it is gone or was replaced."""
        try:
            fd = os.pidfd_open(info.pid)
        except _VANISHED:
            return None
        try:
            same = _stat(info.pid)
            if same is not None and same.start == info.start:
                return cls(info, fd, _command_line(info.pid))
        except _VANISHED:
            pass
        os.close(fd)
        return None

    def send(self, signum: int) -> None:
        """Signal the process unless it has already exited."""
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self._fd, signum)

    async def gone(self) -> None:
        """Wait until the process has exited."""
        await anyio.wait_readable(self._fd)

    def exited(self) -> bool:
        """Whether the process has exited (its pidfd is readable), without waiting."""
        poller = select.poll()
        poller.register(self._fd, select.POLLIN)
        return bool(poller.poll(0))

    def fileno(self) -> int:
        """The pidfd: readable once the process has exited."""
        return self._fd

    def close(self) -> None:
        """Release the pidfd."""
        os.close(self._fd)


@dataclass(frozen=True, slots=True)
class _ProcInfo:
    """What /proc/<pid>/stat tells: the group, and the start time that tells a reused pid."""

    pid: int
    pgid: int
    start: int


def _census(
    tokens: Collection[bytes], groups: Collection[int], exclude: Collection[int]
) -> list[_ProcInfo]:
    """Live processes in one of `groups` or carrying one of `tokens` in their environment."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) in exclude:
            continue
        pid = int(name)
        try:
            info = _stat(pid)
            if info is not None and (info.pgid in groups or _token(pid) in tokens):
                found.append(info)
        except _VANISHED:
            continue
    return found


def _stat(pid: int) -> _ProcInfo | None:
    """The process's group and start time; None for a zombie (it can no longer run)."""
    data = _read_proc(pid, "stat")
    # The command name may hold spaces and parentheses: the fields start after the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    if fields[0] in (b"Z", b"X"):
        return None
    return _ProcInfo(pid, pgid=int(fields[2]), start=int(fields[19]))


def _token(pid: int) -> bytes | None:
    environ = _read_proc(pid, "environ")
    at = environ.find(_MARKER)
    while at > 0 and environ[at - 1] != 0:
        at = environ.find(_MARKER, at + 1)
    if at < 0:
        return None
    start = at + len(_MARKER)
    end = environ.find(b"\0", start)
    return environ[start : end if end >= 0 else len(environ)]


def _command_line(pid: int) -> str:
    try:
        raw = _read_proc(pid, "cmdline")
    except _VANISHED:
        return ""
    return raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")


def _read_proc(pid: int, name: str) -> bytes:
    fd = os.open(f"/proc/{pid}/{name}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _kill_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, signum)
