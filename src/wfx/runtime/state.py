"""The mutable state of one run, shared by the engine's parts: the scheduler, the step
runner, the compensator and the run contexts each read and change it, and nothing else."""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from wfx.diagnostics import Span
from wfx.graph import ExecutionGraph, Node, NodeKind, Section
from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import ResumeState, StepRecord
from wfx.runtime.secrets import SecretSet


@dataclass(slots=True)
class NodeState:
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
    where: str | None = None


class RunState:
    """What a run knows while it runs: each node's state, whether it is failing or
    stopping, the `steps` context, and what the journal of a resumed run said."""

    def __init__(
        self,
        graph: ExecutionGraph,
        run_id: str,
        sink: ev.EventSink,
        secrets: SecretSet,
    ) -> None:
        self.graph = graph
        self.run_id = run_id
        self.sink = sink
        self._commit_pending = getattr(sink, "commit_pending", None)
        self._intend = getattr(sink, "intend", None)
        self._together: Callable[[], AbstractContextManager[None]] | None = getattr(
            sink, "together", None
        )
        self.secrets = secrets
        self.nodes: list[Node] = list(graph.nodes)
        """The graph's nodes, then the instances of dynamic fan-outs as the run creates them."""
        self.states = [NodeState() for _ in graph.nodes]
        self.deferred: dict[str, str] = {}
        """Fan-outs with `failFast: false` whose instance failed: why, once all are done."""
        self.created_ids: dict[str, int] = {}
        """The nodes the run created (leaf steps, group ends) by id, as `graph.ids`."""
        self.expanded: dict[str, list[int]] = {}
        """Each dynamic fan-out the run expanded: its instances' node indices, in order."""
        self.steps_context: dict[str, Any] = {}
        self.completions = 0
        self.failing = False
        self.cancelled = False
        self.tolerated_failures = False
        self.skipped_groups = False
        self.reason: str | None = None
        self.restored: dict[int, StepRecord] = {}
        """Steps the journal says finished: their results are taken, they do not run."""
        self.resumed: dict[int, StepRecord] = {}
        """Steps that run again from the journal's attempt count."""
        self.again: set[int] = set()
        """Steps the journal says finished that run once more (their work was undone)."""
        self.rollbacks_done: set[str] = set()
        self.kept: dict[int, str] = {}
        """Restored steps whose result comes from another run (a redrive): that run's id."""
        self.not_selected: set[int] = set()
        """Steps a run of part of the workflow skips."""
        self.retried_groups = {
            n.id: n for n in graph.nodes if n.kind is NodeKind.GROUP_START and n.group_retry
        }
        """The start barrier of each group with `groupRetries`, by id."""
        self.group_attempts: dict[StepId, int] = {}
        """The attempt each group with `groupRetries` is at (absent: its first)."""
        self.earlier_attempts: dict[int, int] = {}
        """Steps a group re-run resets: the attempts they made before (numbering goes on)."""
        self.group_began: dict[StepId, float] = {}
        """When each group with `groupRetries` first started (its `deadline` counts from it)."""
        self.resume: ResumeState | None = None
        """The journal's account of the run this one resumes (None: a new run)."""

        self.call_inputs: dict[str, Mapping[str, Any]] = {}
        """Each sub-workflow call's input values (by its prefix), rendered as it starts."""

    def steps(self, section: Section | None = None) -> Iterator[Node]:
        """The leaf nodes (optionally of one section) in the graph's order, the instances a
        dynamic fan-out got so far where the fan-out stands (before its end)."""
        nodes = self.nodes
        for node in itertools.islice(nodes, len(self.graph.nodes)):
            if section is not None and node.section is not section:
                continue
            if node.is_step:
                yield node
            elif node.kind is NodeKind.GROUP_END and node.id in self.expanded:
                yield from (nodes[i] for i in self.expanded[node.id] if nodes[i].is_step)

    def add_nodes(self, nodes: list[Node]) -> None:
        """Nodes the run creates (a dynamic fan-out's instances), indexed from the end."""
        self.nodes.extend(nodes)
        self.states.extend(NodeState() for _ in nodes)
        for node in nodes:
            if node.kind is not NodeKind.GROUP_START:
                self.created_ids[node.id] = node.index

    def node_index(self, step_id: str) -> int:
        """The index of a leaf step or a group's end, the graph's or one the run created."""
        found = self.graph.ids.get(StepId(step_id))
        return self.created_ids[step_id] if found is None else found

    def emit(self, event: ev.Event) -> None:
        """Hand an event to the run's sink."""
        self.sink(event)

    def commit_pending(self) -> None:
        """The engine is about to wait (for a step to be ready, for a free place): what the
        sink holds back (the journal's end records, which ride with the next start record
        when one follows at once) is written now, so it is never held for long."""
        if self._commit_pending is not None:
            self._commit_pending()

    def intend(self, step: StepId, attempt: int) -> bool:
        """`step`'s `attempt` may start at any moment, before its task runs: the sink
        records it durably now (the journal), so that its start needs no write first.
        Whether it did (False: the sink holds writes back but cannot record intents; the
        attempt must then start the usual way)."""
        if self._intend is not None:
            return self._intend(self.run_id, step, attempt) is not False
        return self._commit_pending is None

    def together(self) -> AbstractContextManager[None]:
        """A block whose events the sink records as one (the journal: one transaction,
        committed as the block ends); a sink without that records them one by one."""
        together = self._together
        return contextlib.nullcontext() if together is None else together()

    def now(self) -> float:
        """The wall-clock time events carry."""
        return time.time()

    def notice(self, message: str, step: StepId | None = None) -> None:
        """Emit a notice of the run (already masked)."""
        self.emit(ev.Notice(self.run_id, self.now(), message, step))


def retrying_group(
    run: RunState, node: Node, status: StepStatus, exit_code: int | None
) -> Node | None:
    """The innermost group around `node` that runs again after `node`'s failure (its
    `groupRetries` has attempts left, retries this failure, and its deadline has not
    passed), as its start barrier; None: the failure is final."""
    if not run.retried_groups:
        return None
    for group_id in reversed(node.groups):
        group = run.retried_groups.get(group_id)
        if group is not None and group_retries_left(run, group, status, exit_code):
            return group
    return None


def group_retries_left(
    run: RunState, group: Node, status: StepStatus, exit_code: int | None
) -> bool:
    """Whether `group` runs again after a failure with `status` and `exit_code`."""
    schedule = group.group_retry
    if schedule is None or run.group_attempts.get(group.id, 1) >= schedule.attempts:
        return False
    if not schedule.retries_on(status is StepStatus.TIMEOUT, exit_code):
        return False
    began = run.group_began.get(group.id)
    return (
        schedule.deadline is None or began is None or time.monotonic() < began + schedule.deadline
    )


def tolerates(node: Node, exit_code: int | None) -> bool:
    """Whether `node`'s failure (with `exit_code`) lets the run go on (`onError: continue`,
    or `continueOn` listing the code)."""
    return node.settings is not None and node.settings.tolerates(exit_code)


def step_context(state: NodeState, duration: float) -> dict[str, Any]:
    """A finished step as `steps.<id>` shows it to expressions."""
    return {
        "outputs": state.outputs,
        "status": state.status.value,
        "attempts": state.attempts,
        "duration": duration,
        "exitCode": state.exit_code,
    }
