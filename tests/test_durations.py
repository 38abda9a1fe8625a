"""The one duration parser and the one formatter (`wfx.durations`)."""

from __future__ import annotations

import pytest

from wfx.cli_history import parse_age
from wfx.durations import format_duration, parse_duration
from wfx.render.units import duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("100ms", 0.1), ("10s", 10.0), ("5m", 300.0), ("1h30m", 5400.0), ("1.5s", 1.5), (7, 7.0)],
)
def test_workflow_durations_parse_to_seconds(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["1d", "2w", "10", "s", "5 m", "1h 30m", "-1s", ""])
def test_workflow_durations_refuse_other_text(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


def test_ages_use_the_same_parser_with_days_and_weeks() -> None:
    assert parse_age("1d12h") == parse_duration("1d12h", units=("s", "m", "h", "d", "w"))
    assert parse_age("2w") == 14 * 86400.0
    with pytest.raises(ValueError, match="not an age"):
        parse_age("100ms")


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.1, "100ms"), (0, "0s"), (30, "30s"), (90, "1m30s"), (7500, "2h5m"), (None, "unbounded")],
)
def test_seconds_format_as_the_plan_writes_them(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


def test_renderers_format_with_the_one_formatter() -> None:
    assert duration is format_duration


@pytest.mark.parametrize("text", ["250ms", "45s", "3m", "1h", "1h30m", "2h5m10s"])
def test_formatting_a_parsed_duration_gives_the_text_back(text: str) -> None:
    assert format_duration(parse_duration(text)) == text
