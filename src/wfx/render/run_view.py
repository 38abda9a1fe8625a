"""Run events on the screen: plain prefixed lines for logs, or a live tree for a terminal.

Both views are event sinks (`view(event)`) the engine calls from its event-loop thread,
and context managers (`with view:`) the CLI wraps around a run. Handling an event only
updates state or writes one line; the live view redraws from its own timer, at most ten
times a second, however many events arrive.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Self, TypeVar

from wfx.render.characters import indented, visible
from wfx.render.console import PlainConsole, reader_gone
from wfx.render.summary import STATUS_STYLES, STATUS_SYMBOLS, short_duration
from wfx.runtime.events import (
    Event,
    Notice,
    RollbackFinished,
    RollbackStarted,
    RunFinished,
    RunQueued,
    RunStarted,
    RunStatus,
    StepFinished,
    StepKept,
    StepOutput,
    StepRestored,
    StepRetrying,
    StepStarted,
    StepStatus,
)

if TYPE_CHECKING:  # rich is imported only when the live view is chosen (a terminal)
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text
    from rich.tree import Tree

_H = TypeVar("_H")

#: step id -> the ids of its enclosing groups, outermost first
Groups = Mapping[str, tuple[str, ...]]

_VERBS: Mapping[StepStatus, str] = {
    StepStatus.SUCCESS: "succeeded",
    StepStatus.FAILED: "failed",
    StepStatus.TIMEOUT: "timed out",
    StepStatus.SKIPPED: "skipped",
    StepStatus.CANCELLED: "cancelled",
    StepStatus.ROLLED_BACK: "rolled back",
    StepStatus.ROLLBACK_FAILED: "rollback failed",
}


# -- phrases shared by both views -------------------------------------------------------------


def _phrase(verb: str, reason: str | None) -> str:
    """`verb: reason`, without saying the verb twice when the reason already starts with it."""
    if not reason:
        return verb
    if reason.startswith(verb):
        return reason
    return f"{verb}: {reason}"


def _finished_phrase(event: StepFinished) -> str:
    """How a step ended, e.g. `succeeded in 1.2s`, `failed after 3 attempts: exit code 1`."""
    if isinstance(event, StepKept):
        return f"{event.status.value} in run {event.source}: kept, not run again"
    if isinstance(event, StepRestored):
        return f"{event.status.value} earlier: kept from the journal, not run again"
    verb = _VERBS.get(event.status, event.status.value)
    if event.status is StepStatus.SUCCESS:
        tries = f" after {event.attempts} attempts" if event.attempts > 1 else ""
        return f"{verb} in {short_duration(event.duration)}{tries}"
    if event.status is StepStatus.FAILED:
        if event.attempts > 1:
            verb += f" after {event.attempts} attempts"
        elif event.attempts == 1:
            verb += f" in {short_duration(event.duration)}"
    phrase = _phrase(verb, event.reason)
    if event.status is StepStatus.TIMEOUT and event.attempts > 1:
        phrase += f" ({event.attempts} attempts)"
    return phrase


def _rollback_phrase(event: RollbackFinished) -> str:
    """How a compensation ended: `rolled back` or `rollback failed: reason`."""
    return _phrase(_VERBS.get(event.status, event.status.value), event.reason)


def _run_phrase(event: RunFinished) -> str:
    """The final line: `run <id> success in 3.4s`, with the reason when it did not succeed."""
    line = f"run {event.run_id} {event.status.value} in {short_duration(event.duration)}"
    if event.reason and event.status is not RunStatus.SUCCESS:
        line += f": {event.reason}"
    return line


def queued_line(event: RunQueued) -> str:
    """What a queued run waits for: the group, the run ahead of it, its pid, since when."""
    when = time.strftime("%H:%M:%S", time.localtime(event.since))
    how = "holds it" if event.holding else "is queued before this run"
    return (
        f"waiting for concurrency group `{event.group}`: run {event.holder}"
        f" (pid {event.pid}) {how} since {when}"
    )


def _shown(line: str) -> str:
    """One of wfx's own lines (not a step's output, which is the step's to write) as
    printed: what came from the workflow or a run (a name, a path, a reason) cannot act
    on the terminal, and a reason's later lines are indented under it."""
    return indented(line, "  ")


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _values(prefix: str, values: Mapping[str, Any]) -> list[str]:
    return [f"{prefix}{name} = {_json(value)}" for name, value in values.items()]


def _handler(handlers: dict[type[Event], _H], kind: type[Event], fallback: _H) -> _H:
    """The handler for an event class; a subclass gets (and caches) its nearest base's."""
    handler = handlers.get(kind)
    if handler is None:
        known = (handlers.get(base) for base in kind.__mro__)
        handler = handlers[kind] = next((h for h in known if h is not None), fallback)
    return handler


