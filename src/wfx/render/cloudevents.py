"""Run events as CloudEvents 1.0 JSON lines (structured mode), one event per line.

Each line is a complete CloudEvent: `specversion`, a fresh `id`, a `source` naming the
workflow file (or the run), a `dev.wfx.*` `type`, an RFC 3339 UTC `time`, the step as
`subject`, and the event's own fields as JSON `data` (camelCase keys, enums as values).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import io
import json
import os
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import IO, Any, cast
from urllib.parse import quote

from wfx.render.plan_json import json_value
from wfx.runtime.events import (
    Event,
    FanOutExpanded,
    GroupRetrying,
    Notice,
    RollbackFinished,
    RollbackStarted,
    RunFinished,
    RunQueued,
    RunStarted,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepKept,
    StepOutput,
    StepRestored,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepStatus,
    StepSucceeded,
    StepTimedOut,
)

#: the CloudEvents specification version every line follows
SPEC_VERSION = "1.0"

#: the CloudEvents `type` of each event class
EVENT_TYPES: Mapping[type[Event], str] = {
    RunStarted: "dev.wfx.run.started",
    StepStarted: "dev.wfx.step.started",
    StepOutput: "dev.wfx.step.output",
    StepRetrying: "dev.wfx.step.retrying",
    StepSucceeded: "dev.wfx.step.succeeded",
    StepFailed: "dev.wfx.step.failed",
    StepTimedOut: "dev.wfx.step.timedout",
    StepSkipped: "dev.wfx.step.skipped",
    StepCancelled: "dev.wfx.step.cancelled",
    StepRestored: "dev.wfx.step.restored",
    StepKept: "dev.wfx.step.kept",
    RollbackStarted: "dev.wfx.rollback.started",
    RollbackFinished: "dev.wfx.rollback.finished",
    GroupRetrying: "dev.wfx.group.retrying",
    Notice: "dev.wfx.notice",
    RunQueued: "dev.wfx.run.queued",
    FanOutExpanded: "dev.wfx.fanout.expanded",
    RunFinished: "dev.wfx.run.finished",
}

#: a bare StepFinished (or an unknown subclass of it) is typed by its status
_FINISHED_TYPES: Mapping[StepStatus, str] = {
    StepStatus.SUCCESS: EVENT_TYPES[StepSucceeded],
    StepStatus.FAILED: EVENT_TYPES[StepFailed],
    StepStatus.TIMEOUT: EVENT_TYPES[StepTimedOut],
    StepStatus.SKIPPED: EVENT_TYPES[StepSkipped],
    StepStatus.CANCELLED: EVENT_TYPES[StepCancelled],
}


def event_type(event: Event) -> str:
    """The CloudEvents `type` of an event, e.g. `dev.wfx.step.failed`."""
    known = EVENT_TYPES.get(type(event))
    if known is not None:
        return known
    if isinstance(event, StepFinished):
        return _FINISHED_TYPES.get(event.status, "dev.wfx.step.finished")
    base = next((EVENT_TYPES[k] for k in type(event).__mro__ if k in EVENT_TYPES), None)
    return base or "dev.wfx.event"


def event_source(workflow_file: str | None, run_id: str) -> str:
    """`wfx://<workflow file>` when the file is known, else `wfx://run/<run id>`."""
    if workflow_file:
        return "wfx://" + quote(workflow_file, safe="/:@")
    return "wfx://run/" + quote(run_id, safe="")


def rfc3339(timestamp: float) -> str:
    """Seconds since the epoch as RFC 3339 UTC with a `Z`, e.g. `2026-01-02T03:04:05.678901Z`."""
    whole, micros = divmod(round(timestamp * 1_000_000), 1_000_000)
    return f"{_second(whole)}.{micros:06d}Z"


@functools.lru_cache(maxsize=8)
def _second(whole: int) -> str:
    """The date and time of one second; cached, as a burst of events shares its second."""
    return datetime.fromtimestamp(whole, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def new_id() -> str:
    """A random (version 4) UUID as text: `uuid.uuid4()` without building a UUID object."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40  # version 4
    raw[8] = raw[8] & 0x3F | 0x80  # the RFC 4122 variant
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def to_cloudevent(event: Event, source: str) -> dict[str, Any]:
    """One event as a structured-mode CloudEvent (a JSON-ready dict)."""
    cloud: dict[str, Any] = {
        "specversion": SPEC_VERSION,
        "id": new_id(),
        "source": source,
        "type": event_type(event),
        "time": rfc3339(event.time),
    }
    subject = getattr(event, "step", None)
    if subject:
        cloud["subject"] = subject
    cloud["datacontenttype"] = "application/json"
    cloud["data"] = event_data(event)
    return cloud


def event_data(event: Event) -> dict[str, Any]:
    """An event's fields as JSON-ready data: camelCase keys, enums as their values."""
    return {key: _plain(getattr(event, name)) for name, key in _keys(type(event))}


_KEYS: dict[type[Event], tuple[tuple[str, str], ...]] = {}


def _keys(kind: type[Event]) -> tuple[tuple[str, str], ...]:
    """(field name, JSON key) pairs of an event class, computed once per class."""
    keys = _KEYS.get(kind)
    if keys is None:
        names = [f.name for f in dataclasses.fields(kind)]
        keys = _KEYS[kind] = tuple((name, _camel(name)) for name in names)
    return keys


def _camel(name: str) -> str:
    first, *rest = name.split("_")
    return first + "".join(part.title() for part in rest)


_SCALARS = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> Any:
    if type(value) in _SCALARS:  # most fields: no conversion, and no isinstance chain
        return value
    if isinstance(value, enum.Enum):
        return value.value
    return json_value(value)


class CloudEventsWriter:
    """An event sink writing each event as one CloudEvents JSON line, flushed at once."""

    def __init__(self, file: IO[str] | IO[bytes], *, source: str | None = None) -> None:
        """`source` is the workflow file; without it events are sourced `wfx://run/<id>`."""
        self._file = file
        self._source = event_source(source, "") if source else None
        self._run_sources: dict[str, str] = {}
        self._write = _line_writer(file)

    def __call__(self, event: Event) -> None:
        """Write one event as a line and flush it."""
        cloud = to_cloudevent(event, self._source or self._run_source(event.run_id))
        self._write(_ENCODER.encode(cloud) + "\n")
        self._file.flush()

    def _run_source(self, run_id: str) -> str:
        source = self._run_sources.get(run_id)
        if source is None:
            source = self._run_sources[run_id] = event_source(None, run_id)
        return source


_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)


def _line_writer(file: IO[str] | IO[bytes]) -> Callable[[str], object]:
    if _is_binary(file):
        binary = cast(IO[bytes], file)
        return lambda line: binary.write(line.encode("utf-8", "backslashreplace"))
    return cast(IO[str], file).write


def _is_binary(file: IO[Any]) -> bool:
    if isinstance(file, io.TextIOBase):
        return False
    if isinstance(file, io.RawIOBase | io.BufferedIOBase):
        return True
    return "b" in str(getattr(file, "mode", ""))
