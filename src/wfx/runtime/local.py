"""The local executor: each attempt is a process group on this machine.

What it keeps from the engine of before the executor port: a process group per attempt
(runtime/process.py), TERM to the whole tree on timeout or cancellation and KILL after the
kill grace, the sweep of what the tree left behind, `$WFX_OUTPUT` as a file in its own
scratch directory, a `{0}` shell's script file beside it, and the refusal of arguments and
variables no process can receive.
"""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import anyio

from wfx.durations import format_duration
from wfx.runtime.actions import MAX_LINE, Attempt, unpassable
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import SCRIPT_PLACEHOLDER, AttemptRequest, OutputSink
from wfx.runtime.outputs import OutputFormatError, read_outputs
from wfx.runtime.process import (
    ProcessOutcome,
    ProcessStartError,
    ProcessTracker,
    ReadyProcess,
    StartedProcess,
    encoded_environment,
    own_environment,
)
from wfx.runtime.spawn import Environment

#: what `where` reports for an attempt of this executor
LOCAL = "local"


class LocalExecutor:
    """Runs attempts as process groups on this machine (the default executor)."""

    name = LOCAL

    def __init__(
        self, *, environ: Mapping[str, str] | None = None, scratch: Path | None = None
    ) -> None:
        """`environ`: the base environment of every attempt (default: wfx's own, as it
        is when the attempt starts). `scratch`: where `$WFX_OUTPUT` files and script
        files go (emptied at start, removed at close); default a new temporary directory."""
        self._environ = dict(environ) if environ is not None else None
        self._encoded: Environment | None = None
        self._chosen_scratch = scratch
        self._scratch: Path | None = None
        self._names = itertools.count(1)
        self._running: dict[str, _Running] = {}

    @property
    def capacity(self) -> int | None:
        """No limit of its own: `maxParallel` bounds a run."""
        return None

    async def start(self) -> None:
        """Make (or empty) the scratch directory."""
        self._scratch = _fresh_scratch(self._chosen_scratch)

    async def close(self) -> None:
        """Remove the scratch directory (every attempt has ended by now)."""
        if self._scratch is not None:
            _remove(self._scratch)
            self._scratch = None

    async def run_attempt(self, request: AttemptRequest, on_output: OutputSink) -> Attempt:
        """Run one attempt as a process group; never raises for the step's own failure."""
        begun = self.begin(request, on_output)
        return begun if isinstance(begun, Attempt) else await begun.finish()

    def begin(self, request: AttemptRequest, on_output: OutputSink) -> Attempt | LocalStart:
        """Start one attempt now, without waiting for it: the
        running attempt, whose `finish` the caller must await, or the Attempt that failed
        to start. :meth:`run_attempt` is this and that `finish`; the scheduler calls it
        for a burst of ready steps, to start their processes back to back."""
        ready = self._ready(request, on_output, ahead=False)
        return ready if isinstance(ready, Attempt) else ready.start(again=False)

    def ready(self, request: AttemptRequest, on_output: OutputSink) -> Attempt | LocalReady:
        """All of :meth:`begin` but the start itself, done now, while the step before this
        one still runs (its files named, its environment encoded, its program looked up):
        `start` on the result then starts it, or the Attempt says why it cannot start."""
        return self._ready(request, on_output, ahead=True)

    def _ready(
        self, request: AttemptRequest, on_output: OutputSink, *, ahead: bool
    ) -> Attempt | LocalReady:
        if self._scratch is None:
            self._scratch = _fresh_scratch(self._chosen_scratch)
        stem = f"{self._scratch}/{next(self._names)}"  # plain text: paths cost per attempt
        argv = list(request.argv)
        script_file: Path | None = None
        if request.script is not None:
            script_file = Path(f"{stem}.script{request.script_suffix}")
            try:
                script_file.write_text(request.script, encoding="utf-8", errors="surrogateescape")
            except OSError as exc:
                return _failed(f"cannot write the script file: {exc}")
            argv = [item.replace(SCRIPT_PLACEHOLDER, str(script_file)) for item in argv]
        output_file = f"{stem}.out"
        own = {**request.env, "WFX_OUTPUT": output_file}
        problem = unpassable(argv, own, request.cwd)
        if problem is not None:
            if script_file is not None:
                script_file.unlink(missing_ok=True)
            return _failed(problem)
        running = _Running(ProcessTracker(request.run_id))
        base = self._base()
        process = ReadyProcess(
            argv,
            env=own,
            base=base,
            cwd=request.cwd,
            timeout=request.timeout,
            kill_grace=request.kill_grace,
            on_output=on_output,
            tracker=running.tracker,
            max_line=MAX_LINE,
            direct=request.direct,
            ahead=ahead,
        )
        return LocalReady(
            self, request, on_output, running, process, output_file, script_file, base
        )

    def _base(self) -> Environment:
        """The environment every attempt starts from, encoded once (wfx's own is read
        again for each attempt: it may have changed)."""
        if self._environ is None:
            return own_environment()
        if self._encoded is None:
            self._encoded = encoded_environment(self._environ)
        return self._encoded

    async def _finish(self, started: LocalStart) -> Attempt:
        """Supervise a started attempt to its end; its result."""
        request, running = started.request, started.running
        try:
            with running.scope as scope:
                try:
                    outcome = await started.process.finish()
                finally:
                    del self._running[request.key]
                    running.end()
        finally:
            if started.script_file is not None:
                started.script_file.unlink(missing_ok=True)
        if scope.cancelled_caught:
            return Attempt(StepStatus.CANCELLED, reason="cancelled", where=LOCAL)
        leftovers = tuple(f"{p.pid} {p.command}" for p in outcome.leftovers)
        code, signal = outcome.returncode, outcome.signal
        if outcome.timed_out:
            reason = f"timed out after {format_duration(request.timeout, '?')}"
            return Attempt(StepStatus.TIMEOUT, {}, code, signal, reason, leftovers, where=LOCAL)
        if not outcome.succeeded:
            reason = _exit_reason(code, signal)
            return Attempt(StepStatus.FAILED, {}, code, signal, reason, leftovers, where=LOCAL)
        try:
            outputs = started.outputs
            if outputs is None:
                outputs = read_outputs(started.output_file, request.output_limit)
        except OutputFormatError as exc:
            reason = f"bad $WFX_OUTPUT: {exc}"
            return Attempt(StepStatus.FAILED, {}, 0, None, reason, leftovers, where=LOCAL)
        return Attempt(StepStatus.SUCCESS, outputs, 0, None, None, leftovers, where=LOCAL)

    async def cancel(self, key: str, grace: float) -> None:
        """Stop attempt `key`: its process tree gets TERM, and KILL once `grace` (or the
        request's own kill grace, if shorter) has passed."""
        running = self._running.get(key)
        if running is None:
            return
        running.scope.cancel()
        with anyio.move_on_after(grace):
            await running.wait_ended()
        if not running.ended:
            running.tracker.kill_all()

    def kill_all(self) -> None:
        """SIGKILL every process of every running attempt, now."""
        for running in list(self._running.values()):
            running.tracker.kill_all()

    def where(self, key: str) -> str | None:
        """Every attempt of this executor runs here."""
        return LOCAL