def _no_lines(_event: Event) -> Iterable[str]:
    return ()


def _nothing(_event: Event) -> None:
    return None


def _is_failure(event: Event) -> bool:
    """What a quiet view still shows: failures, errors, waiting for a concurrency group and
    the end of the run."""
    if isinstance(event, StepFinished):
        return event.status.is_failure
    if isinstance(event, RollbackFinished):
        return event.status is StepStatus.ROLLBACK_FAILED
    if isinstance(event, Notice):
        return event.level == "error"
    return isinstance(event, RunFinished | RunQueued)


# -- plain lines -----------------------------------------------------------------------------


class PlainView:
    """Events as plain lines for logs and pipes: `[step] output`, one line per status change."""

    def __init__(
        self, stream: IO[str] | None = None, *, quiet: bool = False, verbose: bool = False
    ) -> None:
        self._stream = stream if stream is not None else sys.stdout
        self._quiet = quiet
        self._verbose = verbose
        self._handlers: dict[type[Event], Callable[[Any], Iterable[str]]] = {
            RunStarted: self._run_started,
            StepStarted: self._step_started,
            StepRetrying: self._step_retrying,
            StepFinished: self._step_finished,
            RollbackStarted: self._rollback_started,
            RollbackFinished: self._rollback_finished,
            Notice: self._notice,
            RunQueued: self._run_queued,
            RunFinished: self._run_finished,
        }

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stream.flush()

    def __call__(self, event: Event) -> None:
        """Write the lines for one event, flushing after each."""
        if type(event) is StepOutput:  # the hot path: most events are output lines
            if not self._quiet:
                self._write(f"[{event.step}] {event.text}")
            return
        if self._quiet and not _is_failure(event):
            return
        for line in _handler(self._handlers, type(event), _no_lines)(event):
            self._write(_shown(line))

    def _write(self, line: str) -> None:
        try:
            self._stream.write(line + "\n")
            self._stream.flush()
        except BrokenPipeError:
            reader_gone(self._stream)

    def _run_started(self, event: RunStarted) -> Iterable[str]:
        count = len(event.steps) + len(event.finally_steps)
        noun = "step" if count == 1 else "steps"
        yield f"run {event.run_id} started: {event.workflow} ({count} {noun})"
        if self._verbose:
            yield from _values("  input ", event.inputs)

    def _step_started(self, event: StepStarted) -> Iterable[str]:
        again = f" (attempt {event.attempt})" if event.attempt > 1 else ""
        yield f"[{event.step}] started{again}"

    def _step_retrying(self, event: StepRetrying) -> Iterable[str]:
        yield f"[{event.step}] retrying in {short_duration(event.delay)}: {event.reason}"

    def _step_finished(self, event: StepFinished) -> Iterable[str]:
        yield f"[{event.step}] {_finished_phrase(event)}"
        if self._verbose:
            yield from _values(f"[{event.step}] output ", event.outputs)

    def _rollback_started(self, event: RollbackStarted) -> Iterable[str]:
        yield f"[{event.step}] rolling back"

    def _rollback_finished(self, event: RollbackFinished) -> Iterable[str]:
        yield f"[{event.step}] {_rollback_phrase(event)}"

    def _notice(self, event: Notice) -> Iterable[str]:
        yield f"wfx: {event.level}: {event.message}"

    def _run_queued(self, event: RunQueued) -> Iterable[str]:
        yield queued_line(event)

    def _run_finished(self, event: RunFinished) -> Iterable[str]:
        yield _run_phrase(event)


# -- the live tree ---------------------------------------------------------------------------

_FRAMES = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"  # rich's "dots" spinner, drawn from the clock: no object per step
_FRAME_SECONDS = 0.08


@dataclass(slots=True)
class _Step:
    """What the live view knows about one step."""

    id: str
    kept: int
    status: StepStatus = StepStatus.PENDING
    attempt: int = 0
    started: float = 0.0
    retry_at: float | None = None
    next_attempt: int = 0
    rolling_back: bool = False
    detail: str = ""
    lines: int = 0
    output: deque[str] = field(init=False)

    def __post_init__(self) -> None:
        self.output = deque(maxlen=self.kept)

    @property
    def active(self) -> bool:
        """Running an attempt, waiting to retry, or rolling back."""
        return self.status is StepStatus.RUNNING or self.rolling_back


