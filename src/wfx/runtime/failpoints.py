"""Failpoints: crash wfx on purpose at a named spot, or fail a step's attempt on purpose.

`WFX_FAILPOINT` holds a comma-separated list of items of two kinds:

- `NAME:N` (a crash point; `NAME` alone is `NAME:1`) makes the N-th pass through
  `failpoint(NAME)` end the process at once with `os._exit(137)`, as a kill -9 would:
  no cleanup, no flush.
- `step-fail:STEP[@ATTEMPT]` (a step fault) makes that attempt of that step fail as if
  its process had exited with status 1 (a Python step: as if it had raised); without
  `@ATTEMPT`, every attempt. `step-timeout:STEP[@ATTEMPT]` makes it time out as if its
  `timeout` had fired: it ends after the attempt's timeout (at once without one). The
  attempt starts no process and calls no step code (a rollback is not an attempt: it
  runs as usual), and its output and reason say the
  failpoint did it; everything after (retries, `onError`, `continueOn`, rollbacks,
  `finally`, group retries, the exit code, the journal) is the engine's own reaction,
  as to a real failure. This is what the what-if plan (`wfx plan --fail`) is tested
  against. STEP is a step id as events name it (a fan-out instance with its `[key]`;
  an `@` inside the brackets is part of the key, and so is a comma).

For example `WFX_FAILPOINT=step-fail:deploy@1,step-timeout:smoke,journal.run-finished:1`.

An item that is neither (an unknown name, a count or attempt that is not a number from
1, a step fault naming no step) arms nothing; `problems()` says what is wrong with each,
and `wfx run` and `wfx resume` refuse to start with them (exit 2). Unset, a failpoint
costs one dict lookup, and a step's attempt one check of an empty dict.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

VARIABLE = "WFX_FAILPOINT"

#: a step fault's kind by the name its items start with
_STEP_FAULT_KINDS = {"step-fail": "fail", "step-timeout": "timeout"}

#: (step id, attempt or None for every attempt) -> "fail" or "timeout"
StepFaults = Mapping[tuple[str, int | None], str]


def _items(spec: str) -> list[str]:
    """The comma-separated items of `spec`; a comma inside `[...]` (a fan-out instance's
    key) does not separate."""
    items, depth, start = [], 0, 0
    for position, char in enumerate(spec):
        if char == "[":
            depth += 1
        elif char == "]":
            depth = max(0, depth - 1)
        elif char == "," and depth == 0:
            items.append(spec[start:position])
            start = position + 1
    items.append(spec[start:])
    return [item.strip() for item in items if item.strip()]


def parse(
    spec: str,
) -> tuple[dict[str, int], dict[tuple[str, int | None], str], list[str]]:
    """`WFX_FAILPOINT`'s value as the crash points (name -> pass), the step faults, and
    what is wrong with the items that arm nothing."""
    armed: dict[str, int] = {}
    faults: dict[tuple[str, int | None], str] = {}
    problems: list[str] = []
    known = set(names())
    for item in _items(spec):
        kind, colon, target = item.partition(":")
        if kind in _STEP_FAULT_KINDS and colon:
            step_fault = _step_fault(target)
            if isinstance(step_fault, str):
                problems.append(f"`{item}`: {step_fault}")
            else:
                faults[step_fault] = _STEP_FAULT_KINDS[kind]
        elif kind not in known:
            problems.append(f"`{item}`: {_unknown(kind)}")
        elif colon and not (target.isdigit() and int(target) >= 1):
            problems.append(f"`{item}`: `{target}` is not a pass number (1, 2, …)")
        else:
            armed[kind] = int(target) if colon else 1
    return armed, faults, problems


def _step_fault(target: str) -> tuple[str, int | None] | str:
    """`STEP[@ATTEMPT]` as (step, attempt or None), or what is wrong with it."""
    step, at, number = target.rpartition("@")
    if not at or "]" in number:  # no `@`, or the last one is inside an instance's key
        step, number = target, ""
    elif not (number.isdigit() and int(number) >= 1):
        return f"`{number}` is not an attempt number (1, 2, …)"
    if not step:
        return "names no step (step-fail:STEP or step-fail:STEP@ATTEMPT)"
    return step, int(number) if number else None


def _unknown(name: str) -> str:
    if name.startswith("step-") or "=" in name:
        return "no such failpoint; a step fault is step-fail:STEP[@ATTEMPT] or step-timeout:…"
    return "no such failpoint (see wfx.runtime.failpoints.names())"


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


def problems() -> list[str]:
    """What is wrong with each item of `WFX_FAILPOINT` that arms nothing."""
    return [f"{VARIABLE}: {problem}" for problem in _PROBLEMS]


def names() -> tuple[str, ...]:
    """Every failpoint name wfx has, for tests that crash at each of them."""
    return (
        "journal.create-run",
        "journal.step-started",
        "journal.after-step-started",
        "journal.step-intended",
        "journal.after-step-intended",
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


def arm(env: Mapping[str, str]) -> None:
    """Read `WFX_FAILPOINT` from `env`: once when wfx starts (a failpoint's cost must not be
    a lookup of the environment), and again in a warm server's copy of wfx, which takes
    its command's environment after this module was imported (docs/server.md)."""
    global _ARMED, STEP_FAULTS, _PROBLEMS
    _ARMED, STEP_FAULTS, _PROBLEMS = parse(env.get(VARIABLE, ""))
    _SEEN.clear()


_ARMED: dict[str, int]
STEP_FAULTS: StepFaults
_PROBLEMS: list[str]
_SEEN: dict[str, int] = {}
arm(os.environ)
