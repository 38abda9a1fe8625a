"""The engine: runs an ExecutionGraph on anyio and reports everything through events.

Scheduling is event-driven: a step starts the moment its own dependencies are
done (never stage by stage). Each node has a counter of unfinished dependencies;
the one finish that brings it to zero starts it, so a step with two parents that
finish together starts exactly once. All steps of a phase live in one task group;
each running step has its own cancel scope, so a failing run cancels exactly the
steps that must stop while `failure()`/`always()` steps still get their turn.

A run has three phases: the main steps (bounded by the workflow `timeout`), the
compensation of succeeded steps in reverse order of completion when the run
failed or was interrupted (saga), and the `finally` steps.
"""

from __future__ import annotations

import dataclasses
import math
import os
import random
import shutil
import signal
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel

from wfx.diagnostics import Span
from wfx.expr import ExpressionError, Status, Template, is_truthy
from wfx.graph import ExecutionGraph, Node, NodeKind, RetrySchedule, Section
from wfx.model import Action, OnError, Step, StepId, StepKind
from wfx.runtime import events as ev
from wfx.runtime.actions import (
    MAX_LINE,
    Attempt,
    AttemptSetup,
    PythonAction,
    StepContexts,
    inherited_environment,
    render_text,
    render_value,
    rendering_failed,
    run_attempt,
)
from wfx.runtime.events import RunStatus, StepStatus
from wfx.runtime.journal import ResumeState, StepRecord
from wfx.runtime.process import ProcessTracker
from wfx.runtime.retry import wait_before
from wfx.runtime.secrets import MaskingStream, SecretSet

#: a worker running a chain of instant steps yields to the event loop this often
_FAIRNESS = 64

#: the orphan-kill warning lists this many processes, each cut to this many characters
_LEFTOVERS_LISTED = 5
_LEFTOVER_CHARS = 60

#: journaled statuses a resumed run keeps as they are (everything else runs again)
_KEPT = frozenset({"success", "failed", "timeout", "rolledBack", "rollbackFailed"})

#: journaled statuses of steps whose effects a compensation undid (or tried to)
_COMPENSATED = frozenset({"rolledBack", "rollbackFailed"})

_FAILED_RECORDS = frozenset({"failed", "timeout"})

_FINISHED = frozenset(
    {
        StepStatus.SUCCESS,
        StepStatus.FAILED,
        StepStatus.TIMEOUT,
        StepStatus.SKIPPED,
        StepStatus.CANCELLED,
        StepStatus.ROLLED_BACK,
        StepStatus.ROLLBACK_FAILED,
    }
)


@dataclass(frozen=True, slots=True)
class StepResult:
    """How one step ended."""

    id: StepId
    status: StepStatus
    attempts: int
    duration: float
    outputs: Mapping[str, Any]
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class RunResult:
    """How a run ended: its status and exit code, every step, the workflow outputs."""

    run_id: str
    status: RunStatus
    steps: Mapping[StepId, StepResult]
    outputs: Mapping[str, Any]
    workspace: Path
    duration: float
    reason: str | None = None

    @property
    def exit_code(self) -> int:
        """The exit code of the run: 0, 1, 3 or 130."""
        return self.status.exit_code


@dataclass(frozen=True)
class RunOptions:
    """How to run: overrides for Python steps, where events go, signals, workspace."""

    actions: Mapping[str, PythonAction] = field(default_factory=dict)
    events: ev.EventSink | None = None
    environ: Mapping[str, str] | None = None
    workspace: Path | None = None
    handle_signals: bool = False
    run_id: str | None = None
    seed: int | None = None
    resume: ResumeState | None = None
    scratch: Path | None = None
    """Where the `$WFX_OUTPUT` files go (emptied first, removed at the end); by default a
    new temporary directory. The CLI puts it beside the journal, so a killed run's files
    are not left in /tmp but cleared by its resume."""


@dataclass
class _State:
    """The mutable state of one node during a run."""

    status: StepStatus = StepStatus.PENDING
    attempts: int = 0
    outputs: Mapping[str, Any] = field(default_factory=dict)
    started: float | None = None
    ended: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    tolerated: bool = False
    bad: bool = False
    completed: int = -1
    span: Span | None = None


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus randomness."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + uuid.uuid4().hex[:8]


async def run(
    graph: ExecutionGraph,
    *,
    inputs: Mapping[str, Any] | None = None,
    actions: Mapping[str, PythonAction] | None = None,
    events: ev.EventSink | None = None,
    options: RunOptions | None = None,
) -> RunResult:
    """Run a compiled workflow; return every step's status, attempts, duration and outputs."""
    chosen = options or RunOptions()
    if actions is not None:
        chosen = dataclasses.replace(chosen, actions=actions)
    if events is not None:
        chosen = dataclasses.replace(chosen, events=events)
    if inputs is not None:
        from wfx import inputs as input_values  # noqa: PLC0415 - only when inputs change

        graph = ExecutionGraph(
            graph.workflow, graph.nodes, graph.ids, input_values.resolve(graph.workflow, inputs)
        )
    return await _Run(graph, chosen).execute()


