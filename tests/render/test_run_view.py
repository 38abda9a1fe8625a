"""The run views: plain prefixed lines for logs, a live tree for terminals, and the choice."""

from __future__ import annotations

import io
from dataclasses import dataclass

import pytest
from rich.console import Console

from wfx.model import StepId
from wfx.render.run_view import LiveView, PlainView, choose_view
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

RUN = "run-1"
T0 = 1_000.0


def started(*steps: str, finally_steps: tuple[str, ...] = (), **inputs: object) -> RunStarted:
    ids = tuple(StepId(s) for s in steps)
    return RunStarted(RUN, T0, "deploy", "wf.yaml", ids, tuple(map(StepId, finally_steps)), inputs)


def begin(step: str, attempt: int = 1, at: float = T0) -> StepStarted:
    return StepStarted(RUN, at, StepId(step), attempt)


def out(step: str, text: str, stream: str = "stdout") -> StepOutput:
    return StepOutput(RUN, T0, StepId(step), stream, text)


def retry(step: str, attempt: int, delay: float, reason: str, at: float = T0) -> StepRetrying:
    return StepRetrying(RUN, at, StepId(step), attempt, attempt + 1, delay, reason)


def ended(kind: type[StepFinished], step: str, **fields: object) -> StepFinished:
    status = {
        StepSucceeded: StepStatus.SUCCESS,
        StepFailed: StepStatus.FAILED,
        StepTimedOut: StepStatus.TIMEOUT,
        StepSkipped: StepStatus.SKIPPED,
        StepCancelled: StepStatus.CANCELLED,
        StepFinished: StepStatus.SUCCESS,
    }[kind]
    return kind(RUN, T0, StepId(step), status, **fields)  # type: ignore[arg-type]


def finished(status: RunStatus, duration: float = 3.4, reason: str | None = None) -> RunFinished:
    return RunFinished(RUN, T0 + duration, status, duration, reason=reason)


def story() -> list[Event]:
    """A run with a success, a retried failure, a skip, a rollback, a notice and a cancel."""
    return [
        started("build", "test", "deploy", finally_steps=("cleanup",), env="prod"),
        begin("build"),
        out("build", "compiling"),
        out("build", "warning: deprecated", "stderr"),
        ended(StepSucceeded, "build", attempts=1, duration=1.234, outputs={"version": "1.2"}),
        ended(StepSkipped, "test", reason="its condition is false"),
        begin("deploy"),
        out("deploy", "pushing"),
        retry("deploy", 1, 2.0, "exit code 1"),
        begin("deploy", 2),
        ended(StepFailed, "deploy", attempts=3, duration=7.5, exit_code=1, reason="exit code 1"),
        RollbackStarted(RUN, T0, StepId("build")),
        RollbackFinished(RUN, T0, StepId("build"), StepStatus.ROLLED_BACK, 0.4),
        Notice(RUN, T0, "killed processes `deploy` left running: sleep"),
        ended(StepCancelled, "cleanup", attempts=1, reason="cancelled: the run is stopping"),
        finished(RunStatus.FAILED, reason="step `deploy` failed: exit code 1"),
    ]


def plain(events: list[Event], **options: bool) -> list[str]:
    stream = io.StringIO()
    view = PlainView(stream, **options)
    for event in events:
        view(event)
    return stream.getvalue().splitlines()


# -- PlainView -------------------------------------------------------------------------------


def test_plain_view_prefixes_output_and_writes_one_line_per_status_change() -> None:
    assert plain(story()) == [
        "run run-1 started: deploy (4 steps)",
        "[build] started",
        "[build] compiling",
        "[build] warning: deprecated",
        "[build] succeeded in 1.2s",
        "[test] skipped: its condition is false",
        "[deploy] started",
        "[deploy] pushing",
        "[deploy] retrying in 2s: exit code 1",
        "[deploy] started (attempt 2)",
        "[deploy] failed after 3 attempts: exit code 1",
        "[build] rolling back",
        "[build] rolled back",
        "wfx: warning: killed processes `deploy` left running: sleep",
        "[cleanup] cancelled: the run is stopping",
        "run run-1 failed in 3.4s: step `deploy` failed: exit code 1",
    ]


def test_quiet_plain_view_shows_only_failures_and_the_result() -> None:
    events = [
        *story(),
        RollbackFinished(RUN, T0, StepId("db"), StepStatus.ROLLBACK_FAILED, 1, "exit code 2"),
        Notice(RUN, T0, "second interrupt", level="error"),
    ]
    assert plain(events, quiet=True) == [
        "[deploy] failed after 3 attempts: exit code 1",
        "run run-1 failed in 3.4s: step `deploy` failed: exit code 1",
        "[db] rollback failed: exit code 2",
        "wfx: error: second interrupt",
    ]


