"""Run history as people and tools see it: `wfx runs`, `wfx show` and `wfx logs`.

Pure functions from journal records to rich renderables, JSON text or plain lines.
Everything taken from a run (names, reasons, outputs, log text) is shown as plain
text, never as rich markup; names and reasons with their control characters written
out (:func:`wfx.render.units.visible`). Outputs are already masked by the engine.
"""

from __future__ import annotations

import json
import math
import signal
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wfx.render.characters import visible
from wfx.render.summary import STATUS_STYLES, STATUS_SYMBOLS, short_duration
from wfx.runtime.events import StepStatus
from wfx.runtime.journal import LOG_LIMIT, RunRecord, StepRecord

#: a value shown in a table cell is cut to about this many characters (full in --json)
CELL_LIMIT = 200

#: what `wfx logs` says after a step whose stored output reached the journal's cap
TRUNCATED_NOTE = "(log truncated at 1 MiB)"

#: run statuses (as the journal stores them) -> (symbol, rich style)
RUN_STATUSES: Mapping[str, tuple[str, str]] = {
    "success": ("✓", "green"),
    "failed": ("✗", "bold red"),
    "completedWithFailures": ("✗", "yellow"),
    "interrupted": ("⊗", "yellow"),
    "running": ("▸", "cyan"),
    "compensating": ("↩", "magenta"),
}

_UNFINISHED = ("running", "compensating")

#: one journal log line: (step, stream, text)
LogLine = tuple[str, str, str]


# -- small formatting ------------------------------------------------------------------------


def local_time(seconds: float) -> str:
    """An epoch time as local `YYYY-MM-DD HH:MM:SS`."""
    return datetime.fromtimestamp(seconds).strftime("%Y-%m-%d %H:%M:%S")


def rfc3339(seconds: float | None) -> str | None:
    """An epoch time as RFC 3339 UTC with milliseconds (`2024-05-01T12:00:00.250Z`)."""
    if seconds is None:
        return None
    moment = datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def one_line_json(value: Any, limit: int | None = None) -> str:
    """`value` as JSON on one line, cut to `limit` characters with `…` when longer."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if limit is not None and len(text) > limit:
        return text[: limit - 1] + "…"
    return text


def _elapsed(started: float | None, finished: float | None) -> float | None:
    if started is None or finished is None:
        return None
    return max(0.0, finished - started)


def _seconds(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def is_stale(run: RunRecord, alive: Collection[str]) -> bool:
    """Whether `run` says it is running but the process that owned it is gone."""
    return run.finished is None and run.status in _UNFINISHED and run.id not in alive


def run_status_text(run: RunRecord, alive: Collection[str] = ()) -> Text:
    """A run's status with its symbol and style, e.g. `✓ success`."""
    symbol, style = RUN_STATUSES.get(run.status, ("?", ""))
    text = Text(f"{symbol} {run.status}", style=style)
    if is_stale(run, alive):
        text.append(" (owner died)", style="yellow")
    return text


def run_duration(run: RunRecord, alive: Collection[str] = ()) -> str:
    """How long a run took; `running` while its owner lives, `-` when it never ended."""
    took = _elapsed(run.started, run.finished)
    if took is not None:
        return short_duration(took)
    if run.status in _UNFINISHED and run.id in alive:
        return "running"
    return "-"


def step_status_text(status: StepStatus, *, retrying: bool = False) -> Text:
    """A step's status with its symbol and style, e.g. `✗ failed`."""
    if retrying:
        return Text("↻ retrying", style="yellow")
    return Text(f"{STATUS_SYMBOLS[status]} {status.value}", style=STATUS_STYLES[status])


def exit_text(step: StepRecord) -> str:
    """How a step's process ended: `0`, `SIGKILL`, or `-`."""
    if step.signal is not None:
        try:
            return signal.Signals(step.signal).name
        except ValueError:
            return f"signal {step.signal}"
    return "-" if step.exit_code is None else str(step.exit_code)


def step_duration(step: StepRecord) -> str:
    """How long a step took (first start to end), `running`, or `-`."""
    took = _elapsed(step.started, step.finished)
    if took is not None:
        return short_duration(took)
    return "running" if step.status is StepStatus.RUNNING else "-"