class _OutputChannel:
    """Turns a step's output pieces into masked StepOutput events.

    Complete lines are masked on their own; the chunks of a very long line go through
    a masking stream, so a secret cut in two by the chunking is still masked.
    """

    def __init__(self, run: _Run, step_id: StepId, rollback: bool) -> None:
        self.run = run
        self.step_id = step_id
        self.rollback = rollback
        self.streams: dict[str, MaskingStream] = {}

    def __call__(self, stream: str, text: str) -> None:
        secrets = self.run.secrets
        if not secrets:
            self.deliver(stream, text)
            return
        masker = self.streams.get(stream)
        if masker is None:
            masker = self.streams[stream] = secrets.stream()
        shown = masker.feed(text, end_of_line=len(text) < MAX_LINE)
        if shown:
            self.deliver(stream, shown)

    def flush(self) -> None:
        """Emit what the masking streams held back (at the end of an attempt)."""
        for stream, masker in self.streams.items():
            rest = masker.flush()
            if rest:
                self.deliver(stream, rest)
        self.streams.clear()

    def deliver(self, stream: str, text: str) -> None:
        event = ev.StepOutput(
            self.run.run_id, time.time(), self.step_id, stream, text, self.rollback
        )
        self.run.emit(event)


class _Run:
    """One execution of a graph."""

    def __init__(self, graph: ExecutionGraph, options: RunOptions) -> None:
        self.graph = graph
        self.options = options
        resume = options.resume
        self.run_id = resume.run_id if resume else (options.run_id or new_run_id())
        self.sink = options.events or (lambda _event: None)
        self.environ = dict(options.environ) if options.environ is not None else None
        base_env = self.environ if self.environ is not None else inherited_environment()
        self.base_env = base_env
        workflow = graph.workflow
        self.secrets = SecretSet.from_environment((s.value for s in workflow.secrets), base_env)
        self.states = [_State() for _ in graph.nodes]
        self.remaining = [len(n.deps) for n in graph.nodes]
        self.dependents: list[list[int]] = [[] for _ in graph.nodes]
        for node in graph.nodes:
            for dep in node.deps:
                self.dependents[dep].append(node.index)
        self.scopes: dict[int, tuple[anyio.CancelScope, bool]] = {}
        self.tracker = ProcessTracker(self.run_id)
        self.rng = random.Random(options.seed)
        self.completions = 0
        self.failing = False
        self.cancelled = False
        self.aborted = False
        self.tolerated_failures = False
        self.reason: str | None = None
        self.steps_context: dict[str, Any] = {}
        self.workflow_dir = str(Path(workflow.file).resolve().parent)
        self.limiters = self._limiters()
        self.group_starts = {n.id: n.index for n in graph.nodes if n.kind is NodeKind.GROUP_START}
        self.workspace = options.workspace or _default_workspace(resume)
        self.scratch = _fresh_scratch(options.scratch)
        self.scratch_dir = str(self.scratch)
        self.workspace_dir = str(self.workspace)
        self.task_group: anyio.abc.TaskGroup | None = None
        self.unfinished = 0
        self.idle_workers = 0
        self.queued = 0
        self.workers_starting = 0
        self.skipped_groups = False
        self.ready_send, self.ready_receive = anyio.create_memory_object_stream[Node](math.inf)
        self.ready_send.close()  # each phase opens its own pair
        self.ready_receive.close()
        self.restored: dict[int, StepRecord] = {}
        self.resumed: dict[int, StepRecord] = {}
        self.rollbacks_done: set[str] = set()
        self.again: set[int] = set()
        if resume is not None:
            self._restore(resume)
        self.started = time.monotonic()

    # -- resuming ---------------------------------------------------------------------------

    def _restore(self, resume: ResumeState) -> None:
        """Seed the run from its journal: finished steps stay finished, in-flight ones run
        again with their attempt count. A run that is still failing keeps owing the
        compensations it had not finished; one that is not (it was interrupted) runs again
        every step a compensation undid or was undoing, so it never ends in success over
        undone work (docs/durability.md, "Resuming after compensation")."""
        records = [(n, resume.steps.get(n.id)) for n in self.graph.steps()]
        failed = [
            n.id
            for n, r in records
            if r is not None and r.status in _FAILED_RECORDS and not self._tolerates(n)
        ]
        self.failing = bool(failed)
        undone = {s for s, status in resume.rollbacks.items() if status != "running"}
        for node, record in records:
            if record is None:
                continue
            touched = record.status in _COMPENSATED or resume.rollbacks.get(node.id) == "running"
            if touched and not self.failing:
                self._run_again(node, record)
            elif record.status in _KEPT:
                self.restored[node.index] = record
                self.completions = max(self.completions, record.completed or 0)
                if node.id in undone and record.status in _COMPENSATED:
                    self.rollbacks_done.add(node.id)
            elif record.attempts:
                self.resumed[node.index] = record
        if failed:
            self.reason = resume.reason or f"step `{failed[0]}` failed"

    def _run_again(self, node: Node, record: StepRecord) -> None:
        """Run a step the journal says finished once more, as new attempts."""
        self.resumed[node.index] = record
        self.again.add(node.index)

    def _main_ran_again(self) -> bool:
        """Whether this resumed run started a main step (so `finally` must run again)."""
        return any(
            n.index not in self.restored and self.states[n.index].started is not None
            for n in self.graph.steps(Section.MAIN)
        )

    def _rerun_finally(self) -> None:
        """A resumed run that did main work again runs every `finally` step again: their
        earlier run saw a run that has since gone on."""
        if self.restored and self._main_ran_again():
            for node in self.graph.steps(Section.FINALLY):
                record = self.restored.pop(node.index, None)
                if record is not None:
                    self._run_again(node, record)

    def _tolerates(self, node: Node) -> bool:
        return node.settings is not None and node.settings.on_error.value is OnError.CONTINUE

    def _count_finished(self) -> None:
        """One more step of the phase is final; the last one lets idle workers go."""
        self.unfinished -= 1
        if not self.unfinished:
            self.ready_send.close()

    def _finish_restored(self, node: Node, record: StepRecord) -> None:
        """A step the journal says already finished: take its result, do not run it."""
        self._count_finished()
        state = self.states[node.index]
        state.attempts = record.attempts
        state.outputs = record.outputs
        state.exit_code, state.signal = record.exit_code, record.signal
        state.completed = record.completed or -1
        state.started = state.ended = time.monotonic()
        status = StepStatus(record.status)
        state.tolerated = status.is_failure and self._tolerates(node)
        if state.tolerated:
            self.tolerated_failures = True
        if status in (StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED):
            state.status = status
            self.steps_context[node.id] = self._step_context(state, 0.0)
            return
        state.status = status
        state.reason = record.reason
        self.steps_context[node.id] = self._step_context(state, 0.0)
        self.emit(
            ev.StepRestored(
                self.run_id,
                self.now(),
                node.id,
                status,
                record.attempts,
                0.0,
                record.exit_code,
                record.signal,
                record.reason,
                record.outputs,
            )
        )

    def _step_context(self, state: _State, duration: float) -> dict[str, Any]:
        return {
            "outputs": state.outputs,
            "status": state.status.value,
            "attempts": state.attempts,
            "duration": duration,
        }

    # -- events -----------------------------------------------------------------------------

    def emit(self, event: ev.Event) -> None:
        self.sink(event)

    def now(self) -> float:
        return time.time()

    # -- the run ----------------------------------------------------------------------------

    async def execute(self) -> RunResult:
        self.workspace.mkdir(parents=True, exist_ok=True)
        for warning in self.secrets.warnings:
            self.emit(ev.Notice(self.run_id, self.now(), warning))
        self.emit(self._run_started())
        try:
            async with anyio.create_task_group() as outer:
                if self.options.handle_signals:
                    outer.start_soon(self._watch_signals, outer.cancel_scope)
                with anyio.CancelScope() as self.abort_scope:
                    await self._main_phase()
                    if self.failing or self.cancelled:
                        await self._compensate()
                    self._rerun_finally()
                    await self._phase(Section.FINALLY)
                outer.cancel_scope.cancel()
        finally:
            shutil.rmtree(self.scratch, ignore_errors=True)
        return self._finish()

    async def _main_phase(self) -> None:
        timeout = self.graph.workflow.timeout
        limit = math.inf if timeout is None else float(timeout.value)
        with anyio.move_on_after(limit) as scope:
            await self._phase(Section.MAIN)
        if scope.cancelled_caught:
            self.failing = True
            self.reason = f"the workflow timed out after {limit:g}s"

    async def _phase(self, section: Section) -> None:
        """Run one section's nodes. Steps run on worker tasks that pick up the next ready
        step when theirs ends, so 10,000 quick steps do not cost 10,000 task spawns."""
        roots = [n.index for n in self.graph.nodes if n.section is section and not n.deps]
        self.unfinished = sum(1 for _ in self.graph.steps(section))
        self.ready_send, self.ready_receive = anyio.create_memory_object_stream[Node](math.inf)
        self.idle_workers = 0
        self.queued = 0
        self.workers_starting = 0
        try:
            async with anyio.create_task_group() as group:
                self.task_group = group
                self._release(roots)
                if not self.unfinished:
                    self.ready_send.close()
        finally:
            self.ready_send.close()
            self.ready_receive.close()
            self.task_group = None
        for node in self.graph.nodes:
            if node.section is section and self.states[node.index].status is StepStatus.PENDING:
                self._finish_node(node, StepStatus.SKIPPED, "the run stopped before it")

    def _release(self, ready: list[int], *, keep_one: bool = False) -> Node | None:
        """Start every ready node; group barriers pass through at once, without a task.
        With `keep_one`, the first ready step is returned for the calling worker to run."""
        kept: Node | None = None
        queue = deque(ready)
        while queue:
            index = queue.popleft()
            node = self.graph.nodes[index]
            if node.is_step:
                if keep_one and kept is None:
                    kept = node
                else:
                    self._dispatch(node)
                continue
            self._pass_barrier(node)
            queue.extend(self._completed(index))
        return kept

    def _dispatch(self, node: Node) -> None:
        """Hand a ready step to an idle worker, or queue it and make sure a worker is on its
        way. Workers are started as they are needed: each new worker that finds more steps
        queued than workers on their way starts two more, so a burst of steps that wait (a
        process, a sleep) has all its workers within a few loop turns, while a burst of
        10,000 steps that finish at once is served by a few dozen tasks, not 10,000."""
        self.ready_send.send_nowait(node)
        if self.idle_workers:
            self.idle_workers -= 1
            return
        self.queued += 1
        if not self.workers_starting:
            self._start_workers(1)

    def _start_workers(self, count: int) -> None:
        assert self.task_group is not None
        for _ in range(count):
            self.workers_starting += 1
            self.task_group.start_soon(self._worker)

    async def _worker(self) -> None:
        """Run steps until the phase ends: take a queued step, then each step its own step
        made ready (a chain stays on one task), then the next queued one."""
        self.workers_starting -= 1
        first = True
        streak = 0
        while True:
            try:
                current: Node | None = self.ready_receive.receive_nowait()
                self.queued -= 1
            except anyio.WouldBlock:
                self.idle_workers += 1
                try:
                    current = await self.ready_receive.receive()
                except anyio.EndOfStream:
                    return
            except anyio.EndOfStream:
                return
            if first:
                first = False
                self._start_workers(min(2, self.queued - self.workers_starting))
            while current is not None:
                current = self._release(await self._run_step(current), keep_one=True)
                streak += 1
                if streak % _FAIRNESS == 0:
                    await anyio.lowlevel.checkpoint()  # let signals and other tasks in

    def _completed(self, index: int) -> list[int]:
        """Count one finished dependency for each dependent; return those now ready."""
        ready = []
        for dependent in self.dependents[index]:
            self.remaining[dependent] -= 1
            if self.remaining[dependent] == 0:
                ready.append(dependent)
        return ready

    def _pass_barrier(self, node: Node) -> None:
        state = self.states[node.index]
        state.bad = self._bad_upstream(node)
        if node.kind is NodeKind.GROUP_START:
            decision = self._decide(node, node.step, state.bad)
            state.status = StepStatus.SUCCESS if decision is None else StepStatus.SKIPPED
            state.reason = decision
            if decision is not None:
                self.skipped_groups = True
        else:
            state.status = StepStatus.SUCCESS

    # -- one step ---------------------------------------------------------------------------

    async def _run_step(self, node: Node) -> list[int]:
        """Run (or skip, or restore) one step; return the nodes its end made ready."""
        state = self.states[node.index]
        record = self.restored.get(node.index)
        if record is not None:
            state.bad = self._bad_upstream(node)
            self._finish_restored(node, record)
            return self._completed(node.index)
        state.bad = self._bad_upstream(node)
        skip = self._decide(node, node.step, state.bad)
        if skip is not None:
            self._finish_node(node, StepStatus.SKIPPED, skip)
            return self._completed(node.index)
        main = node.section is Section.MAIN
        cancel_on_failure = main and not (node.step.condition and self._uses_status_function(node))
        try:
            with anyio.CancelScope() as scope:
                if main:
                    self.scopes[node.index] = (scope, cancel_on_failure)
                if cancel_on_failure and (self.cancelled or self.failing):
                    scope.cancel()  # a status-function step starts even after Ctrl-C
                limiters = self._limiters_of(node)
                if limiters:
                    async with AsyncExitStack() as stack:
                        for limiter in limiters:
                            await stack.enter_async_context(limiter)
                        await self._attempts(node, state)
                else:
                    await self._attempts(node, state)
            if scope.cancelled_caught:
                self._stopped(node, state)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                self._stopped(node, state)
            raise
        finally:
            self.scopes.pop(node.index, None)
        return self._completed(node.index)

    def _stopped(self, node: Node, state: _State) -> None:
        if state.status in _FINISHED:
            return
        if state.started is None:
            self._finish_node(node, StepStatus.SKIPPED, "the run stopped before it")
        else:
            self._finish_node(node, StepStatus.CANCELLED, "cancelled: the run is stopping")

    async def _attempts(self, node: Node, state: _State) -> None:
        settings = node.settings
        assert settings is not None and node.action is not None
        schedule: RetrySchedule = settings.retry.value
        state.started = time.monotonic()
        state.status = StepStatus.RUNNING
        result = Attempt(StepStatus.FAILED, reason="not run")
        first, done = await self._resume_point(node) if self.resumed else (1, 0)
        last = max(done + schedule.attempts, first)  # a crash mid-redo: that attempt runs
        for attempt in range(first, last + 1):
            state.attempts = attempt
            self.emit(ev.StepStarted(self.run_id, self.now(), node.id, attempt))
            result = await self._attempt(node, node.action, attempt)
            self._report_leftovers(node, result)
            if result.status is StepStatus.SUCCESS or attempt == last:
                break
            delay = wait_before(schedule, attempt - done, self.rng)
            reason = self.secrets.mask(result.reason or result.status.value)
            self.emit(
                ev.StepRetrying(
                    self.run_id, self.now(), node.id, attempt, attempt + 1, delay, reason
                )
            )
            await anyio.sleep(delay)
        self._record(node, state, result)

    async def _resume_point(self, node: Node) -> tuple[int, int]:
        """The attempt to start with, and how many attempts of earlier runs of the step
        are done with (its retry budget counts from there): (1, 0), or where a resumed step
        left off. A crash during an attempt runs that attempt again (same number, same
        idempotency key); a crash during a backoff wait keeps the wait's deadline; a step
        whose effects were compensated runs again with a fresh budget and new attempt
        numbers, so its idempotency key is not the one of the work that was undone."""
        record = self.resumed.pop(node.index, None)
        if record is None:
            return 1, 0
        if node.index in self.again:
            return record.attempts + 1, record.attempts
        if record.status == "retrying":
            if record.retry_at is not None:
                await anyio.sleep(max(0.0, record.retry_at - time.time()))
            return record.attempts + 1, 0
        return max(1, record.attempts), 0

    async def _attempt(self, node: Node, action: Action, attempt: int) -> Attempt:
        settings = node.settings
        assert settings is not None
        try:
            if action.kind is StepKind.USES:
                contexts = self._contexts(node, attempt) if action.with_ else {}
                setup = self._python_setup(node, attempt, contexts)
            else:
                setup = self._setup(node, attempt, self._contexts(node, attempt))
        except ExpressionError as exc:
            return rendering_failed(exc, "the step")
        try:
            return await run_attempt(action, setup)
        finally:
            _flush(setup)

    def _record(self, node: Node, state: _State, result: Attempt) -> None:
        state.exit_code, state.signal = result.exit_code, result.signal
        state.span = result.span
        if result.status is StepStatus.SUCCESS:
            state.outputs = self.secrets.mask_value(dict(result.outputs))
            self.completions += 1
            state.completed = self.completions
            self._finish_node(node, StepStatus.SUCCESS, None)
            return
        on_error = node.settings.on_error.value if node.settings else OnError.FAIL
        state.tolerated = on_error is OnError.CONTINUE
        self._finish_node(node, result.status, result.reason)
        if state.tolerated:
            self.tolerated_failures = True
        else:
            self._fail(f"step `{node.id}` {result.status.value}: {result.reason}")

    def _finish_node(self, node: Node, status: StepStatus, reason: str | None) -> None:
        state = self.states[node.index]
        state.status = status
        state.reason = self.secrets.mask(reason) if reason else None
        state.ended = time.monotonic()
        if not node.is_step:
            return
        self._count_finished()
        duration = state.ended - (state.started or state.ended)
        self.steps_context[node.id] = self._step_context(state, duration)
        event_type = ev.FINISHED_BY_STATUS[status]
        self.emit(
            event_type(
                self.run_id,
                self.now(),
                node.id,
                status,
                state.attempts,
                duration,
                state.exit_code,
                state.signal,
                state.reason,
                state.outputs,
                state.span,
            )
        )

    def _report_leftovers(self, node: Node, result: Attempt) -> None:
        if result.leftovers:
            listed = _brief_list([self.secrets.mask(p) for p in result.leftovers])
            message = f"killed processes `{node.id}` left running: {listed}"
            self.emit(ev.Notice(self.run_id, self.now(), message, node.id))

    # -- failure and cancellation -----------------------------------------------------------

    def _fail(self, reason: str) -> None:
        if not self.failing:
            self.reason = reason
        self.failing = True
        for scope, cancel_on_failure in list(self.scopes.values()):
            if cancel_on_failure:
                scope.cancel()

    def interrupt(self) -> None:
        """First Ctrl-C or SIGTERM: stop running steps, then compensate and run `finally`."""
        self.cancelled = True
        self.reason = self.reason or "interrupted"
        for scope, _ in list(self.scopes.values()):
            scope.cancel()

    def abort(self) -> None:
        """Second Ctrl-C: kill every process now and skip compensation and `finally`."""
        self.aborted = True
        self.cancelled = True
        self.tracker.kill_all()
        self.emit(
            ev.Notice(
                self.run_id,
                self.now(),
                "second interrupt: killed all processes; compensation and finally are skipped",
                level="error",
            )
        )
        self.abort_scope.cancel()

    async def _watch_signals(self, scope: anyio.CancelScope) -> None:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for received in signals:
                if self.cancelled:
                    self.abort()
                    return
                name = signal.Signals(received).name
                self.emit(ev.Notice(self.run_id, self.now(), f"{name} received: stopping"))
                self.interrupt()

    # -- conditions -------------------------------------------------------------------------

    def _bad_upstream(self, node: Node) -> bool:
        """Whether a step this node depends on (transitively) failed without `continue`."""
        for dep in node.deps:
            state = self.states[dep]
            if state.bad or (state.status.is_failure and not state.tolerated):
                return True
        return False

    def _decide(self, node: Node, step: Step, bad_upstream: bool) -> str | None:
        """None when the node runs, else why it is skipped."""
        quiet = not (bad_upstream or self.failing or self.cancelled or self.skipped_groups)
        if step.condition is None and quiet:
            return None  # the common case, decided without building a status
        for group_id in node.groups:
            group = self.states[self.group_starts[group_id]]
            if group.status is StepStatus.SKIPPED:
                return f"group `{group_id}` was skipped"
        status = self._status(node, bad_upstream)
        condition = step.condition
        if condition is None:
            passes = node.section is Section.FINALLY or not (status.failed or status.cancelled)
            return None if passes else self._why_not(status)
        if condition.constant is not None:
            return None if condition.constant else "its condition is false"
        expression = condition.expression
        assert expression is not None
        if not expression.uses_status_function() and (status.failed or status.cancelled):
            return self._why_not(status)
        try:
            contexts = self._contexts(node, 0, status)
        except ExpressionError as exc:  # the `env` the condition may read
            self.states[node.index].span = exc.span
            return f"{exc.span}: cannot render the step: {exc.message}"
        try:
            value = expression.evaluate(contexts, status=status)
        except ExpressionError as exc:
            self.states[node.index].span = exc.span
            return f"{exc.span}: its condition could not be evaluated: {exc.message}"
        return None if is_truthy(value) else "its condition is false"

    def _status(self, node: Node, bad_upstream: bool) -> Status:
        """What the status functions report for `node` now: the one answer its condition
        and its text (`run`, `cmd`, `env`, `with`) both get."""
        if node.section is Section.FINALLY:
            return Status(failed=self.failing or bad_upstream, cancelled=self.cancelled)
        independent_stop = self.failing and not bad_upstream
        return Status(failed=bad_upstream, cancelled=self.cancelled or independent_stop)

    def _ending_status(self) -> Status:
        """The status of rollbacks and workflow outputs, which see the run as a whole."""
        return Status(failed=self.failing, cancelled=self.cancelled)

    def _why_not(self, status: Status) -> str:
        if status.failed:
            return "a step it depends on failed"
        return "the run is stopping"

    def _uses_status_function(self, node: Node) -> bool:
        condition = node.step.condition
        return bool(
            condition and condition.expression and condition.expression.uses_status_function()
        )

    # -- contexts and setup -----------------------------------------------------------------

    def _contexts(self, node: Node, attempt: int, status: Status | None = None) -> StepContexts:
        values: dict[str, Any] = {
            "inputs": self.graph.inputs,
            "secrets": self.secrets.values,
            "steps": self.steps_context,
            "workflow": self._workflow_context(),
            "attempt": attempt,
            "env": {},
        }
        if status is None:
            status = self._status(node, self.states[node.index].bad)
        contexts = StepContexts(values, status)
        settings = node.settings
        if settings is not None and settings.env:
            env: dict[str, str] = {}
            contexts["env"] = env
            for name, setting in settings.env.items():
                env[name] = render_text(setting.value, contexts)
        return contexts

    def _workflow_context(self) -> dict[str, Any]:
        return {
            "name": self.graph.workflow.name or "",
            "runId": self.run_id,
            "status": self._status_word(),
        }

    def _status_word(self) -> str:
        if self.cancelled:
            return "cancelled"
        if self.failing:
            return "failure"
        return "success"

    def _setup(self, node: Node, attempt: int, contexts: Mapping[str, Any]) -> AttemptSetup:
        settings = node.settings
        assert settings is not None
        output_file = f"{self.scratch_dir}/{node.index}-{attempt}.out"
        extra = {
            "WFX_OUTPUT": output_file,
            "WFX_WORKSPACE": self.workspace_dir,
            "WFX_RUN_ID": self.run_id,
            "WFX_STEP_ID": node.id,
            "WFX_ATTEMPT": str(attempt),
            "WFX_IDEMPOTENCY_KEY": f"{self.run_id}:{node.id}:{attempt}",
        }
        env = {**contexts["env"], **extra}
        timeout = settings.timeout.value
        return AttemptSetup(
            step_id=node.id,
            attempt=attempt,
            contexts=contexts,
            env=env,
            base_env=self.base_env,
            cwd=self._working_directory(settings.working_directory.value, contexts),
            timeout=None if timeout is None else float(timeout),
            kill_grace=float(settings.kill_grace.value),
            shell=None if settings.shell.origin.value == "built-in" else str(settings.shell.value),
            output_file=output_file,
            on_output=self._output_sink(node.id, rollback=False),
            tracker=self.tracker,
            actions=self.options.actions,
            import_root=self.workflow_dir,
        )

    def _python_setup(self, node: Node, attempt: int, contexts: Mapping[str, Any]) -> AttemptSetup:
        """The lighter setup of a Python step: no process, so no environment or files."""
        settings = node.settings
        assert settings is not None
        timeout = settings.timeout.value
        return AttemptSetup(
            step_id=node.id,
            attempt=attempt,
            contexts=contexts,
            env={},
            base_env={},
            cwd=self.workflow_dir,
            timeout=None if timeout is None else float(timeout),
            kill_grace=0.0,
            shell=None,
            output_file="",
            on_output=_ignore_output,
            tracker=self.tracker,
            actions=self.options.actions,
            import_root=self.workflow_dir,
        )

    def _working_directory(self, template: Template | None, contexts: Mapping[str, Any]) -> str:
        if template is None:
            return self.workflow_dir
        return os.path.join(self.workflow_dir, render_text(template, contexts))

    def _output_sink(self, step_id: StepId, *, rollback: bool) -> _OutputChannel:
        return _OutputChannel(self, step_id, rollback)

    def _limiters(self) -> dict[str | None, anyio.CapacityLimiter]:
        limiters: dict[str | None, anyio.CapacityLimiter] = {}
        workflow = self.graph.workflow
        if workflow.max_parallel is not None:
            limiters[None] = anyio.CapacityLimiter(int(workflow.max_parallel.value))
        for node in self.graph.nodes:
            if node.kind is NodeKind.GROUP_START and node.step.max_parallel is not None:
                limiters[node.id] = anyio.CapacityLimiter(int(node.step.max_parallel.value))
        return limiters

    def _limiters_of(self, node: Node) -> list[anyio.CapacityLimiter]:
        if not self.limiters:
            return []
        found = [self.limiters[None]] if None in self.limiters else []
        found += [self.limiters[g] for g in node.groups if g in self.limiters]
        return found

    # -- compensation -----------------------------------------------------------------------

    async def _compensate(self) -> None:
        owed = sorted(
            (n for n in self.graph.steps(Section.MAIN) if self._owes_rollback(n)),
            key=lambda n: self.states[n.index].completed,
            reverse=True,
        )
        for node in owed:
            await self._rollback(node)

    def _owes_rollback(self, node: Node) -> bool:
        state = self.states[node.index]
        if node.id in self.rollbacks_done:
            return False
        return node.step.rollback is not None and state.status is StepStatus.SUCCESS

    async def _rollback(self, node: Node) -> None:
        rollback = node.step.rollback
        settings = node.settings
        assert rollback is not None and settings is not None
        self.emit(ev.RollbackStarted(self.run_id, self.now(), node.id))
        started = time.monotonic()
        try:
            attempts = self.states[node.index].attempts
            contexts = self._contexts(node, attempts, self._ending_status())
            setup = self._setup(node, 0, contexts)
            timeout = rollback.timeout.value if rollback.timeout else setup.timeout
            setup = dataclasses.replace(
                setup,
                timeout=timeout,
                on_output=self._output_sink(node.id, rollback=True),
                shell=str(rollback.shell.value) if rollback.shell else setup.shell,
                env={**setup.env, **{k: render_text(t, contexts) for k, t in rollback.env.items()}},
            )
            try:
                result = await run_attempt(rollback, setup)
            finally:
                _flush(setup)
        except ExpressionError as exc:
            result = rendering_failed(exc, "the rollback")
        ok = result.status is StepStatus.SUCCESS
        status = StepStatus.ROLLED_BACK if ok else StepStatus.ROLLBACK_FAILED
        state = self.states[node.index]
        state.status = status
        self.steps_context[node.id]["status"] = status.value
        reason = None if ok else self.secrets.mask(result.reason or "")
        duration = time.monotonic() - started
        self.emit(ev.RollbackFinished(self.run_id, self.now(), node.id, status, duration, reason))

    # -- the end ----------------------------------------------------------------------------

    def _run_started(self) -> ev.RunStarted:
        workflow = self.graph.workflow
        return ev.RunStarted(
            self.run_id,
            self.now(),
            workflow.name or Path(workflow.file).name,
            workflow.file,
            tuple(n.id for n in self.graph.steps(Section.MAIN)),
            tuple(n.id for n in self.graph.steps(Section.FINALLY)),
            dict(self.graph.inputs),
        )

    def _final_status(self) -> RunStatus:
        if self.cancelled:
            return RunStatus.INTERRUPTED
        finally_failed = any(
            self.states[n.index].status.is_failure and not self.states[n.index].tolerated
            for n in self.graph.steps(Section.FINALLY)
        )
        if self.failing or finally_failed:
            return RunStatus.FAILED
        if self.tolerated_failures:
            return RunStatus.COMPLETED_WITH_FAILURES
        return RunStatus.SUCCESS

    def _finish(self) -> RunResult:
        for node in self.graph.steps():
            if self.states[node.index].status in (StepStatus.PENDING, StepStatus.RUNNING):
                self._finish_node(node, StepStatus.SKIPPED, "the run stopped before it")
        status = self._final_status()
        outputs = self._workflow_outputs()
        duration = time.monotonic() - self.started
        reason = self.secrets.mask(self.reason) if self.reason else None
        self.emit(ev.RunFinished(self.run_id, self.now(), status, duration, outputs, reason))
        return RunResult(
            self.run_id,
            status,
            {n.id: self._step_result(n) for n in self.graph.steps()},
            outputs,
            self.workspace,
            duration,
            reason,
        )

    def _step_result(self, node: Node) -> StepResult:
        state = self.states[node.index]
        end = state.ended or time.monotonic()
        return StepResult(
            node.id,
            state.status,
            state.attempts,
            end - (state.started or end),
            state.outputs,
            state.exit_code,
            state.signal,
            state.reason,
        )

    def _workflow_outputs(self) -> dict[str, Any]:
        values = {
            "inputs": self.graph.inputs,
            "secrets": self.secrets.values,
            "steps": self.steps_context,
            "workflow": self._workflow_context(),
            "env": {},
            "attempt": 0,
        }
        contexts = StepContexts(values, self._ending_status())
        outputs: dict[str, Any] = {}
        for name, template in self.graph.workflow.outputs.items():
            try:
                outputs[name] = self.secrets.mask_value(render_value(template, contexts))
            except ExpressionError as exc:
                outputs[name] = None
                message = self.secrets.mask(
                    f"{exc.span}: workflow output `{name}` could not be evaluated: {exc.message}"
                )
                self.emit(ev.Notice(self.run_id, self.now(), message, span=exc.span))
        return outputs