def test_verbose_plain_view_adds_inputs_and_step_outputs() -> None:
    lines = plain(story()[:5], verbose=True)
    assert lines[:2] == ["run run-1 started: deploy (4 steps)", '  input env = "prod"']
    assert lines[-1] == '[build] output version = "1.2"'


@pytest.mark.parametrize(
    ("event", "line"),
    [
        (
            ended(StepSucceeded, "a", attempts=2, duration=61.25),
            "[a] succeeded in 1m1.2s after 2 attempts",
        ),
        (
            ended(StepFailed, "a", attempts=1, duration=0.25, reason="exit code 1"),
            "[a] failed in 250ms: exit code 1",
        ),
        (
            ended(StepTimedOut, "a", attempts=1, reason="timed out after 5s"),
            "[a] timed out after 5s",
        ),
        (
            ended(StepTimedOut, "a", attempts=3, reason="timed out after 5s"),
            "[a] timed out after 5s (3 attempts)",
        ),
        (ended(StepTimedOut, "a", attempts=1), "[a] timed out"),
        (ended(StepSkipped, "a"), "[a] skipped"),
        (ended(StepCancelled, "a"), "[a] cancelled"),
        (ended(StepFinished, "a", attempts=1, duration=2), "[a] succeeded in 2s"),
        (retry("a", 1, 0.5, "killed by signal 9"), "[a] retrying in 500ms: killed by signal 9"),
        (
            RollbackFinished(RUN, T0, StepId("a"), StepStatus.ROLLBACK_FAILED, 1, "exit code 3"),
            "[a] rollback failed: exit code 3",
        ),
        (finished(RunStatus.SUCCESS, 3.4), "run run-1 success in 3.4s"),
        (finished(RunStatus.COMPLETED_WITH_FAILURES, 10), "run run-1 completedWithFailures in 10s"),
    ],
)
def test_plain_view_phrases(event: Event, line: str) -> None:
    assert plain([event]) == [line]


def test_plain_view_ignores_events_it_does_not_know() -> None:
    @dataclass(frozen=True, slots=True)
    class Heartbeat(Event):
        pass

    assert plain([Heartbeat(RUN, T0)]) == []


def test_plain_view_flushes_every_line() -> None:
    class Counting(io.StringIO):
        flushes = 0

        def flush(self) -> None:
            self.flushes += 1

    stream = Counting()
    view = PlainView(stream)
    for event in story():
        view(event)
    assert stream.flushes == len(stream.getvalue().splitlines()) == 16


def test_plain_view_writes_each_of_100k_output_lines() -> None:
    """How fast is a benchmark: `python bench/run.py plain_view`."""
    stream = io.StringIO()
    view = PlainView(stream)
    for i in range(100_000):
        view(out("build", f"line {i}"))
    lines = stream.getvalue().splitlines()
    assert len(lines) == 100_000
    assert (lines[0], lines[-1]) == ("[build] line 0", "[build] line 99999")


# -- LiveView --------------------------------------------------------------------------------


def terminal() -> Console:
    return Console(width=80, color_system=None, record=True, force_terminal=True)


def drawn(view: LiveView, console: Console) -> str:
    console.print(view)
    return console.export_text()


def test_live_view_draws_groups_statuses_and_the_run_headline() -> None:
    console = terminal()
    groups = {"test": ("ship", "checks"), "deploy": ("ship",)}
    view = LiveView(console, groups=groups, clock=lambda: T0)
    for event in story():
        view(event)
    assert drawn(view, console).endswith(
        "wfx run: deploy — failed in 3.4s\n"
        "├── ↩ build  rolled back\n"
        "├── ship\n"
        "│   ├── checks\n"
        "│   │   └── ⊘ test  skipped: its condition is false\n"
        "│   └── ✗ deploy  failed after 3 attempts: exit code 1\n"
        "└── ⊗ cleanup  cancelled: the run is stopping\n"
    )


def test_live_view_without_groups_is_a_flat_list_with_timers_and_output_tails() -> None:
    console = terminal()
    view = LiveView(console, clock=lambda: T0 + 3.25)
    events = [
        started("build", "lint", "deploy"),
        begin("build", at=T0 + 1),
        *(out("build", f"line {i}") for i in range(1, 6)),
        ended(StepSucceeded, "lint", attempts=1, duration=0.5),
    ]
    for event in events:
        view(event)
    assert drawn(view, console) == (
        "wfx run: deploy  1/3 done  3.2s\n"
        "├── ⠋ build  2.2s\n"
        "│   ├── line 3\n"
        "│   ├── line 4\n"
        "│   └── line 5\n"
        "├── ✓ lint  500ms\n"
        "└── · deploy\n"
    )


