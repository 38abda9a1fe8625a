"""Dask distributed as an executor: each attempt runs as a task on a Dask worker.

`dask://HOST:PORT` (or `dask://tls://HOST:PORT`) connects to a running scheduler;
`dask:local` starts a LocalCluster of worker processes for the run. The client is
asynchronous, on the engine's own event loop.

- The task (:func:`wfx.runtime.dask_worker.run_on_worker`) runs the process on the
  worker; its output lines come back as worker events on a topic of the attempt's own,
  numbered, and reach `on_output` in order before `run_attempt` returns.
- Stopping: Dask's `future.cancel()` does not stop a running process, so each attempt has
  a stop :class:`distributed.Event` (the worker sends TERM to the process tree, KILL after
  the attempt's kill grace) and a kill event (KILL now: a shorter grace, `kill_all`). The
  client waits for the task to report, at most the grace and a margin.
- A worker lost mid-attempt: the scheduler runs the task again on another worker, with
  the same request (so the same `WFX_IDEMPOTENCY_KEY`), up to its `allowed-failures`;
  the step's own retries are not consumed (no `retries=` on submit: those are for a task
  that raises, which ours never does). After that the attempt fails as "worker lost".
  Before any attempt starts, the worker stops what lost workers of its host left running
  (:mod:`wfx.runtime.dask_worker`), so the two copies never overlap there.
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import urlsplit

import anyio
from distributed import Client, Event, LocalCluster
from distributed.client import FutureCancelledError
from distributed.scheduler import KilledWorker

from wfx.runtime.actions import Attempt
from wfx.runtime.dask_worker import (
    SweepPlugin,
    WorkerResult,
    kill_event,
    plain_request,
    run_on_worker,
    stop_event,
)
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, ExecutorError, OutputSink

#: seconds to reach the scheduler before `start` gives up
DEFAULT_CONNECT_TIMEOUT = 10.0
#: seconds, beyond the kill grace, that a stopped attempt has to report
STOP_MARGIN = 5.0
#: how many finished attempts' output events the scheduler may hold before wfx deletes them
FORGET_EVERY = 32
#: seconds the client waits, after the result, for output events still under way
FLUSH_TIMEOUT = 10.0


@dataclass(slots=True)
class _Running:
    """One attempt in flight: its Dask future and how to tell its worker to stop."""

    future: Any
    stop: Event
    kill: Event
    kill_grace: float
    stopping: bool = False

    def signal_all(self) -> list[Any]:
        """Both events, once the attempt was told to stop (to clear them after)."""
        return [self.stop, self.kill] if self.stopping else []


@dataclass(slots=True)
class _OrderedLines:
    """Puts an attempt's numbered events back in order and hands lines to `on_output`.

    Events name the copy of the attempt that sent them: when Dask runs the attempt again
    (its worker was lost), the new copy's events start over, the lost one's late events
    are dropped, and a line on stderr says where the attempt runs now."""

    on_output: OutputSink
    on_start: Any
    next_seq: int = 0
    held: dict[int, dict[str, Any]] = field(default_factory=dict)
    arrived: anyio.Event = field(default_factory=anyio.Event)
    copy: str | None = None
    where: str | None = None

    def receive(self, event: tuple[float, Mapping[str, Any]]) -> None:
        """A worker event for this attempt (any order); emit what is now contiguous."""
        message = dict(event[1])
        if message.get("copy") != self.copy:
            if message.get("kind") != "start":
                return  # a lost copy's last words
            self._next_copy(message)
        self.held[int(message["seq"])] = message
        while self.next_seq in self.held:
            self._emit(self.held.pop(self.next_seq))
            self.next_seq += 1
        self.arrived.set()
        self.arrived = anyio.Event()

    def _next_copy(self, start: dict[str, Any]) -> None:
        if self.copy is not None:
            self._emit_held()
            self.on_output(
                "stderr",
                f"wfx: lost the Dask worker {self.where}; the attempt runs again on"
                f" {start['where']}",
            )
        self.copy = str(start["copy"])
        self.next_seq = 0

    def _emit(self, message: dict[str, Any]) -> None:
        if message.get("kind") == "lines":
            for stream, text in message["lines"]:
                self.on_output(str(stream), str(text))
        elif message.get("kind") == "start":
            self.where = str(message["where"])
            self.on_start(self.where)

    async def flush(self, count: int) -> None:
        """Wait (bounded) until all `count` events of the attempt were handed out."""
        with anyio.move_on_after(FLUSH_TIMEOUT):
            while self.next_seq < count:
                await self.arrived.wait()
        self._emit_held()

    def _emit_held(self) -> None:
        """Hand out what arrived, in order, though events before it went missing."""
        for seq in sorted(self.held):
            self._emit(self.held.pop(seq))


class DaskExecutor:
    """Runs attempts as tasks on a Dask distributed cluster (see the module's docstring)."""

    def __init__(
        self,
        name: str,
        *,
        security: Any = None,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        n_workers: int | None = None,
        **_options: object,
    ) -> None:
        self.name = name
        self._address = _scheduler_address(name)
        self._security = security
        self._connect_timeout = connect_timeout
        self._n_workers = n_workers
        self._cluster: Any = None
        self._client: Any = None
        self._running: dict[str, _Running] = {}
        self._where: dict[str, str] = {}
        self._topics: list[str] = []

    @property
    def capacity(self) -> int | None:
        """The worker threads of the cluster as last seen (None: no worker yet)."""
        if self._client is None:
            return None
        total = int(self._client.scheduler_info().get("total_threads") or 0)
        return total or None

    async def start(self) -> None:
        """Connect to the scheduler (or start a LocalCluster), check versions, register
        the sweep plugin; ExecutorError with a clear message when any of it fails."""
        try:
            with anyio.fail_after(self._connect_timeout + 5):
                await self._connect()
        except (OSError, TimeoutError) as exc:
            await self.close()
            where = self._address or "a local cluster"
            raise ExecutorError(
                f"cannot reach the Dask scheduler at {where} within"
                f" {self._connect_timeout:g}s: {exc or type(exc).__name__}"
            ) from None
        except TypeError as exc:  # a tls:// address without a TLS configuration
            await self.close()
            raise ExecutorError(
                f"cannot connect to the Dask scheduler at {self._address}: {exc}"
                " (set the Dask TLS configuration: see docs/distributed.md)"
            ) from None
        try:
            await self._check_versions()
            await self._client.register_plugin(SweepPlugin(), name=SweepPlugin.name)
        except BaseException:
            await self.close()
            raise

    async def _connect(self) -> None:
        if self._address is None:
            self._cluster = await LocalCluster(
                n_workers=self._n_workers,
                processes=True,
                dashboard_address=":0",
                asynchronous=True,
                security=self._security,
            )
            address = self._cluster
        else:
            address = self._address
            await _something_listens(address)
        # Kept before it is connected, so a failed start closes it (no coroutine left unawaited).
        self._client = Client(
            address,
            asynchronous=True,
            timeout=self._connect_timeout,
            security=self._security,
            set_as_default=False,
        )
        await self._client

    async def _check_versions(self) -> None:
        try:
            versions = await self._client.get_versions(check=True, packages=["wfx"])
        except ValueError as exc:
            raise ExecutorError(f"Dask version mismatch with {self.name}: {exc}") from None
        ours = _wfx_version()
        for worker, info in versions.get("workers", {}).items():
            theirs = info.get("packages", {}).get("wfx")
            if theirs != ours:
                found = f"wfx {theirs}" if theirs else "no wfx"
                raise ExecutorError(
                    f"Dask worker {worker} has {found}; this client runs wfx {ours}"
                    " (install the same wfx on every worker)"
                )

    async def close(self) -> None:
        """Stop what still runs, forget this run's output topics, disconnect; stop the
        LocalCluster of `dask:local`."""
        client, cluster = self._client, self._cluster
        self._client = self._cluster = None
        with anyio.CancelScope(shield=True):
            if client is not None:
                for running in list(self._running.values()):
                    await _quietly(running.stop.set())
                await self._forget_topics(client)
                await _quietly(client.close())
            if cluster is not None:
                # Workers' last long-polls on attempts' stop events are still open on the
                # scheduler; closing it cancels them, which Dask logs as errors.
                logging.getLogger("distributed.event").setLevel(logging.CRITICAL)
                await _quietly(cluster.close())

    async def run_attempt(self, request: AttemptRequest, on_output: OutputSink) -> Attempt:
        """Run `request` on a worker; see the module's docstring."""
        client = self._require()
        missing = await self._missing_resources(request.resources)
        if missing is not None:
            return Attempt(StepStatus.FAILED, reason=missing)
        token = uuid.uuid4().hex
        topic = f"wfx-output-{token}"
        lines = _OrderedLines(on_output, lambda where: self._where.__setitem__(request.key, where))
        client.subscribe_topic(topic, lines.receive)
        self._topics.append(topic)
        future = client.submit(
            run_on_worker,
            plain_request(request),
            topic,
            token,
            key=f"wfx-attempt-{request.key}-{token[:8]}",
            pure=False,
            resources=dict(request.resources) or None,
        )
        stop, kill = (Event(name(token), client=client) for name in (stop_event, kill_event))
        running = _Running(future, stop, kill, request.kill_grace)
        self._running[request.key] = running
        try:
            result = await self._outcome(running)
            if isinstance(result, Attempt):
                return _ran_at(result, lines.where)
            await lines.flush(result["lines"])
            self._where[request.key] = result["where"]
            return _ran_at(_attempt_of(result), result["where"])
        finally:
            del self._running[request.key]
            with anyio.CancelScope(shield=True):
                client.unsubscribe_topic(topic)
                for event in running.signal_all():
                    await _quietly(event.clear())
                await _quietly(future.release())
                if len(self._topics) >= FORGET_EVERY:
                    await self._forget_topics(client)

    async def _forget_topics(self, client: Any) -> None:
        """Delete finished attempts' output events from the scheduler (needs wfx there)."""
        topics, self._topics = self._topics, []
        if topics:
            await _quietly(client.run_on_scheduler(_forget_topics, topics))

    async def _outcome(self, running: _Running) -> WorkerResult | Attempt:
        try:
            result: WorkerResult = await running.future
        except KilledWorker as exc:
            return Attempt(StepStatus.FAILED, reason=f"worker lost: {_killed(exc)}")
        except FutureCancelledError as exc:
            if exc.reason == "scheduler-connection-lost":
                reason = f"lost the connection to the Dask scheduler {self.name}"
            else:
                reason = f"the Dask task was cancelled ({exc.reason or 'by Dask'})"
            return Attempt(StepStatus.FAILED, reason=reason)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._stop(running, running.kill_grace)
            raise
        except Exception as exc:  # the task itself failed: wfx missing on a worker...
            return Attempt(StepStatus.FAILED, reason=f"the Dask task failed: {exc!r}")
        return result

    async def _stop(self, running: _Running, grace: float) -> None:
        """TERM now (the stop event), KILL after `grace` (the kill event) when that is
        shorter than the attempt's own kill grace; wait for the worker's report (bounded)."""
        running.stopping = True
        await _quietly(running.stop.set())
        if grace < running.kill_grace:
            if not await _reported(running.future, grace):
                await _quietly(running.kill.set())
            await _reported(running.future, STOP_MARGIN)
        else:
            await _reported(running.future, grace + STOP_MARGIN)

    async def cancel(self, key: str, grace: float) -> None:
        """Stop attempt `key`: its worker sends TERM to the tree, then KILL after `grace`
        (or the attempt's kill grace, if shorter); waits for its report, at most `grace`
        and a margin."""
        running = self._running.get(key)
        if running is not None:
            await self._stop(running, grace)

    def kill_all(self) -> None:
        """Tell every worker to KILL its attempts' processes now (without waiting)."""
        client = self._client
        if client is None:
            return
        for running in list(self._running.values()):
            running.stopping = True
            client.loop.add_callback(_quietly, running.kill.set())
            client.loop.add_callback(_quietly, running.stop.set())

    def where(self, key: str) -> str | None:
        """The address of the worker that runs (or ran) attempt `key`."""
        return self._where.get(key)

    def _require(self) -> Any:
        if self._client is None:
            raise ExecutorError(f"executor {self.name} is not started")
        return self._client

    async def _missing_resources(self, wanted: Mapping[str, float]) -> str | None:
        """Why no worker can ever run an attempt needing `wanted`, or None when one can."""
        if not wanted:
            return None
        info = await self._client.scheduler.identity(n_workers=-1)
        for worker in info.get("workers", {}).values():
            has = worker.get("resources") or {}
            if all(has.get(name, 0) >= amount for name, amount in wanted.items()):
                return None
        asked = ", ".join(f"{name}: {amount:g}" for name, amount in wanted.items())
        return f"no Dask worker has the resources {{{asked}}} (start one with --resources)"


def _scheduler_address(name: str) -> str | None:
    """The scheduler address `name` names; None for `dask:local`."""
    if name == "dask:local":
        return None
    rest = name.removeprefix("dask://")
    if rest == name or not rest:
        raise ExecutorError(
            f"bad executor `{name}`: expected `dask://HOST:PORT`,"
            " `dask://tls://HOST:PORT` or `dask:local`"
        )
    if "://" in rest:
        if not rest.startswith(("tcp://", "tls://")):
            raise ExecutorError(f"bad executor `{name}`: the protocol must be tcp or tls")
        return rest
    return f"tcp://{rest}"


def _attempt_of(result: WorkerResult) -> Attempt:
    return Attempt(
        StepStatus(result["status"]),
        outputs=dict(result["outputs"]),
        exit_code=result["exit_code"],
        signal=result["signal"],
        reason=result["reason"],
        leftovers=tuple(result["leftovers"]),
    )


def _ran_at(attempt: Attempt, where: str | None) -> Attempt:
    """`attempt` with the worker it ran on, when Attempt records where attempts ran (the
    engine's journal does; older Attempts have no such field)."""
    if where is None or "where" not in _ATTEMPT_FIELDS:
        return attempt
    changes: dict[str, Any] = {"where": where}
    return dataclasses.replace(attempt, **changes)


_ATTEMPT_FIELDS = frozenset(field.name for field in dataclasses.fields(Attempt))


def _killed(exc: KilledWorker) -> str:
    last = exc.args[1] if len(exc.args) > 1 else None
    address = getattr(last, "address", last)
    return f"the worker running it died ({address}) and its re-runs too"


def _wfx_version() -> str | None:
    try:
        return version("wfx")
    except PackageNotFoundError:
        return None


async def _reported(future: Any, seconds: float) -> bool:
    """Whether the task finished (in any way) within `seconds`."""
    with anyio.move_on_after(seconds):
        await _quietly(_waited(future))
        return True
    return False


async def _waited(future: Any) -> None:
    await future


async def _quietly(awaitable: Any) -> None:
    """Await a best-effort clean-up step; a lost scheduler must not hide the real outcome."""
    try:
        if awaitable is not None:
            await awaitable
    except Exception:  # clean-up of a remote resource: nothing to report
        return


def _forget_topics(topics: list[str], dask_scheduler: Any = None) -> None:
    """On the scheduler: drop the output events of these topics (no step output, masked
    or not, stays in the scheduler's memory after the run)."""
    broker = getattr(dask_scheduler, "_broker", None)
    known = getattr(broker, "_topics", {})
    for topic in topics:
        known.pop(topic, None)


async def _something_listens(address: str) -> None:
    """Raise OSError at once when nothing accepts connections at the scheduler's address
    (a wrong port is refused in a millisecond; Dask's client would retry until its
    timeout)."""
    parts = urlsplit(address)
    if parts.hostname is None or parts.port is None:
        return
    stream = await anyio.connect_tcp(parts.hostname, parts.port)
    await stream.aclose()
