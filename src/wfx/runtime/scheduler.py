"""The scheduler: which node is ready, which worker runs it, the limits it waits for,
and the cancel scopes that stop steps when the run fails or is interrupted.

Scheduling is event-driven: a step starts the moment its own dependencies are
done (never stage by stage). Each node has a counter of unfinished dependencies;
the one finish that brings it to zero starts it, so a step with two parents that
finish together starts exactly once. All steps of a phase live in one task group;
each running step has its own cancel scope, so a failing run cancels exactly the
steps that must stop while `failure()`/`always()` steps still get their turn. Steps that
become ready together start as a burst: their start records in one commit, their
processes back to back, and only then a task each to wait for its own (`_start`).
"""

from __future__ import annotations

import math
import time
from collections import deque
from contextlib import AsyncExitStack
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import anyio.lowlevel

from wfx.durations import format_duration
from wfx.graph import Node, NodeKind, Section
from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime.contexts import RunContexts, uses_status_function
from wfx.runtime.events import StepStatus
from wfx.runtime.fanout import Expansion
from wfx.runtime.retry import wait_before
from wfx.runtime.state import NodeState, RunState, group_retries_left
from wfx.selection import NOT_SELECTED

if TYPE_CHECKING:
    from wfx.runtime.compensation import Compensator
    from wfx.runtime.steps import Ahead, StepRunner

#: a worker running a chain of instant steps yields to the event loop this often
_FAIRNESS = 64
#: how many workers with nothing to do wait for work; more end (a phase whose 50 parallel
#: steps ended would otherwise wake 50 tasks at its end, only to end them)
_IDLE_WORKERS = 2

#: the most steps a burst starts at once (each holds a process, its pipes and a pidfd
#: until its task runs, and one commit then carries that many start records)
_BURST = 64

#: the worker cap of a run whose steps wait for more than the workflow's `maxParallel`
_UNCAPPED = 1 << 62


