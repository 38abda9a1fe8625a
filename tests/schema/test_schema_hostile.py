"""Hostile and nonsensical shapes give diagnostics, never exceptions."""

from __future__ import annotations

from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wfx.diagnostics import Diagnostic
from wfx.schema import schema, validate
from wfx.source import PositionMap, SourceDocument, loads


def document(data: Any) -> SourceDocument:
    """A document without recorded positions: every span falls back to line 1."""
    return SourceDocument("t.yaml", "", data, PositionMap("t.yaml"))


def well_formed(found: list[Diagnostic]) -> bool:
    return all(
        d.span is not None and d.span.line >= 1 and d.message and "valid under" not in d.message
        for d in found
    )


WRONG = [None, True, 0, -1, 1.5, "", "text", [], [1, "a", None], {}, {"a": {"b": [1]}}]
STEP_KEYS = sorted(schema()["$defs"]["step"]["properties"])
TOP_KEYS = sorted(schema()["properties"])


@pytest.mark.parametrize("value", WRONG, ids=repr)
@pytest.mark.parametrize("key", TOP_KEYS)
def test_any_wrong_value_for_a_top_level_key(key: str, value: Any) -> None:
    data = {"wfx": 1, "steps": [{"run": "x"}], key: value}
    found = validate(document(data))
    assert well_formed(found)


@pytest.mark.parametrize("value", WRONG, ids=repr)
@pytest.mark.parametrize("key", STEP_KEYS)
def test_any_wrong_value_for_a_step_key(key: str, value: Any) -> None:
    data = {"wfx": 1, "steps": [{"run": "x", key: value}]}
    found = validate(document(data))
    assert well_formed(found)


@pytest.mark.parametrize(
    "data",
    [
        {"wfx": 1, "steps": [[{"run": "x"}]]},
        {"wfx": 1, "steps": [{"steps": [{"steps": "x"}]}]},
        {"wfx": 1, "steps": [{"run": "x", "rollback": {"rollback": {"run": "y"}}}]},
        {"wfx": 1, "steps": [{"run": "x", "retries": {"max": {"max": 1}}}]},
        {"wfx": 1, "inputs": {"a": {"type": "choice", "enum": []}}, "steps": [{"run": "x"}]},
        {"wfx": 1, "inputs": {"": None}, "env": {"": None}, "steps": [{"run": "x"}]},
        {"wfx": [1], "steps": {"steps": []}, "finally": [None, 1, "x"], "outputs": {"a": []}},
        {"wfx": 1, "steps": [{"needs": [[], {}], "uses": "python:a:b", "with": None}]},
        {str(n): n for n in range(200)},
    ],
)
def test_hostile_shapes_give_diagnostics(data: dict[str, Any]) -> None:
    found = validate(document(data))
    assert found
    assert well_formed(found)


def test_deeply_nested_groups_are_fine() -> None:
    step: dict[str, Any] = {"run": "x", "timeout": "soon"}
    for _ in range(40):
        step = {"steps": [step]}
    found = validate(document({"wfx": 1, "steps": [step]}))
    assert [d.message for d in found] == [
        "`timeout` must be a duration like `30s`, `5m` or `1h30m`, got `soon`"
    ]


def test_hostile_yaml_text_round_trip() -> None:
    text = "wfx: 1\nsteps:\n  - steps:\n      - [run, x]\n      - {run: {run: x}}\n  - 3\n"
    found = validate(loads(text, "t.yaml"))
    assert [(d.span.line, d.span.column) for d in found if d.span] == [(4, 9), (5, 15), (6, 5)]


scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False)
keys = st.sampled_from([*STEP_KEYS, *TOP_KEYS, "max", "delay", "type", "x", "if"])
values = st.recursive(
    scalars | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(keys, values, max_size=6))
def test_random_shapes_never_raise(data: dict[str, Any]) -> None:
    assert well_formed(validate(document(data)))


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(keys, values, max_size=5))
def test_random_shapes_from_yaml_text_point_into_the_file(data: dict[str, Any]) -> None:
    text = yaml.safe_dump(data, sort_keys=False)
    parsed = loads(text, "t.yaml")
    line_count = max(1, len(text.splitlines()))
    for diagnostic in validate(parsed):
        assert diagnostic.span is not None
        assert 1 <= diagnostic.span.line <= line_count
