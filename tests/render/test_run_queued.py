"""A run waiting for its concurrency group says so: in plain lines (also with -q), in the
live view's scrollback, and as a `dev.wfx.run.queued` CloudEvent."""

from __future__ import annotations

import io
import json
import time

from rich.console import Console

from wfx.render.cloudevents import to_cloudevent
from wfx.render.run_view import LiveView, PlainView
from wfx.runtime.events import RunQueued

SINCE = time.mktime((2026, 1, 2, 15, 2, 3, 0, 0, -1))
QUEUED = RunQueued("run-2", SINCE + 5, "deploy-prd", "run-1", 4242, SINCE)
LINE = "waiting for concurrency group `deploy-prd`: run run-1 (pid 4242) holds it since 15:02:03"


def test_plain_view_says_whom_a_queued_run_waits_for_even_when_quiet() -> None:
    for quiet in (False, True):
        stream = io.StringIO()
        PlainView(stream, quiet=quiet)(QUEUED)
        assert stream.getvalue() == LINE + "\n"


def test_behind_another_queued_run() -> None:
    stream = io.StringIO()
    PlainView(stream)(RunQueued("run-3", SINCE, "g", "run-2", 7, SINCE, holding=False))
    assert "run run-2 (pid 7) is queued before this run since 15:02:03" in stream.getvalue()


def test_live_view_prints_it_above_the_tree() -> None:
    console = Console(file=io.StringIO(), width=200, color_system=None, record=True)
    LiveView(console)(QUEUED)
    assert LINE in console.export_text()


def test_it_is_a_queued_cloudevent() -> None:
    cloud = to_cloudevent(QUEUED, "wfx://wf.yaml")
    assert cloud["type"] == "dev.wfx.run.queued"
    data = json.loads(json.dumps(cloud))["data"]
    assert data["group"] == "deploy-prd"
    assert data["holder"] == "run-1"
    assert data["pid"] == 4242
