"""The Dask worker's side of :mod:`wfx.runtime.dask`: run one attempt, leave nothing behind.

:func:`run_on_worker` runs in a worker thread. It starts the attempt's process in its own
session through :func:`wfx.runtime.process.run_process` (on an event loop of its own, in
that thread), streams every output line to the client as a worker event on the attempt's
topic, and stops the process tree (TERM, the attempt's kill grace, KILL) on its timeout,
when the client sets the attempt's stop :class:`distributed.Event` (and at once when it
sets the kill event: the client's grace may be shorter), or when Dask releases the task.
It returns a plain dict (:class:`WorkerResult`), never raises for a failure of the step.

Every running attempt is recorded in a per-host state directory (the worker's pid and
start time, and the marker its processes carry). A worker that dies leaves its step
processes running (they are in sessions of their own); whoever looks next on the same
host stops them before starting anything: every attempt before it starts, the
:class:`SweepPlugin` when a worker starts, and a closing worker for its own attempts.
So a lost worker's attempt, re-run by Dask on another worker of the same host, never
overlaps with its first copy.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypedDict

import anyio
import anyio.to_thread
from distributed import Event, get_worker
from distributed.diagnostics.plugin import WorkerPlugin

from wfx.durations import format_duration
from wfx.runtime.executor import SCRIPT_PLACEHOLDER, AttemptRequest
from wfx.runtime.outputs import OutputFormatError, read_outputs
from wfx.runtime.process import (
    ProcessOutcome,
    ProcessStartError,
    ProcessTracker,
    run_process,
    stop_leftovers,
)

#: how long one wait for the stop event lasts before the worker looks again
STOP_POLL = 0.5
#: the marker prefix of one attempt's processes: `wfxdask-<instance>/<uuid>`
_MARKER_PREFIX = "wfxdask-"
#: seconds between two batches of output lines sent to the client while a step runs
FLUSH_EVERY = 0.02
#: characters of output after which a batch goes at once
BATCH_CHARACTERS = 64 * 1024
#: output lines longer than this arrive in chunks (as for local steps)
MAX_LINE = 64 * 1024


class _Partial(TypedDict):
    """How the attempt's process ended: what the worker adds the rest to."""

    status: str
    outputs: dict[str, str]
    exit_code: int | None
    signal: int | None
    reason: str | None
    leftovers: list[str]


class WorkerResult(_Partial):
    """How an attempt ended on a worker, as plain (msgpack- and pickle-able) data."""

    where: str
    lines: int
    """How many output events were sent (the client waits for all of them)."""


def run_on_worker(payload: dict[str, Any], topic: str, signals: str) -> WorkerResult:
    """Run one attempt (an :class:`AttemptRequest` as a dict) on this Dask worker; the
    client stops it through the events `stop_event(signals)` and `kill_event(signals)`."""
    request = AttemptRequest(**payload)
    worker = get_worker()
    where = str(worker.address)
    sweep_orphans()
    instance = uuid.uuid4().hex
    sender = _EventSender(worker, topic, instance)
    sender.send({"kind": "start", "where": where})
    task_key = worker.get_current_task()
    record = _record(instance, request)
    try:
        with tempfile.TemporaryDirectory(prefix="wfx-attempt-") as scratch:
            result = anyio.run(
                _attempt, request, Path(scratch), instance, sender,
                _Signals(Event(stop_event(signals)), Event(kill_event(signals)),
                         lambda: _released(worker, task_key)),
            )  # fmt: skip
    finally:
        record.unlink(missing_ok=True)
    sender.flush()
    return {**result, "where": where, "lines": sender.count}


