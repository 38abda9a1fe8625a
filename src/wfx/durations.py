"""Durations: the one parser (`30s`, `1h30m` -> seconds) and the one formatter (seconds ->
`1m30s`), so the workflow file, the command line and every renderer agree on the units."""

from __future__ import annotations

import re

#: what a unit is worth in seconds; a workflow file uses `ms`, `s`, `m` and `h`
UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
#: the units a workflow file may write (its JSON Schema says the same)
WORKFLOW_UNITS = ("ms", "s", "m", "h")

_PART = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d|w)")


def parse_duration(value: float | int | str, units: tuple[str, ...] = WORKFLOW_UNITS) -> float:
    """Seconds in a duration: a number of seconds, or text like `500ms`, `5m`, `1h30m`
    made of the given `units`; ValueError otherwise."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    parts = _PART.findall(text)
    if (
        not parts
        or "".join(n + u for n, u in parts) != text
        or any(u not in units for _, u in parts)
    ):
        raise ValueError(f"not a duration: {value!r}")
    return sum(float(number) * UNIT_SECONDS[unit] for number, unit in parts)


def format_duration(seconds: float | None, unbounded: str = "unbounded") -> str:
    """Seconds as `100ms`, `30s`, `1m30s`, `2h5m`; None as `unbounded`."""
    if seconds is None:
        return unbounded
    if seconds < 1 and seconds != 0:
        return f"{seconds * 1000:.0f}ms"
    whole = round(seconds, 3)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    parts = []
    if hours:
        parts.append(f"{int(hours)}h")
    if minutes:
        parts.append(f"{int(minutes)}m")
    if secs or not parts:
        parts.append(f"{secs:g}s")
    return "".join(parts)
