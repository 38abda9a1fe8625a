"""Failpoints: crash wfx on purpose at a named spot, to test what survives a crash.

`WFX_FAILPOINT=NAME:N` makes the N-th pass through `failpoint(NAME)` end the
process at once with `os._exit(137)`, as a kill -9 would: no cleanup, no flush.
Several may be given, separated by commas. Unset, a failpoint costs one dict lookup.
"""

from __future__ import annotations

import os

VARIABLE = "WFX_FAILPOINT"


def _parse(spec: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for item in spec.split(","):
        name, _, count = item.strip().partition(":")
        if name:
            armed[name] = int(count) if count.isdigit() else 1
    return armed


_ARMED = _parse(os.environ.get(VARIABLE, ""))
_SEEN: dict[str, int] = {}


def failpoint(name: str) -> None:
    """Die here (exit 137) when `WFX_FAILPOINT` arms `name` and this is its N-th pass."""
    if not _ARMED:
        return
    target = _ARMED.get(name)
    if target is None:
        return
    _SEEN[name] = _SEEN.get(name, 0) + 1
    if _SEEN[name] == target:
        os._exit(137)


def names() -> tuple[str, ...]:
    """Every failpoint name wfx has, for tests that crash at each of them."""
    return (
        "journal.create-run",
        "journal.step-started",
        "journal.after-step-started",
        "journal.retry-scheduled",
        "journal.step-finished",
        "journal.after-step-finished",
        "journal.rollback-started",
        "journal.after-rollback-started",
        "journal.rollback-finished",
        "journal.after-rollback-finished",
        "journal.group-retrying",
        "journal.after-group-retrying",
        "journal.run-finished",
    )
