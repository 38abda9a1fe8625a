"""The what-if simulation: the real engine runs a graph, and nothing of the world.

An executor that stands in for every executor and for Python steps starts no process
and calls no step code: every attempt succeeds at once with no outputs, except the
attempts named to fail (exit code 1) or to time out. Retry waits pass on a simulated
clock. Everything else (conditions, cancellation, retries, rollback order, `finally`,
the run's status) is the engine's own decision (wfx.whatif turns it into a report).

Attempts wait until the run has nothing else to do (every step that can start has
started); then failing attempts end first, then due retry waits, then every succeeding
attempt at once. So a failure meets every step that can run alongside it still running:
the worst case, in which those steps are cancelled.
"""

from __future__ import annotations

import heapq
import itertools
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import anyio
import anyio.lowlevel

from wfx.durations import format_duration
from wfx.graph import ExecutionGraph
from wfx.runtime import events as ev
from wfx.runtime.actions import Attempt
from wfx.runtime.engine import RunOptions, RunResult, run
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, OutputSink
from wfx.runtime.executors import names_needed

#: what the simulated executor reports as where an attempt ran
SIMULATED = "what-if"

#: loop turns without any progress after which the simulated run is taken to be waiting
_QUIET_TURNS = 30

#: the value every declared secret has in a simulated run (never shown: secrets are masked)
_SECRET_PLACEHOLDER = "wfx-what-if-secret"

#: (step id, attempt or None for every attempt) -> "fail" or "timeout"
Failing = Mapping[tuple[str, int | None], str]


async def simulate(graph: ExecutionGraph, failing: Failing) -> tuple[RunResult, list[ev.Event]]:
    """Run `graph` on the engine with the simulated executor; return the result and every
    event. Only a temporary directory is made (the engine's workspace), and removed."""
    simulation = _Simulation(failing)
    recorded: list[ev.Event] = []

    def sink(event: ev.Event) -> None:
        simulation.progress += 1
        recorded.append(event)

    scratch = Path(tempfile.mkdtemp(prefix="wfx-what-if-"))
    options = RunOptions(
        events=sink,
        environ={str(s.value): _SECRET_PLACEHOLDER for s in graph.workflow.secrets},
        workspace=scratch / "workspace",
        scratch=scratch / "scratch",
        seed=0,
        executor=simulation,
        executors=dict.fromkeys(names_needed(graph, True), simulation),
        python_executor=simulation,
        sleep=simulation.sleep,
        run_id="what-if",
        faults={},  # WFX_FAILPOINT's step faults are for real runs: only `failing` fails
    )
    try:
        async with anyio.create_task_group() as group:
            group.start_soon(simulation.drive)
            result = await run(graph, options=options)
            group.cancel_scope.cancel()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return result, recorded


class _Simulation:
    """The executor of every step and Python step of a what-if run, and its clock.

    Attempts wait until the run has nothing else to do (every step that can start has
    started); then failing attempts end first, then due retry waits, then every
    succeeding attempt at once. So a failure meets every step that can run alongside
    it still running, and the engine decides what happens to them."""

    name = SIMULATED

    def __init__(self, failing: Failing) -> None:
        self.failing = failing
        self.progress = 0
        self.now = 0.0
        self.failures_due: list[anyio.Event] = []
        self.successes_due: list[anyio.Event] = []
        self.sleepers: list[tuple[float, int, anyio.Event]] = []
        self.order = itertools.count()

    @property
    def capacity(self) -> int | None:
        """No limit of its own."""
        return None

    async def start(self) -> None:
        """Nothing to start."""

    async def close(self) -> None:
        """Nothing to close."""

    def failure_of(self, step: str, attempt: int) -> str | None:
        """How this attempt is to fail ("fail", "timeout"), or None: it succeeds."""
        return self.failing.get((step, attempt)) or self.failing.get((step, None))

    async def run_attempt(self, request: AttemptRequest, on_output: OutputSink) -> Attempt:
        """End the attempt as the what-if says, once the run has nothing else to do."""
        self.progress += 1
        step, attempt = _step_and_attempt(request.key)
        failure = None if attempt == 0 else self.failure_of(step, attempt)  # 0: a rollback
        done = anyio.Event()
        (self.successes_due if failure is None else self.failures_due).append(done)
        await done.wait()
        if failure is None:
            return Attempt(StepStatus.SUCCESS, {}, 0, where=SIMULATED)
        if failure == "timeout":
            reason = f"timed out after {format_duration(request.timeout, '?')}"
            return Attempt(StepStatus.TIMEOUT, reason=reason, where=SIMULATED)
        code = None if request.argv and request.argv[0].startswith("python:") else 1
        reason = "exit code 1" if code is not None else "raised an exception"
        return Attempt(StepStatus.FAILED, {}, code, reason=reason + " (what-if)", where=SIMULATED)

    async def cancel(self, key: str, grace: float) -> None:
        """Nothing runs: the engine's cancel scopes end the waiting attempt."""

    def kill_all(self) -> None:
        """Nothing runs."""

    def where(self, key: str) -> str | None:
        """Every attempt is simulated."""
        return SIMULATED

    async def sleep(self, seconds: float) -> None:
        """A retry wait, on the simulated clock."""
        self.progress += 1
        done = anyio.Event()
        heapq.heappush(self.sleepers, (self.now + seconds, next(self.order), done))
        await done.wait()

    async def drive(self) -> None:
        """End the waiting attempts and waits, one round at a time, until cancelled."""
        while True:
            await self._quiet()
            if self.failures_due:
                _release(self.failures_due)
            elif self.sleepers:
                self._wake_earliest()
            elif self.successes_due:
                _release(self.successes_due)
            else:
                await anyio.sleep(0.001)  # the engine is between phases or finishing

    async def _quiet(self) -> None:
        """Return once the run has made no progress for a number of loop turns."""
        seen, still = self.progress, 0
        while still < _QUIET_TURNS:
            await anyio.lowlevel.checkpoint()
            if self.progress == seen:
                still += 1
            else:
                seen, still = self.progress, 0

    def _wake_earliest(self) -> None:
        due = self.sleepers[0][0]
        self.now = max(self.now, due)
        while self.sleepers and self.sleepers[0][0] <= due:
            heapq.heappop(self.sleepers)[2].set()


def _release(waiting: list[anyio.Event]) -> None:
    for done in waiting:
        done.set()
    waiting.clear()


def _step_and_attempt(key: str) -> tuple[str, int]:
    """`run_id:step_id:attempt` apart; a step id may hold `:` (a matrix value)."""
    rest = key.split(":", 1)[1]
    step, attempt = rest.rsplit(":", 1)
    return step, int(attempt)
