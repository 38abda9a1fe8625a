"""Small formatting helpers shared by the renderers: durations, retry schedules, values."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from wfx.durations import format_duration
from wfx.graph import RetrySchedule
from wfx.model import OnError
from wfx.plan import Plan, PlannedFanOut, Unknown

#: seconds as `100ms`, `30s`, `1m30s` (the one formatter, :func:`wfx.durations.format_duration`)
duration = format_duration


def delays(values: tuple[float, ...] | list[float]) -> str:
    """A retry schedule's waits, e.g. `1s, 2s, 4s`, or `-` when there are none."""
    return ", ".join(duration(v) for v in values) if values else "-"


#: joins the two ends of a range of waits (an en dash)
RANGE = "\u2013"


def jitter_range(delay: float, jitter: float) -> tuple[float, float]:
    """The shortest and longest wait a jittered delay can become (runtime/retry.py)."""
    return delay, delay * (1 + jitter)


def waits(schedule: RetrySchedule) -> str:
    """The waits between attempts, `1s, 2s`; with jitter, each wait's shortest and longest
    length joined by an en dash (`500ms` to `1.5s`)."""
    if not schedule.jitter:
        return delays(schedule.delays)
    ranges = (jitter_range(d, schedule.jitter) for d in schedule.delays)
    return ", ".join(f"{duration(low)}{RANGE}{duration(high)}" for low, high in ranges) or "-"


def retries(schedule: RetrySchedule) -> str:
    """Retries after the first try and their waits: `2 (1s, 2s)`, `0` when none, then the
    failures retried and the deadline: `2 (1s, 2s); on 75, timeout; except 2; deadline 1m`."""
    counted = f"{schedule.attempts - 1} ({waits(schedule)})" if schedule.delays else "0"
    return "; ".join([counted, *retry_rules(schedule)])


def retry_rules(schedule: RetrySchedule) -> list[str]:
    """What a retry policy retries and until when, beyond its waits: `on 75, timeout`,
    `except 2`, `deadline 1m` (each only when set; retrying needs retries)."""
    rules = []
    if schedule.delays and schedule.on is not None:
        rules.append("on " + ", ".join(str(c) for c in schedule.on))
    if schedule.delays and schedule.except_:
        rules.append("except " + ", ".join(str(c) for c in schedule.except_))
    if schedule.deadline is not None:
        fit = schedule.retries_within_deadline()
        room = (
            f" (at most {fit} retr{'y' if fit == 1 else 'ies'})"
            if fit < len(schedule.delays)
            else ""
        )
        rules.append(f"deadline {duration(schedule.deadline)}{room}")
    return rules


def on_error(on_error: OnError, continue_on: tuple[int, ...]) -> str:
    """What a final failure means: `fail`, `continue`, `retry`, with `continueOn` after it:
    `fail; continue on 3, 4`."""
    if not continue_on:
        return on_error.value
    return f"{on_error.value}; continue on {', '.join(str(c) for c in continue_on)}"


def group_limits(plan: Plan) -> list[tuple[str, str]]:
    """Each group bounded or re-run as a whole, with how: (`deploy`, `groupTimeout 10m;
    groupRetries 2 (1s, 2s)`)."""
    lines: list[tuple[str, str]] = []
    for group in plan.groups.values():
        limits = []
        if group.group_timeout is not None:
            limits.append(f"groupTimeout {duration(group.group_timeout)}")
        if group.group_retries is not None:
            limits.append(f"groupRetries {retries(group.group_retries)}")
        if limits:
            lines.append((group.id, "; ".join(limits)))
    return lines


def count(number: int, noun: str) -> str:
    """`1 step`, `2 steps`: a count with its noun in the right number."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def value(item: Any) -> str:
    """A value as YAML/JSON writes it (`false`, `"staging"`, `null`, `[1, 2]`), never a
    Python repr; a value only the run knows as `runtime (what it waits for)`."""
    if isinstance(item, Unknown):
        return f"runtime ({item.reason})"
    return json.dumps(plain(item), ensure_ascii=False, separators=(", ", ": "))


def plain(item: Any) -> Any:
    """JSON-ready data: whole floats as integers, non-finite numbers as text, tuples as lists,
    unknowns as {"runtime": reason}."""
    if isinstance(item, Unknown):
        return {"runtime": item.reason}
    if isinstance(item, float):
        if not math.isfinite(item):
            return str(item)
        return int(item) if item.is_integer() else item
    if isinstance(item, Mapping):
        return {str(k): plain(v) for k, v in item.items()}
    if isinstance(item, list | tuple):
        return [plain(v) for v in item]
    if item is None or isinstance(item, str | int | bool):
        return item
    return str(item)


def run_settings(plan: Plan) -> list[str]:
    """The settings of the whole run a reviewer must see: how the top-level steps run
    together, the workflow timeout and maxParallel."""
    settings = ["top-level steps in parallel"] if plan.type == "parallel" else []
    if plan.timeout is not None:
        settings.append(f"timeout {duration(plan.timeout)}")
    if plan.max_parallel is not None:
        settings.append(f"maxParallel {plan.max_parallel}")
    return settings


def fan_out_line(fan_out: PlannedFanOut) -> str:
    """One fan-out in words: `build: matrix, 5 instances, at most 2 at once, ...`, or for
    a dynamic one: N times the template, N known at run time from its expression."""
    if fan_out.dynamic:
        body = f" ({', '.join(fan_out.template)})" if fan_out.template else ""
        head = (
            f"{fan_out.id}[*]: N × template{body}, N known at run time from"
            f" `${{{{ {fan_out.source} }}}}` (N ≤ {fan_out.limit})"
        )
    else:
        head = f"{fan_out.id}: {fan_out.kind}, {count(len(fan_out.instances), 'instance')}"
    cap = (
        "all at once" if fan_out.max_parallel is None else f"at most {fan_out.max_parallel} at once"
    )
    stop = "one failure stops the rest" if fan_out.fail_fast else "failFast off"
    return f"{head}, {cap}, {stop}"
