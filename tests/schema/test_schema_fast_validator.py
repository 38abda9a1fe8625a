"""The validator wfx runs (references inlined, annotations dropped, "exactly one of these
keys" counted) finds exactly the errors plain jsonschema finds with the schema as written:
same places, same keywords, same rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.validators import Draft202012Validator

from wfx import schema as wfx_schema
from wfx.diagnostics import DiagnosticsError
from wfx.source import load

ROOT = Path(__file__).resolve().parents[2]


def _documents() -> dict[str, Any]:
    """Every example and invalid example that gets as far as the schema stage."""
    found = {}
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        try:
            found[str(path.relative_to(ROOT))] = load(path).data
        except DiagnosticsError:
            continue  # broken YAML: stops before the schema stage
    return found


DOCUMENTS = _documents()
PLAIN = Draft202012Validator(wfx_schema.schema())


def verdicts(validator: Any, data: Any) -> list[tuple[Any, ...]]:
    """Every error as (where in the document, keyword, its rule), with the errors inside
    alternatives, except inside "exactly one of these keys" (the one `oneOf` wfx counts
    instead of validating: its branches only ever say which keys are missing)."""
    found: list[tuple[Any, ...]] = []

    def collect(error: Any) -> None:
        rule = as_run(error.validator_value)
        found.append((tuple(error.absolute_path), error.validator, rule))
        if error.validator == "oneOf" and wfx_schema._is_exactly_one_key(error.validator_value):
            return
        for inner in error.context or ():
            collect(inner)

    for error in validator.iter_errors(data):
        collect(error)
    return sorted(found, key=repr)


_RUN_FORMS: dict[str, str] = {}


def as_run(rule: Any) -> str:
    """A rule of the schema as written, in the form the validator wfx runs holds it (its
    repr). Inlining goes through every definition: each rule is inlined once, since the
    same few rules make most errors."""
    written = repr(rule)
    if written not in _RUN_FORMS:
        inlined = wfx_schema._inlined({"$defs": wfx_schema.schema()["$defs"], "rule": rule})
        _RUN_FORMS[written] = repr(inlined["rule"])
    return _RUN_FORMS[written]


def agree(data: Any) -> None:
    assert verdicts(wfx_schema._validator(), data) == verdicts(PLAIN, data)


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_example_and_invalid_example_gets_the_same_errors(name: str) -> None:
    agree(DOCUMENTS[name])


STEP_KEYS = [*sorted(wfx_schema.schema()["$defs"]["step"]["properties"]), "bogus", "default"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 5),
    st.sampled_from(["", "x", "5s", "10 minutes", "${{ inputs.a }}", "parallel", "fail", "a-b"]),
    st.lists(st.sampled_from(["a", "b", "", 1]), max_size=3),
    st.dictionaries(st.sampled_from(["max", "delay", "A", "run", "x"]), st.integers(0, 3)),
)


@st.composite
def steps(draw: st.DrawFn, depth: int = 0) -> dict[str, Any]:
    step = draw(st.dictionaries(st.sampled_from(STEP_KEYS), VALUES, max_size=5))
    if depth < 2 and draw(st.booleans()):
        step["steps"] = draw(st.lists(steps(depth + 1), max_size=3))
    if draw(st.booleans()):
        step["rollback"] = draw(st.dictionaries(st.sampled_from(STEP_KEYS), VALUES, max_size=3))
    return step


@pytest.mark.slow
@settings(max_examples=100, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(steps(), min_size=0, max_size=4),
    st.dictionaries(
        st.sampled_from(
            ["wfx", "name", "timeout", "maxParallel", "type", "defaults", "env", "inputs", "bogus"]
        ),
        VALUES,
    ),
)
def test_random_workflows_get_the_same_errors(step_list: list[Any], top: dict[str, Any]) -> None:
    agree({"wfx": 1, **top, "steps": step_list})
