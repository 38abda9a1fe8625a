"""The engine: runs an ExecutionGraph on anyio and reports everything through events.

A run has three phases: the main steps (bounded by the workflow `timeout`), the
compensation of succeeded steps in reverse order of completion when the run
failed or was interrupted (saga), and the `finally` steps. This module wires the
parts that answer each question: the scheduler (what is ready, limits, cancellation:
scheduler.py), the step runner (attempts, retries, timeouts, outputs: steps.py), the
compensator (rollbacks, `finally`: compensation.py), the run contexts (expressions and
status functions: contexts.py) and resume seeding (resume.py); here are the run's
edges: its temporary directories, signals, and its result.
"""

from __future__ import annotations

import dataclasses
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from wfx.durations import format_duration
from wfx.envfile import secrets_environment
from wfx.graph import ExecutionGraph, Node, Section
from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime import failpoints
from wfx.runtime.actions import PythonAction, inherited_environment
from wfx.runtime.compensation import Compensator
from wfx.runtime.concurrency import Gate, Member, took_over
from wfx.runtime.contexts import RunContexts
from wfx.runtime.events import RunStatus, StepStatus
from wfx.runtime.executor import Executor
from wfx.runtime.executors import Executors
from wfx.runtime.failpoints import StepFaults
from wfx.runtime.journal import ResumeState, StepRecord
from wfx.runtime.local import LOCAL, LocalExecutor
from wfx.runtime.redrive import apply as apply_selection
from wfx.runtime.resume import seed
from wfx.runtime.scheduler import Scheduler
from wfx.runtime.secrets import SecretSet
from wfx.runtime.state import RunState
from wfx.runtime.steps import StepRunner
from wfx.selection import Selection


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
    """Where the local executor puts the `$WFX_OUTPUT` files (emptied first, removed at
    the end); by default a new temporary directory. The CLI puts it beside the journal, so
    a killed run's files are not left in /tmp but cleared by its resume."""
    executor: Executor | None = None
    """Where steps without an `executor:` setting run: a started executor, which the run
    does not close; None: this machine (a LocalExecutor the run starts and closes)."""
    executors: Mapping[str, Executor] = field(default_factory=dict)
    """Started executors by the names steps' `executor:` settings give (`local` needs none)."""
    selection: Selection | None = None
    """Which main steps run, which keep an earlier result, which are skipped (a redrive or
    a part of the workflow); None: all run."""
    kept: Mapping[StepId, StepRecord] = field(default_factory=dict)
    """The journaled results of the steps `selection` keeps (`wfx.runtime.redrive`)."""
    concurrency: Gate | None = None
    """The run's place in its concurrency group, entered (`Gate.enter`) but not yet its
    turn: the run waits for it before its first step, and leaves the group when it ends.
    None: the run is in no group."""
    python_executor: Executor | None = None
    """Where `uses: python:` attempts go; None: called in wfx's own process. The what-if
    plan (wfx.whatif) sends them to its simulated executor."""
    sleep: Callable[[float], Awaitable[None]] = anyio.sleep
    """How the wait before a retry passes; the what-if plan's is a simulated clock."""
    faults: StepFaults = field(default_factory=lambda: failpoints.STEP_FAULTS)
    """The attempts that fail or time out on purpose, without running (by default those
    `WFX_FAILPOINT` names: wfx.runtime.failpoints); the what-if plan's simulation has none,
    it fails the attempts it is asked about its own way."""


#: how often a run looks whether its process waits on its steps alone (see `when_waiting`),
#: and the share of that time it may have spent on the CPU to count as waiting
WAITING_PERIOD = 0.02
WAITING_SHARE = 0.25

_WAITING_HOOK: list[Callable[[], None]] = []


def when_waiting(hook: Callable[[], None]) -> None:
    """Call `hook` once, the first time a run in this process waits on its steps alone: a
    period of `WAITING_PERIOD` in which the process spent less than `WAITING_SHARE` of it
    on a CPU, and the next one on a CPU or waiting for one (its steps' processes may work
    meanwhile; wfx has nothing to do until one ends). A warm server's copy says so to its
    server, which then prepares the copy of the next command, off the path of this one
    and of the one after it (docs/server.md). A process-wide policy, set once, before the
    run; runs of a process that set none never look."""
    _WAITING_HOOK[:] = [hook]


