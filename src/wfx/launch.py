"""The `wfx` command: hand the command to wfx's warm server when one is running, or run it
here.

Most of a short `wfx` command is Python importing wfx and the libraries it stands on
(docs/performance.md). A wfx server (:mod:`wfx.server`) has imported them once; for each
command it forks a copy of itself, which takes this process's arguments, environment,
working directory, standard streams, limits and signal dispositions and runs the command
exactly as this process would have, while this process waits for it, passes on the
signals it receives and ends with the copy's exit status. When there is no server, or it
cannot stand in for this process (see `wfx.server` for every case), the command runs
here, as it always did.

This module is the whole of what a `wfx` command imports before it knows which way it
goes, and so it imports only what Python has loaded before it runs any code (and the C
modules `_socket`, `_signal` and `resource`); even `from __future__ import
annotations` would import a module, so the annotations that name `typing`'s types are
written as strings (`test_server.py` checks what it imports).
"""

import marshal
import os
import sys

TYPE_CHECKING = False  # `typing` is not imported: it would cost every command 15 ms
if TYPE_CHECKING:
    from typing import Any, NoReturn

#: turn the server off ("0"/"off"/"no"/"false"), or on ("1"/"on"/...) even where it is
#: off by default (under CI)
SERVER_VARIABLE = "WFX_SERVER"
#: a name that keeps servers apart (tests; two setups of one user that must not share one)
TAG_VARIABLE = "WFX_SERVER_TAG"
#: the protocol spoken between this module and wfx.server
PROTOCOL = 5
#: commands never handed to a server: the server's own, and the long-lived language server
LOCAL_COMMANDS = frozenset({"server", "lsp"})
#: the namespaces a server must share with its clients
NAMESPACES = ("mnt", "pid", "net", "ipc", "uts", "user", "cgroup")
#: the lines of /proc/self/status that must match (privileges, filters)
STATUS_FIELDS = (b"NoNewPrivs", b"Seccomp", b"CapInh", b"CapPrm", b"CapEff", b"CapBnd", b"CapAmb")
_OFF = frozenset({"0", "off", "no", "false"})


def entry() -> "NoReturn":
    """The `wfx` command: through the server when it can, else here (and then, for a
    command that changes something anyway, with a server starting beside it for the
    commands that follow)."""
    choice = server_choice(os.environ) if sys.platform.startswith("linux") else "off"
    if choice != "off" and not _local_command(sys.argv[1:]):
        _through_server()
        if _may_start_server(choice, sys.argv[1:]):
            start_server()
    from wfx.cli import entry as run_here  # noqa: PLC0415 - only when there is no server

    run_here()


def server_choice(env: "Any") -> str:
    """ "off", "on" or "auto" (use a running server; start one unless under CI)."""
    value = str(env.get(SERVER_VARIABLE, "")).strip().lower()
    if value in _OFF:
        return "off"
    if value:
        return "on"
    return "auto"


def _local_command(args: list[str]) -> bool:
    return any(arg in LOCAL_COMMANDS for arg in args[:1]) or not args


def _may_start_server(choice: str, args: list[str]) -> bool:
    """Start a server after `wfx run`/`retry`/`resume` (they change files and start
    processes anyway), not under CI, where each machine runs a command or two; with
    WFX_SERVER=1 after any command but `wfx plan`, which promises to start no process."""
    if choice == "on":
        return args[:1] != ["plan"]
    ci = os.environ.get("CI", "").strip().lower()
    return (not ci or ci in _OFF) and bool(args) and args[0] in ("run", "retry", "resume")