@dataclass(slots=True)
class LocalReady:
    """An attempt :meth:`LocalExecutor.ready` made ready: `start` starts it."""

    executor: LocalExecutor
    request: AttemptRequest
    on_output: OutputSink
    running: _Running
    process: ReadyProcess
    output_file: str
    script_file: Path | None
    base: Environment

    def start(self, *, again: bool = True) -> Attempt | LocalStart:
        """Start the attempt now: the running attempt, or the Attempt that failed to
        start. Made ready earlier (`again`), it is made again, whole, should wfx's own
        environment have changed since (a Python step may change it)."""
        executor, request = self.executor, self.request
        if again and executor._base() is not self.base:
            if self.script_file is not None:
                self.script_file.unlink(missing_ok=True)
            again_now = executor._ready(request, self.on_output, ahead=False)
            return again_now if isinstance(again_now, Attempt) else again_now.start(again=False)
        try:
            process = self.process.start()
        except ProcessStartError as exc:
            if self.script_file is not None:
                self.script_file.unlink(missing_ok=True)
            return _failed(str(exc))
        executor._running[request.key] = self.running
        return LocalStart(
            executor, request, self.running, process, self.output_file, self.script_file
        )


@dataclass(slots=True)
class LocalStart:
    """An attempt :meth:`LocalExecutor.begin` started: its process runs; `finish` waits
    for it and returns the attempt's result."""

    executor: LocalExecutor
    request: AttemptRequest
    running: _Running
    process: StartedProcess
    output_file: str
    script_file: Path | None
    outputs: dict[str, str] | None = None
    """Its `$WFX_OUTPUT`, read once the process succeeded, when that is watched for."""
    _succeeded: Callable[[], None] | None = None

    async def finish(self) -> Attempt:
        """Wait for the attempt to end (cancelling the caller stops its process tree)."""
        return await self.executor._finish(self)

    def when_succeeded(self, callback: Callable[[], None]) -> None:
        """Call `callback` as soon as this attempt is known to succeed: its process
        exited with 0, in time, uncancelled, its output read, nothing of its group left,
        its `$WFX_OUTPUT` well formed; before its descriptors are released and its result
        is made (`finish` then returns that success)."""
        self._succeeded = callback
        self.process.on_end = self._ended

    def _ended(self, outcome: ProcessOutcome) -> None:
        if not outcome.succeeded or self.running.scope.cancel_called:
            return
        try:
            self.outputs = read_outputs(self.output_file, self.request.output_limit)
        except OutputFormatError:
            return  # the usual way reports it
        assert self._succeeded is not None
        self._succeeded()


