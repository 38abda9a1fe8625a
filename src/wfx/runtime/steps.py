"""The step runner: the attempts of one step, the waits between them, how each attempt
is set up (its environment, working directory, timeout, output channel), and how the
step's end is recorded and reported."""

from __future__ import annotations

import dataclasses
import functools
import os
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from wfx.diagnostics import Span
from wfx.durations import format_duration
from wfx.expr import ExpressionError, Template
from wfx.graph import Node, Origin, RetrySchedule
from wfx.model import Action, StepId, StepKind
from wfx.runtime import events as ev
from wfx.runtime.actions import (
    LOCAL,
    MAX_LINE,
    ActionError,
    Attempt,
    AttemptSetup,
    PythonAction,
    attempt_request,
    render_text,
    rendering_failed,
    run_attempt,
)
from wfx.runtime.contexts import RunContexts
from wfx.runtime.direct import looked_up_together, watch_when_due
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, OutputSink, ReadyAttempt, StartedAttempt
from wfx.runtime.executors import Executors
from wfx.runtime.failpoints import StepFaults
from wfx.runtime.journal import StepRecord
from wfx.runtime.resume import resume_point
from wfx.runtime.retry import wait_before
from wfx.runtime.secrets import MaskingStream
from wfx.runtime.state import NodeState, RunState, retrying_group, step_context, tolerates

if TYPE_CHECKING:
    from wfx.runtime.scheduler import Scheduler

#: the orphan-kill warning lists this many processes, each cut to this many characters
_LEFTOVERS_LISTED = 5
_LEFTOVER_CHARS = 60

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


class OutputChannel:
    """Turns a step's output pieces into masked StepOutput events.

    Complete lines are masked on their own; the chunks of a very long line go through
    a masking stream, so a secret cut in two by the chunking is still masked.
    """

    def __init__(self, run: RunState, step_id: StepId, rollback: bool) -> None:
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
        """Emit one (masked) piece of output."""
        run = self.run
        run.emit(ev.StepOutput(run.run_id, time.time(), self.step_id, stream, text, self.rollback))