class Scheduler:
    """Runs the nodes of one section at a time on as few worker tasks as keep up."""

    def __init__(self, run: RunState, contexts: RunContexts) -> None:
        self.run = run
        self.contexts = contexts
        self.runner: StepRunner | None = None
        self.compensator: Compensator | None = None
        graph = run.graph
        self.remaining = [len(n.deps) for n in graph.nodes]
        self.dependents: list[list[int]] = [[] for _ in graph.nodes]
        for node in graph.nodes:
            for dep in node.deps:
                self.dependents[dep].append(node.index)
        self.scopes: dict[int, tuple[anyio.CancelScope, bool]] = {}
        self.running: dict[int, anyio.CancelScope] = {}
        """Every running step's cancel scope, `finally` steps too (groups stop their own)."""
        self.clocks: dict[StepId, anyio.CancelScope] = {}
        """The `groupTimeout` clock of each group now running."""
        self.stopped_groups: dict[StepId, tuple[StepStatus, str]] = {}
        """Groups whose attempt was stopped: what their running children end as, and why."""
        self.rerunning: dict[StepId, str] = {}
        """Groups whose failed attempt is ending, to run again: why the attempt failed."""
        self.done = bytearray(len(graph.nodes))
        """Which nodes have counted themselves done for their dependents."""
        self.limiters = _limiters(run)
        only = self.limiters.get(None) if len(self.limiters) == 1 else None
        self.worker_cap = _UNCAPPED if only is None else int(only.total_tokens)
        """How many workers can run steps at once: with the workflow's `maxParallel` as the
        only limit, every step holds it while it runs, so more workers would only wait."""
        self.workers = 0
        self.admission = _InstanceAdmission(run)
        self.expansion = Expansion(run, contexts)
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
        if not any(n.section is section for n in graph.nodes):
            run.commit_pending()  # nothing to run (most runs have no `finally` steps)
            return
        roots = [n.index for n in graph.nodes if n.section is section and not n.deps]
        # a dynamic fan-out counts as one step until it knows its instances
        self.unfinished = sum(1 for _ in run.steps(section)) + sum(
            1
            for n in graph.nodes
            if n.section is section and n.kind is NodeKind.GROUP_START and _dynamic(n)
        )
        self.ready_send, self.ready_receive = anyio.create_memory_object_stream[Node](math.inf)
        self.idle_workers = 0
        self.queued = 0
        self.workers_starting = 0
        self.workers = 0
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
            if self.runner is not None and self.runner.followed:
                await self.runner.drop_followed()
        run.commit_pending()  # the phase's last end records, before anything else happens
        assert self.runner is not None
        for node in run.nodes:
            if node.section is section and run.states[node.index].status is StepStatus.PENDING:
                self.runner.finish(node, StepStatus.SKIPPED, "the run stopped before it")

    def count_finished(self) -> None:
        """One more step of the phase is final; the last one lets idle workers go."""
        self.unfinished -= 1
        if not self.unfinished:
            self.ready_send.close()
            for clock in self.clocks.values():
                clock.cancel()

    # -- readiness --------------------------------------------------------------------------

    def _release(self, ready: list[int], *, keep_one: bool = False) -> Node | None:
        """Start every ready node; group barriers pass through at once, without a task.
        With `keep_one`, the first ready step is returned for the calling worker to run."""
        kept: Node | None = None
        runner = self.runner
        if keep_one and runner is not None and runner.followed:
            # a step whose attempt runs already stays on this worker: handed to another,
            # it would run beside this worker's next step, one more than `maxParallel`
            ready = sorted(ready, key=lambda index: index not in runner.followed)
        queue = deque(ready)
        steps: list[Node] = []
        nodes = self.run.nodes
        while queue or steps:
            if not queue:
                queue.extend(self._start(steps))  # steps it skipped may make more ready
                steps = []
                continue
            index = queue.popleft()
            node = nodes[index]
            if node.is_step:
                if keep_one and kept is None:
                    kept = node
                else:
                    steps.append(node)
                continue
            if node.id in self.rerunning and node.kind is NodeKind.GROUP_END:
                assert self.task_group is not None
                self.task_group.start_soon(self._rerun_group, node)
                continue
            if self.admission.waits(node):
                continue  # a fanned-out group's instance over its `maxParallel`: later
            self._pass_barrier(node)
            if _dynamic(node) and node.kind is NodeKind.GROUP_START:
                queue.extend(self._expand(node))
            else:
                queue.extend(self._completed(index))
            queue.extend(self.admission.ended(node))
        return kept

    def _completed(self, index: int) -> list[int]:
        """Count one finished dependency for each dependent; return those now ready."""
        ready = []
        remaining = self.remaining
        self.done[index] = 1
        for dependent in self.dependents[index]:
            remaining[dependent] -= 1
            if remaining[dependent] == 0:
                ready.append(dependent)
            elif remaining[dependent] == 1:
                self._ready_after_last(dependent)
        return ready

    def _ready_after_last(self, index: int) -> None:
        """The step `index` now waits for one node alone: when that is a step whose
        attempt runs, the step is readied as the next step of a chain is (a fan-in: the
        step after many parallel ones starts at once when the last of them succeeds)."""
        nodes = self.run.nodes
        if self.runner is None or not nodes[index].is_step:
            return
        done = self.done
        last = next((d for d in nodes[index].deps if not done[d]), None)
        if last is None:
            return
        node = nodes[last]
        if node.is_step and self.run.states[last].status is StepStatus.RUNNING:
            self.ready_next(node)

    def _pass_barrier(self, node: Node) -> None:
        state = self.run.states[node.index]
        state.bad = self.contexts.bad_upstream(node)
        state.ended = time.monotonic()
        call = node.step.call is not None and not node.is_step
        if node.kind is NodeKind.GROUP_START:
            decision = self.group_stop_reason(node) or self.contexts.decide(
                node, node.step, state.bad
            )
            state.status = StepStatus.SUCCESS if decision is None else StepStatus.SKIPPED
            state.reason = decision
            if decision is not None:
                self.run.skipped_groups = True
            else:
                self._group_started(node)
                if call:
                    self._enter_call(node)
        else:
            state.status = StepStatus.SUCCESS
            clock = self.clocks.pop(node.id, None)
            if clock is not None:
                clock.cancel()
            if node.fan_out is not None:
                self._fan_out_done(node)
            if call:
                start = self.run.states[self.contexts.group_starts[node.id]]
                self.contexts.leave_call(node, start.status)

    # -- whole groups -----------------------------------------------------------------------

    def _group_started(self, group: Node) -> None:
        """A group starts: its `groupTimeout` clock, and when its `groupRetries` began."""
        if group.id in self.run.retried_groups:
            self.run.group_began.setdefault(group.id, time.monotonic())
        if group.step.group_timeout is not None:
            self._start_clock(group, float(group.step.group_timeout.value))

    def _start_clock(self, group: Node, seconds: float) -> None:
        """Start the group's `groupTimeout` clock (stopped when its end barrier passes)."""
        assert self.task_group is not None
        clock = anyio.CancelScope()
        self.clocks[group.id] = clock
        self.task_group.start_soon(self._group_clock, group, seconds, clock)

    async def _group_clock(self, group: Node, seconds: float, clock: anyio.CancelScope) -> None:
        with clock:
            await anyio.sleep(seconds)
            self.clocks.pop(group.id, None)
            reason = f"group `{group.id}` timed out after {format_duration(seconds)} (groupTimeout)"
            retried = self.run.retried_groups.get(group.id)
            if retried and group_retries_left(self.run, retried, StepStatus.TIMEOUT, None):
                self.group_failed(retried, reason, StepStatus.TIMEOUT)
                return
            self.stop_group(group.id, StepStatus.TIMEOUT, reason)
            assert self.runner is not None
            self.runner.fail(reason)

    def stop_group(self, group_id: StepId, status: StepStatus, reason: str) -> None:
        """Stop the group's attempt: its running children end as `status` (their processes
        killed), the ones not started yet are skipped, both with `reason`."""
        self.stopped_groups[group_id] = (status, reason)
        nodes = self.run.nodes  # a dynamic fan-out's instances too
        for index, scope in list(self.running.items()):
            if group_id in nodes[index].groups:
                scope.cancel()

    def group_failed(
        self, group: Node, reason: str, status: StepStatus = StepStatus.CANCELLED
    ) -> None:
        """An attempt of `group` (which has retries left) failed: stop its other steps;
        once they have all ended, the group runs again (:meth:`_rerun_group`)."""
        if group.id in self.rerunning:
            return
        self.rerunning[group.id] = reason
        self.unfinished += 1  # the phase goes on until the group has run again
        clock = self.clocks.pop(group.id, None)
        if clock is not None:
            clock.cancel()
        attempt = self.run.group_attempts.get(group.id, 1)
        why = reason if status is StepStatus.TIMEOUT else f"group `{group.id}` attempt {attempt}"
        why += "" if status is StepStatus.TIMEOUT else f" failed ({reason}); it runs again"
        self.stop_group(group.id, status, why)

    async def _rerun_group(self, end: Node) -> None:
        """The failed attempt of a group has ended: roll back what it did (its succeeded
        steps, the last first), wait, and run all its steps again; or, when the run is
        stopping or the group's deadline has passed, let the failure stand."""
        run = self.run
        group = run.retried_groups[end.id]
        schedule = group.group_retry
        assert schedule is not None and self.runner is not None and self.compensator
        members = [n for n in run.graph.nodes if end.id in n.groups] + [end]
        attempt = run.group_attempts.get(end.id, 1)
        reason = self.rerunning[end.id]
        with anyio.CancelScope() as scope:
            self.running[end.index] = scope
            self.scopes[end.index] = (scope, True)
            try:
                undone = 0
                if not self._group_must_stop(end):
                    undone = await self.compensator.compensate_steps(members)
                delay = wait_before(schedule, attempt, self.runner.rng)
                too_late = self._past_deadline(group, delay)
                if too_late or self._group_must_stop(end):
                    self._give_up(end, reason, too_late)
                    return
                self._announce(end, attempt, delay, reason, undone, members)
                self._reset(end, members, attempt + 1)
                await self.runner.sleep(delay)  # the what-if plan's is a simulated clock
            finally:
                self.scopes.pop(end.index, None)
                self.running.pop(end.index, None)
        if scope.cancelled_caught and end.id in self.rerunning:
            self._give_up(end, reason, None)
            return
        self._restart(group, members)

    def _group_must_stop(self, end: Node) -> bool:
        """Whether the run (or a group around this one) stops, so the group does not rerun."""
        return self.run.failing or self.run.cancelled or self.group_stop_reason(end) is not None

    def _past_deadline(self, group: Node, delay: float) -> str | None:
        """Why the group's next attempt would start after its `deadline`; None if in time."""
        schedule = group.group_retry
        began = self.run.group_began.get(group.id)
        if schedule is None or schedule.deadline is None or began is None:
            return None
        if time.monotonic() + delay < began + schedule.deadline:
            return None
        return f"its groupRetries deadline of {format_duration(schedule.deadline)} passed"

    def _give_up(self, end: Node, reason: str, why: str | None) -> None:
        """The group does not run again: its failure stands (the run fails, unless a group
        around it is stopping and handles it), and its end passes."""
        assert self.runner is not None
        self.rerunning.pop(end.id, None)
        if not self.run.cancelled and self.group_stop_reason(end) is None:
            self.runner.fail(f"{reason} (not run again: {why})" if why else reason)
        self._pass_barrier(end)
        self._release(self._completed(end.index))
        self.count_finished()  # the pin of group_failed

    def _announce(
        self,
        end: Node,
        attempt: int,
        delay: float,
        reason: str,
        undone: int,
        members: list[Node],
    ) -> None:
        run = self.run
        steps = tuple(n.id for n in members if n.is_step)
        run.emit(
            ev.GroupRetrying(
                run.run_id, run.now(), end.id, attempt, attempt + 1, delay, reason, steps
            )
        )
        rolled = f"rolled back {undone} step{'s' if undone != 1 else ''}; " if undone else ""
        run.notice(
            f"group `{end.id}` attempt {attempt} failed: {reason}; {rolled}it runs again"
            f" in {format_duration(delay)} (attempt {attempt + 1})",
            end.id,
        )

    def _reset(self, end: Node, members: list[Node], attempt: int) -> None:
        """Every node of the group is pending again (its steps keep counting attempts)."""
        run = self.run
        run.group_attempts[end.id] = attempt
        self.rerunning.pop(end.id, None)
        self.stopped_groups.pop(end.id, None)
        inside = {n.index for n in members}
        leaves = 0
        for node in members:
            if node.kind is NodeKind.GROUP_START:
                for table in (run.group_attempts, run.group_began, self.stopped_groups):
                    table.pop(node.id, None)
            if node.is_step:
                leaves += 1
                for journaled in (run.restored, run.resumed):
                    journaled.pop(node.index, None)
                run.again.discard(node.index)
                if run.states[node.index].attempts:
                    run.earlier_attempts[node.index] = run.states[node.index].attempts
                run.steps_context.pop(node.id, None)
            run.states[node.index] = NodeState()
            self.done[node.index] = 0
        for node in members:
            self.remaining[node.index] = sum(
                1 for dep in node.deps if dep in inside or not self.done[dep]
            )
        self.unfinished += leaves

    def _restart(self, group: Node, members: list[Node]) -> None:
        """Start the group's steps again, with a new `groupTimeout` clock."""
        if group.step.group_timeout is not None:
            self._start_clock(group, float(group.step.group_timeout.value))
        self._release([n.index for n in members if self.remaining[n.index] == 0])
        self.count_finished()  # the pin of group_failed

    def group_stop_reason(self, node: Node) -> str | None:
        """Why `node` does not start: a group around it was stopped; else None."""
        if not self.stopped_groups:
            return None
        for group_id in node.groups:
            stopped = self.stopped_groups.get(group_id)
            if stopped is not None:
                return stopped[1]
        return None

    def stop_of(self, node: Node) -> tuple[StepStatus, str] | None:
        """How a running `node` ends when a group around it was stopped; else None."""
        for group_id in node.groups:
            stopped = self.stopped_groups.get(group_id)
            if stopped is not None:
                return stopped
        return None

    # -- fan-out ----------------------------------------------------------------------------

    def _expand(self, start: Node) -> list[int]:
        """A dynamic fan-out's start passed: create its instances (from the journal's list
        when resuming, else from its `forEach`) and return them, ready to run."""
        run = self.run
        assert self.runner is not None
        state = run.states[start.index]
        created: list[Node] = []
        if state.status is StepStatus.SUCCESS:
            made = self.expansion.instances(start, state)
            if isinstance(made, str):
                self.runner.fan_out_failed(start, made, state.span)
            else:
                created = made
        self.unfinished += sum(1 for n in created if n.is_step)
        self.count_finished()  # the fan-out's place holder (after its instances are counted)
        if not created:
            return self._completed(start.index)
        return self._wire(start, created)

    def _wire(self, start: Node, created: list[Node]) -> list[int]:
        """Count the dependencies of a dynamic fan-out's new nodes; its end waits for the
        ones nothing else of it waits for. Return those that may start now."""
        end = self.dependents[start.index][0]
        self.remaining.extend(len(n.deps) for n in created)
        self.done.extend(bytes(len(created)))
        self.dependents.extend([] for _ in created)
        heads: list[int] = []
        waited: set[int] = set()
        for node in created:
            for dep in node.deps:
                if dep == start.index:
                    heads.append(node.index)
                    self.remaining[node.index] -= 1
                else:
                    self.dependents[dep].append(node.index)
                    waited.add(dep)
            if node.kind is NodeKind.GROUP_START and node.step.max_parallel is not None:
                limit = int(node.step.max_parallel.value)  # a group inside the body
                if node.fan_out is not None and node.step.steps:
                    self.admission.cap(node.id, limit)  # it caps its instances
                else:
                    self.limiters[node.id] = anyio.CapacityLimiter(limit)
        sinks = [n.index for n in created if n.index not in waited]
        for sink in sinks:
            self.dependents[sink].append(end)
        self.dependents[start.index] = heads
        self.remaining[end] = len(sinks)
        return [i for i in heads if self.remaining[i] == 0]

    def _fan_out_done(self, end: Node) -> None:
        """Every instance of a fan-out ended: `steps.<id>` becomes their aggregate, and a
        `failFast: false` fan-out whose instance failed fails the run now."""
        run = self.run
        run.steps_context[end.id] = self.expansion.aggregate(end)
        reason = run.deferred.pop(end.id, None)
        if reason is None:
            return
        around = end.instance  # a nested fan-out: the outer instance failed, as its step
        if around is not None and not _fail_fast(run, around.fan_out):
            run.deferred.setdefault(around.fan_out, reason)
            return
        assert self.runner is not None
        self.runner.fail(reason)

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

    # -- a burst of ready steps --------------------------------------------------------------

    def _start(self, steps: list[Node]) -> list[int]:
        """Start ready steps; return the nodes made ready by the ones that end at once
        (skipped). A burst of steps is started here, together: their start records in one
        commit, then their processes back to back, each then handed to a task of its own;
        started one per task, the 50th process of 50 would wait for 49 task starts and 49
        commits (docs/performance.md, eleventh pass). The others take the usual way."""
        room = min(_BURST, self.worker_cap - self.workers) if len(steps) > 1 else 0
        if room < 2 or not self._bursts_allowed():
            for node in steps:
                self._dispatch(node)
            return []
        runner = self.runner
        assert runner is not None
        ready: list[int] = []
        prepared: list[Ahead] = []
        followed = runner.followed
        for node in steps:
            if (
                len(prepared) >= room
                or self._limiters_of(node)
                or node.index in followed
                or runner.begin_of(node) is None  # a Python step: its task does it all
            ):
                self._dispatch(node)
                continue
            finished = self._end_without_running(node)
            if finished is not None:
                ready.extend(finished)
                continue
            ahead = runner.prepare_ahead(node)
            if ahead is None:
                self._dispatch(node)
            else:
                prepared.append(ahead)
                self.workers += 1  # its own, counted now: the next dispatch starts no more
        if prepared:
            runner.start_ahead(prepared)
            assert self.task_group is not None
            for ahead in prepared:
                self.task_group.start_soon(self._worker, ahead)
        return ready

    def ready_next(self, node: Node) -> None:
        """`node`'s attempt has started: while it runs, ready the first attempt of the
        step that then waits for `node` alone, when exactly one does (a chain), and only
        when that step would start the usual way soon after (not while the run stops)."""
        runner = self.runner
        if runner is None or not self._bursts_allowed():
            return
        remaining = self.remaining
        waiting = [d for d in self.dependents[node.index] if remaining[d] == 1]
        if len(waiting) == 1:
            following = self.run.nodes[waiting[0]]
            if following.is_step and not self.done[following.index]:
                runner.prepare_first(following, node)

    def follows_at_once(self, node: Node, following: Node) -> bool:
        """Whether `following`, which waits for the running step `node` alone, surely
        starts if `node` succeeds, decided by nothing else: selected, without a
        `condition` (nothing but the success of what it needs decides), in the main
        section as `node`, no limiter to wait for, no group stopped or running again,
        and nothing it needs failed. Then it may start as soon as `node` succeeds."""
        run = self.run
        index = following.index
        return (
            following.step is not None
            and following.step.condition is None
            and following.section is Section.MAIN
            and node.section is Section.MAIN
            and not following.cleanup
            and index not in run.not_selected
            and index not in run.restored
            and not self._limiters_of(following)
            and self.still_follows(following)
        )

    def still_follows(self, following: Node) -> bool:
        """Whether what :meth:`follows_at_once` found still holds as far as the run's
        state goes (checked again once the step it waits for has succeeded)."""
        run = self.run
        return (
            self._bursts_allowed()
            and not run.skipped_groups
            and not self.stopped_groups
            and not self.rerunning
            and not self.contexts.bad_upstream(following)
        )

    def _bursts_allowed(self) -> bool:
        """Whether steps may start as a burst now: not while the run stops or fails (each
        step's own task decides then), nor when resuming (each step first stops what a
        dead wfx left of it) or with failpoints armed."""
        run = self.run
        runner = self.runner
        stopping = run.failing or run.cancelled
        return not (stopping or run.resumed or (runner is not None and runner.faults))

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
        for _ in range(min(count, self.worker_cap - self.workers)):
            self.workers += 1
            self.workers_starting += 1
            self.task_group.start_soon(self._worker)

    async def _worker(self, ahead: Ahead | None = None) -> None:
        """Run steps until the phase ends: take a queued step (or first wait for the one
        started `ahead` for this task), then each step its own step made ready (a chain
        stays on one task), then the next queued one."""
        try:
            if ahead is None:
                self.workers_starting -= 1
                await self._work(None, spread=True)
            else:
                done = await self._run_node(ahead.node, ahead)
                await self._work(self._release(done, keep_one=True), spread=False)
        finally:
            self.workers -= 1

    async def _work(self, current: Node | None, *, spread: bool) -> None:
        """Run `current` and the chain it starts, then queued steps; with `spread`, the
        first step this worker takes starts up to two more workers for the queue."""
        streak = 0
        while True:
            while current is not None:
                current = self._release(await self._run_node(current), keep_one=True)
                streak += 1
                if streak % _FAIRNESS == 0 and not self._started_at_once(current):
                    await anyio.lowlevel.checkpoint()  # let signals and other tasks in
            try:
                current = self.ready_receive.receive_nowait()
                self.queued -= 1
            except anyio.WouldBlock:
                self.run.commit_pending()  # nothing to start at once: end records now
                if self.idle_workers >= _IDLE_WORKERS:
                    return  # enough wait for work already: one task fewer to wake at the end
                self.idle_workers += 1
                try:
                    current = await self.ready_receive.receive()
                except anyio.EndOfStream:
                    return
            except anyio.EndOfStream:
                return
            if spread:
                spread = False
                self._start_workers(min(2, self.queued - self.workers_starting))

    # -- one step ---------------------------------------------------------------------------

    def _end_without_running(self, node: Node) -> list[int] | None:
        """End a step that does not run (not selected, restored from the journal, or
        skipped by its condition): the nodes its end made ready. None: it runs."""
        run = self.run
        runner = self.runner
        assert runner is not None
        state = run.states[node.index]
        state.bad = self.contexts.bad_upstream(node)
        if node.index in run.not_selected:
            runner.finish(node, StepStatus.SKIPPED, NOT_SELECTED)
            return self._completed(node.index)
        record = run.restored.get(node.index)
        if record is not None:
            runner.restore(node, record)
            return self._completed(node.index)
        skip = self.group_stop_reason(node) or self.contexts.decide(node, node.step, state.bad)
        if skip is not None:
            runner.finish(node, StepStatus.SKIPPED, skip)
            return self._completed(node.index)
        return None

    async def _run_node(self, node: Node, ahead: Ahead | None = None) -> list[int]:
        """Run (or skip, or restore) one step; return the nodes its end made ready. With
        `ahead`, its first attempt was started already, and it was found to run; so was
        it when it was started as soon as the step before it succeeded."""
        runner = self.runner
        assert runner is not None
        if ahead is None and runner.followed:
            ahead = runner.take_followed(node)
        if ahead is None:
            finished = self._end_without_running(node)
            if finished is not None:
                return finished
        run = self.run
        state = run.states[node.index]
        main = node.section is Section.MAIN
        finishing = node.cleanup or (node.step.condition and uses_status_function(node))
        cancel_on_failure = main and not finishing
        try:
            with anyio.CancelScope() as scope:
                self.running[node.index] = scope
                if main:
                    self.scopes[node.index] = (scope, cancel_on_failure)
                if cancel_on_failure and (run.cancelled or run.failing):
                    scope.cancel()  # a status-function step starts even after Ctrl-C
                elif ahead is not None and self.group_stop_reason(node) is not None:
                    scope.cancel()  # started at once, its group stopped since: stop it
                limiters = self._limiters_of(node)
                if limiters and any(limiter.available_tokens < 1 for limiter in limiters):
                    run.commit_pending()  # the wait for a place may be long
                if len(limiters) == 1:  # the usual case: the workflow's `maxParallel`
                    async with limiters[0]:
                        await runner.attempts(node, state, ahead)
                elif limiters:
                    async with AsyncExitStack() as stack:
                        for limiter in limiters:
                            await stack.enter_async_context(limiter)
                        await runner.attempts(node, state, ahead)
                else:
                    await runner.attempts(node, state, ahead)
            if scope.cancelled_caught:
                runner.stopped(node, state, self.stop_of(node))
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                runner.stopped(node, state)
            raise
        finally:
            self.scopes.pop(node.index, None)
            self.running.pop(node.index, None)
        return self._completed(node.index)

    def _started_at_once(self, node: Node | None) -> bool:
        """Whether `node`'s first attempt was started as the step before it succeeded:
        its task must take it before anything else runs (a checkpoint could cancel it)."""
        runner = self.runner
        return node is not None and runner is not None and node.index in runner.followed

    def _limiters_of(self, node: Node) -> list[anyio.CapacityLimiter]:
        """The limiters `node` must hold while it runs. Not the workflow's `maxParallel`
        when the number of workers enforces it (no more workers than places ever start,
        and a worker runs one step at a time): taking it could never wait."""
        limiters = self.limiters
        if not limiters:
            return []
        run_wide = None in limiters and self.worker_cap == _UNCAPPED
        found = [limiters[None]] if run_wide else []
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