class _Running:
    """An attempt while it runs: the scope that cancels it, the tracker of its processes
    (their markers name the run, so a resume of a run whose wfx died finds them:
    process.stop_leftovers), and whether it has ended (with an event made only when a
    cancellation waits for the end: most attempts are never cancelled)."""

    __slots__ = ("_done", "ended", "scope", "tracker")

    def __init__(self, tracker: ProcessTracker) -> None:
        self.scope = anyio.CancelScope()
        self.tracker = tracker
        self.ended = False
        self._done: anyio.Event | None = None

    def end(self) -> None:
        """The attempt has ended: wake whoever waits for it."""
        self.ended = True
        if self._done is not None:
            self._done.set()

    async def wait_ended(self) -> None:
        """Wait until the attempt has ended."""
        if self.ended:
            return
        if self._done is None:
            self._done = anyio.Event()
        await self._done.wait()


def _remove(directory: Path) -> None:
    """Remove a scratch directory and what is in it: usually nothing (a step leaves a file
    there only when it writes `$WFX_OUTPUT` or runs as a script file), so one `rmdir`
    first, not the walk of `shutil.rmtree` (about 1 ms at the end of every run)."""
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)


def _fresh_scratch(chosen: Path | None) -> Path:
    if chosen is None:
        import tempfile  # noqa: PLC0415 - only with no scratch directory chosen (no journal)

        return Path(tempfile.mkdtemp(prefix="wfx-run-"))
    shutil.rmtree(chosen, ignore_errors=True)  # what a killed attempt of this run left
    chosen.mkdir(parents=True)
    return chosen


def _failed(reason: str) -> Attempt:
    return Attempt(StepStatus.FAILED, reason=reason, where=LOCAL)


def _exit_reason(returncode: int | None, signal_number: int | None) -> str:
    if signal_number is not None:
        return f"killed by signal {signal_number}"
    return f"exit code {returncode}"
