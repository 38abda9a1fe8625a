"""The schema stage remembers steps it has seen valid (an editor re-checks the file at every
keystroke) and checks only the others: the diagnostics are exactly those of a check from
scratch, whatever was checked before."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfx import schema
from wfx.diagnostics import DiagnosticsError
from wfx.source import loads

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples").rglob("*.yaml"))

BASE = """\
wfx: 1
steps:
  - id: build
    run: echo build
    timeout: 5m
  - id: group
    type: parallel
    steps:
      - {id: a, run: echo a}
      - {id: b, cmd: [echo, b], retries: {max: 2, delay: 1s}}
finally:
  - {id: clean, run: echo clean}
"""
#: replacements that make one step (or nothing) invalid
BREAKAGES = [
    ("timeout: 5m", "timeout: 5 minutes"),
    ("{id: a, run: echo a}", "{id: a, run: echo a, cmd: [x]}"),
    ("delay: 1s", "delay: soon"),
    ("{id: clean, run: echo clean}", "{id: clean, rn: echo clean}"),
    ("type: parallel", "type: parallel\n    shell: sh"),
    ("steps:\n      - {id: a", "steps:\n      - {id: a, needs: 3"),
    ("echo build", "echo built"),
]


def messages(text: str) -> list[str]:
    return [f"{d.span}: {d.message} ({d.hint})" for d in schema.validate(loads(text, "wf.yaml"))]


def from_scratch(text: str) -> list[str]:
    schema._KNOWN_VALID.clear()
    return messages(text)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_a_second_check_gives_the_same_diagnostics(path: Path) -> None:
    try:
        document = loads(path.read_bytes(), str(path))
    except DiagnosticsError:
        return  # stops before the schema stage
    schema._KNOWN_VALID.clear()
    first = schema.validate(document)
    assert schema.validate(document) == first


def test_a_step_seen_valid_stands_in_until_it_changes() -> None:
    assert from_scratch(BASE) == []
    assert schema._KNOWN_VALID  # the steps were remembered
    broken = BASE.replace("{id: a, run: echo a}", "{id: a, run: echo a, cmd: [x]}")
    assert messages(broken) == [
        "wf.yaml:9:30: a step has exactly one kind; this one has both `run` and `cmd`"
        " (keep only one of them)"
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seen=st.lists(st.sampled_from(BREAKAGES), max_size=3, unique=True),
    now=st.lists(st.sampled_from(BREAKAGES), max_size=3, unique=True),
)
def test_what_was_checked_before_never_changes_the_diagnostics(
    seen: list[tuple[str, str]], now: list[tuple[str, str]]
) -> None:
    def apply(changes: list[tuple[str, str]]) -> str:
        text = BASE
        for old, new in changes:
            text = text.replace(old, new, 1)
        return text

    expected = from_scratch(apply(now))
    schema._KNOWN_VALID.clear()
    messages(apply(seen))
    assert messages(apply(now)) == expected