def _fail_fast(run: RunState, fan_out: str) -> bool:
    """Whether a failed instance of `fan_out` stops the run (`failFast`)."""
    info = run.nodes[run.node_index(fan_out)].fan_out
    return info is None or info.fail_fast


def _instances_are_groups(run: RunState, node: Node) -> bool:
    """Whether `node` starts a fan-out whose instances are groups (a fanned-out group, or
    calls of a sub-workflow): its `maxParallel` counts open instances, not steps."""
    info = node.fan_out
    if info is None:
        return False
    if node.step.steps:
        return True
    first = run.graph.ids.get(info.instances[0]) if info.instances else None
    return first is not None and run.graph.nodes[first].kind is NodeKind.GROUP_END


def _dynamic(node: Node) -> bool:
    return node.fan_out is not None and node.fan_out.dynamic


def _limiters(run: RunState) -> dict[str | None, anyio.CapacityLimiter]:
    """The run's `maxParallel` (key None) and each group's, as capacity limiters."""
    limiters: dict[str | None, anyio.CapacityLimiter] = {}
    workflow = run.graph.workflow
    if workflow.max_parallel is not None:
        limiters[None] = anyio.CapacityLimiter(int(workflow.max_parallel.value))
    for node in run.graph.nodes:
        if node.kind is NodeKind.GROUP_START and node.step.max_parallel is not None:
            if _instances_are_groups(run, node):
                continue  # a fanned-out group's cap counts instances: _InstanceAdmission
            limiters[node.id] = anyio.CapacityLimiter(int(node.step.max_parallel.value))
    for call in run.graph.calls.values():  # a called workflow's own `maxParallel`
        if call.workflow.max_parallel is not None:
            limit = int(call.workflow.max_parallel.value)
            limiters[call.id] = anyio.CapacityLimiter(limit)
    return limiters