class StepRunner:
    """Runs the attempts of steps and records how each step ended."""

    def __init__(
        self,
        run: RunState,
        contexts: RunContexts,
        *,
        actions: Mapping[str, PythonAction],
        executors: Executors,
        workspace: str,
        seed: int | None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        faults: StepFaults | None = None,
    ) -> None:
        self.run = run
        self.sleep = sleep
        """How the wait before a retry passes (the what-if plan's is a simulated clock)."""
        self.faults = faults or {}
        """The attempts that fail or time out on purpose (`WFX_FAILPOINT`'s step faults)."""
        self.contexts = contexts
        self.scheduler: Scheduler | None = None
        self.prepared: dict[int, tuple[AttemptSetup, AttemptRequest]] = {}
        """First attempts readied while the step before them ran (:meth:`prepare_first`)."""
        self.follow: dict[int, tuple[Node, Begin, Attempt | ReadyAttempt | None]] = {}
        """The step to start as soon as the one of the key succeeds (:meth:`prepare_first`),
        and how its executor starts it."""
        self.followed: dict[int, Ahead] = {}
        """First attempts started that way, until their step's task takes them."""
        self.actions = actions
        self.executors = executors
        self.workspace_dir = workspace
        self.rng = random.Random(seed)
        self.workflow_dir = str(_workflow_dir(run))

    # -- attempts ---------------------------------------------------------------------------

    async def attempts(self, node: Node, state: NodeState, ahead: Ahead | None = None) -> None:
        """Run the step's attempts until one succeeds or its retries are spent; the first
        is `ahead` when :meth:`start_ahead` started it already."""
        settings = node.settings
        action = node.action
        assert settings is not None and action is not None
        run = self.run
        schedule: RetrySchedule = settings.retry.value
        if ahead is not None:
            await self._attempts(node, state, action, schedule, 1, 0, ahead.deadline, ahead)
            return
        state.started = time.monotonic()
        state.status = StepStatus.RUNNING
        if run.resumed:
            run.commit_pending()  # stopping what a dead wfx left of this step may take a while
        first, done = await resume_point(run, node) if run.resumed else (1, 0)
        earlier = run.earlier_attempts.pop(node.index, None) if run.earlier_attempts else None
        if earlier is not None:  # the group runs again: new attempt numbers, a fresh budget
            first, done = earlier + 1, earlier
        deadline = _deadline(schedule.deadline)
        await self._attempts(node, state, action, schedule, first, done, deadline, None)

    async def _attempts(
        self,
        node: Node,
        state: NodeState,
        action: Action,
        schedule: RetrySchedule,
        first: int,
        done: int,
        deadline: _Deadline,
        ahead: Ahead | None,
    ) -> None:
        run = self.run
        result = _NOT_RUN
        last = max(done + schedule.attempts, first)  # a crash mid-redo: that attempt runs
        for attempt in range(first, last + 1):
            state.attempts = attempt
            if ahead is not None and attempt == first:
                if ahead.followed:
                    self._followed_started(node, ahead)
                result = deadline.explain(await _finish_ahead(ahead))
            else:
                run.emit(ev.StepStarted(run.run_id, run.now(), node.id, attempt))
                bound = deadline.left()
                result = deadline.explain(await self._attempt(node, action, attempt, bound))
            if self.follow and result.status is StepStatus.SUCCESS:
                self._start_following(node)
            state.where = result.where or (LOCAL if action.kind is StepKind.USES else None)
            self._report_leftovers(node, result)
            if result.status is StepStatus.SUCCESS or attempt == last:
                break
            if deadline.passed_after(0.0):
                result = deadline.stopped(result)
                break
            timed_out = result.status is StepStatus.TIMEOUT
            if not schedule.retries_on(timed_out, result.exit_code):
                result = _not_retried(result, _not_listed(schedule, result))
                break
            delay = wait_before(schedule, attempt - done, self.rng)
            if deadline.passed_after(delay):
                result = deadline.stopped(result)
                break
            reason = run.secrets.mask(result.reason or result.status.value)
            run.emit(
                ev.StepRetrying(
                    run.run_id,
                    run.now(),
                    node.id,
                    attempt,
                    attempt + 1,
                    delay,
                    reason,
                    result.where,
                )
            )
            await self.sleep(delay)
        self._record(node, state, result)

    async def _attempt(
        self, node: Node, action: Action, attempt: int, bound: float | None = None
    ) -> Attempt:
        """One attempt; `bound` (seconds a retries deadline leaves) shortens its timeout."""
        request: AttemptRequest | None = None
        prepared = self.prepared.pop(node.index, None) if attempt == 1 else None
        try:
            if prepared is not None:
                setup, request = prepared
            elif action.kind is StepKind.USES:
                contexts = self.contexts.step(node, attempt) if action.with_ else {}
                setup = self._python_setup(node, attempt, contexts)
            else:
                setup = self.setup(node, attempt, self.contexts.step(node, attempt))
        except ExpressionError as exc:
            return rendering_failed(exc, "the step")
        if _shorten_timeout(setup, bound) and request is not None:
            request = dataclasses.replace(request, timeout=setup.timeout)
        process = action.kind is not StepKind.USES
        try:
            if self.faults:
                fault = self.faults.get((node.id, attempt)) or self.faults.get((node.id, None))
                if fault is not None:
                    return await faulted_attempt(fault, setup, process)
            executor = self.executors.of(node) if process else self.executors.python
            if self.scheduler is None:
                return await run_attempt(action, setup, executor, request=request)
            return await run_attempt(
                action,
                setup,
                executor,
                request=request,
                started=lambda: self._started(node),
                succeeded=functools.partial(self._start_following, node),
            )
        finally:
            flush(setup)

    def _followed_started(self, node: Node, ahead: Ahead) -> None:
        """`node` was started as soon as the step before it succeeded, and its start is
        now reported: what is done once any attempt has started is done now, and the
        records held back (the end of the step before, this start) are committed while
        its process runs, with the intent of the step after it when one follows."""
        if not isinstance(ahead.started, Attempt):
            self._started(node)
        self.run.commit_pending()

    def _started(self, node: Node) -> None:
        """`node`'s attempt has started and its task is about to wait for it: work that
        would otherwise be on the way to the next step is done now (the next step of a
        chain readied, the PATH lookups' watch armed once they are enough)."""
        assert self.scheduler is not None
        self.scheduler.ready_next(node)
        watch_when_due()

    # -- starting a burst of steps at once ----------------------------------------------------

    def begin_of(self, node: Node) -> Begin | None:
        """How `node`'s first attempt can be started before its task runs, or None when
        it must take the usual way (see :meth:`prepare_ahead`)."""
        action = node.action
        run = self.run
        if action is None or action.kind is StepKind.USES or self.faults or run.resumed:
            return None
        if run.earlier_attempts and node.index in run.earlier_attempts:
            return None
        begin: Begin | None = getattr(self.executors.of(node), "begin", None)
        return begin

    def prepare_ahead(self, node: Node) -> Ahead | None:
        """The first attempt of `node` ready to start at once, before its task runs; None
        when it must take the usual way: a Python step, an executor that cannot start an
        attempt synchronously, a resumed run, a step a group runs again, failpoints, or a
        value that does not render (the usual way then reports it)."""
        begin = self.begin_of(node)
        if begin is None:
            return None
        action, settings = node.action, node.settings
        assert action is not None and settings is not None
        deadline = _deadline(settings.retry.value.deadline)
        prepared = self.prepared.pop(node.index, None)
        try:
            if prepared is None:
                setup = self.setup(node, 1, self.contexts.step(node, 1))
                _shorten_timeout(setup, deadline.left())
                request = attempt_request(action, setup)
            else:
                setup, request = prepared
                if _shorten_timeout(setup, deadline.left()):
                    request = dataclasses.replace(request, timeout=setup.timeout)
        except (ExpressionError, ActionError):
            return None
        return Ahead(node, setup, request, begin, deadline)

    def prepare_first(self, node: Node, after: Node | None = None) -> None:
        """Ready `node`'s first attempt (its setup and request) while the one step it
        waits for (`after`) still runs, for its task to take when it starts. Only for a
        step whose every value is fixed text (:func:`_fixed`): then nothing that step's
        end, or anything else, changes can change them (docs/performance.md, fourteenth
        pass). When `node` then surely starts if `after` succeeds, it is also recorded
        as about to start, and started as soon as `after` succeeds, before the end of
        `after` is reported (:meth:`_start_following`)."""
        run = self.run
        if node.index in self.prepared or self.faults or run.resumed or not _fixed(node):
            return
        if run.earlier_attempts and node.index in run.earlier_attempts:
            return
        action = node.action
        assert action is not None
        try:
            setup = self.setup(node, 1, self.contexts.step(node, 1))
            request = attempt_request(action, setup)
        except (ExpressionError, ActionError):
            return  # its task reports it, with its position
        self.prepared[node.index] = (setup, request)
        if after is not None:
            self._follow(after, node)

    def _follow(self, after: Node, node: Node) -> None:
        """Start `node` as soon as `after` succeeds, when nothing else decides whether it
        starts (:meth:`Scheduler.follows_at_once`) and its executor starts attempts at
        once; its intent is recorded first (the journal: durable now, while `after`
        runs), so that its start then needs no commit before its process starts."""
        assert self.scheduler is not None
        if not self.scheduler.follows_at_once(after, node):
            return
        executor = self.executors.of(node)
        begin: Begin | None = getattr(executor, "begin", None)
        if begin is None or not self.run.intend(node.id, 1):
            return
        setup, request = self.prepared[node.index]
        if _shorten_timeout(setup, _retries_deadline(node)):
            request = dataclasses.replace(request, timeout=setup.timeout)
            self.prepared[node.index] = (setup, request)
        ready: Ready | None = getattr(executor, "ready", None)
        start = None if ready is None else ready(request, setup.on_output)
        self.follow[after.index] = (node, begin, start)

    def _start_following(self, node: Node) -> None:
        """`node` succeeded: start the step that follows it at once, if one does and it
        still would start (nothing failed or stopped meanwhile). Its task takes the
        attempt (:meth:`take_followed`) once the end of `node` is reported."""
        found = self.follow.pop(node.index, None)
        if found is None:
            return
        following, begin, start = found
        assert self.scheduler is not None
        prepared = self.prepared.get(following.index)
        if prepared is None or not self.scheduler.still_follows(following):
            return
        del self.prepared[following.index]
        setup, request = prepared
        deadline = _deadline(_retries_deadline(following))
        ahead = Ahead(following, setup, request, begin, deadline, followed=True)
        self.run.states[following.index].started = time.monotonic()
        if start is None:
            ahead.started = begin(request, setup.on_output)
        elif isinstance(start, Attempt):
            ahead.started = start  # it could not be made ready: reported as it starts
        else:
            ahead.started = start.start()
        self._follow_at_success(following, ahead.started)
        self.followed[following.index] = ahead

    def _follow_at_success(self, node: Node, begun: Attempt | StartedAttempt | None) -> None:
        """Once `node`'s attempt `begun` is known to succeed, start the step that follows
        it, if one does by then (:meth:`_start_following`): from within its `finish`,
        before that attempt's descriptors are released and its result made, which takes
        a few dozen microseconds off each step of a chain."""
        if begun is not None and not isinstance(begun, Attempt):
            begun.when_succeeded(functools.partial(self._start_following, node))

    def take_followed(self, node: Node) -> Ahead | None:
        """The first attempt of `node` started as soon as the step before it succeeded,
        now reported as started; None when it was not started that way."""
        ahead = self.followed.pop(node.index, None)
        if ahead is None:
            return None
        run = self.run
        state = run.states[node.index]
        state.bad = False
        state.status = StepStatus.RUNNING
        state.attempts = 1
        run.emit(ev.StepStarted(run.run_id, run.now(), node.id, 1))
        return ahead

    async def drop_followed(self) -> None:
        """Stop the attempts started at once that no task took (a phase that ended before
        their task ran): each is awaited cancelled, which stops its process tree."""
        followed, self.followed = self.followed, {}
        for ahead in followed.values():
            started = ahead.started
            if started is None or isinstance(started, Attempt):
                continue
            with anyio.CancelScope(shield=True):
                with anyio.CancelScope() as scope:
                    scope.cancel()
                    await started.finish()
            flush(ahead.setup)

    def start_ahead(self, prepared: list[Ahead]) -> None:
        """Start the first attempts `prepare_ahead` made ready: every start record in one
        commit, durable before any of their processes starts; then their processes, back
        to back. Each step's task then waits for its own (:meth:`attempts` with it)."""
        run = self.run
        with run.together():
            for ahead in prepared:
                state = run.states[ahead.node.index]
                state.status = StepStatus.RUNNING
                state.attempts = 1
                run.emit(ev.StepStarted(run.run_id, run.now(), ahead.node.id, 1))
        states = run.states
        with looked_up_together():
            for ahead in prepared:
                states[ahead.node.index].started = time.monotonic()  # its duration: from here
                ahead.started = ahead.begin(ahead.request, ahead.setup.on_output)
        if self.scheduler is not None:  # all started: what follows each is readied now
            for ahead in prepared:
                if not isinstance(ahead.started, Attempt):
                    self._follow_at_success(ahead.node, ahead.started)
                    self._started(ahead.node)

    # -- setup ------------------------------------------------------------------------------

    def setup(self, node: Node, attempt: int, contexts: Mapping[str, Any]) -> AttemptSetup:
        """Everything a process attempt of `node` needs besides its action."""
        settings = node.settings
        assert settings is not None
        run = self.run
        key = f"{run.run_id}:{node.id}:{attempt}"
        extra = {
            "WFX_WORKSPACE": self.workspace_dir,
            "WFX_RUN_ID": run.run_id,
            "WFX_STEP_ID": node.id,
            "WFX_ATTEMPT": str(attempt),
            "WFX_IDEMPOTENCY_KEY": key,
        }
        env = {**contexts["env"], **extra}
        timeout = settings.timeout.value
        return AttemptSetup(
            step_id=node.id,
            attempt=attempt,
            contexts=contexts,
            env=env,
            cwd=self._working_directory(settings.working_directory.value, contexts),
            timeout=None if timeout is None else float(timeout),
            kill_grace=float(settings.kill_grace.value),
            shell=None if settings.shell.origin is Origin.BUILTIN else str(settings.shell.value),
            on_output=OutputChannel(run, node.id, rollback=False),
            actions=self.actions,
            import_root=self.workflow_dir,
            key=key,
            resources=settings.resources.value or {},
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
            cwd=self.workflow_dir,
            timeout=None if timeout is None else float(timeout),
            kill_grace=0.0,
            shell=None,
            on_output=_ignore_output,
            actions=self.actions,
            import_root=self.workflow_dir,
        )

    def _working_directory(self, template: Template | None, contexts: Mapping[str, Any]) -> str:
        if template is None:
            return self.workflow_dir
        return os.path.join(self.workflow_dir, render_text(template, contexts))

    # -- the end of a step ------------------------------------------------------------------

    def _record(self, node: Node, state: NodeState, result: Attempt) -> None:
        run = self.run
        state.exit_code, state.signal = result.exit_code, result.signal
        state.span = result.span
        if result.status is StepStatus.SUCCESS:
            state.outputs = run.secrets.mask_value(dict(result.outputs))
            run.completions += 1
            state.completed = run.completions
            self.finish(node, StepStatus.SUCCESS, None)
            return
        state.tolerated = tolerates(node, result.exit_code)
        reason = f"step `{node.id}` {result.status.value}: {result.reason}"
        # a group that runs again holds the phase open before this step counts as finished
        group = None if state.tolerated else self._group_failed(node, result, reason)
        self.finish(node, result.status, result.reason)
        if state.tolerated:
            run.tolerated_failures = True
        elif group is not None:
            pass  # the group runs again: the run is not failing (yet)
        elif node.instance is not None and not self._fail_fast(node.instance.fan_out):
            run.deferred.setdefault(node.instance.fan_out, reason)  # when all are done
        else:
            self.fail(reason)

    def _group_failed(self, node: Node, result: Attempt, reason: str) -> Node | None:
        """The group that runs again after this step's final failure (told so), or None."""
        group = retrying_group(self.run, node, result.status, result.exit_code)
        if group is not None:
            assert self.scheduler is not None
            self.scheduler.group_failed(group, self.run.secrets.mask(reason))
        return group

    def _fail_fast(self, fan_out: str) -> bool:
        """Whether a failed instance of `fan_out` stops the others (`failFast`)."""
        info = self.run.nodes[self.run.node_index(fan_out)].fan_out
        return info is None or info.fail_fast

    def fan_out_failed(self, start: Node, reason: str, span: Span | None) -> None:
        """A dynamic fan-out got no list to fan out over: it fails, and so does the run."""
        run = self.run
        state = run.states[start.index]
        state.status = StepStatus.FAILED
        state.reason = run.secrets.mask(reason)
        run.steps_context[start.id] = {"outputs": [], "status": "failed", "attempts": 0}
        run.emit(
            ev.StepFailed(
                run.run_id,
                run.now(),
                start.id,
                StepStatus.FAILED,
                reason=state.reason,
                span=span,
            )
        )
        self.fail(f"fan-out `{start.id}` failed: {state.reason}")

    def fail(self, reason: str) -> None:
        """The run fails (the first reason is kept): stop what must stop."""
        run = self.run
        if not run.failing:
            run.reason = reason
        run.failing = True
        assert self.scheduler is not None
        self.scheduler.cancel_failing()

    def finish(self, node: Node, status: StepStatus, reason: str | None) -> None:
        """`node` reached its final status: update the state and report it."""
        run = self.run
        state = run.states[node.index]
        state.status = status
        state.reason = run.secrets.mask(reason) if reason else None
        state.ended = time.monotonic()
        if not node.is_step:
            return
        if self.prepared:
            self.prepared.pop(node.index, None)  # readied, but it did not start (skipped...)
        if self.follow:
            self.follow.pop(node.index, None)  # taken at its success; else nothing follows
        assert self.scheduler is not None
        self.scheduler.count_finished()
        duration = state.ended - (state.started or state.ended)
        run.steps_context[node.id] = step_context(state, duration)
        success = status is StepStatus.SUCCESS  # most steps: no lookup (hashing an enum)
        event_type = ev.StepSucceeded if success else ev.FINISHED_BY_STATUS[status]
        run.emit(
            event_type(
                run.run_id,
                run.now(),
                node.id,
                status,
                state.attempts,
                duration,
                state.exit_code,
                state.signal,
                state.reason,
                state.outputs,
                state.span,
                state.where,
            )
        )

    def restore(self, node: Node, record: StepRecord) -> None:
        """A step the journal says already finished: take its result, do not run it."""
        run = self.run
        assert self.scheduler is not None
        if record.status.is_failure and not tolerates(node, record.exit_code):
            self._restored_failure(node, record)
        self.scheduler.count_finished()
        state = run.states[node.index]
        state.attempts = record.attempts
        state.outputs = record.outputs
        state.exit_code, state.signal = record.exit_code, record.signal
        state.completed = record.completed or -1
        state.started = state.ended = time.monotonic()
        status = record.status
        state.tolerated = status.is_failure and tolerates(node, record.exit_code)
        if state.tolerated:
            run.tolerated_failures = True
        state.status = status
        if status in (StepStatus.ROLLED_BACK, StepStatus.ROLLBACK_FAILED):
            run.steps_context[node.id] = step_context(state, 0.0)
            return
        state.reason = record.reason
        run.steps_context[node.id] = step_context(state, 0.0)
        run.emit(_restored_event(run.run_id, run.now(), node.id, record, run.kept.get(node.index)))

    def _restored_failure(self, node: Node, record: StepRecord) -> None:
        """A step failed before the crash: its group runs again if it has attempts left;
        a failure the seeding left to its group (a group's last attempt) fails the run."""
        run = self.run
        assert self.scheduler is not None
        reason = f"step `{node.id}` {record.status.value}: {record.reason}"
        group = retrying_group(run, node, record.status, record.exit_code)
        if group is not None:
            self.scheduler.group_failed(group, reason)
        elif run.retried_groups and not run.failing:
            self.fail(reason)

    def stopped(
        self, node: Node, state: NodeState, group_stop: tuple[StepStatus, str] | None = None
    ) -> None:
        """The step's cancel scope ended it: skipped if it never started, else cancelled
        (or, when a group around it was stopped, `group_stop`'s status and reason)."""
        if state.status in _FINISHED:
            return
        if state.started is None:
            reason = group_stop[1] if group_stop else "the run stopped before it"
            self.finish(node, StepStatus.SKIPPED, reason)
        elif group_stop is not None:
            self.finish(node, *group_stop)
        else:
            self.finish(node, StepStatus.CANCELLED, "cancelled: the run is stopping")

    def _report_leftovers(self, node: Node, result: Attempt) -> None:
        if result.leftovers:
            run = self.run
            listed = _brief_list([run.secrets.mask(p) for p in result.leftovers])
            run.notice(f"killed processes `{node.id}` left running: {listed}", node.id)


