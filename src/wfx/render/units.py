"""Small formatting helpers shared by the renderers."""

from __future__ import annotations


def duration(seconds: float | None, unbounded: str = "unbounded") -> str:
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


def delays(values: tuple[float, ...] | list[float]) -> str:
    """A retry schedule's waits, e.g. `1s, 2s, 4s`, or `-` when there are none."""
    return ", ".join(duration(v) for v in values) if values else "-"
