"""Events as CloudEvents 1.0 JSON lines: valid attributes, every event class typed."""

from __future__ import annotations

import inspect
import io
import json
import re
import uuid
from datetime import datetime
from typing import Any

import pytest

from wfx.model import StepId
from wfx.render.cloudevents import EVENT_TYPES, CloudEventsWriter, event_type, rfc3339
from wfx.runtime import events
from wfx.runtime.events import (
    Event,
    Notice,
    RollbackFinished,
    RollbackStarted,
    RunFinished,
    RunStarted,
    RunStatus,
    StepCancelled,
    StepFailed,
    StepFinished,
    StepOutput,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepStatus,
    StepSucceeded,
    StepTimedOut,
)

RUN = "20260101T000000Z-abcd1234"
T0 = 1_767_225_600.25  # 2026-01-01T00:00:00.25Z
A = StepId("build")

#: one of each event class the engine emits
EVERY_EVENT: list[Event] = [
    RunStarted(RUN, T0, "deploy", "flows/wf.yaml", (A,), (), {"env": "prod", "n": 2}),
    StepStarted(RUN, T0, A, 1),
    StepOutput(RUN, T0, A, "stderr", 'quote " and \n newline'),
    StepRetrying(RUN, T0, A, 1, 2, 1.5, "exit code 1"),
    StepSucceeded(RUN, T0, A, StepStatus.SUCCESS, 2, 1.25, 0, outputs={"v": [1, 2]}),
    StepFailed(RUN, T0, A, StepStatus.FAILED, 3, 7.5, 1, reason="exit code 1"),
    StepTimedOut(RUN, T0, A, StepStatus.TIMEOUT, 1, 5.0, None, 15, "timed out after 5s"),
    StepSkipped(RUN, T0, A, StepStatus.SKIPPED, reason="its condition is false"),
    StepCancelled(RUN, T0, A, StepStatus.CANCELLED, 1, 0.5),
    RollbackStarted(RUN, T0, A),
    RollbackFinished(RUN, T0, A, StepStatus.ROLLBACK_FAILED, 0.5, "exit code 2"),
    Notice(RUN, T0, "SIGINT received: stopping"),
    RunFinished(RUN, T0, RunStatus.COMPLETED_WITH_FAILURES, 9.5, {"url": "x"}, "why"),
]

REQUIRED = ("specversion", "id", "source", "type")
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")


def written(stream: io.StringIO | io.BytesIO, source: str | None = "flows/wf.yaml") -> list[Any]:
    writer = CloudEventsWriter(stream, source=source)
    for event in EVERY_EVENT:
        writer(event)
    raw = stream.getvalue()
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    assert text.endswith("\n")
    return [json.loads(line) for line in text.splitlines()]


def assert_valid_cloudevent(cloud: dict[str, Any]) -> None:
    """The CloudEvents 1.0 required attributes and the optional ones wfx sets."""
    for name in REQUIRED:
        assert isinstance(cloud[name], str) and cloud[name], name
    assert cloud["specversion"] == "1.0"
    assert uuid.UUID(cloud["id"]).version == 4
    assert str(uuid.UUID(cloud["id"])) == cloud["id"]
    assert uuid.UUID(cloud["id"]).variant == uuid.RFC_4122
    assert re.match(r"^[a-z][a-z0-9+.-]*://\S+$", cloud["source"])
    assert re.match(r"^dev\.wfx\.[a-z]+(\.[a-z]+)?$", cloud["type"])
    assert RFC3339_UTC.match(cloud["time"])
    assert cloud["datacontenttype"] == "application/json"
    assert isinstance(cloud["data"], dict)
    assert all(re.match(r"^[a-z0-9]{1,20}$", key) for key in cloud)  # attribute naming rule


@pytest.mark.parametrize("stream", [io.StringIO, io.BytesIO])
def test_every_line_is_a_valid_structured_cloudevent(
    stream: type[io.StringIO | io.BytesIO],
) -> None:
    lines = written(stream())
    assert len(lines) == len(EVERY_EVENT)
    for cloud in lines:
        assert_valid_cloudevent(cloud)
    assert len({cloud["id"] for cloud in lines}) == len(lines)


