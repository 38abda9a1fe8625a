"""The end-of-run summary: one row per step, as a rich Table or as Markdown.

The summary reads its own small records (`RunLine`, `StepLine`), collected from the event
stream by `summary_from_events`, so it does not depend on the engine's result type.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, cast

from wfx.durations import format_duration as duration
from wfx.render.characters import visible
from wfx.runtime.events import (
    Event,
    RollbackFinished,
    RunFinished,
    RunStarted,
    RunStatus,
    StepFinished,
    StepKept,
    StepStarted,
    StepStatus,
)

if TYPE_CHECKING:  # rich only when the summary goes to a terminal (see summary_plain)
    from rich.text import Text

#: the symbol shown before a status, in the live view and in summaries
STATUS_SYMBOLS: Mapping[StepStatus, str] = {
    StepStatus.PENDING: "·",
    StepStatus.RUNNING: "▸",
    StepStatus.SUCCESS: "✓",
    StepStatus.FAILED: "✗",
    StepStatus.TIMEOUT: "⏱",
    StepStatus.SKIPPED: "⊘",
    StepStatus.CANCELLED: "⊗",
    StepStatus.ROLLED_BACK: "↩",
    StepStatus.ROLLBACK_FAILED: "✗",
}

#: rich styles for statuses (ignored on a colourless console)
STATUS_STYLES: Mapping[StepStatus, str] = {
    StepStatus.PENDING: "dim",
    StepStatus.RUNNING: "cyan",
    StepStatus.SUCCESS: "green",
    StepStatus.FAILED: "bold red",
    StepStatus.TIMEOUT: "bold red",
    StepStatus.SKIPPED: "dim",
    StepStatus.CANCELLED: "yellow",
    StepStatus.ROLLED_BACK: "magenta",
    StepStatus.ROLLBACK_FAILED: "bold red",
}


@dataclass(frozen=True, slots=True)
class StepLine:
    """How one step ended, as the summary shows it."""

    id: str
    status: StepStatus
    attempts: int = 0
    duration: float = 0.0
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RunLine:
    """How the run ended, as the summary headline shows it; `status` None: it never finished."""

    workflow: str
    run_id: str
    status: RunStatus | None = None
    duration: float = 0.0
    reason: str | None = None


class StepRecord(Protocol):
    """Anything shaped like a finished step (StepLine, the engine's StepResult)."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> StepStatus: ...
    @property
    def attempts(self) -> int: ...
    @property
    def duration(self) -> float: ...
    @property
    def reason(self) -> str | None: ...


class RunRecord(Protocol):
    """Anything with a mapping of step records (the engine's RunResult)."""

    @property
    def steps(self) -> Mapping[Any, StepRecord]: ...


#: what the summary functions accept: step records or finished-step events, or a run result
Steps = Iterable[StepRecord | StepFinished] | RunRecord


def short_duration(seconds: float) -> str:
    """Seconds for people: `950ms`, `1.2s`, `1m5.3s` (tenths of a second from 1s up)."""
    return duration(seconds if seconds < 1 else round(seconds, 1))


def step_lines(steps: Steps) -> list[StepLine]:
    """Normalise the accepted inputs to StepLines, in their given order."""
    records = steps if isinstance(steps, Iterable) else steps.steps.values()
    return [_step_line(record) for record in records]


def _step_line(record: StepRecord | StepFinished) -> StepLine:
    if isinstance(record, StepLine):
        return record
    if isinstance(record, StepKept):
        return StepLine(record.step, record.status, reason=f"kept from run {record.source}")
    step_id = record.step if isinstance(record, StepFinished) else record.id
    return StepLine(step_id, record.status, record.attempts, record.duration, record.reason)


# -- collecting ------------------------------------------------------------------------------


def summary_from_events(events: Iterable[Event]) -> tuple[RunLine, list[StepLine]]:
    """The run's headline and its steps (plan order first) from a recorded event stream.

    Each step keeps its latest start or end event (None: pending), made into a StepLine
    once at the end (a run of thousands of steps has two events per step to go through)."""
    run = RunLine(workflow="", run_id="")
    latest: dict[str, _Latest] = {}
    for event in events:
        kind = _kinds.get(type(event)) or _kind_of(type(event))
        if kind is _STEP:
            step_event = cast("StepStarted | StepFinished", event)
            latest[step_event.step] = step_event
        elif kind is _RUN:
            run = _run_line(run, cast("RunStarted | RunFinished", event), latest)
        elif kind is _ROLLBACK:
            _rolled_back(latest, cast("RollbackFinished", event))
    return run, [_latest_line(step, found) for step, found in latest.items()]


#: what the summary keeps of a step while it reads the events (None: not started yet)
_Latest = StepLine | StepStarted | StepFinished | None

_STEP, _RUN, _ROLLBACK, _OTHER = "step", "run", "rollback", "other"

#: what each type of event is to the summary, learnt as the events come
_kinds: dict[type, str] = {}


def _kind_of(kind: type) -> str:
    if issubclass(kind, StepStarted | StepFinished):
        found = _STEP
    elif issubclass(kind, RunStarted | RunFinished):
        found = _RUN
    elif issubclass(kind, RollbackFinished):
        found = _ROLLBACK
    else:
        found = _OTHER
    _kinds[kind] = found
    return found


def _latest_line(step: str, found: _Latest) -> StepLine:
    if found is None:
        return StepLine(step, StepStatus.PENDING)
    if isinstance(found, StepStarted):
        return StepLine(found.step, StepStatus.RUNNING, found.attempt)
    return _step_line(found)


def _run_line(run: RunLine, event: RunStarted | RunFinished, steps: dict[str, _Latest]) -> RunLine:
    if isinstance(event, RunFinished):
        return replace(run, status=event.status, duration=event.duration, reason=event.reason)
    for step_id in (*event.steps, *event.finally_steps):
        steps.setdefault(step_id, None)
    return RunLine(event.workflow, event.run_id)


def _rolled_back(steps: dict[str, _Latest], event: RollbackFinished) -> None:
    step = event.step
    known = _latest_line(step, steps[step]) if step in steps else StepLine(step, StepStatus.SUCCESS)
    steps[event.step] = replace(known, status=event.status, reason=event.reason)


# -- rendering -------------------------------------------------------------------------------


def _status_text(status: StepStatus) -> str:
    """A status with its symbol, e.g. `✓ success`."""
    return _STATUS_TEXTS[status]


#: each status with its symbol, made once
_STATUS_TEXTS = {status: f"{symbol} {status.value}" for status, symbol in STATUS_SYMBOLS.items()}


def run_headline(run: RunLine) -> str:
    """`<workflow> — success in 3.4s`, or `<workflow> — did not finish`."""
    name = visible(run.workflow).replace("\n", " ")
    if run.status is None:
        return f"{name} — did not finish"
    return f"{name} — {run.status.value} in {short_duration(run.duration)}"


_HEADERS = ("step", "status", "attempts", "duration", "reason")


def _rows(steps: Steps) -> tuple[list[list[str]], list[StepLine]]:
    """Cells per step; the reason column only when some step has a reason to show."""
    lines = step_lines(steps)
    rows = [_cells(line) for line in lines]
    if not any(row[-1] for row in rows):
        rows = [row[:-1] for row in rows]
    return rows, lines


def _cells(line: StepLine) -> list[str]:
    ran = line.attempts > 0
    return [
        line.id,
        _status_text(line.status),
        str(line.attempts) if ran else "-",
        short_duration(line.duration) if ran else "-",
        "" if line.status is StepStatus.SUCCESS and ran else line.reason or "",
    ]


def summary_table(steps: Steps) -> Text:
    """A table of steps: step, status, attempts, duration, and why when one did not succeed.

    Laid out by hand as one styled Text (no rich Table): measuring a Table's cells costs
    about half a millisecond per row, which a run of thousands of quick steps would feel."""
    from rich.text import Text

    table = Text(no_wrap=True, overflow="ignore")
    for index, (line, style) in enumerate(_summary_lines(steps)):
        table.append(f"\n{line}" if index else line, style=style)
    return table


def summary_plain(steps: Steps) -> str:
    """The lines of :func:`summary_table` without styles, as a console without colour prints
    them (without importing rich)."""
    return "\n".join(line for line, _ in _summary_lines(steps))


#: what rich drops from text it prints (bell, backspace; the rest is whitespace, already
#: folded): the plain summary drops them too, so both print the same characters
_CONTROL_CODES = dict.fromkeys((7, 8, 11, 12, 13))


def _summary_lines(steps: Steps) -> list[tuple[str, str]]:
    """The summary's lines, each with its rich style ("" for none)."""
    rows, lines = _rows(steps)
    headers = list(_HEADERS[: len(rows[0]) if rows else 4])
    for row in rows:  # the other cells are wfx's own text: nothing to fold
        row[0] = _folded(row[0])
        if len(row) > 4:
            row[4] = _folded(row[4])
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]
    line_of = _line_format(headers, widths)
    table = [(line_of(*headers).rstrip(), "bold")]
    table.append(("─" * (sum(widths) + 3 * (len(widths) - 1)), ""))
    styles = _FAILURE_STYLES
    for row, line in zip(rows, lines, strict=True):
        table.append((line_of(*row).rstrip(), styles.get(line.status, "")))
    return table


