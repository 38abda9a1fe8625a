"""The executor port: where a step's process runs.

The engine decides *what* runs and *when* (conditions, retries and their waits,
timeouts' budgets, rollback, `finally`, the journal); an executor only runs one
attempt of one process and reports how it ended. Every request is plain,
serializable data, so an attempt can cross a network to another machine: the
client renders every value and masks every line of output it receives; the
executor never sees a workflow, an expression or a secret set.

Executors are chosen by name (:func:`open_executor`): `local` (this machine, the
default), `dask://HOST:PORT` (a running Dask distributed scheduler) or `dask:local`
(a LocalCluster started for the run).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from wfx.runtime.actions import Attempt

#: receives a step's output as it arrives: (stream name, "stdout" or "stderr"; text)
OutputSink = Callable[[str, str], None]

#: the placeholder a shell setting uses for the script file (`shell: python {0}`)
SCRIPT_PLACEHOLDER = "{0}"

#: the longest value a step may write to `$WFX_OUTPUT`, in bytes
DEFAULT_OUTPUT_LIMIT = 1024 * 1024


@dataclass(frozen=True, slots=True)
class AttemptRequest:
    """One attempt of one process step, as plain data an executor can run anywhere.

    `argv` is complete. When `script` is set, the executor writes it to a file of its
    own (ending in `script_suffix`) and replaces `{0}` in `argv` by that file's path.
    `env` holds only the step's own variables (its `env:`, the `WFX_*` variables, the
    generated `WFX_EXPR_n`); the executor lays them over its base environment and adds
    `WFX_OUTPUT`, the file whose `name=value` lines become the attempt's outputs.
    """

    key: str
    """`run_id:step_id:attempt`: unique per attempt, and the step's idempotency key."""
    argv: tuple[str, ...]
    env: Mapping[str, str]
    cwd: str | None
    """The working directory; None: the executor's own default."""
    timeout: float | None
    """Seconds for this attempt; on expiry TERM to the process tree, KILL after `kill_grace`."""
    kill_grace: float
    script: str | None = None
    script_suffix: str = ""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Abstract resources the attempt holds while it runs (`{gpu: 1}`)."""
    output_limit: int = DEFAULT_OUTPUT_LIMIT
    """The most bytes of `$WFX_OUTPUT` the executor reads back."""
    direct: tuple[str, ...] | None = None
    """The words of the one simple command `argv`'s shell would only exec (see
    wfx.shell.simple_command): an executor may exec them without the shell, through
    wfx.runtime.direct, which falls back to `argv` wherever that would differ."""

    @property
    def run_id(self) -> str:
        """The run this attempt belongs to."""
        return self.key.rsplit(":", 2)[0]

    @property
    def step_id(self) -> str:
        """The step this attempt runs."""
        return self.key.rsplit(":", 2)[1]

    @property
    def attempt(self) -> int:
        """The attempt's number, from 1."""
        return int(self.key.rsplit(":", 2)[2])


@runtime_checkable
class Executor(Protocol):
    """Runs attempts of process steps somewhere; the engine talks to nothing else."""

    name: str
    """What `--executor` said: `local`, `dask://host:8786`, `dask:local`."""

    @property
    def capacity(self) -> int | None:
        """How many attempts can run at once (None: no limit of the executor's own)."""
        ...

    async def start(self) -> None:
        """Connect or start what the executor needs; raise ExecutorError with a clear
        message when it cannot (an unreachable scheduler, a version mismatch)."""
        ...

    async def close(self) -> None:
        """Release everything `start` acquired; no process of this executor is left."""
        ...

    async def run_attempt(self, request: AttemptRequest, on_output: OutputSink) -> Attempt:
        """Run one attempt to its end and report it; output lines reach `on_output` while
        it runs. Never raises for a failure of the step itself. When the calling task is
        cancelled, the attempt's process tree gets TERM, then KILL after its kill grace,
        before this returns (or re-raises the cancellation)."""
        ...

    async def cancel(self, key: str, grace: float) -> None:
        """Stop the running attempt `key`: TERM to its tree, KILL after `grace`."""
        ...

    def kill_all(self) -> None:
        """Kill every process of every running attempt now (a second Ctrl-C)."""
        ...

    def where(self, key: str) -> str | None:
        """Where attempt `key` ran or runs (`local`, a worker's address), for the journal."""
        ...


class StartedAttempt(Protocol):
    """An attempt an executor started without waiting for it (see :class:`StartsAtOnce`)."""

    async def finish(self) -> Attempt:
        """Wait for the attempt to end and report it, as `run_attempt` does after the
        start (a cancellation stops its process tree the same way)."""
        ...

    def when_succeeded(self, callback: Callable[[], None]) -> None:
        """Call `callback` once, from `finish`, as soon as the attempt is known to
        succeed, before its clean-up and report (the engine starts the step that follows
        it then); not at all when it fails or that cannot be known early."""
        ...


class ReadyAttempt(Protocol):
    """An attempt an executor made ready to start (see :class:`StartsAtOnce`)."""

    def start(self) -> Attempt | StartedAttempt:
        """Start it now, as `begin` would have: the running attempt, or the Attempt
        that could not start."""
        ...


class StartsAtOnce(Protocol):
    """An executor that can also start an attempt synchronously, its result awaited later
    (the local one): the engine starts a burst of ready steps back to back this way,
    before their tasks run, and starts a step of a chain this way to ready the next step
    while it runs. An executor without `begin` runs each in its own task. Since the
    engine calls either, `run_attempt` must be `begin` and then `finish`."""

    def begin(self, request: AttemptRequest, on_output: OutputSink) -> Attempt | StartedAttempt:
        """Start the attempt now (the executor has started): the running attempt, or the
        Attempt that could not start. `run_attempt` is this and then `finish`."""
        ...

    def ready(self, request: AttemptRequest, on_output: OutputSink) -> Attempt | ReadyAttempt:
        """All of `begin` but the start, done now (the engine makes the next step of a
        chain ready while the step before it runs): `start` on the result starts it later
        exactly as `begin` would then, or the Attempt says why it cannot start."""
        ...


class ExecutorError(Exception):
    """An executor cannot be used as named: bad name, unreachable, incompatible."""


def open_executor(name: str, **options: object) -> Executor:
    """The executor `name` names (not started yet): `local`, `dask://HOST:PORT` (also
    `dask://tls://HOST:PORT`), or `dask:local`. Each backend is imported only when named,
    so a local run never imports Dask."""
    if name == "local":
        return _backend("wfx.runtime.local", "LocalExecutor")(**options)
    if name.startswith("dask:"):
        try:
            backend = _backend("wfx.runtime.dask", "DaskExecutor")
        except ImportError as exc:
            raise ExecutorError(
                f"executor `{name}` needs Dask distributed: pip install 'wfx[dask]' ({exc})"
            ) from None
        return backend(name, **options)
    raise ExecutorError(
        f"unknown executor `{name}`: expected `local`, `dask://HOST:PORT` or `dask:local`"
    )


def _backend(module: str, name: str) -> Callable[..., Executor]:
    factory: Callable[..., Executor] = getattr(importlib.import_module(module), name)
    return factory