def _restored_event(
    run_id: str, now: float, step: StepId, record: StepRecord, source: str | None
) -> ev.StepRestored:
    """The event of a step whose journaled result the run takes instead of running it: its
    own (a resume), or the earlier run `source`'s (a redrive, a part of a workflow)."""
    fields = (
        run_id,
        now,
        step,
        record.status,
        record.attempts,
        0.0,
        record.exit_code,
        record.signal,
        record.reason,
        record.outputs,
    )
    return ev.StepRestored(*fields) if source is None else ev.StepKept(*fields, source=source)


class _Deadline:
    """A retry policy's `deadline`: the time all attempts of a step may take together."""

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.ends = None if seconds is None else time.monotonic() + seconds

    def left(self) -> float | None:
        """Seconds until the deadline (at least a moment), or None without one."""
        if self.ends is None:
            return None
        return max(0.001, self.ends - time.monotonic())

    def passed_after(self, wait: float) -> bool:
        """Whether the deadline passes before a wait of `wait` seconds is over."""
        return self.ends is not None and time.monotonic() + wait >= self.ends

    def explain(self, result: Attempt) -> Attempt:
        """An attempt the deadline stopped says so, not just `timed out after …`."""
        if self.ends is None or result.status is not StepStatus.TIMEOUT:
            return result
        if time.monotonic() < self.ends - 0.001:
            return result
        return dataclasses.replace(result, reason=self.why_no_more())

    def stopped(self, result: Attempt) -> Attempt:
        """The last attempt's result, saying the deadline ended the retries."""
        why = self.why_no_more()
        return result if result.reason == why else _not_retried(result, why)

    def why_no_more(self) -> str:
        """Why no further attempt starts."""
        return f"its retries deadline of {format_duration(self.seconds or 0.0)} passed"