def key_material() -> bytes:
    """Everything that must be the same for a server to stand in for this process: the
    Python (its executable, version, flags, path), the variables Python reads as it
    starts, the user and groups, the namespaces, control group and privileges the process
    lives in. Two processes that differ in any of them never share a server."""
    env = os.environ
    flags = [getattr(sys.flags, name) for name in dir(sys.flags) if _flag(name)]
    parts: list[object] = [
        PROTOCOL,
        sys.executable,
        sys.version,
        flags,
        list(sys.path),
        list(sys.warnoptions),
        sorted(sys._xoptions.items()),
        sorted(
            (name, value)
            for name, value in env.items()
            if name.startswith(("PYTHON", "LC_")) or name in ("LANG", TAG_VARIABLE)
        ),
        (os.getuid(), os.geteuid(), os.getgid(), os.getegid(), sorted(os.getgroups())),
        [_readlink(f"/proc/self/ns/{name}") for name in NAMESPACES],
        _read("/proc/self/cgroup"),
        _status_fields(),
        _read("/proc/self/attr/current"),
        _read("/proc/self/oom_score_adj"),
    ]
    return marshal.dumps(repr(parts))


def _flag(name: str) -> bool:
    return not name.startswith(("_", "n_")) and name not in ("count", "index", "safe_path")


def address(material: bytes) -> str:
    """The server's socket: in Linux's abstract namespace (no file to go stale or to
    clean up), named for the user and a hash of the key material.

    The hash is the material read as one number, modulo a prime, folded to 32 bits:
    Python's own integers, where `binascii.crc32` would load a C module (0.45 ms of every
    command). Two setups whose names collide are still kept apart: a server refuses a
    request whose key material is not its own, and the command then runs in `wfx`."""
    value = int.from_bytes(material, "little") % _HASH_PRIME
    return f"\0wfx-server-{os.getuid()}-{(value ^ (value >> 32)) & 0xFFFFFFFF:08x}"


#: a Mersenne prime: the modulus of the socket name's hash
_HASH_PRIME = (1 << 61) - 1


def _through_server() -> None:
    """Run this command in a server's copy and end with its status; return (having
    changed nothing) when no server can take it."""
    import _socket  # noqa: PLC0415

    material = key_material()
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        conn.connect(address(material))
        if not same_user(conn):  # someone else holds the name: tell it nothing
            conn.close()
            return
    except OSError:
        conn.close()
        return
    signals = _Forwarder()  # from here on, a signal is for the command, wherever it runs
    try:
        request = _request(material)
        _send(conn, request, _descriptors())
        # nothing runs until the reply "started": a closed connection or anything else
        # means the server (or its copy) refused, and the command runs here
        reply = receive(conn)
    except Exception:  # whatever went wrong, the command can run here
        reply = None
    if not (isinstance(reply, tuple) and reply[:1] == ("started",) and len(reply) == 2):
        conn.close()
        signals.give_back()
        return
    signals.attach(int(reply[1]))
    _end_like(signals.module, _outcome(conn))


def _outcome(conn: "Any") -> "tuple[str, int] | None":
    """How the command's process ended: its exit status once it said that nothing but its
    teardown is left, else the server's report of its wait status, or, when the server
    died meanwhile, the exit status the process announced as it ended."""
    announced: tuple[str, int] | None = None
    while True:
        try:
            message = receive(conn)
        except (OSError, EOFError, ValueError):
            return announced
        if not (isinstance(message, tuple) and len(message) == 2):
            continue
        if message[0] == "ended":
            return ("ended", int(message[1]))
        if message[0] == "exited":  # all done but the kernel's teardown of the process
            return ("exiting", int(message[1]))
        if message[0] == "exiting":
            announced = ("exiting", int(message[1]))


def same_user(conn: "Any") -> bool:
    """Whether the process at the other end of the Unix socket `conn` is this user's (both
    ends check before they send anything)."""
    import _socket  # noqa: PLC0415

    creds = conn.getsockopt(_socket.SOL_SOCKET, _socket.SO_PEERCRED, 3 * _INT)  # pid uid gid
    return int.from_bytes(creds[_INT : 2 * _INT], sys.byteorder, signed=True) == os.getuid()