class _InstanceAdmission:
    """`maxParallel` on a fanned-out group: at most that many of its instances (not of
    their steps) are open at once. An instance group's start waits here until an earlier
    instance's end passes; barriers pass without tasks, so this is a count and a queue."""

    def __init__(self, run: RunState) -> None:
        graph = run.graph
        self.caps: dict[str, int] = {}
        for node in graph.nodes:
            info = node.fan_out
            start = node.kind is NodeKind.GROUP_START
            if start and info and info.max_parallel and _instances_are_groups(run, node):
                self.caps[node.id] = info.max_parallel
        self.open: dict[str, int] = dict.fromkeys(self.caps, 0)
        self.waiting: dict[str, deque[int]] = {name: deque() for name in self.caps}

    def cap(self, fan_out: str, limit: int) -> None:
        """A fanned-out group the run created (inside a dynamic group's instance)."""
        self.caps[fan_out] = limit
        self.open[fan_out] = 0
        self.waiting[fan_out] = deque()

    def _capped(self, node: Node) -> str | None:
        """The capped fan-out whose instance group `node` opens or closes, if any."""
        instance = node.instance
        if instance is None or instance.fan_out not in self.caps:
            return None
        return instance.fan_out if node.id == instance.own(instance.fan_out) else None

    def waits(self, node: Node) -> bool:
        """Whether the instance group `node` starts must wait for a free place (then it is
        queued); otherwise it takes one."""
        fan_out = self._capped(node) if node.kind is NodeKind.GROUP_START else None
        if fan_out is None:
            return False
        if self.open[fan_out] >= self.caps[fan_out]:
            self.waiting[fan_out].append(node.index)
            return True
        self.open[fan_out] += 1
        return False

    def ended(self, node: Node) -> list[int]:
        """An instance group closed: the next waiting one may start."""
        fan_out = self._capped(node) if node.kind is NodeKind.GROUP_END else None
        if fan_out is None:
            return []
        self.open[fan_out] -= 1
        queued = self.waiting[fan_out]
        return [queued.popleft()] if queued else []  # it takes the place when it passes