#: the deadline of a step whose retries have none (it holds no state of a step's own)
_NO_DEADLINE = _Deadline(None)


def _deadline(seconds: float | None) -> _Deadline:
    """The deadline of a step's attempts, from now (one shared object when there is none)."""
    return _NO_DEADLINE if seconds is None else _Deadline(seconds)


#: what a step's attempts end with when none ran
_NOT_RUN = Attempt(StepStatus.FAILED, reason="not run")


def _not_listed(schedule: RetrySchedule, result: Attempt) -> str:
    """Why `on`/`except` do not retry this failure."""
    if result.status is StepStatus.TIMEOUT:
        return "`retries.on` does not list `timeout`"
    if result.exit_code is None:
        return "it has no exit code, and `retries.on` lists exit codes only"
    if result.exit_code in schedule.except_:
        return f"`retries.except` lists exit code {result.exit_code}"
    return f"`retries.on` does not list exit code {result.exit_code}"


def _not_retried(result: Attempt, why: str) -> Attempt:
    """The last attempt's result, with why it was not retried."""
    reason = result.reason or result.status.value
    return dataclasses.replace(result, reason=f"{reason} (not retried: {why})")


def _workflow_dir(run: RunState) -> str:
    return str(Path(run.graph.workflow.file).resolve().parent)


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