def _request(material: bytes) -> bytes:
    import _signal  # type: ignore[import-not-found]  # noqa: PLC0415
    import resource  # noqa: PLC0415

    limits = {
        getattr(resource, name): resource.getrlimit(getattr(resource, name))
        for name in dir(resource)
        if name.startswith("RLIMIT_")
    }
    ignored = [
        signum for signum in range(1, _signal.NSIG) if _signal_ignored(_signal, signum) is True
    ]
    mask = os.umask(0o022)  # the mask can only be read by setting it
    os.umask(mask)
    return marshal.dumps(
        {
            "protocol": PROTOCOL,
            "key": material,
            "argv": list(sys.argv),
            "env": dict(os.environb),
            "umask": mask,
            "limits": limits,
            "ignored": ignored,
            "blocked": sorted(_signal.pthread_sigmask(_signal.SIG_BLOCK, [])),
            "affinity": sorted(os.sched_getaffinity(0)),
            "priority": os.getpriority(os.PRIO_PROCESS, 0),
        }
    )


def _signal_ignored(module: "Any", signum: int) -> bool | None:
    try:
        return bool(module.getsignal(signum) == module.SIG_IGN)
    except (OSError, ValueError):
        return None


def _descriptors() -> tuple[list[int], list[int]]:
    """The working directory (as a descriptor: it may have no name) and the standard
    streams that are open, with their numbers."""
    cwd = os.open(".", os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    streams = [fd for fd in (0, 1, 2) if _is_open(fd)]
    return [cwd, *streams], [-1, *streams]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def _send(conn: "Any", payload: bytes, descriptors: tuple[list[int], list[int]]) -> None:
    import _socket  # noqa: PLC0415

    fds, numbers = descriptors
    message = frame(("run", len(payload), numbers)) + payload
    rights = (_socket.SOL_SOCKET, _socket.SCM_RIGHTS, native_ints(fds))
    sent = conn.sendmsg([message], [rights])
    os.close(fds[0])
    if sent < len(message):
        conn.sendall(message[sent:])


#: the size of a C int, as descriptors and credentials travel in a socket's messages
_INT = 4


def native_ints(numbers: list[int]) -> bytes:
    """`numbers` as C ints in the machine's byte order (what `array.array("i")` holds,
    without importing `array`, which imports `collections`: 2.5 ms of every command)."""
    return b"".join(n.to_bytes(_INT, sys.byteorder, signed=True) for n in numbers)


def frame(value: "Any") -> bytes:
    """One message as both ends write it: four bytes of length, then the marshalled value."""
    payload = marshal.dumps(value)
    return len(payload).to_bytes(4, "big") + payload


def receive(conn: "Any") -> object:
    """One message (see `frame`)."""
    size = int.from_bytes(read_exactly(conn, 4), "big")
    return marshal.loads(read_exactly(conn, size))


def read_exactly(conn: "Any", size: int) -> bytes:
    """`size` bytes from the socket `conn`; EOFError when it closes first."""
    parts: list[bytes] = []
    remaining = size
    while remaining:
        chunk = conn.recv(min(remaining, 1 << 20))
        if not chunk:
            raise EOFError("the other end went away")
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


#: the signals passed on to the command's process, as a terminal or a supervisor sends them
_FORWARDED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2", "SIGWINCH")


class _Forwarder:
    """Passes the signals this process receives on to the command's process (Ctrl-Z stops
    both, and `fg` resumes both). Installed before the request is sent: a signal that
    comes before the command's process is known waits for it, or, when the server does
    not take the command, is taken by this process as it would have been."""

    def __init__(self) -> None:
        import _signal  # noqa: PLC0415

        self.module: Any = _signal
        self.pidfd = -1
        self.pending: list[int] = []
        self.previous: dict[int, Any] = {}
        for name in _FORWARDED:
            self._handle(getattr(_signal, name), self._forward)
        if _signal_ignored(_signal, _signal.SIGTSTP) is False:
            self._handle(_signal.SIGTSTP, self._stop)
            self._handle(_signal.SIGCONT, self._resume)

    def _handle(self, signum: int, handler: "Any") -> None:
        if _signal_ignored(self.module, signum) is False:
            self.previous[signum] = self.module.signal(signum, handler)

    def attach(self, pid: int) -> None:
        """The command's process is `pid`: pass it what came meanwhile, and all that comes.
        A quick command may have ended, and been reaped, before this process heard that it
        started: then there is nobody to pass anything to, and its status is on its way."""
        try:
            self.pidfd = os.pidfd_open(pid)
        except OSError:
            self.pending.clear()
            return
        for signum in self.pending:
            self._forward(signum, None)
        self.pending.clear()

    def give_back(self) -> None:
        """The command runs here after all: the handlers as they were, and the signals
        that came meanwhile taken as they would have been."""
        for signum, handler in self.previous.items():
            self.module.signal(signum, handler)
        for signum in self.pending:
            if signum == self.module.SIGINT:
                os.write(2, b"interrupted\n")
                os._exit(130)
            os.kill(os.getpid(), signum)

    def _forward(self, signum: int, _frame: object) -> None:
        if self.pidfd < 0:
            self.pending.append(signum)
        else:
            _send_signal(self.module, self.pidfd, signum)

    def _stop(self, _signum: int, _frame: object) -> None:
        if self.pidfd >= 0:
            _send_signal(self.module, self.pidfd, self.module.SIGSTOP)
        self.module.signal(self.module.SIGTSTP, self.module.SIG_DFL)
        os.kill(os.getpid(), self.module.SIGTSTP)
        # Here once this process is continued, or at once when the kernel discarded the
        # stop, as it does in an orphaned process group: either way the command goes on.
        self._resume(self.module.SIGCONT, None)

    def _resume(self, _signum: int, _frame: object) -> None:
        self.module.signal(self.module.SIGTSTP, self._stop)
        if self.pidfd >= 0:
            _send_signal(self.module, self.pidfd, self.module.SIGCONT)


def _send_signal(module: "Any", pidfd: int, signum: int) -> None:
    try:  # noqa: SIM105 - contextlib is not imported here
        module.pidfd_send_signal(pidfd, signum)
    except OSError:  # it has ended: the server's report is on its way
        pass


def _end_like(module: "Any", outcome: "tuple[str, int] | None") -> "NoReturn":
    """End with the status the command's process ended with."""
    if outcome is None:
        os.write(2, b"wfx: error: the wfx server running this command went away\n")
        os._exit(70)
    kind, status = outcome
    if kind == "exiting":
        os._exit(status & 0xFF)
    if os.WIFSIGNALED(status):
        signum = os.WTERMSIG(status)
        module.signal(signum, module.SIG_DFL)
        module.pthread_sigmask(module.SIG_UNBLOCK, [signum])
        os.kill(os.getpid(), signum)
        os._exit(128 + signum)
    os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def start_server() -> None:
    """Start a server in the background, in a session of its own with nothing but
    /dev/null for its streams (it exits at once when another one already runs, and by
    itself after a while with nothing to do).

    With `subprocess` (fork and exec), not `os.posix_spawn`: glibc's posix_spawn leaves
    its two internal signals ignored in the new process, and every process the server
    starts would inherit that."""
    import subprocess  # noqa: PLC0415 - a command run here imports it anyway

    try:  # noqa: SIM105 - contextlib is not imported here
        subprocess.Popen(
            [sys.executable, "-P", "-m", "wfx.server", sys.path[0]],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd="/",
            env=server_environment(os.environ),
            start_new_session=True,
        )
    except OSError:
        pass


#: what a server needs of the environment beside the variables in its key: where the
#: user's cache is, and its own settings
_SERVER_NEEDS = ("HOME", "XDG_CACHE_HOME", "WFX_NO_CACHE", "WFX_SERVER_IDLE", "WFX_SERVER_CHECK")


def server_environment(env: "Any") -> dict[str, str]:
    """The environment a server starts with: only what its key covers and what it needs,
    so that a long-lived process holds none of the secrets a shell may export (each
    command's copy takes on its own client's environment)."""
    return {
        name: value
        for name, value in env.items()
        if name.startswith(("PYTHON", "LC_")) or name in ("LANG", TAG_VARIABLE, *_SERVER_NEEDS)
    }


def _readlink(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:
        return ""


def _read(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, 65536)
    except OSError:
        return b""
    finally:
        os.close(fd)


def _status_fields() -> list[bytes]:
    return [
        line
        for line in _read("/proc/self/status").splitlines()
        if line.split(b":", 1)[0] in STATUS_FIELDS
    ]