class _EventSender:
    """Sends numbered events of one copy of an attempt on its topic (the client puts them
    back in order); output
    lines go in batches, at least every `FLUSH_EVERY` seconds while the step runs."""

    def __init__(self, worker: Any, topic: str, copy: str) -> None:
        self._worker = worker
        self._topic = topic
        self._copy = copy
        self._lines: list[tuple[str, str]] = []
        self._size = 0
        self.count = 0

    def send(self, message: dict[str, Any]) -> None:
        self.flush()
        self._send(message)

    def line(self, stream: str, text: str) -> None:
        self._lines.append((stream, text))
        self._size += len(text)
        if self._size >= BATCH_CHARACTERS:
            self.flush()

    def flush(self) -> None:
        """Send the lines held so far, if any."""
        if self._lines:
            lines, self._lines, self._size = self._lines, [], 0
            self._send({"kind": "lines", "lines": lines})

    async def flush_every(self, seconds: float) -> None:
        """Flush on a clock while the step runs (lines arrive while it runs)."""
        while True:
            await anyio.sleep(seconds)
            self.flush()

    def _send(self, message: dict[str, Any]) -> None:
        self._worker.log_event(self._topic, {**message, "seq": self.count, "copy": self._copy})
        self.count += 1


def stop_event(signals: str) -> str:
    """The event that tells an attempt to stop: TERM, its kill grace, KILL."""
    return f"wfx-stop-{signals}"


def kill_event(signals: str) -> str:
    """The event that tells a stopping attempt to KILL what is left now."""
    return f"wfx-kill-{signals}"


@dataclass(frozen=True, slots=True)
class _Signals:
    """How the client reaches a running attempt."""

    stop: Event
    kill: Event
    released: Callable[[], bool]
    """Whether Dask no longer wants the task."""

    async def stopped(self) -> None:
        """Return once the attempt is to stop (or the scheduler cannot be reached)."""
        with contextlib.suppress(Exception):  # no scheduler: the client counts it lost
            while not self.released():
                if await anyio.to_thread.run_sync(
                    self.stop.wait, STOP_POLL, abandon_on_cancel=True
                ):
                    return

    async def killed(self) -> bool:
        """Wait until the client says KILL now (True), or the scheduler is gone (False)."""
        try:
            while not await anyio.to_thread.run_sync(
                self.kill.wait, STOP_POLL, abandon_on_cancel=True
            ):
                pass
        except Exception:
            return False
        return True


def _released(worker: Any, task_key: object) -> bool:
    """Whether Dask no longer wants this task (its client released or cancelled it)."""
    state = worker.state.tasks.get(task_key)
    return state is None or state.state in ("cancelled", "released", "forgotten")


async def _attempt(
    request: AttemptRequest,
    scratch: Path,
    instance: str,
    sender: _EventSender,
    signals: _Signals,
) -> _Partial:
    argv = list(request.argv)
    if request.script is not None:
        script = scratch / f"script{request.script_suffix}"
        try:
            script.write_text(request.script, encoding="utf-8", errors="surrogateescape")
        except OSError as exc:
            return _failed(f"cannot write the script file: {exc}")
        argv = [item.replace(SCRIPT_PLACEHOLDER, str(script)) for item in argv]
    output_file = scratch / "output"
    env = {**os.environ, **request.env, "WFX_OUTPUT": str(output_file)}
    tracker = ProcessTracker(_MARKER_PREFIX + instance)
    outcome: ProcessOutcome | str | None = None

    async def watch(run: anyio.CancelScope) -> None:
        await signals.stopped()
        run.cancel()  # TERM now, KILL after the kill grace...
        if await signals.killed():
            tracker.kill_all()  # ...or as soon as the client says so

    async with anyio.create_task_group() as group:
        with anyio.CancelScope() as run:
            group.start_soon(watch, run)
            group.start_soon(sender.flush_every, FLUSH_EVERY)
            try:
                outcome = await run_process(
                    argv,
                    env=env,
                    cwd=request.cwd,
                    timeout=request.timeout,
                    kill_grace=request.kill_grace,
                    on_output=sender.line,
                    tracker=tracker,
                    max_line=MAX_LINE,
                    direct=request.direct,
                )
            except ProcessStartError as exc:
                outcome = str(exc)
        group.cancel_scope.cancel()
    sender.flush()
    if isinstance(outcome, str):
        return _failed(outcome)
    if outcome is None:
        return {**_failed("cancelled"), "status": "cancelled"}
    leftovers = [f"{p.pid} {p.command}" for p in outcome.leftovers]
    base: _Partial = {
        "status": "failed",
        "outputs": {},
        "exit_code": outcome.returncode,
        "signal": outcome.signal,
        "reason": None,
        "leftovers": leftovers,
    }
    if outcome.timed_out:
        return {
            **base,
            "status": "timeout",
            "reason": f"timed out after {format_duration(request.timeout)}",
        }
    if not outcome.succeeded:
        if outcome.signal is not None:
            return {**base, "reason": f"killed by signal {outcome.signal}"}
        return {**base, "reason": f"exit code {outcome.returncode}"}
    try:
        outputs = read_outputs(output_file, request.output_limit)
    except OutputFormatError as exc:
        return {**base, "reason": f"bad $WFX_OUTPUT: {exc}"}
    return {**base, "status": "success", "outputs": outputs}


