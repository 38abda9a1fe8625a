"""Typed events the engine emits while a run happens. The engine never prints: the CLI
renders these, the journal persists them, tests assert on them.

Every event is an immutable dataclass carrying the run id and a wall-clock time.
Step events name the step by id; output lines are already masked for secrets.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfx.diagnostics import Span
from wfx.exitcodes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_PARTIAL

if TYPE_CHECKING:
    from wfx.model import StepId


class StepStatus(enum.Enum):
    """Where a step stands (the names of the language reference)."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    TIMEOUT = "timeout"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"
    ROLLED_BACK = "rolledBack"
    ROLLBACK_FAILED = "rollbackFailed"

    @property
    def is_failure(self) -> bool:
        """True for statuses that count as a failure of the step."""
        return self in (StepStatus.FAILED, StepStatus.TIMEOUT)


class RunStatus(enum.Enum):
    """How a run ended; each maps to one exit code."""

    SUCCESS = "success"
    FAILED = "failed"
    COMPLETED_WITH_FAILURES = "completedWithFailures"
    INTERRUPTED = "interrupted"

    @property
    def exit_code(self) -> int:
        """The process exit code wfx uses for this outcome."""
        return _EXIT_CODES[self]


_EXIT_CODES = {
    RunStatus.SUCCESS: EXIT_OK,
    RunStatus.FAILED: EXIT_FAILED,
    RunStatus.COMPLETED_WITH_FAILURES: EXIT_PARTIAL,
    RunStatus.INTERRUPTED: EXIT_INTERRUPTED,
}


@dataclass(frozen=True, slots=True)
class Event:
    """Base of every event: which run, and when (seconds since the epoch)."""

    run_id: str
    time: float


@dataclass(frozen=True, slots=True)
class RunStarted(Event):
    """The run began: its workflow, its steps in plan order, its inputs."""

    workflow: str
    file: str
    steps: tuple[StepId, ...]
    finally_steps: tuple[StepId, ...] = ()
    inputs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class StepStarted(Event):
    """An attempt of a step began."""

    step: StepId
    attempt: int


@dataclass(frozen=True, slots=True)
class StepOutput(Event):
    """One line (or a chunk of a very long line) a step wrote, secrets masked."""

    step: StepId
    stream: str
    text: str
    rollback: bool = False


@dataclass(frozen=True, slots=True)
class StepRetrying(Event):
    """An attempt failed and another follows after `delay` seconds."""

    step: StepId
    attempt: int
    next_attempt: int
    delay: float
    reason: str
    where: str | None = None
    """Where the failed attempt ran (`local`, a worker's address)."""


@dataclass(frozen=True, slots=True)
class StepFinished(Event):
    """A step reached its final status (see the subclasses)."""

    step: StepId
    status: StepStatus
    attempts: int = 0
    duration: float = 0.0
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    outputs: Mapping[str, Any] = field(default_factory=dict)
    span: Span | None = None
    """Where the expression is whose evaluation failed the step (or decided its skip)."""
    where: str | None = None
    """Where the step's last attempt ran (`local`, a worker's address; None: it did not)."""


@dataclass(frozen=True, slots=True)
class StepSucceeded(StepFinished):
    """The step succeeded."""


@dataclass(frozen=True, slots=True)
class StepFailed(StepFinished):
    """The step failed after all its attempts."""


@dataclass(frozen=True, slots=True)
class StepTimedOut(StepFinished):
    """The step's last attempt ran into its timeout."""


@dataclass(frozen=True, slots=True)
class StepSkipped(StepFinished):
    """The step did not run: its condition was false, or the run stopped first."""


@dataclass(frozen=True, slots=True)
class StepRestored(StepFinished):
    """A resumed run took this step's result from the journal instead of running it."""


@dataclass(frozen=True, slots=True)
class StepKept(StepRestored):
    """A redrive, or a run of part of a workflow, took this step's result from the earlier
    run `source` instead of running it."""

    source: str = ""