def ordered_steps(steps: Mapping[str, StepRecord]) -> list[StepRecord]:
    """Steps in the order they began (steps that never began by when they ended), then id."""

    def key(step: StepRecord) -> tuple[float, str]:
        moment = step.started if step.started is not None else step.finished
        return (math.inf if moment is None else moment, step.step_id)

    return sorted(steps.values(), key=key)


# -- wfx runs --------------------------------------------------------------------------------


def runs_table(runs: Sequence[RunRecord], alive: Collection[str] = ()) -> Table:
    """One row per run, as given (newest first): id, workflow, status, started, duration."""
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("id", no_wrap=True)
    table.add_column("workflow")
    table.add_column("status", no_wrap=True)
    table.add_column("started", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    for run in runs:
        table.add_row(
            Text(run.id),
            Text(visible(run.workflow)),
            run_status_text(run, alive),
            local_time(run.started),
            run_duration(run, alive),
        )
    return table


def run_to_dict(run: RunRecord) -> dict[str, Any]:
    """A run as JSON-ready data (the `wfx runs --json` record)."""
    return {
        "id": run.id,
        "workflow": run.workflow,
        "file": run.file,
        "status": run.status,
        "reason": run.reason,
        "started": rfc3339(run.started),
        "finished": rfc3339(run.finished),
        "durationSeconds": _seconds(_elapsed(run.started, run.finished)),
        "inputs": dict(run.inputs),
        "workspace": run.workspace,
        "redrives": run.redrives,
    }


def runs_json(runs: Iterable[RunRecord]) -> str:
    """`wfx runs --json`: a JSON list of runs."""
    return json.dumps([run_to_dict(r) for r in runs], indent=2, ensure_ascii=False, default=str)


# -- wfx show --------------------------------------------------------------------------------


def _heading(text: str) -> Text:
    return Text(text, style="bold")


def _details(run: RunRecord, alive: Collection[str]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="dim", no_wrap=True)
    grid.add_column()
    rows: list[tuple[str, Text | str]] = [
        ("run", Text(run.id)),
        ("workflow", Text(visible(run.workflow))),
        ("file", Text(run.file)),
        ("status", run_status_text(run, alive)),
    ]
    if run.reason:
        rows.append(("reason", Text(visible(run.reason))))
    rows += [
        ("inputs", Text(one_line_json(dict(run.inputs), CELL_LIMIT) if run.inputs else "-")),
        ("started", local_time(run.started)),
        ("duration", run_duration(run, alive)),
        ("fingerprint", Text(run.fingerprint)),
    ]
    if run.workspace:
        rows.append(("workspace", Text(run.workspace)))
    if run.redrives:
        rows.append(("redrives", Text(f"run {run.redrives} (`wfx retry`)")))
    for name, value in rows:
        grid.add_row(name, value)
    return grid


def _steps_table(steps: Sequence[StepRecord]) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column("step", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("attempts", justify="right", no_wrap=True)
    table.add_column("duration", justify="right", no_wrap=True)
    table.add_column("exit", justify="right", no_wrap=True)
    table.add_column("where", no_wrap=True)
    table.add_column("reason")
    for step in steps:
        table.add_row(
            Text(step.step_id),
            step_status_text(step.status, retrying=step.retrying),
            str(step.attempts) if step.attempts else "-",
            step_duration(step),
            exit_text(step),
            Text(_places(step)),
            Text(visible(_reason(step))),
        )
    return table


def _reason(step: StepRecord) -> str:
    """Why a step did not succeed, or that the run kept its result from another run."""
    if step.kept_from is not None:
        return f"kept from run {step.kept_from}"
    return "" if step.status is StepStatus.SUCCESS else step.reason or ""


def _places(step: StepRecord) -> str:
    """Where a step's attempts ran: one place, or each attempt's when they differ."""
    places = list(dict.fromkeys(step.attempts_where.values()))
    if len(places) > 1:
        return ", ".join(f"{n}: {w}" for n, w in step.attempts_where.items())
    return step.where or (places[0] if places else "-")


def _values_table(rows: Iterable[tuple[str, Any]], first: str, second: str) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    table.add_column(first, no_wrap=True)
    table.add_column(second, overflow="fold")
    for name, value in rows:
        table.add_row(Text(name), Text(one_line_json(value, CELL_LIMIT)))
    return table


def _resume_hint(run: RunRecord, alive: Collection[str]) -> Text | None:
    if is_stale(run, alive):
        why = "the process that ran it is gone"
    elif run.status == "interrupted" and run.finished is None:
        why = "it was interrupted"
    else:
        return None
    return Text(f"{why}: `wfx resume {run.id}` continues it", style="yellow")


def run_view(
    run: RunRecord,
    steps: Mapping[str, StepRecord],
    rollbacks: Mapping[str, StepStatus],
    alive: Collection[str] = (),
) -> RenderableType:
    """`wfx show`: the run's details, its steps, their outputs, rollbacks, workflow outputs."""
    parts: list[RenderableType] = [_details(run, alive)]
    hint = _resume_hint(run, alive)
    if hint is not None:
        parts += [Text(), hint]
    ordered = ordered_steps(steps)
    parts += [Text(), _steps_table(ordered) if ordered else Text("no steps ran", style="dim")]
    with_outputs = [(s.step_id, dict(s.outputs)) for s in ordered if s.outputs]
    if with_outputs:
        parts += [Text(), _heading("step outputs"), _values_table(with_outputs, "step", "outputs")]
    if rollbacks:
        table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
        table.add_column("step", no_wrap=True)
        table.add_column("status", no_wrap=True)
        for step_id, status in rollbacks.items():
            table.add_row(Text(step_id), step_status_text(status))
        parts += [Text(), _heading("rollbacks"), table]
    if run.outputs:
        parts += [
            Text(),
            _heading("workflow outputs"),
            _values_table(run.outputs.items(), "output", "value"),
        ]
    return Group(*parts)


def step_to_dict(step: StepRecord) -> dict[str, Any]:
    """A step as JSON-ready data (in `wfx show --json`), outputs in full."""
    return {
        "id": step.step_id,
        "status": step.status_word,
        "attempts": step.attempts,
        "started": rfc3339(step.started),
        "finished": rfc3339(step.finished),
        "durationSeconds": _seconds(_elapsed(step.started, step.finished)),
        "exitCode": step.exit_code,
        "signal": step.signal,
        "reason": step.reason,
        "outputs": dict(step.outputs),
        "where": step.where,
        "attemptsWhere": [{"attempt": n, "where": w} for n, w in step.attempts_where.items()],
        "keptFrom": step.kept_from,
    }


def run_json(
    run: RunRecord, steps: Mapping[str, StepRecord], rollbacks: Mapping[str, StepStatus]
) -> str:
    """`wfx show --json`: the run, its steps in order, rollbacks and workflow outputs."""
    record = run_to_dict(run)
    record["fingerprint"] = run.fingerprint
    record["steps"] = [step_to_dict(s) for s in ordered_steps(steps)]
    record["rollbacks"] = [{"step": k, "status": v.value} for k, v in rollbacks.items()]
    record["outputs"] = None if run.outputs is None else dict(run.outputs)
    return json.dumps(record, indent=2, ensure_ascii=False, default=str)


# -- wfx logs --------------------------------------------------------------------------------


def log_truncated(lines: Iterable[LogLine]) -> bool:
    """Whether the stored text of these lines (one step's) reached the journal's cap."""
    return sum(len(text) for _, _, text in lines) >= LOG_LIMIT


def prefixed_log(lines: Sequence[LogLine]) -> list[str]:
    """`[step] text` lines (`[step:stderr] text` for standard error) in the order they were
    written, steps interleaved as they ran, with a note after the last line of a step whose
    log was cut at the journal's cap."""
    sizes: dict[str, int] = {}
    last: dict[str, int] = {}
    for index, (step, _, text) in enumerate(lines):
        sizes[step] = sizes.get(step, 0) + len(text)
        last[step] = index
    shown: list[str] = []
    for index, (step, stream, text) in enumerate(lines):
        label = step if stream == "stdout" else f"{step}:{stream}"
        shown.append(f"[{label}] {text}")
        if last[step] == index and sizes[step] >= LOG_LIMIT:
            shown.append(f"[{step}] {TRUNCATED_NOTE}")
    return shown


def raw_log(lines: Iterable[LogLine]) -> list[str]:
    """The text of the lines as the step wrote them, without prefixes."""
    return [text for _, _, text in lines]