async def faulted_attempt(fault: str, setup: AttemptSetup, process: bool) -> Attempt:
    """An attempt `WFX_FAILPOINT` fails on purpose (`fault`: "fail" or "timeout"): it
    starts no process and calls no step code, and ends as a real one that exits 1 (a
    Python step: that raises) or times out, after the attempt's timeout. Its output (a
    process step's) and its reason say the failpoint did it."""
    at = f"step-{fault}:{setup.step_id}@{setup.attempt}"
    said = f"on purpose: WFX_FAILPOINT {at}"
    if process:
        verb = "times out" if fault == "timeout" else "fails"
        setup.on_output("stderr", f"wfx: this attempt {verb} {said}; its process is not started")
    if fault == "timeout":
        if setup.timeout is not None:
            await anyio.sleep(setup.timeout)
        waited = "" if setup.timeout is None else f" after {format_duration(setup.timeout)}"
        return Attempt(StepStatus.TIMEOUT, reason=f"timed out{waited} ({said})")
    if process:
        return Attempt(StepStatus.FAILED, exit_code=1, reason=f"exit code 1 ({said})")
    return Attempt(StepStatus.FAILED, reason=f"raised an exception ({said})")


#: how an executor that starts attempts at once starts one (`StartsAtOnce.begin`)
Begin = Callable[[AttemptRequest, OutputSink], Attempt | StartedAttempt]