@dataclass(frozen=True, slots=True)
class StepCancelled(StepFinished):
    """The step was running when the run was cancelled or failed."""


@dataclass(frozen=True, slots=True)
class RollbackStarted(Event):
    """A succeeded step's compensation began."""

    step: StepId


@dataclass(frozen=True, slots=True)
class RollbackFinished(Event):
    """A compensation ended: `rolledBack` or `rollbackFailed`."""

    step: StepId
    status: StepStatus
    duration: float = 0.0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class GroupRetrying(Event):
    """An attempt of a group with `groupRetries` failed; its succeeded steps were rolled
    back and all of `steps` run again as attempt `next_attempt` after `delay` seconds."""

    group: StepId
    attempt: int
    next_attempt: int
    delay: float
    reason: str
    steps: tuple[StepId, ...] = ()


@dataclass(frozen=True, slots=True)
class Notice(Event):
    """Something the user should know that is not a status change (e.g. leftover processes)."""

    message: str
    step: StepId | None = None
    level: str = "warning"
    span: Span | None = None
    """Where in the workflow file the notice is about, when it is one place."""


@dataclass(frozen=True, slots=True)
class RunQueued(Event):
    """The run waits for its concurrency group: `holder` is the run ahead of it (holding the
    group, or queued before it), with its wfx process and since when."""

    group: str
    holder: str
    pid: int
    since: float
    holding: bool = True


@dataclass(frozen=True, slots=True)
class FanOutExpanded(Notice):
    """A dynamic fan-out's list is known: `items` became the instances `step[0]`...; the
    journal keeps the list so a resumed run maps the same items to the same instances."""

    items: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class RunFinished(Event):
    """The run ended; `outputs` are the workflow outputs, `reason` why it did not succeed."""

    status: RunStatus
    duration: float
    outputs: Mapping[str, Any] = field(default_factory=dict)
    reason: str | None = None

    @property
    def exit_code(self) -> int:
        """The exit code for this outcome."""
        return self.status.exit_code


#: something that takes events as they happen (a renderer, the journal, a test's list.append).
#: A sink that holds writes back to group them (the journal) also has `commit_pending()`,
#: which the engine calls before it waits for anything (see `RunState.commit_pending`),
#: may have `together()`, a context in which what it records is written as one, and
#: `intend(run_id, step, attempt)`, told that a step's attempt may start at any moment.
EventSink = Callable[[Event], None]


class Sinks:
    """Hands each event to several sinks in order, and passes `commit_pending` on."""

    def __init__(self, sinks: list[EventSink]) -> None:
        self.sinks = sinks

    def __call__(self, event: Event) -> None:
        for sink in self.sinks:
            sink(event)

    def commit_pending(self) -> None:
        """Let every sink that holds writes back write them now."""
        for sink in self.sinks:
            commit = getattr(sink, "commit_pending", None)
            if commit is not None:
                commit()

    def intend(self, run_id: str, step: StepId, attempt: int) -> bool:
        """Tell every sink that records intents that `step`'s `attempt` may start now;
        whether every sink that holds writes back (a journal) recorded it."""
        recorded = True
        for sink in self.sinks:
            intend = getattr(sink, "intend", None)
            if intend is not None:
                intend(run_id, step, attempt)
            elif getattr(sink, "commit_pending", None) is not None:
                recorded = False
        return recorded

    @contextlib.contextmanager
    def together(self) -> Iterator[None]:
        """Let every sink that can write what it records in the block as one (the
        journal: one transaction) do so."""
        with contextlib.ExitStack() as stack:
            for sink in self.sinks:
                together = getattr(sink, "together", None)
                if together is not None:
                    stack.enter_context(together())
            yield


FINISHED_BY_STATUS: Mapping[StepStatus, type[StepFinished]] = {
    StepStatus.SUCCESS: StepSucceeded,
    StepStatus.FAILED: StepFailed,
    StepStatus.TIMEOUT: StepTimedOut,
    StepStatus.SKIPPED: StepSkipped,
    StepStatus.CANCELLED: StepCancelled,
}