#: the style of a row whose step failed (other rows have none)
_FAILURE_STYLES = {status: STATUS_STYLES[status] for status in StepStatus if status.is_failure}


def _folded(cell: str) -> str:
    """A cell as rich prints it: whitespace runs folded to one space, control codes
    dropped, and any other character a terminal would act on or not show written out
    (`<U+001B>`: a name or reason cannot colour, move or retitle the terminal). A
    printable cell holds no whitespace but the ASCII space and no control code, so one
    without doubled or outer spaces is already so (most are)."""
    if cell.isprintable() and "  " not in cell and cell[:1] != " " and cell[-1:] != " ":
        return cell
    return visible(" ".join(cell.split()).translate(_CONTROL_CODES))


def _line_format(headers: list[str], widths: list[int]) -> Callable[..., str]:
    """Lays out one line of the summary from its cells: numbers right-aligned, three
    spaces between columns (trailing spaces are the caller's to strip)."""
    specs = [
        f"{{:{'>' if header in ('attempts', 'duration') else '<'}{width}}}"
        for header, width in zip(headers, widths, strict=True)
    ]
    return "   ".join(specs).format


def summary_markdown(run: RunLine, steps: Steps) -> str:
    """The summary as Markdown (a headline and a table), ready to append to a file."""
    lines = [f"### wfx run: {_md(run_headline(run))}", ""]
    if run.reason:
        lines += [_md(run.reason), ""]
    rows, _ = _rows(steps)
    headers = _HEADERS[: len(rows[0]) if rows else 4]
    aligns = ["---:" if h in ("attempts", "duration") else "---" for h in headers]
    table = [headers, aligns, *rows]
    lines += ["| " + " | ".join(_md(cell) for cell in row) + " |" for row in table]
    return "\n".join(lines) + "\n\n"


def _md(text: str) -> str:
    """Text safe inside a Markdown table cell: no pipes, no line breaks, no HTML."""
    escaped = text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;")
    return " ".join(escaped.splitlines())