def new_run_id() -> str:
    """A sortable, unique run id: UTC time plus randomness."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + os.urandom(4).hex()


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

        graph = dataclasses.replace(graph, inputs=input_values.resolve(graph.workflow, inputs))
    return await _Run(graph, chosen).execute()


class _Run:
    """One execution of a graph: the wiring of its parts, and its edges."""

    def __init__(self, graph: ExecutionGraph, options: RunOptions) -> None:
        self.graph = graph
        self.options = options
        resume = options.resume
        run_id = resume.run_id if resume else (options.run_id or new_run_id())
        self.run_id = run_id
        environ = dict(options.environ) if options.environ is not None else None
        base_env = environ if environ is not None else inherited_environment()
        secrets = SecretSet.from_environment(
            (s.value for s in graph.workflow.secrets), secrets_environment(graph.workflow, base_env)
        )
        self.state = RunState(graph, run_id, options.events or _ignore_event, secrets)
        self.local = LocalExecutor(environ=base_env, scratch=options.scratch)
        self.executors = Executors(
            self.local, options.executor, options.executors, options.python_executor
        )
        self.workspace = options.workspace or _default_workspace(resume)
        self.contexts = RunContexts(self.state)
        self.scheduler = Scheduler(self.state, self.contexts)
        self.runner = StepRunner(
            self.state,
            self.contexts,
            actions=options.actions,
            executors=self.executors,
            workspace=str(self.workspace),
            seed=options.seed,
            sleep=options.sleep,
            faults=options.faults,
        )
        self.scheduler.runner = self.runner
        self.runner.scheduler = self.scheduler
        self.compensator = Compensator(self.state, self.contexts, self.runner, self.scheduler)
        self.scheduler.compensator = self.compensator
        if resume is not None:
            seed(self.state, resume)
        elif options.selection is not None:
            apply_selection(self.state, options.selection, options.kept)
        self.started = time.monotonic()
        self.queue_scope: anyio.CancelScope | None = None

    async def execute(self) -> RunResult:
        """Run the phases; return how the run ended."""
        state = self.state
        self.workspace.mkdir(parents=True, exist_ok=True)
        for warning in state.secrets.warnings:
            state.emit(ev.Notice(self.run_id, state.now(), warning))
        state.emit(self._run_started())
        self._say_where_the_workspace_is()
        await self.local.start()
        try:
            async with anyio.create_task_group() as outer:
                watched = _stop_signals_heard() if self.options.handle_signals else ()
                if watched:
                    # started (the handler installed) before anything is said or run: a
                    # Ctrl-C right after "waiting for ..." would otherwise meet Python's own
                    await outer.start(self._watch_signals, watched)
                if _WAITING_HOOK:
                    outer.start_soon(_note_waiting)
                with anyio.CancelScope() as self.abort_scope:
                    if await self._take_turn():
                        await self._main_phase()
                        await self.compensator.wind_up()
                outer.cancel_scope.cancel()
        finally:
            with anyio.CancelScope(shield=True):
                await self.local.close()
            if self.options.concurrency is not None:
                self.options.concurrency.leave()
        result = self._finish()
        self.scheduler.runner = self.runner.scheduler = None  # no cycle: freed at once
        self.scheduler.compensator = None
        return result

    def _say_where_the_workspace_is(self) -> None:
        """Steps on other machines see `$WFX_WORKSPACE` at this run's path on their own
        machine: say so, never silently a different directory per step."""
        remote = [e.name for e in self.executors.all() if e.name != LOCAL]
        if remote:
            message = (
                f"steps run on {', '.join(remote)}: each sees $WFX_WORKSPACE={self.workspace}"
                " on its own machine, one directory for all steps only if that path is"
                " storage they all share (name one with --workspace)"
            )
            self.state.emit(ev.Notice(self.run_id, self.state.now(), message))

    async def _take_turn(self) -> bool:
        """Wait until the run holds its concurrency group (at once without one); False when
        it was stopped while waiting: then nothing of it runs, not even `finally`."""
        gate = self.options.concurrency
        if gate is None:
            return True
        for member in gate.cancelled:
            self.state.notice(f"concurrency group `{gate.group}`: stopping {member.describe()}")
        with anyio.CancelScope() as self.queue_scope:
            await gate.wait_turn(self._say_queued)
            for run_id, stopped in gate.taken_over:
                self.state.notice(f"concurrency group `{gate.group}`: {took_over(run_id, stopped)}")
            return True
        self.state.reason = f"stopped while waiting for concurrency group `{gate.group}`"
        return False

    def _say_queued(self, member: Member) -> None:
        gate = self.options.concurrency
        assert gate is not None
        self.state.emit(
            ev.RunQueued(
                self.run_id,
                self.state.now(),
                gate.group,
                member.run_id,
                member.pid,
                member.since,
                member.holding,
            )
        )

    async def _main_phase(self) -> None:
        timeout = self.graph.workflow.timeout
        limit = math.inf if timeout is None else float(timeout.value)
        with anyio.move_on_after(limit) as scope:
            await self.scheduler.phase(Section.MAIN)
        if scope.cancelled_caught:
            self.state.failing = True
            self.state.reason = f"the workflow timed out after {format_duration(limit)}"

    # -- signals ----------------------------------------------------------------------------

    def interrupt(self) -> None:
        """First Ctrl-C or SIGTERM: stop running steps, then compensate and run `finally`."""
        state = self.state
        state.cancelled = True
        state.reason = state.reason or "interrupted"
        if self.queue_scope is not None:
            self.queue_scope.cancel()
        self.scheduler.cancel_all()

    def abort(self) -> None:
        """Second Ctrl-C: kill every process now and skip compensation and `finally`."""
        state = self.state
        state.cancelled = True
        self.executors.kill_all()
        state.emit(
            ev.Notice(
                self.run_id,
                state.now(),
                "second interrupt: killed all processes; compensation and finally are skipped",
                level="error",
            )
        )
        self.abort_scope.cancel()

    async def _watch_signals(
        self,
        watched: tuple[signal.Signals, ...],
        *,
        task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        with anyio.open_signal_receiver(*watched) as signals:
            task_status.started()
            async for received in signals:
                if self.state.cancelled:
                    self.abort()
                    return
                name = signal.Signals(received).name
                self.state.notice(f"{name} received: stopping")
                self.interrupt()

    # -- the end ----------------------------------------------------------------------------

    def _run_started(self) -> ev.RunStarted:
        workflow = self.graph.workflow
        return ev.RunStarted(
            self.run_id,
            self.state.now(),
            workflow.name or Path(workflow.file).name,
            workflow.file,
            tuple(n.id for n in self.graph.steps(Section.MAIN)),
            tuple(n.id for n in self.graph.steps(Section.FINALLY)),
            dict(self.graph.inputs),
        )

    def _final_status(self) -> RunStatus:
        state = self.state
        if state.cancelled:
            return RunStatus.INTERRUPTED
        finally_failed = any(
            state.states[n.index].status.is_failure and not state.states[n.index].tolerated
            for n in self.state.steps(Section.FINALLY)
        )
        if state.failing or finally_failed:
            return RunStatus.FAILED
        if state.tolerated_failures:
            return RunStatus.COMPLETED_WITH_FAILURES
        return RunStatus.SUCCESS

    def _finish(self) -> RunResult:
        state = self.state
        for node in state.steps():
            if state.states[node.index].status in (StepStatus.PENDING, StepStatus.RUNNING):
                self.runner.finish(node, StepStatus.SKIPPED, "the run stopped before it")
        status = self._final_status()
        outputs = self.contexts.workflow_outputs()
        duration = time.monotonic() - self.started
        reason = state.secrets.mask(state.reason) if state.reason else None
        state.emit(ev.RunFinished(self.run_id, state.now(), status, duration, outputs, reason))
        return RunResult(
            self.run_id,
            status,
            {n.id: self._step_result(n) for n in state.steps()},
            outputs,
            self.workspace,
            duration,
            reason,
        )

    def _step_result(self, node: Node) -> StepResult:
        state = self.state.states[node.index]
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


def _default_workspace(resume: ResumeState | None) -> Path:
    """A resumed run goes on in its own workspace; a new one gets a temporary directory."""
    if resume is not None and resume.workspace is not None:
        return Path(resume.workspace)
    import tempfile  # noqa: PLC0415 - only for a run with no journal and no workspace chosen

    return Path(tempfile.mkdtemp(prefix="wfx-workspace-"))


async def _note_waiting() -> None:
    """Tell the hook of `when_waiting` once this process waits on its steps alone: a period
    that looks so by its CPU time is confirmed by the next, counting every thread's wait
    for a CPU as well (a Python step's thread starved by other processes is not waiting)."""
    budget = WAITING_PERIOD * WAITING_SHARE
    before = time.process_time()
    while _WAITING_HOOK:
        await anyio.sleep(WAITING_PERIOD)
        if time.process_time() - before < budget:
            start = _wanted_cpu()
            await anyio.sleep(WAITING_PERIOD)
            if _wanted_cpu() - start < budget:
                hook = _WAITING_HOOK.pop()
                hook()
                return
        before = time.process_time()


def _wanted_cpu() -> float:
    """The seconds this process has spent on a CPU, and its threads waiting for one
    (Linux's /proc/self/task/*/schedstat; without it, the CPU time alone)."""
    queued = 0
    try:
        threads = os.listdir("/proc/self/task")
    except OSError:
        threads = []
    for thread in threads:
        try:
            with open(f"/proc/self/task/{thread}/schedstat", "rb") as stats:
                queued += int(stats.read().split()[1])
        except (OSError, ValueError, IndexError):  # a thread that ended meanwhile
            continue
    return time.process_time() + queued / 1e9


def _ignore_event(event: ev.Event) -> None:
    """A run without an event sink."""


def _stop_signals_heard() -> tuple[signal.Signals, ...]:
    """SIGINT and SIGTERM, but not one this process was started with ignored: a script's
    background job (`wfx run ... &`) ignores SIGINT so that a Ctrl-C meant for the
    script's foreground command does not stop it, `nohup` and supervisors do likewise,
    and wfx keeps it so, as make and Python itself do (watching it would also leave it
    caught, not ignored, once the run ends)."""
    return tuple(
        number
        for number in (signal.SIGINT, signal.SIGTERM)
        if signal.getsignal(number) != signal.SIG_IGN
    )
