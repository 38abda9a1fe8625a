"""The scheduler: which node is ready, which worker runs it, the limits it waits for,
and the cancel scopes that stop steps when the run fails or is interrupted.

Scheduling is event-driven: a step starts the moment its own dependencies are
done (never stage by stage). Each node has a counter of unfinished dependencies;
the one finish that brings it to zero starts it, so a step with two parents that
finish together starts exactly once. All steps of a phase live in one task group;
each running step has its own cancel scope, so a failing run cancels exactly the
steps that must stop while `failure()`/`always()` steps still get their turn.
"""

from __future__ import annotations

import math
from collections import deque
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel

from wfx.graph import Node, NodeKind, Section
from wfx.runtime.contexts import RunContexts, uses_status_function
from wfx.runtime.events import StepStatus
from wfx.runtime.state import RunState

if TYPE_CHECKING:
    from wfx.runtime.steps import StepRunner

#: a worker running a chain of instant steps yields to the event loop this often
_FAIRNESS = 64


class Scheduler:
    """Runs the nodes of one section at a time on as few worker tasks as keep up."""

    def __init__(self, run: RunState, contexts: RunContexts) -> None:
        self.run = run
        self.contexts = contexts
        self.runner: StepRunner | None = None
        graph = run.graph
        self.remaining = [len(n.deps) for n in graph.nodes]
        self.dependents: list[list[int]] = [[] for _ in graph.nodes]
        for node in graph.nodes:
            for dep in node.deps:
                self.dependents[dep].append(node.index)
        self.scopes: dict[int, tuple[anyio.CancelScope, bool]] = {}
        self.limiters = _limiters(run)
        self.task_group: anyio.abc.TaskGroup | None = None
        self.unfinished = 0
        self.idle_workers = 0
        self.queued = 0
        self.workers_starting = 0
        self.ready_send, self.ready_receive = anyio.create_memory_object_stream[Node](math.inf)
        self.ready_send.close()  # each phase opens its own pair
        self.ready_receive.close()

    # -- phases -----------------------------------------------------------------------------

    async def phase(self, section: Section) -> None:
        """Run one section's nodes. Steps run on worker tasks that pick up the next ready
        step when theirs ends, so 10,000 quick steps do not cost 10,000 task spawns."""
        run = self.run
        graph = run.graph
        roots = [n.index for n in graph.nodes if n.section is section and not n.deps]
        self.unfinished = sum(1 for _ in graph.steps(section))
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
        assert self.runner is not None
        for node in graph.nodes:
            if node.section is section and run.states[node.index].status is StepStatus.PENDING:
                self.runner.finish(node, StepStatus.SKIPPED, "the run stopped before it")

    def count_finished(self) -> None:
        """One more step of the phase is final; the last one lets idle workers go."""
        self.unfinished -= 1
        if not self.unfinished:
            self.ready_send.close()

    # -- readiness --------------------------------------------------------------------------

    def _release(self, ready: list[int], *, keep_one: bool = False) -> Node | None:
        """Start every ready node; group barriers pass through at once, without a task.
        With `keep_one`, the first ready step is returned for the calling worker to run."""
        kept: Node | None = None
        queue = deque(ready)
        nodes = self.run.graph.nodes
        while queue:
            index = queue.popleft()
            node = nodes[index]
            if node.is_step:
                if keep_one and kept is None:
                    kept = node
                else:
                    self._dispatch(node)
                continue
            self._pass_barrier(node)
            queue.extend(self._completed(index))
        return kept

    def _completed(self, index: int) -> list[int]:
        """Count one finished dependency for each dependent; return those now ready."""
        ready = []
        remaining = self.remaining
        for dependent in self.dependents[index]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                ready.append(dependent)
        return ready

    def _pass_barrier(self, node: Node) -> None:
        state = self.run.states[node.index]
        state.bad = self.contexts.bad_upstream(node)
        call = node.step.call is not None and not node.is_step
        if node.kind is NodeKind.GROUP_START:
            decision = self.contexts.decide(node, node.step, state.bad)
            state.status = StepStatus.SUCCESS if decision is None else StepStatus.SKIPPED
            state.reason = decision
            if decision is not None:
                self.run.skipped_groups = True
            elif call:
                self._enter_call(node)
        else:
            state.status = StepStatus.SUCCESS
            if call:
                start = self.run.states[self.contexts.group_starts[node.id]]
                self.contexts.leave_call(node, start.status)

    def _enter_call(self, node: Node) -> None:
        """A sub-workflow call starts; when its inputs cannot be made, it fails the run."""
        problem = self.contexts.enter_call(node)
        if problem is None:
            return
        state = self.run.states[node.index]
        state.status = StepStatus.FAILED
        state.reason = self.run.secrets.mask(problem)
        self.run.skipped_groups = True
        self.run.notice(f"step `{node.id}` failed: {state.reason}", node.id)
        assert self.runner is not None
        self.runner.fail(f"step `{node.id}` failed: {state.reason}")

    # -- workers ----------------------------------------------------------------------------

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
                current = self._release(await self._run_node(current), keep_one=True)
                streak += 1
                if streak % _FAIRNESS == 0:
                    await anyio.lowlevel.checkpoint()  # let signals and other tasks in

    # -- one step ---------------------------------------------------------------------------

    async def _run_node(self, node: Node) -> list[int]:
        """Run (or skip, or restore) one step; return the nodes its end made ready."""
        run = self.run
        runner = self.runner
        assert runner is not None
        state = run.states[node.index]
        state.bad = self.contexts.bad_upstream(node)
        record = run.restored.get(node.index)
        if record is not None:
            runner.restore(node, record)
            return self._completed(node.index)
        skip = self.contexts.decide(node, node.step, state.bad)
        if skip is not None:
            runner.finish(node, StepStatus.SKIPPED, skip)
            return self._completed(node.index)
        main = node.section is Section.MAIN
        finishing = node.cleanup or (node.step.condition and uses_status_function(node))
        cancel_on_failure = main and not finishing
        try:
            with anyio.CancelScope() as scope:
                if main:
                    self.scopes[node.index] = (scope, cancel_on_failure)
                if cancel_on_failure and (run.cancelled or run.failing):
                    scope.cancel()  # a status-function step starts even after Ctrl-C
                limiters = self._limiters_of(node)
                if limiters:
                    async with AsyncExitStack() as stack:
                        for limiter in limiters:
                            await stack.enter_async_context(limiter)
                        await runner.attempts(node, state)
                else:
                    await runner.attempts(node, state)
            if scope.cancelled_caught:
                runner.stopped(node, state)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                runner.stopped(node, state)
            raise
        finally:
            self.scopes.pop(node.index, None)
        return self._completed(node.index)

    def _limiters_of(self, node: Node) -> list[anyio.CapacityLimiter]:
        limiters = self.limiters
        if not limiters:
            return []
        found = [limiters[None]] if None in limiters else []
        found += [limiters[g] for g in node.groups if g in limiters]
        return found

    # -- cancellation -----------------------------------------------------------------------

    def cancel_failing(self) -> None:
        """The run fails: stop every running main step that has no status function."""
        for scope, cancel_on_failure in list(self.scopes.values()):
            if cancel_on_failure:
                scope.cancel()

    def cancel_all(self) -> None:
        """The run is interrupted: stop every running main step."""
        for scope, _ in list(self.scopes.values()):
            scope.cancel()


def _limiters(run: RunState) -> dict[str | None, anyio.CapacityLimiter]:
    """The run's `maxParallel` (key None) and each group's, as capacity limiters."""
    limiters: dict[str | None, anyio.CapacityLimiter] = {}
    workflow = run.graph.workflow
    if workflow.max_parallel is not None:
        limiters[None] = anyio.CapacityLimiter(int(workflow.max_parallel.value))
    for node in run.graph.nodes:
        if node.kind is NodeKind.GROUP_START and node.step.max_parallel is not None:
            limiters[node.id] = anyio.CapacityLimiter(int(node.step.max_parallel.value))
    for call in run.graph.calls.values():  # a called workflow's own `maxParallel`
        if call.workflow.max_parallel is not None:
            limit = int(call.workflow.max_parallel.value)
            limiters[call.id] = anyio.CapacityLimiter(limit)
    return limiters