def test_types_subjects_and_sources() -> None:
    lines = written(io.StringIO())
    assert [cloud["type"] for cloud in lines] == [
        "dev.wfx.run.started",
        "dev.wfx.step.started",
        "dev.wfx.step.output",
        "dev.wfx.step.retrying",
        "dev.wfx.step.succeeded",
        "dev.wfx.step.failed",
        "dev.wfx.step.timedout",
        "dev.wfx.step.skipped",
        "dev.wfx.step.cancelled",
        "dev.wfx.rollback.started",
        "dev.wfx.rollback.finished",
        "dev.wfx.notice",
        "dev.wfx.run.finished",
    ]
    assert [cloud.get("subject") for cloud in lines] == [None] + ["build"] * 10 + [None, None]
    assert {cloud["source"] for cloud in lines} == {"wfx://flows/wf.yaml"}


def test_without_a_workflow_file_the_source_is_the_run() -> None:
    lines = written(io.StringIO(), source=None)
    assert {cloud["source"] for cloud in lines} == {f"wfx://run/{RUN}"}


def test_data_carries_the_event_fields_with_enums_as_values_and_the_run_id() -> None:
    lines = written(io.StringIO())
    assert lines[0]["data"] == {
        "runId": RUN,
        "time": T0,
        "workflow": "deploy",
        "file": "flows/wf.yaml",
        "steps": ["build"],
        "finallySteps": [],
        "inputs": {"env": "prod", "n": 2},
    }
    assert lines[2]["data"]["text"] == 'quote " and \n newline'
    assert lines[6]["data"] == {
        "runId": RUN,
        "time": T0,
        "step": "build",
        "status": "timeout",
        "attempts": 1,
        "duration": 5,
        "exitCode": None,
        "signal": 15,
        "reason": "timed out after 5s",
        "outputs": {},
        "span": None,
        "where": None,
    }
    assert lines[10]["data"]["status"] == "rollbackFailed"
    assert lines[-1]["data"]["status"] == "completedWithFailures"
    assert all(cloud["data"]["runId"] == RUN for cloud in lines)


def test_time_is_rfc3339_utc_with_a_z() -> None:
    assert rfc3339(T0) == "2026-01-01T00:00:00.250000Z"
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339(59.9999996) == "1970-01-01T00:01:00.000000Z"
    assert rfc3339(-0.25) == "1969-12-31T23:59:59.750000Z"
    parsed = datetime.fromisoformat(rfc3339(T0))
    assert parsed.timestamp() == T0


def test_the_type_list_covers_every_event_class() -> None:
    classes = {
        cls
        for _, cls in inspect.getmembers(events, inspect.isclass)
        if issubclass(cls, Event) and cls.__module__ == events.__name__
    }
    concrete = classes - {Event, StepFinished}
    assert concrete == set(EVENT_TYPES)
    assert len(set(EVENT_TYPES.values())) == len(EVENT_TYPES)
    for status, finished_class in events.FINISHED_BY_STATUS.items():
        bare = StepFinished(RUN, T0, A, status)
        assert event_type(bare) == EVENT_TYPES[finished_class]


def test_a_line_is_flushed_after_each_event() -> None:
    class Counting(io.BytesIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    stream = Counting()
    writer = CloudEventsWriter(stream)
    for count, event in enumerate(EVERY_EVENT[:3], start=1):
        writer(event)
        assert stream.flushes == count
        assert stream.getvalue().count(b"\n") == count


def test_a_file_opened_in_binary_or_text_mode(tmp_path: Any) -> None:
    for mode in ("wb", "w"):
        path = tmp_path / f"events-{mode}.jsonl"
        with open(path, mode, encoding=None if "b" in mode else "utf-8") as handle:
            writer = CloudEventsWriter(handle, source="wf.yaml")
            writer(StepOutput(RUN, T0, A, "stdout", "héllo ✓"))
        (line,) = path.read_text(encoding="utf-8").splitlines()
        assert json.loads(line)["data"]["text"] == "héllo ✓"