#: how such an executor makes one ready to start later (`StartsAtOnce.ready`)
Ready = Callable[[AttemptRequest, OutputSink], Attempt | ReadyAttempt]


def _retries_deadline(node: Node) -> float | None:
    """The seconds `retries.deadline` gives `node`'s attempts in all, if it sets one."""
    return node.settings.retry.value.deadline if node.settings else None


@dataclasses.dataclass(slots=True)
class Ahead:
    """A step's first attempt prepared by :meth:`StepRunner.prepare_ahead` and started by
    :meth:`StepRunner.start_ahead` before the step's task runs."""

    node: Node
    setup: AttemptSetup
    request: AttemptRequest
    begin: Begin
    deadline: _Deadline
    started: Attempt | StartedAttempt | None = None
    followed: bool = False
    """Started as soon as the step before it succeeded (:meth:`StepRunner._start_following`)."""


async def _finish_ahead(ahead: Ahead) -> Attempt:
    """The result of an attempt started ahead: it waits for it to end."""
    try:
        started = ahead.started
        assert started is not None
        return started if isinstance(started, Attempt) else await started.finish()
    finally:
        flush(ahead.setup)


def _shorten_timeout(setup: AttemptSetup, bound: float | None) -> bool:
    """An attempt's timeout is at most `bound`, the seconds its retries deadline leaves;
    whether that shortened it."""
    if bound is not None and (setup.timeout is None or bound < setup.timeout):
        setup.timeout = bound
        return True
    return False


def _fixed(node: Node) -> bool:
    """Whether every value of the `run` or `cmd` step `node`'s attempts is fixed text:
    its command, its variables, its working directory, none with a `${{ }}`. Nothing else
    of an attempt's setup depends on the run's state (its `WFX_*` variables, timeout and
    shell are the step's own), so it is the same whenever it is made."""
    action, settings = node.action, node.settings
    if action is None or settings is None or node.instance is not None:
        return False
    if action.kind is StepKind.RUN and action.run is not None:
        texts: list[object] = [action.run]
    elif action.kind is StepKind.CMD:
        texts = list(action.cmd)
    else:
        return False
    texts.extend(setting.value for setting in settings.env.values())
    if settings.working_directory.value is not None:
        texts.append(settings.working_directory.value)
    return all(isinstance(text, Template) and text.is_literal() for text in texts)


def flush(setup: AttemptSetup) -> None:
    """Emit the output an attempt's masking held back."""
    if isinstance(setup.on_output, OutputChannel):
        setup.on_output.flush()


def _ignore_output(stream: str, text: str) -> None:
    """Python steps write no process output."""