def _failed(reason: str) -> _Partial:
    return {
        "status": "failed",
        "outputs": {},
        "exit_code": None,
        "signal": None,
        "reason": reason,
        "leftovers": [],
    }


# -- the per-host record of running attempts, and the sweep --------------------------------


def state_directory() -> Path:
    """Where this host's workers (of this user) record their running attempts."""
    path = Path(tempfile.gettempdir()) / f"wfx-dask-{os.getuid()}"
    path.mkdir(mode=0o700, exist_ok=True)
    status = path.lstat()
    # Whoever can write here decides which process trees get stopped: only this user.
    if not stat.S_ISDIR(status.st_mode) or status.st_uid != os.getuid() or status.st_mode & 0o077:
        raise PermissionError(f"{path} must be a directory of this user's only (mode 700)")
    return path


def _record(instance: str, request: AttemptRequest) -> Path:
    """Record that this worker process runs attempt `instance` (before it starts)."""
    path = state_directory() / f"{instance}.json"
    owner = {"pid": os.getpid(), "start": _start_time(os.getpid())}
    data = {"owner": owner, "key": request.key, "grace": request.kill_grace}
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def sweep_orphans(owner_pid: int | None = None) -> list[str]:
    """Stop the processes of every recorded attempt whose worker process is gone (or, with
    `owner_pid`, of every attempt that process owns). Returns the attempt keys swept."""
    swept = []
    for path in state_directory().glob("*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            owner = data["owner"]
        except (OSError, ValueError, KeyError, TypeError):
            continue  # being written, or already swept by another worker
        mine = owner_pid is not None and owner["pid"] == owner_pid
        if mine or (owner_pid is None and not _alive(owner["pid"], owner["start"])):
            stop_leftovers(_MARKER_PREFIX + path.stem, float(data.get("grace", 0)))
            path.unlink(missing_ok=True)
            swept.append(str(data.get("key")))
    return swept


def _alive(pid: int, start: int | None) -> bool:
    """Whether process `pid` still runs and is the same process (not a reused pid)."""
    try:
        return start is not None and _start_time(pid) == start
    except (OSError, ValueError):
        return False


def _start_time(pid: int) -> int | None:
    """The process's start time (clock ticks since boot); None for a zombie."""
    data = Path(f"/proc/{pid}/stat").read_bytes()
    fields = data[data.rindex(b")") + 2 :].split()
    return None if fields[0] in (b"Z", b"X") else int(fields[19])


class SweepPlugin(WorkerPlugin):
    """Registered by every wfx client: on a worker's start, stop what dead workers of this
    host left running; on a worker's close, stop what its own attempts left."""

    name = "wfx-sweep"

    def setup(self, worker: Any) -> None:
        """Sweep the orphans of workers that died on this host."""
        sweep_orphans()

    def teardown(self, worker: Any) -> None:
        """Stop every attempt this closing worker still runs."""
        with contextlib.suppress(OSError):
            sweep_orphans(owner_pid=os.getpid())


def plain_request(request: AttemptRequest) -> dict[str, Any]:
    """`request` as a plain dict that crosses the network (no mapping proxies)."""
    env: Mapping[str, str] = request.env
    return {
        "key": request.key,
        "argv": tuple(request.argv),
        "env": dict(env),
        "cwd": request.cwd,
        "timeout": request.timeout,
        "kill_grace": request.kill_grace,
        "script": request.script,
        "script_suffix": request.script_suffix,
        "resources": dict(request.resources),
        "output_limit": request.output_limit,
    }