def test_live_view_counts_down_to_the_next_attempt() -> None:
    console = terminal()
    view = LiveView(console, attempts={"deploy": 3}, clock=lambda: T0 + 0.5)
    for event in [started("deploy"), begin("deploy"), retry("deploy", 1, 2.0, "exit code 1")]:
        view(event)
    assert "↻ deploy  retry 2/3 in 1.5s" in drawn(view, console)
    view(begin("deploy", 2, at=T0))
    assert "deploy  0.5s (attempt 2)" in drawn(view, console)


def test_live_view_shows_a_rollback_in_progress_then_its_result() -> None:
    console = terminal()
    view = LiveView(console, clock=lambda: T0 + 1)
    view(started("db"))
    view(ended(StepSucceeded, "db", attempts=1, duration=1))
    view(RollbackStarted(RUN, T0, StepId("db")))
    view(out("db", "dropping"))
    text = drawn(view, console)
    assert "db  rolling back 1.0s\n    └── dropping\n" in text
    view(RollbackFinished(RUN, T0, StepId("db"), StepStatus.ROLLED_BACK, 1))
    assert "↩ db  rolled back" in drawn(view, console)


def test_live_view_prints_failed_output_above_the_live_area_for_the_scrollback() -> None:
    console = terminal()
    events = [
        started("build", "deploy"),
        begin("build"),
        out("build", "fine"),
        ended(StepSucceeded, "build", attempts=1, duration=1),
        begin("deploy"),
        *(out("deploy", f"error {i}") for i in range(1, 5)),
        ended(StepFailed, "deploy", attempts=1, duration=2, exit_code=1, reason="exit code 1"),
        finished(RunStatus.FAILED),
    ]
    with LiveView(console, kept=3) as view:
        for event in events:
            view(event)
    text = console.export_text()
    assert (
        "[deploy] … 1 earlier lines not shown\n"
        "[deploy] error 2\n"
        "[deploy] error 3\n"
        "[deploy] error 4\n"
        "✗ deploy failed in 2s: exit code 1\n"
    ) in text
    assert "[build] fine" not in text
    assert text.endswith(
        "wfx run: deploy — failed in 3.4s\n"
        "├── ✓ build  1s\n"
        "└── ✗ deploy  failed in 2s: exit code 1\n"
    )


def test_live_view_prints_notices_and_verbose_inputs() -> None:
    console = terminal()
    view = LiveView(console, verbose=True)
    view(started("a", env="prod"))
    view(Notice(RUN, T0, "secret `TOKEN` is not set"))
    assert console.export_text() == (
        'input env = "prod"\nwfx: warning: secret `TOKEN` is not set\n'
    )


def test_live_view_takes_100k_output_lines_keeping_only_a_tail() -> None:
    """How fast is a benchmark: `python bench/run.py live_view`."""
    console = terminal()
    view = LiveView(console, clock=lambda: T0)
    view(started("build"))
    view(begin("build"))
    for i in range(100_000):
        view(out("build", f"line {i}"))
    assert console.export_text() == ""  # output lines are drawn, not printed one by one
    text = drawn(view, console)
    assert "line 99999" in text and "line 99996" not in text
    view(ended(StepFailed, "build", attempts=1, duration=2.0, exit_code=1, reason="exit code 1"))
    failure = console.export_text()
    assert failure.startswith("[build] … 99800 earlier lines not shown\n[build] line 99800\n")
    assert failure.endswith("[build] line 99999\n✗ build failed in 2s: exit code 1\n")


# -- choosing --------------------------------------------------------------------------------


def test_a_terminal_gets_the_live_view(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TERM", "xterm-256color")
    console = Console(force_terminal=True)
    assert isinstance(choose_view(console, quiet=False, verbose=False, groups={}), LiveView)


@pytest.mark.parametrize(
    ("term", "is_tty", "quiet"),
    [("dumb", True, False), ("xterm", False, False), ("xterm", True, True)],
)
def test_pipes_dumb_terminals_and_quiet_get_plain_lines(
    monkeypatch: pytest.MonkeyPatch, term: str, is_tty: bool, quiet: bool
) -> None:
    monkeypatch.setenv("TERM", term)
    stream = io.StringIO()
    console = Console(file=stream, force_terminal=is_tty)
    view = choose_view(console, quiet=quiet, verbose=False, groups=None)
    assert isinstance(view, PlainView)
    with view:
        view(finished(RunStatus.SUCCESS))
    assert stream.getvalue() == "run run-1 success in 3.4s\n"


def test_a_run_of_one_step_says_one_step() -> None:
    assert plain([started("build")])[0] == "run run-1 started: deploy (1 step)"


def test_live_view_counts_down_long_waits_in_minutes_like_its_timers() -> None:
    console = terminal()
    view = LiveView(console, attempts={"deploy": 3}, clock=lambda: T0 + 0.5)
    for event in [started("deploy"), begin("deploy"), retry("deploy", 1, 65.5, "exit code 1")]:
        view(event)
    assert "↻ deploy  retry 2/3 in 1m05s" in drawn(view, console)
