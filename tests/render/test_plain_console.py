"""Off a terminal the run prints through a PlainConsole, without importing rich: it must
print exactly the characters rich's console prints there (no colour, no wrapping)."""

from __future__ import annotations

import io
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from wfx.model import StepId
from wfx.render.console import PlainConsole, run_console
from wfx.render.run_view import LiveView, PlainView, choose_view
from wfx.render.summary import StepLine, summary_plain, summary_table
from wfx.runtime.events import StepStatus

STEPS = [
    StepLine(StepId("build"), StepStatus.SUCCESS, 1, 1.234),
    StepLine(StepId("a-step-with-a-long-name"), StepStatus.FAILED, 3, 75.5, "exit code 1"),
    StepLine(StepId("bell"), StepStatus.FAILED, 1, 0.1, "rang \x07 and went \x08back\r\n [x]"),
    StepLine(StepId("wide"), StepStatus.SKIPPED, reason="ünïcödé → 漢字 " + "long " * 40),
    StepLine(StepId("never"), StepStatus.PENDING),
]


def rich_prints(renderable: object, **options: object) -> str:
    out = io.StringIO()
    Console(file=out, highlight=False, width=80, color_system=None).print(renderable, **options)  # type: ignore[arg-type]
    return out.getvalue()


def test_the_plain_summary_is_what_rich_prints_off_a_terminal() -> None:
    plain = io.StringIO()
    console = PlainConsole()
    sys_stdout, sys.stdout = sys.stdout, plain
    try:
        console.print(summary_plain(STEPS))
    finally:
        sys.stdout = sys_stdout
    assert plain.getvalue() == rich_prints(summary_table(STEPS), soft_wrap=True)
    assert "\x07" not in plain.getvalue()


@given(st.lists(st.text(max_size=12), min_size=1, max_size=4))
def test_any_reason_prints_as_rich_prints_it(reasons: list[str]) -> None:
    """Cells are folded as rich folds them whatever they hold (spaces doubled or at the
    ends, tabs, other separators, control codes), by the short path or the long one."""
    steps = [
        StepLine(StepId(f"s{i}"), StepStatus.FAILED, 1, 0.5, reason)
        for i, reason in enumerate(reasons)
    ]
    plain = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, plain
    try:
        PlainConsole().print(summary_plain(steps))
    finally:
        sys.stdout = sys_stdout
    assert plain.getvalue() == rich_prints(summary_table(steps), soft_wrap=True)


def test_outputs_print_as_rich_prints_them() -> None:
    text = 'outputs:\n  url = "https://example.com/[bold]x[/bold]"\n  n = 3'
    plain = io.StringIO()
    sys_stdout, sys.stdout = sys.stdout, plain
    try:
        PlainConsole().print(text, markup=False, soft_wrap=True)
    finally:
        sys.stdout = sys_stdout
    assert plain.getvalue() == rich_prints(text, markup=False, soft_wrap=True)


def test_a_pipe_gets_the_plain_console_and_view(monkeypatch: pytest.MonkeyPatch) -> None:
    for variable in ("FORCE_COLOR", "TTY_COMPATIBLE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    console = run_console()
    assert isinstance(console, PlainConsole)
    assert isinstance(choose_view(console), PlainView)


def test_rich_decides_when_the_environment_asks_it_to(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm")
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    console = run_console()
    assert isinstance(console, Console)
    assert isinstance(choose_view(console), LiveView)