def _brief_list(processes: list[str]) -> str:
    """The first few leftover processes, each cut short: a subshell's command line is the
    step's whole script, which does not belong in a one-line warning. (Masked before it
    is cut, so a cut can never reveal part of a secret.)"""
    shown = [_brief_command(p) for p in processes[:_LEFTOVERS_LISTED]]
    more = len(processes) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def _brief_command(text: str) -> str:
    first_line = text.split("\n", 1)[0].rstrip()
    if len(first_line) <= _LEFTOVER_CHARS and first_line == text:
        return text
    return first_line[: _LEFTOVER_CHARS - 1].rstrip() + "…"


def _fresh_scratch(chosen: Path | None) -> Path:
    if chosen is None:
        return Path(tempfile.mkdtemp(prefix="wfx-run-"))
    shutil.rmtree(chosen, ignore_errors=True)  # what a killed attempt of this run left
    chosen.mkdir(parents=True)
    return chosen


def _default_workspace(resume: ResumeState | None) -> Path:
    """A resumed run goes on in its own workspace; a new one gets a temporary directory."""
    if resume is not None and resume.workspace is not None:
        return Path(resume.workspace)
    return Path(tempfile.mkdtemp(prefix="wfx-workspace-"))


def _flush(setup: AttemptSetup) -> None:
    if isinstance(setup.on_output, _OutputChannel):
        setup.on_output.flush()


def _ignore_output(stream: str, text: str) -> None:
    """Python steps write no process output."""