class LiveView:
    """A live tree of groups and steps for a terminal, with spinners, timers and output tails."""

    def __init__(
        self,
        console: Console,
        *,
        groups: Groups | None = None,
        attempts: Mapping[str, int] | None = None,
        verbose: bool = False,
        tail: int = 3,
        kept: int = 200,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.console = console
        self._groups = groups or {}
        self._attempts = attempts or {}
        self._verbose = verbose
        self._tail = tail
        self._kept = max(kept, tail)
        self._clock = clock
        self._lock = threading.Lock()
        self._steps: dict[str, _Step] = {}
        self._workflow = ""
        self._started: float | None = None
        self._finished: RunFinished | None = None
        self._live: Live | None = None
        self._handlers: dict[type[Event], Callable[[Any], Text | None]] = {
            RunStarted: self._on_run_started,
            StepStarted: self._on_started,
            StepRetrying: self._on_retrying,
            StepFinished: self._on_finished,
            RollbackStarted: self._on_rollback,
            RollbackFinished: self._on_rolled_back,
            Notice: self._on_notice,
            RunQueued: self._on_queued,
            RunFinished: self._on_run_finished,
        }

    def __enter__(self) -> Self:
        from rich.live import Live

        self._live = Live(console=self.console, get_renderable=self.__rich__, refresh_per_second=10)
        self._live.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
            self._live = None

    # -- taking events ---------------------------------------------------------------------

    def __call__(self, event: Event) -> None:
        """Update the state for one event; print what must stay in the scrollback."""
        if type(event) is StepOutput:  # the hot path
            with self._lock:
                step = self._step(event.step)
                step.output.append(event.text)
                step.lines += 1
            return
        with self._lock:
            printed = self._update(event)
        if printed is not None:  # outside the lock: printing waits for the Live's own lock
            self.console.print(printed)

    def _step(self, step_id: str) -> _Step:
        step = self._steps.get(step_id)
        if step is None:
            step = self._steps[step_id] = _Step(step_id, self._kept)
        return step

    def _update(self, event: Event) -> Text | None:
        return _handler(self._handlers, type(event), _nothing)(event)

    def _on_run_started(self, event: RunStarted) -> Text | None:
        from rich.text import Text

        self._workflow, self._started = event.workflow, event.time
        for step_id in (*event.steps, *event.finally_steps):
            self._step(step_id)
        if not (self._verbose and event.inputs):
            return None
        return Text("\n".join(_values("input ", event.inputs)), style="dim")

    def _on_run_finished(self, event: RunFinished) -> None:
        self._finished = event

    def _on_queued(self, event: RunQueued) -> Text:
        from rich.text import Text

        return Text(queued_line(event), style="yellow")

    def _on_notice(self, event: Notice) -> Text:
        from rich.text import Text

        return Text(f"wfx: {event.level}: {event.message}", style="yellow")

    def _on_started(self, event: StepStarted) -> None:
        step = self._step(event.step)
        step.status, step.attempt, step.started = StepStatus.RUNNING, event.attempt, event.time
        step.retry_at = None

    def _on_retrying(self, event: StepRetrying) -> None:
        step = self._step(event.step)
        step.retry_at, step.next_attempt = event.time + event.delay, event.next_attempt

    def _on_finished(self, event: StepFinished) -> Text | None:
        from rich.text import Text

        step = self._step(event.step)
        step.status, step.retry_at = event.status, None
        step.detail = _finished_detail(event)
        printed = None
        if event.status.is_failure:
            printed = self._failure_report(step)
        elif self._verbose and event.outputs:
            printed = Text("\n".join(_values(f"[{step.id}] output ", event.outputs)), style="dim")
        step.output.clear()
        return printed

    def _on_rollback(self, event: RollbackStarted) -> None:
        step = self._step(event.step)
        step.rolling_back, step.started = True, event.time
        step.output.clear()
        step.lines = 0

    def _on_rolled_back(self, event: RollbackFinished) -> Text | None:
        step = self._step(event.step)
        step.rolling_back, step.status = False, event.status
        step.detail = _rollback_phrase(event)
        failed = event.status is StepStatus.ROLLBACK_FAILED
        printed = self._failure_report(step) if failed else None
        step.output.clear()
        return printed

    def _failure_report(self, step: _Step) -> Text:
        from rich.text import Text

        """The failed step's last output lines and its status line, for the scrollback."""
        dropped = step.lines - len(step.output)
        lines = [f"[{step.id}] … {dropped} earlier lines not shown"] if dropped > 0 else []
        lines += [f"[{step.id}] {line}" for line in step.output]
        report = Text("\n".join(lines) + "\n" if lines else "")
        style = STATUS_STYLES[step.status]
        report.append(
            f"{STATUS_SYMBOLS[step.status]} {step.id} {visible(step.detail)}", style=style
        )
        return report

    # -- drawing ---------------------------------------------------------------------------

    def __rich__(self) -> Tree:
        """The current tree (the Live calls this on each refresh)."""
        from rich.tree import Tree

        now = self._clock()
        with self._lock:
            tree = Tree(self._title(now), guide_style="dim")
            nodes: dict[tuple[str, ...], Tree] = {(): tree}
            for step in self._steps.values():
                parent = self._parent(nodes, self._groups.get(step.id, ()))
                self._draw(parent, step, now)
        return tree

    def _title(self, now: float) -> Text:
        from rich.text import Text

        title = Text("wfx run: ", style="bold")
        title.append(visible(self._workflow or "…").replace("\n", " "), style="bold")
        if self._finished is not None:
            status = self._finished.status
            style = "green" if status is RunStatus.SUCCESS else "bold red"
            title.append(f" — {status.value}", style=style)
            title.append(f" in {short_duration(self._finished.duration)}")
            return title
        done = sum(1 for s in self._steps.values() if s.status not in _NOT_DONE)
        title.append(f"  {done}/{len(self._steps)} done", style="dim")
        if self._started is not None:
            title.append(f"  {_clock_time(now - self._started)}", style="dim")
        return title

    def _parent(self, nodes: dict[tuple[str, ...], Tree], path: tuple[str, ...]) -> Tree:
        from rich.text import Text

        for depth in range(1, len(path) + 1):
            key = path[:depth]
            if key not in nodes:
                nodes[key] = nodes[key[:-1]].add(Text(key[-1], style="bold"))
        return nodes[path]

    def _draw(self, parent: Tree, step: _Step, now: float) -> None:
        from rich.text import Text

        node = parent.add(self._label(step, now))
        if step.active and self._tail:
            for line in list(step.output)[-self._tail :]:
                node.add(Text(line, style="dim", no_wrap=True, overflow="ellipsis"))

    def _label(self, step: _Step, now: float) -> Text:
        if step.rolling_back:
            return _line(_frame(now), step.id, f"rolling back {_clock_time(now - step.started)}")
        if step.status is StepStatus.RUNNING:
            return self._running_label(step, now)
        symbol, style = STATUS_SYMBOLS[step.status], STATUS_STYLES[step.status]
        return _line(symbol, step.id, step.detail, style)

    def _running_label(self, step: _Step, now: float) -> Text:
        if step.retry_at is not None:
            total = self._attempts.get(step.id)
            of = f"/{total}" if total else ""
            wait = max(0.0, step.retry_at - now)
            return _line(
                "↻", step.id, f"retry {step.next_attempt}{of} in {_clock_time(wait)}", "yellow"
            )
        detail = _clock_time(now - step.started)
        if step.attempt > 1:
            detail += f" (attempt {step.attempt})"
        return _line(_frame(now), step.id, detail, "cyan")


def _finished_detail(event: StepFinished) -> str:
    """The tree's words for a finished step: just the time when it succeeded."""
    if event.status is not StepStatus.SUCCESS:
        return _finished_phrase(event)
    tries = f" after {event.attempts} attempts" if event.attempts > 1 else ""
    return short_duration(event.duration) + tries


_NOT_DONE = frozenset({StepStatus.PENDING, StepStatus.RUNNING})


def _line(symbol: str, step_id: str, detail: str, style: str = "") -> Text:
    from rich.text import Text

    text = Text(f"{symbol} ", style=style)
    text.append(step_id)
    if detail:
        text.append(f"  {visible(detail)}", style=style or "dim")
    return text


def _frame(now: float) -> str:
    return _FRAMES[int(now / _FRAME_SECONDS) % len(_FRAMES)]


def _clock_time(seconds: float) -> str:
    """A ticking timer or countdown of the live view: `3.2s`, `1m05s` (a fixed tenth of a
    second, so the line does not jump each frame; finished times use `short_duration`)."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, rest = divmod(int(seconds), 60)
    return f"{minutes}m{rest:02d}s"


# -- choosing ----------------------------------------------------------------------------------


def choose_view(
    console: Console | PlainConsole,
    *,
    quiet: bool = False,
    verbose: bool = False,
    groups: Groups | None = None,
    attempts: Mapping[str, int] | None = None,
) -> PlainView | LiveView:
    """The live tree on a capable terminal; plain lines for pipes, CI logs, TERM=dumb or -q."""
    if isinstance(console, PlainConsole) or quiet:
        return PlainView(console.file, quiet=quiet, verbose=verbose)
    if console.is_terminal and not console.is_dumb_terminal:
        return LiveView(console, groups=groups, attempts=attempts, verbose=verbose)
    return PlainView(console.file, quiet=quiet, verbose=verbose)
