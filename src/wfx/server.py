"""wfx's warm server: wfx imported once, forked for each command.

A short `wfx` command spends most of its time in Python importing wfx and the libraries
it stands on, the same work every time. A server does it once, then waits on a socket in
Linux's abstract namespace whose name is a hash of everything that must be the same for
it to stand in for a command's process (`wfx.launch.key_material`: the Python, its path
and flags, the variables Python reads as it starts, the user, groups, namespaces,
control group and privileges). For each command, the `wfx` process (`wfx.launch`) sends
its arguments, environment, working directory, standard streams, umask, resource limits,
priority, CPU affinity and signal dispositions; the server forks; the copy takes all of
these on, in a session of its own, and runs the command exactly as `wfx` would have run
it in its own process. The copy (or, when it dies, the server) reports its exit status back,
and `wfx` ends with it; signals `wfx` receives are passed on to the copy, and when `wfx`
itself is killed the copy is killed too. The copy of the next command is forked while
none runs, and makes its own copy of the pages earlier commands wrote to before the
command comes (docs/server.md, "The spare copy").

A server only stands in for processes of its own user (both ends check the other's
credentials before anything is sent), never for one whose key differs, and never with
code that changed since it started: once a command has connected, it checks that no
file it imported (nor wfx's schema or grammar) changed, and when one did it stops and
the command runs in its own process. It exits after `WFX_SERVER_IDLE` seconds (default
900) without a command, at `wfx server stop`, or on SIGTERM once the commands it runs
have ended.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import io
import marshal
import os
import re
import select
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, NoReturn, TextIO

from wfx import launch
from wfx.codewatch import CodeWatch

#: seconds without a command after which a server exits
IDLE_VARIABLE = "WFX_SERVER_IDLE"
DEFAULT_IDLE = 900.0
#: seconds between two checks, while idle, that the imported code is still installed
CHECK_VARIABLE = "WFX_SERVER_CHECK"
DEFAULT_CHECK = 60.0
#: seconds a client has to send its request once connected
REQUEST_TIMEOUT = 5.0
#: the number that marks the command's connection among the descriptors a spare receives
_CONNECTION = -2
#: how many copies report the pages they write to before spares are warmed with them
_REPORTS = 2
#: what a copy says on its channel to the server when its command waits on its steps alone
_WAITING = b"w"
#: what `wfx run` and `wfx plan` of a workflow seen before import: imported before the
#: server takes its first command
FIRST = (
    "encodings.utf_8_sig",
    "asyncio",
    "anyio._backends._asyncio",
    "anyio._core._signals",
    "sqlite3",
    "wfx.cli",
    "wfx.api",
    "wfx.runtime.statedir",
    "wfx.runtime.modelcache",
    "wfx.runtime.failpoints",
    "wfx.runtime.journal",
    "wfx.runtime.engine",
    "wfx.compiler",
    "wfx.fingerprint",
    "wfx.include",
    "wfx.envfile",
    "wfx.plan",
    "wfx.render.console",
    "wfx.render.run_view",
    "wfx.render.run_result",
    "wfx.render.plan_document",
    "wfx.render.plan_plain",
)
#: what other commands may need, imported between commands once the server takes them
#: (the optional integrations, the language server and Dask, are not: Dask starts
#: threads, and a process with threads must not fork)
LATER = (
    "subprocess",
    "hashlib",
    "hmac",
    "pickle",
    "random",
    "json",
    "yaml",
    "jsonschema",
    "lark",
    "rich.console",
    "rich.table",
    "rich.text",
    "rich.markup",
    "rich.live",
    "ctypes",
)
#: wfx's own modules left out of the preload: optional extras, and this server
NOT_PRELOADED = (
    "wfx.__main__",
    "wfx.server",
    "wfx.lsp",
    "wfx.cli_lsp",
    "wfx.runtime.dask",
    "wfx.export",
    "wfx.cli_export",
)


@dataclass(frozen=True)
class Status:
    """What `wfx server status` shows of a running server."""

    pid: int
    started: float
    served: int
    running: int
    idle_limit: float
    spare: int = 0
    """The pid of the copy forked ahead of the next command (0: none yet)."""
    kept: int = 0
    """How many workflows from model caches the server keeps in memory for its copies."""
    watching: bool = False
    """Whether inotify watches the files of its code (else each command checks them all)."""
    stale: bool = False
    """Whether it found its code changed: it serves nothing more and ends."""


def main(argv: list[str]) -> int:
    """`python -P -m wfx.server BIN_DIR`: serve until idle (BIN_DIR: the first entry of the
    `wfx` command's own `sys.path`, which `-P` leaves out)."""
    os.closerange(3, _descriptor_limit())  # hold nothing the starting `wfx` was given
    os.chdir("/")  # and keep no directory in use
    with contextlib.suppress(OSError):  # started by hand: leave the terminal's session
        os.setsid()
    if argv:
        sys.path.insert(0, argv[0])
    material = launch.key_material()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(launch.address(material))
    except OSError:  # another server has this name
        listener.close()
        return 0
    origin = installation()
    steps = preloading()
    next(steps)()
    listener.listen(128)  # until now, a client is refused and runs its command itself
    _Server(
        listener,
        material,
        _seconds(os.environ, IDLE_VARIABLE, DEFAULT_IDLE),
        steps,
        origin,
        check_every=_seconds(os.environ, CHECK_VARIABLE, DEFAULT_CHECK),
    ).serve()
    return 0


def _descriptor_limit() -> int:
    try:
        return int(os.sysconf("SC_OPEN_MAX"))
    except (OSError, ValueError):
        return 1024


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        value = float(env.get(name, default))
    except ValueError:
        return default
    return value if value > 0 else default


def preload() -> None:
    """Everything the server imports and builds before and after it takes its first
    command, at once (tests; the server itself spreads the later part between commands)."""
    for step in preloading():
        step()


def preloading() -> Iterator[Callable[[], None]]:
    """The server's preparation, in small steps: the imports of a `wfx run` or `wfx plan`
    first (one step; the server takes commands after it), then each other module wfx's
    commands may import, then what every process would build the same way from wfx's own
    files (the schema's validators, the expression parser, the stamp of wfx's code), then
    everything set aside from the garbage collector (a fork starts with nothing for it to
    scan)."""
    yield lambda: _import_all(FIRST)
    from wfx.runtime.classcache import wfx_modules  # noqa: PLC0415 - imported by then

    for name in (*LATER, *wfx_modules(NOT_PRELOADED)):
        yield lambda name=name: _import_all((name,))  # type: ignore[misc]
    yield _build_once
    yield _set_aside


def _import_all(names: Iterable[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            importlib.import_module(name)
    _set_aside()


def _build_once() -> None:
    from wfx import schema, schemacheck  # noqa: PLC0415
    from wfx.expr import parser  # noqa: PLC0415
    from wfx.runtime import classcache, modelcache, userkey  # noqa: PLC0415

    warmers: tuple[Callable[[], object], ...] = (
        lambda: parser.parse("1 + 1"),
        lambda: schema.hints("x-wfx-hint"),
        schema.aliases,
        lambda: schemacheck.is_valid({"wfx": 1, "steps": []}),
        schema._validator,
        modelcache._code_stamp,
    )
    for warm in warmers:
        with contextlib.suppress(Exception):
            warm()
    with contextlib.suppress(Exception):
        _rehearse_parsing()
    from wfx.cli import steady_valid_signals  # noqa: PLC0415 - preloaded

    steady_valid_signals()
    classcache.save()
    # the key was read from the server's own environment: each copy reads it from its
    # command's (XDG_CACHE_HOME may differ)
    userkey.secret.cache_clear()


def _rehearse_parsing() -> None:
    """Parse the commands users run most, a dozen times each, without running them: the
    interpreter specializes click's code as it runs it, and a copy forked from a server
    that has run it takes it so (a `wfx run`'s parse went from 2.2 to 1.4 ms in the
    copy: docs/performance.md, seventeenth pass). Nothing is invoked: callbacks that are
    not eager never run while parsing, and with `resilient_parsing` neither do
    `--version`'s nor `--help`'s; the file is not opened."""
    from wfx.cli import cli  # noqa: PLC0415 - preloaded

    for _ in range(12):
        for name in ("run", "plan", "validate"):
            group = cli.make_context("wfx", [name, "wfx.yaml"], resilient_parsing=True)
            command = cli.get_command(group, name)
            if command is not None:
                command.make_context(name, ["wfx.yaml"], parent=group, resilient_parsing=True)


def _set_aside() -> None:
    gc.collect()
    gc.freeze()


def code_state() -> dict[str, tuple[int, int, int]]:
    """The identity (modification time, size, inode) of every file this process's code
    and wfx's data come from, Python's own library aside (`sys.version`, in the server's
    key, names it): any change means the server's copy of it is stale."""
    from wfx.resources import data_dir  # noqa: PLC0415

    standard = os.path.dirname(os.__file__) + os.sep
    files: list[str] = []
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None)
        if isinstance(path, str) and not (
            path.startswith(standard) and "site-packages" not in path
        ):
            files.append(path)
    for kind in ("schema", "grammar"):
        with contextlib.suppress(OSError):
            folder = data_dir(kind)
            files.extend(str(folder / name) for name in os.listdir(folder))
    state: dict[str, tuple[int, int, int]] = {}
    for path in files:
        try:
            info = os.stat(path)
        except OSError:
            state[path] = (-1, -1, -1)
        else:
            state[path] = (info.st_mtime_ns, info.st_size, info.st_ino)
    return state


def installation() -> tuple[object, ...]:
    """Every file of wfx's code and data (path, size, modification time) and the
    modification time of each folder on `sys.path`, where installing or removing a
    package shows: taken before the server imports anything and again once it imported
    everything, so that a change in between (its imports may mix old and new files)
    stops it."""
    from wfx.runtime.modelcache import code_files  # noqa: PLC0415

    folders: list[tuple[str, int]] = []
    for folder in sys.path:
        with contextlib.suppress(OSError):
            folders.append((folder, os.stat(folder or ".").st_mtime_ns))
    return (tuple(code_files()), tuple(folders))


def fresh(before: Mapping[str, tuple[int, int, int]]) -> bool:
    """True when every file in `before` is as it was."""
    for path, identity in before.items():
        try:
            info = os.stat(path)
        except OSError:
            return False
        if (info.st_mtime_ns, info.st_size, info.st_ino) != identity:
            return False
    return True


@dataclass
class _Run:
    pid: int
    pidfd: int
    conn: socket.socket
    client_gone: bool = False
    #: a spare's channel, on which it says it waits on its steps alone (`_WAITING`), then
    #: that it has finished (all but the kernel's teardown of the process is done) with
    #: the model-cache entries it unpickled, and, when asked, then reports the pages it
    #: wrote to
    control: socket.socket | None = None
    report: bytearray = field(default_factory=bytearray)
    waiting: bool = False
    finished: bool = False
    #: whether the entries it named were taken from `report` yet
    named: bool = False


@dataclass
class _Spare:
    """A copy forked ahead of the next command, waiting on its end of `control` (a socket
    pair with the server) for the command, for word to warm up, or to open a journal ahead."""

    pid: int
    pidfd: int
    control: socket.socket
    warming: bool = False
    journal_asked: bool = False


@dataclass
class _Server:
    listener: socket.socket
    material: bytes
    idle_limit: float
    preparing: Iterator[Callable[[], None]] | None
    origin: tuple[object, ...]
    selector: selectors.BaseSelector = field(default_factory=selectors.DefaultSelector)
    runs: dict[int, _Run] = field(default_factory=dict)
    served: int = 0
    started: float = field(default_factory=time.time)
    stopping: bool = False
    #: when the last command started or ended (asking for the status is not a command)
    last_command: float = field(default_factory=time.monotonic)
    #: when the idle server next checks that its code is still installed
    next_check: float = 0.0
    check_every: float = DEFAULT_CHECK
    code: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    #: SIGTERM came: stop taking commands (the handler only notes it and wakes the loop)
    terminated: bool = False
    wake: tuple[socket.socket, socket.socket] = field(default_factory=socket.socketpair)
    #: the copy forked ahead of the next command (once the server is prepared)
    spare: _Spare | None = None
    #: the pages copies wrote to as they ran commands (start and end addresses): what a
    #: spare warms first
    hot: list[tuple[int, int]] = field(default_factory=list)
    #: how many copies reported the pages they wrote to
    reports: int = 0
    #: what copies named of the model-cache entries they unpickled, to keep once idle
    to_keep: list[object] = field(default_factory=list)
    #: the journal the last command that ended wrote to, which the next spare opens ahead
    #: (None after a command that wrote to none, such as `wfx plan`: nothing is opened to
    #: write after it either)
    journal: str | None = None
    #: inotify's word that the files of `code` are as they were: no `stat` of each
    watch: CodeWatch = field(default_factory=CodeWatch)
    #: its code was found changed, by whichever request connected first after the change
    #: (the watch says so once): nothing more is served
    stale: bool = False

    def serve(self) -> None:
        """Take commands until stopped or idle, and until the last running one ended."""
        self.code = code_state()
        self.watch.watch(self.code)
        self.next_check = time.monotonic() + self.check_every
        self.selector.register(self.listener, selectors.EVENT_READ, self._accept)
        for end in self.wake:
            end.setblocking(False)
        self.selector.register(self.wake[0], selectors.EVENT_READ, self._woken)
        signal.set_wakeup_fd(self.wake[1].fileno(), warn_on_full_buffer=False)
        signal.signal(signal.SIGTERM, self._note_termination)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        while not (self.stopping and not self.runs):
            events = self.selector.select(self._timeout())
            if not events:
                if self._prepare_more():
                    continue
                if not self.runs and time.monotonic() >= self.last_command + self.idle_limit:
                    break
            if not self.runs and not self._still_installed():
                break
            registered = self.selector.get_map()
            for key, _mask in events:
                if registered.get(key.fd) is key:  # not closed by a handler of this round
                    key.data(key.fileobj)
            self._keep_named()
            self._keep_a_spare()
        self._stop_listening()

    def _note_termination(self, _signum: int, _frame: object) -> None:
        self.terminated = True

    def _woken(self, end: socket.socket) -> None:
        with contextlib.suppress(OSError):
            end.recv(4096)
        if self.terminated:
            self._stop_listening()

    def _timeout(self) -> float | None:
        if self.preparing is not None:
            return 0.0
        if self.runs:
            return None
        idle_end = self.last_command + self.idle_limit
        return max(0.0, min(idle_end, self.next_check) - time.monotonic())

    def _still_installed(self) -> bool:
        """Every `check_every` seconds while idle: whether the code is still as imported (an
        upgraded or removed installation ends its server soon, not at its idle limit)."""
        now = time.monotonic()
        if now < self.next_check:
            return True
        self.next_check = now + self.check_every
        return fresh(self.code)

    def _prepare_more(self) -> bool:
        """Take the next step of the preparation; False once there is none."""
        if self.preparing is None:
            return False
        step = next(self.preparing, None)
        if step is None:
            self.preparing = None
            # the files imported since join the check; those imported before keep the
            # identity they had when they were (a change meanwhile is a change)
            self.code = {**code_state(), **self.code}
            self.watch.watch(self.code)
            if installation() != self.origin:  # changed while it was being imported
                self._stop_listening()
            return False
        step()
        return True

    def _stop_listening(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.selector.unregister(self.listener)
            self.listener.close()  # the name is free for a new server at once
        self._drop_spare()

    # -- the spare copy ---------------------------------------------------------------------

    def _keep_a_spare(self) -> None:
        """Fork the copy of the next command now, while nobody waits for it (a prepared
        server with no spare and no command running, still taking commands): the fork,
        and the first writes to each page it shares with the server, are then off the
        command's path."""
        if self.spare is not None or self.preparing is not None or self.stopping:
            return
        if self._busy():  # never beside a working command: it would take CPU from it
            return
        if threading.active_count() != 1:
            return
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:  # out of descriptors: commands are forked when they come
            return
        try:
            pid = os.fork()
        except OSError:  # out of processes or memory: likewise
            ours.close()
            theirs.close()
            return
        if pid == 0:
            ours.close()
            self._be_spare(theirs)
        theirs.close()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            ours.close()
            return
        spare = _Spare(pid, pidfd, ours)
        self.spare = spare
        self.selector.register(pidfd, selectors.EVENT_READ, lambda _fd: self._spare_ended(spare))
        self._journal_ahead()
        self._warm_spare()

    def _busy(self) -> bool:
        """Whether a command is working: one that said it finished is not, nor one that
        said it waits on its steps alone (the next spare is then forked and warmed while
        it waits: back to back, the next command would otherwise come before the spare
        had warmed up, docs/performance.md, fifteenth pass)."""
        return any(not (run.finished or run.waiting) for run in self.runs.values())

    def _journal_ahead(self) -> None:
        """Have the new spare open the journal the last command wrote to, ahead of the
        next command, which most often writes to the same (journal.open_ahead)."""
        spare, path = self.spare, self.journal
        if spare is None or path is None or spare.journal_asked:
            return
        spare.journal_asked = True
        data = os.fsencode(path)
        try:
            spare.control.sendall(launch.frame(("ahead", len(data), [])) + data)
        except OSError:
            self._drop_spare()

    def _warm_spare(self) -> None:
        """Tell the spare to warm up (once copies have said which pages to warm)."""
        spare = self.spare
        if spare is None or spare.warming or self.reports < _REPORTS:
            return
        spare.warming = True
        try:
            spare.control.sendall(launch.frame(("warm", 0, [])))
        except OSError:
            self._drop_spare()

    def _spare_ended(self, spare: _Spare) -> None:
        """The spare died before it took a command (killed, out of memory): reap it."""
        if self.spare is spare:
            self._drop_spare()

    def _drop_spare(self) -> None:
        spare, self.spare = self.spare, None
        if spare is not None:
            self.selector.unregister(spare.pidfd)
            _end_spare(spare)

    def _hand_over(
        self, conn: socket.socket, payload: bytes, fds: list[int], numbers: list[int]
    ) -> tuple[int, int, socket.socket | None] | None:
        """Give the command to the spare (the connection and the client's descriptors go
        with it): its pid, pidfd, and its channel when it is to report the pages it writes
        to; None when there is no spare able to take it."""
        spare, self.spare = self.spare, None
        if spare is None:
            return None
        self.selector.unregister(spare.pidfd)
        learn = self.reports < _REPORTS  # then it was never warmed: its writes tell
        kind = "learn" if learn else "run"
        message = launch.frame((kind, len(payload), [_CONNECTION, *numbers])) + payload
        rights = (socket.SOL_SOCKET, socket.SCM_RIGHTS, launch.native_ints([conn.fileno(), *fds]))
        try:
            sent = spare.control.sendmsg([message], [rights])
            spare.control.sendall(message[sent:])
        except OSError:  # it died meanwhile: a fresh fork takes the command
            _end_spare(spare)
            return None
        spare.control.setblocking(False)
        return spare.pid, spare.pidfd, spare.control

    def _be_spare(self, control: socket.socket) -> NoReturn:
        """In the spare: leave the server, then wait for the command (warming up when told
        to); exit when the server goes away first."""
        from wfx.runtime import journal  # noqa: PLC0415 - preloaded

        try:
            self._leave_the_server()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            regions = _writable_private_regions()  # the server's, before any command
            warming = False
            while True:
                kind, payload, fds, numbers = _read_request(control)
                if kind == "warm":
                    warming = True
                    _warm_up(control, self.hot, regions)
                elif kind == "ahead":
                    journal.open_ahead(os.fsdecode(payload))
                    if warming:  # this message stopped it: go on (pages warmed stay so)
                        _warm_up(control, self.hot, regions)
                elif kind in ("run", "learn") and numbers[:1] == [_CONNECTION]:
                    break
                else:
                    _close_all(fds)
            conn = socket.socket(fileno=fds[0])
            request = marshal.loads(payload)
        except BaseException:  # the server closed its end, or sent nonsense: nothing ran
            journal.close_ahead()
            os._exit(0)
        learned = regions if kind == "learn" else None
        self._run_as_command(conn, request, fds[1:], numbers[1:], control, learned)

    def _accept(self, listener: socket.socket) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        try:
            if not launch.same_user(conn):
                conn.close()
                return
            # checked while `wfx` is still building its request, not after it came: the
            # code is the one installed when this command connected
            installed = self._installed()
            conn.settimeout(REQUEST_TIMEOUT)
            kind, payload, fds, numbers = _read_request(conn)
        except (OSError, ValueError, EOFError, TypeError):
            conn.close()
            return
        try:
            self._answer(conn, kind, payload, fds, numbers, installed)
        finally:
            _close_all(fds)

    def _installed(self) -> bool:
        """Whether the code is still as imported; once it was not, never again (the watch
        reports a change to one request only, which may be a `wfx server status`)."""
        if not self.stale and not (self.watch.unchanged() or fresh(self.code)):
            self.stale = True
        return not self.stale

    def _answer(
        self,
        conn: socket.socket,
        kind: str,
        payload: bytes,
        fds: list[int],
        numbers: list[int],
        installed: bool,
    ) -> None:
        if kind == "status":
            self._reply_and_close(conn, ("status", self._status_tuple()))
            if not installed:
                self._stop_listening()
        elif kind == "stop":
            self._reply_and_close(conn, ("stopping", len(self.runs)))
            self._stop_listening()
        elif kind == "run":
            self._start(conn, payload, fds, numbers, installed)
        else:
            conn.close()

    def _status_tuple(self) -> tuple[int, float, int, int, float, int, int, bool, bool]:
        from wfx.runtime.modelcache import kept  # noqa: PLC0415 - preloaded

        spare = self.spare.pid if self.spare is not None else 0
        running = len(self.runs)
        watching = self.watch.watching
        return (
            os.getpid(),
            self.started,
            self.served,
            running,
            self.idle_limit,
            spare,
            kept(),
            watching,
            self.stale,
        )

    def _reply_and_close(self, conn: socket.socket, message: object) -> None:
        with contextlib.suppress(OSError):
            _write_message(conn, message)
        conn.close()

    def _start(
        self,
        conn: socket.socket,
        payload: bytes,
        fds: list[int],
        numbers: list[int],
        installed: bool,
    ) -> None:
        refusal = self._refusal(payload, fds, numbers, installed)
        if refusal is not None:
            self._reply_and_close(conn, ("refused", refusal))
            if refusal == "stale":
                self._stop_listening()
            return
        handed = self._hand_over(conn, payload, fds, numbers)
        if handed is None:
            handed = self._fork_for(conn, marshal.loads(payload), fds, numbers)
        if handed is None:  # no process to be had: `wfx` runs the command itself
            self._reply_and_close(conn, ("refused", "no process could be forked"))
            return
        self.served += 1
        self.last_command = time.monotonic()
        pid, pidfd, control = handed
        run = _Run(pid, pidfd, conn, control=control)
        if control is not None:
            self.selector.register(control, selectors.EVENT_READ, lambda _c: self._read_report(run))
        self.runs[pidfd] = run
        conn.setblocking(True)
        conn.settimeout(None)
        self.selector.register(pidfd, selectors.EVENT_READ, lambda _fd: self._ended(run))
        self.selector.register(conn, selectors.EVENT_READ, lambda _c: self._client_gone(run))

    def _refusal(
        self, payload: bytes, fds: list[int], numbers: list[int], installed: bool
    ) -> str | None:
        """Why the server cannot run this request (`installed`: whether its code was still
        as it imported it once the client connected), or None."""
        try:
            request = marshal.loads(payload)
        except (ValueError, EOFError, TypeError):
            return "unreadable request"
        if not _well_formed(request, fds, numbers):
            return "unreadable request"
        if request["key"] != self.material:
            return "different setup"
        if not installed:
            return "stale"
        if threading.active_count() != 1:
            return "the server has threads"
        return None

    def _fork_for(
        self, conn: socket.socket, request: Mapping[str, Any], fds: list[int], numbers: list[int]
    ) -> tuple[int, int, socket.socket] | None:
        """Fork a copy for the command now (no spare could take it): its pid, pidfd and
        channel (on which it says it has finished, as a spare does: the server must not
        kill it once `wfx` has gone); None when no process can be made (the command then
        runs in `wfx`'s own)."""
        try:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        except OSError:
            return None
        try:
            pid = os.fork()
        except OSError:
            ours.close()
            theirs.close()
            return None
        if pid == 0:
            try:
                ours.close()
                self._leave_the_server()
            except BaseException:
                os._exit(1)
            self._run_as_command(conn, request, fds, numbers, theirs)
        theirs.close()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            ours.close()
            return None
        ours.setblocking(False)
        return pid, pidfd, ours

    def _leave_the_server(self) -> None:
        """In a fork: let go of everything of the server's (its sockets, its signal
        wake-up, the other commands' connections, the spare's channel)."""
        signal.set_wakeup_fd(-1)
        self.selector.close()
        self.listener.close()
        self.watch.close()
        for end in self.wake:
            end.close()
        for run in self.runs.values():
            run.conn.close()
            os.close(run.pidfd)
        if self.spare is not None:
            self.spare.control.close()
            os.close(self.spare.pidfd)

    def _run_as_command(
        self,
        conn: socket.socket,
        request: Mapping[str, Any],
        fds: list[int],
        numbers: list[int],
        control: socket.socket | None = None,
        learned: list[tuple[int, int]] | None = None,
    ) -> NoReturn:
        """In the copy: take on the client's process state, say so, and run the command
        (never returns). A spare tells the server on `control` once all but the end is
        done, and then, with the server's regions to `learn` from, the pages it wrote."""
        try:
            os.setpgid(0, 0)  # a group of its own, in a session with no terminal
            take_on(request, fds, numbers)
            read_again()
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                _write_message(conn, ("refused", f"{type(exc).__name__}: {exc}"))
            os._exit(1)
        try:
            _write_message(conn, ("started", os.getpid()))
        except OSError:
            os._exit(1)
        from wfx.cli import entry  # noqa: PLC0415 - preloaded
        from wfx.runtime.engine import when_waiting  # noqa: PLC0415 - preloaded
        from wfx.runtime.journal import close_later, last_written  # noqa: PLC0415 - preloaded
        from wfx.runtime.modelcache import unpickled  # noqa: PLC0415 - preloaded

        close_journals = close_later()
        if control is not None:
            when_waiting(lambda: _say_waiting(control))

        # The copy keeps its end of the connection and says how it is ending: once all is
        # done but the kernel's teardown of the process ("exited", the standard streams
        # closed first), `wfx` ends at once; should the server die meanwhile, `wfx` still
        # learns the status from the copy itself.
        def last_word(code: int, final: bool) -> None:
            if not final:  # Python's own exit follows, with threads: nothing after it
                close_journals()
                _tell(conn, ("exiting", code))
                return
            for fd in (0, 1, 2):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if control is not None:  # before `wfx` ends: the server must not kill it
                with contextlib.suppress(OSError):
                    control.sendall(b"." + marshal.dumps((*unpickled(), last_written())))
            _tell(conn, ("exited", code))
            close_journals()
            if control is not None and learned is not None:
                with contextlib.suppress(Exception):
                    _report_written_pages(control, learned)

        entry(last_word)

    def _ended(self, run: _Run) -> None:
        _pid, status = os.waitpid(run.pid, 0)
        self.last_command = time.monotonic()
        if run.control is not None:
            self._read_report(run)
        self._learn(run)
        self.selector.unregister(run.pidfd)
        if not run.client_gone:
            self.selector.unregister(run.conn)
        os.close(run.pidfd)
        del self.runs[run.pidfd]
        self._reply_and_close(run.conn, ("ended", status))
        if not self._busy():
            self._warm_spare()

    def _read_report(self, run: _Run) -> None:
        """Take in what the copy has sent so far (it never blocks): its first byte says it
        has finished, so the next spare can be forked while its process is torn down."""
        assert run.control is not None
        while True:
            try:
                chunk = run.control.recv(1 << 16)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                chunk = b""
            if not chunk:
                self.selector.unregister(run.control)
                run.control.close()
                run.control = None
                return
            while chunk and not run.finished:
                if chunk[:1] == _WAITING:
                    run.waiting = True
                else:
                    run.finished = True
                chunk = chunk[1:]
            run.report += chunk
            self._take_named(run)

    def _learn(self, run: _Run) -> None:
        """Take in what the copy told once it finished: the workflows it unpickled from the
        model cache, which the server keeps in memory for the copies after it, and (when
        it was asked to) the pages it wrote to, which a spare warms."""
        if run.control is not None:
            self.selector.unregister(run.control)
            run.control.close()
            run.control = None
        self._take_named(run)
        told = _told(bytes(run.report))
        if len(told) > 1:
            self.hot = _merged(self.hot + _page_ranges(told[1]))
            self.reports += 1

    def _take_named(self, run: _Run) -> None:
        """Take the entries the copy named (the first value after "finished"), once it
        came whole."""
        if not run.named and (told := _told(bytes(run.report))):
            run.named = True
            self.to_keep.append(told[0])
            first = told[0]
            if isinstance(first, tuple) and len(first) == 3:  # after a plan, none: it writes
                self.journal = first[2] if isinstance(first[2], str) else None  # nothing

    def _keep_named(self) -> None:
        """Keep the entries copies named, while no command runs (unpickling a big one takes
        tens of milliseconds of CPU), before the next spare is forked: it inherits them."""
        if not self.to_keep or self._busy():
            return
        named, self.to_keep = self.to_keep, []
        if any([_keep_entries(told) for told in named]):
            _set_aside()

    def _client_gone(self, run: _Run) -> None:
        """The `wfx` process closed its end (it was killed): the command goes with it."""
        try:
            data = run.conn.recv(1, socket.MSG_PEEK)
        except OSError:
            data = b""
        if data:  # a client sends nothing more; ignore it and keep waiting
            run.conn.recv(4096)
            return
        self.selector.unregister(run.conn)
        run.client_gone = True
        if run.control is not None:
            self._read_report(run)  # it said "finished" before `wfx` could end
        if not run.finished:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(run.pidfd, signal.SIGKILL)


#: Linux's madvise(2) advice that makes every page of a range present and writable, as
#: a write would (5.14 on; an older kernel says EINVAL, and nothing is warmed)
_MADV_POPULATE_WRITE = 23
_PAGE = os.sysconf("SC_PAGE_SIZE")
#: how much a spare warms between two looks for a command (about a quarter millisecond)
_WARM_CHUNK = 64 * _PAGE
#: the top byte of a /proc/PID/pagemap entry of a page that is present (bit 63) and
#: mapped by this process alone (bit 56), mapped to 1; any other to 0
_WRITTEN = bytes(int(byte & 0x81 == 0x81) for byte in range(256))


def _warm_up(
    control: socket.socket, hot: list[tuple[int, int]], regions: list[tuple[int, int]]
) -> None:
    """Give this fork its own copy of the pages it shares with the server that a command
    will write to (`hot`: those earlier copies wrote to; all of `regions` when no copy
    could tell), until a message arrives on `control`.

    After a fork, the first write to each page shared with the parent traps into the
    kernel, which copies the page; a command's copy writes to thousands of them as it
    runs (each object it touches has its reference count changed), about 11 ms of a short
    command (docs/performance.md). The spare makes those copies before it is needed, and
    stops as soon as the command comes, however far it got."""
    populate = _page_populator(regions)
    if populate is None:
        return
    poller = select.poll()
    poller.register(control, select.POLLIN)
    for start, end in _within(hot, regions) if hot else regions:
        for at in range(start, end, _WARM_CHUNK):
            if poller.poll(0):
                return
            if not populate(at, min(_WARM_CHUNK, end - at)):
                break


def _within(ranges: list[tuple[int, int]], regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of the sorted `ranges` that lie in the sorted `regions` (what was the
    server's private memory when a copy reported may since have been unmapped)."""
    parts = []
    i = 0
    for start, end in ranges:
        while i < len(regions) and regions[i][1] <= start:
            i += 1
        j = i
        while j < len(regions) and regions[j][0] < end:
            parts.append((max(start, regions[j][0]), min(end, regions[j][1])))
            j += 1
    return parts


def _page_populator(regions: list[tuple[int, int]]) -> Callable[[int, int], bool] | None:
    """madvise(MADV_POPULATE_WRITE) through ctypes (Python has no call for it): a
    function of an address and a length, False where the kernel refused; None without
    ctypes or the advice (the spare is then only forked ahead, not warmed)."""
    try:
        import ctypes  # noqa: PLC0415 - in the spare only, imported by the server once

        madvise = ctypes.CDLL(None, use_errno=True).madvise
    except (ImportError, OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int

    def populate(address: int, length: int) -> bool:
        return bool(madvise(address, length, _MADV_POPULATE_WRITE) == 0)

    if regions and not populate(regions[0][0], _PAGE):
        return None  # a kernel before 5.14
    return populate


def _writable_private_regions() -> list[tuple[int, int]]:
    """The address ranges of this process's private, writable memory (its heap, Python's
    arenas, the data of each library), from /proc/self/maps; not the stack."""
    regions = []
    with open("/proc/self/maps", encoding="ascii", errors="replace") as maps:
        for line in maps:
            fields = line.split()
            if len(fields) < 5 or not fields[1].startswith("rw") or fields[1][3:4] != "p":
                continue
            if len(fields) > 5 and fields[5] == "[stack]":
                continue
            start, _, end = fields[0].partition("-")
            regions.append((int(start, 16), int(end, 16)))
    return regions


def _say_waiting(control: socket.socket) -> None:
    """Tell the server this copy's command waits on its steps alone (engine.when_waiting)."""
    with contextlib.suppress(OSError):
        control.send(_WAITING)


def _report_written_pages(control: socket.socket, regions: list[tuple[int, int]]) -> None:
    """Tell the server which pages of its own `regions` this copy wrote to."""
    try:
        written = _written_pages(regions)
    except OSError:  # no /proc/self/pagemap to read: spares then warm everything
        written = []
    control.sendall(marshal.dumps(written))
    control.close()


def _written_pages(regions: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """The address ranges, within `regions`, of the pages this copy now has a copy of its
    own of (present and mapped by this process alone, in /proc/self/pagemap): the pages
    a command wrote to."""
    ranges: list[tuple[int, int]] = []
    fd = os.open("/proc/self/pagemap", os.O_RDONLY | os.O_CLOEXEC)
    try:
        for start, end in regions:
            entries = os.pread(fd, (end - start) // _PAGE * 8, start // _PAGE * 8)
            flags = entries[7::8].translate(_WRITTEN)  # each entry's top byte
            ranges += [
                (start + run.start() * _PAGE, start + run.end() * _PAGE)
                for run in re.finditer(b"\x01+", flags)
            ]
    finally:
        os.close(fd)
    return ranges


def _told(report: bytes) -> list[object]:
    """The values a copy sent after its "finished" byte, one after the other (marshal):
    the entries it unpickled, then the pages it wrote to (when asked); those up to the
    first that is not one."""
    values: list[object] = []
    stream = io.BytesIO(report)
    while stream.tell() < len(report):
        try:
            values.append(marshal.load(stream))
        except (ValueError, EOFError, TypeError):
            break
    return values


def _keep_entries(told: object) -> bool:
    """Keep in memory the model cache's entries a copy unpickled (`told`: their files and
    the file of the key that signed them); whether any was new."""
    from wfx.runtime import modelcache  # noqa: PLC0415 - preloaded

    if not (isinstance(told, tuple) and len(told) in (2, 3) and isinstance(told[0], list)):
        return False
    entries, key = told[0], told[1]
    if not isinstance(key, str):
        return False
    return any([modelcache.keep(entry, key) for entry in entries if isinstance(entry, str)])


def _page_ranges(ranges: object) -> list[tuple[int, int]]:
    """The ranges of a copy's report of its pages; none when it is not one."""
    if not isinstance(ranges, list):
        return []
    return [
        (r[0], r[1])
        for r in ranges
        if isinstance(r, tuple) and len(r) == 2 and all(isinstance(x, int) for x in r)
    ]


def _merged(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """`ranges` sorted, with those that touch or overlap made one."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


def _end_spare(spare: _Spare) -> None:
    """Kill and reap a spare that took no command."""
    spare.control.close()
    with contextlib.suppress(OSError):
        signal.pidfd_send_signal(spare.pidfd, signal.SIGKILL)
    with contextlib.suppress(OSError):
        os.waitpid(spare.pid, 0)
    os.close(spare.pidfd)


def _read_request(conn: socket.socket) -> tuple[str, bytes, list[int], list[int]]:
    """The client's request: a header (kind, length of the payload, the numbers of the
    descriptors sent with it) and the payload; the descriptors come with the first bytes."""
    fds: list[int] = []
    size_bytes = b""
    first = True
    while len(size_bytes) < 4:
        chunk, fds_now = _recv_with_fds(conn, 4 - len(size_bytes), first)
        first = False
        fds.extend(fds_now)
        if not chunk:
            _close_all(fds)
            raise EOFError("no request")
        size_bytes += chunk
    header = marshal.loads(launch.read_exactly(conn, int.from_bytes(size_bytes, "big")))
    kind, length, numbers = header
    if not (isinstance(kind, str) and isinstance(length, int) and isinstance(numbers, list)):
        _close_all(fds)
        raise ValueError("bad header")
    return kind, launch.read_exactly(conn, length), fds, [int(n) for n in numbers]


def _recv_with_fds(conn: socket.socket, size: int, ancillary: bool) -> tuple[bytes, list[int]]:
    if not ancillary:
        return conn.recv(size), []
    data, ancdata, _flags, _addr = conn.recvmsg(size, socket.CMSG_SPACE(8 * struct.calcsize("i")))
    fds: list[int] = []
    for level, kind, payload in ancdata:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            count = len(payload) // struct.calcsize("i")
            fds.extend(struct.unpack(f"{count}i", payload[: count * struct.calcsize("i")]))
    return data, fds


def _write_message(conn: socket.socket, message: Any) -> None:
    conn.sendall(launch.frame(message))


def _tell(conn: socket.socket, message: Any) -> None:
    with contextlib.suppress(OSError):
        _write_message(conn, message)


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def _well_formed(request: object, fds: list[int], numbers: list[int]) -> bool:
    if not isinstance(request, dict) or request.get("protocol") != launch.PROTOCOL:
        return False
    types = {
        "key": bytes,
        "argv": list,
        "env": dict,
        "umask": int,
        "limits": dict,
        "ignored": list,
        "blocked": list,
        "affinity": list,
        "priority": int,
    }
    if any(not isinstance(request.get(name), kind) for name, kind in types.items()):
        return False
    if not all(isinstance(arg, str) for arg in request["argv"]):
        return False
    if not all(isinstance(k, bytes) and isinstance(v, bytes) for k, v in request["env"].items()):
        return False
    return (
        len(fds) == len(numbers)
        and bool(numbers)
        and numbers[0] == -1
        and all(n in (0, 1, 2) for n in numbers[1:])
    )


def take_on(request: Mapping[str, Any], fds: list[int], numbers: list[int]) -> None:
    """Make this process (a fresh fork) the client's stand-in: its standard streams,
    working directory, environment, umask, limits, priority, CPU affinity, signal
    dispositions and mask, and arguments. Raises when one cannot be taken on."""
    import resource  # noqa: PLC0415

    open_streams = set()
    for fd, number in zip(fds[1:], numbers[1:], strict=True):
        os.dup2(fd, number)
        open_streams.add(number)
    for number in (0, 1, 2):
        if number not in open_streams:
            with contextlib.suppress(OSError):
                os.close(number)
    os.fchdir(fds[0])
    _close_all(fds)
    os.umask(request["umask"])
    for which, limits in request["limits"].items():
        if resource.getrlimit(which) != tuple(limits):
            resource.setrlimit(which, tuple(limits))
    if os.getpriority(os.PRIO_PROCESS, 0) != request["priority"]:
        os.setpriority(os.PRIO_PROCESS, 0, request["priority"])
    if sorted(os.sched_getaffinity(0)) != request["affinity"]:
        os.sched_setaffinity(0, request["affinity"])
    _take_on_signals(set(request["ignored"]), request["blocked"])
    os.environb.clear()
    os.environb.update(request["env"])
    time.tzset()
    sys.argv = list(request["argv"])
    _make_standard_streams(open_streams)


def read_again() -> None:
    """What wfx's modules read from the environment as they are imported, read again from
    the command's: the server imported them under its own (see `test_server.py`'s check
    that no module does so unnoticed)."""
    from wfx.runtime import failpoints  # noqa: PLC0415 - preloaded

    failpoints.arm(os.environ)


def _take_on_signals(ignored: set[int], blocked: list[int]) -> None:
    """The dispositions Python starts with, given what the client inherited: ignored where
    the client's were ignored, Python's own handler for SIGINT, the default elsewhere.
    (Read with `_signal`'s own getsignal: `signal`'s makes an enum member of each, 0.2 ms
    of every command.)"""
    import _signal  # type: ignore[import-not-found]  # noqa: PLC0415

    for signum in range(1, signal.NSIG):
        try:
            current = _signal.getsignal(signum)
        except (OSError, ValueError):
            continue
        if signum in ignored:
            wanted: Any = signal.SIG_IGN
        elif signum == signal.SIGINT:
            wanted = signal.default_int_handler
        elif signum in (signal.SIGPIPE, signal.SIGXFSZ):
            wanted = signal.SIG_IGN  # as Python sets them in every process it starts
        else:
            wanted = signal.SIG_DFL
        if current != wanted and current is not None:
            with contextlib.suppress(OSError, ValueError):
                signal.signal(signum, wanted)
    signal.pthread_sigmask(signal.SIG_SETMASK, blocked)


def _make_standard_streams(open_streams: set[int]) -> None:
    """sys.stdin, sys.stdout and sys.stderr on the client's streams, made as Python makes
    them as it starts (encoding, errors, buffering: line-buffered on a terminal, and
    stderr always)."""
    made: list[TextIO | None] = []
    for fd, old in ((0, sys.__stdin__), (1, sys.__stdout__), (2, sys.__stderr__)):
        if fd not in open_streams or old is None:
            made.append(None)
            continue
        made.append(_stream(fd, old))
    sys.stdin, sys.stdout, sys.stderr = made
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = made  # type: ignore[misc,assignment]


def _stream(fd: int, like: TextIO) -> TextIO:
    reading = fd == 0
    unbuffered = bool(getattr(like, "write_through", False)) and not reading
    binary = io.open(  # noqa: SIM115, UP020 - a stream for the life of the process
        fd, "rb" if reading else "wb", buffering=0 if unbuffered else -1, closefd=False
    )
    raw = binary if unbuffered else getattr(binary, "raw", binary)
    with contextlib.suppress(AttributeError):
        raw.name = ("<stdin>", "<stdout>", "<stderr>")[fd]  # type: ignore[misc]
    interactive = os.isatty(fd)
    text = io.TextIOWrapper(
        binary,
        encoding=like.encoding,
        errors=like.errors,
        newline="\n",
        line_buffering=not reading and not unbuffered and (interactive or fd == 2),
        write_through=unbuffered,
    )
    with contextlib.suppress(AttributeError):
        text.mode = "r" if reading else "w"  # type: ignore[misc]
    return text


# -- talking to a server (wfx server status|stop|start) ------------------------------


def name() -> str:
    """The name of the socket of the server for this process's setup, as `ss -x` shows it
    (`@` for the abstract namespace)."""
    return "@" + launch.address(launch.key_material())[1:]


def _connect() -> socket.socket | None:
    material = launch.key_material()
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        conn.connect(launch.address(material))
    except OSError:
        conn.close()
        return None
    if not launch.same_user(conn):
        conn.close()
        return None
    return conn


def _ask(kind: str, answer: str) -> Any:
    """Send the server a request of `kind` and return what its reply `answer` carries;
    None when no server runs or it answers otherwise."""
    conn = _connect()
    if conn is None:
        return None
    try:
        with conn:
            conn.settimeout(REQUEST_TIMEOUT)
            conn.sendall(launch.frame((kind, 0, [])))
            reply = launch.receive(conn)
    except (OSError, EOFError, ValueError):
        return None
    if not (isinstance(reply, tuple) and len(reply) == 2 and reply[0] == answer):
        return None
    return reply[1]


def status() -> Status | None:
    """The server that would run this process's commands, or None when none runs."""
    reply = _ask("status", "status")
    if not isinstance(reply, tuple) or len(reply) != len(fields(Status)):
        return None
    pid, started, served, running, idle, spare, kept, watching, stale = reply
    return Status(
        int(pid),
        float(started),
        int(served),
        int(running),
        float(idle),
        int(spare),
        int(kept),
        bool(watching),
        bool(stale),
    )


def stop() -> int | None:
    """Ask the server to stop (it ends when the commands it runs have ended); the number
    of those, or None when no server runs."""
    reply = _ask("stop", "stopping")
    return None if reply is None else int(reply)


def start(wait: float = 10.0) -> Status | None:
    """Start a server unless one runs, and wait until it answers (or `wait` seconds)."""
    found = status()
    if found is not None and not found.stale:
        return found
    deadline = time.monotonic() + wait
    while found is not None and found.stale and time.monotonic() < deadline:
        time.sleep(0.05)  # its name is free once it stopped listening
        found = status()
    launch.start_server()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        time.sleep(0.05)
        found = status()
        if found is not None:
            return found
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
