"""The mutable state of one run, shared by the engine's parts: the scheduler, the step
runner, the compensator and the run contexts each read and change it, and nothing else."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wfx.diagnostics import Span
from wfx.graph import ExecutionGraph, Node
from wfx.model import OnError, StepId
from wfx.runtime import events as ev
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import StepRecord
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
        self.secrets = secrets
        self.states = [NodeState() for _ in graph.nodes]
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
        self.call_inputs: dict[str, Mapping[str, Any]] = {}
        """Each sub-workflow call's input values (by its prefix), rendered as it starts."""

    def emit(self, event: ev.Event) -> None:
        """Hand an event to the run's sink."""
        self.sink(event)

    def now(self) -> float:
        """The wall-clock time events carry."""
        return time.time()

    def notice(self, message: str, step: StepId | None = None) -> None:
        """Emit a notice of the run (already masked)."""
        self.emit(ev.Notice(self.run_id, self.now(), message, step))


def tolerates(node: Node) -> bool:
    """Whether `node`'s failure lets the run go on (`onError: continue`)."""
    return node.settings is not None and node.settings.on_error.value is OnError.CONTINUE


def step_context(state: NodeState, duration: float) -> dict[str, Any]:
    """A finished step as `steps.<id>` shows it to expressions."""
    return {
        "outputs": state.outputs,
        "status": state.status.value,
        "attempts": state.attempts,
        "duration": duration,
    }
