"""The yes/no schema check (wfx.schemacheck) that spares importing jsonschema for valid
files agrees with plain jsonschema on every example, every invalid example and random
workflows, valid and not; and a valid file is read without importing jsonschema."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema.validators import Draft202012Validator, extend

from wfx import schema as wfx_schema
from wfx import schemacheck
from wfx.diagnostics import DiagnosticsError
from wfx.source import load

ROOT = Path(__file__).resolve().parents[2]
STOCK = Draft202012Validator(wfx_schema.schema())
#: plain jsonschema with wfx's one change of meaning: NaN is no number (see the last test)
PLAIN = extend(
    Draft202012Validator,
    type_checker=Draft202012Validator.TYPE_CHECKER.redefine(
        "number",
        lambda _checker, value: (
            not math.isnan(value)
            if isinstance(value, float)
            else isinstance(value, int) and not isinstance(value, bool)
        ),
    ),
)(wfx_schema.schema())


def _documents() -> dict[str, Any]:
    found = {}
    for path in sorted((ROOT / "examples").rglob("*.yaml")):
        try:
            found[str(path.relative_to(ROOT))] = load(path).data
        except DiagnosticsError:
            continue  # broken YAML: stops before the schema stage
    return found


DOCUMENTS = _documents()


def agree(data: Any) -> None:
    assert schemacheck.is_valid(data) == PLAIN.is_valid(data), json.dumps(data, default=str)


def test_the_examples_hold_both_verdicts() -> None:
    verdicts = {PLAIN.is_valid(data) for data in DOCUMENTS.values()}
    assert verdicts == {True, False}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_every_example_and_invalid_example_gets_the_same_verdict(name: str) -> None:
    agree(DOCUMENTS[name])


#: valid steps to start from, each then changed at one key (or not)
BASES: list[dict[str, Any]] = [
    {"id": "a", "run": "echo hi"},
    {"id": "b", "cmd": ["true"], "timeout": "5s", "retry": {"max": 2, "delay": "1s"}},
    {"id": "c", "uses": "python:tools:deploy", "with": {"x": 1}},
    {"id": "d", "type": "parallel", "maxParallel": 2, "steps": [{"id": "e", "run": "true"}]},
    {
        "id": "f",
        "run": "true",
        "needs": ["a"],
        "condition": "${{ inputs.go }}",
        "onError": "continue",
    },
    {"id": "g", "run": "true", "rollback": {"run": "undo"}, "env": {"A": "1"}},
    {"id": "h", "run": "true", "forEach": ["x", "y"], "shell": "bash"},
]
STEP_KEYS = [*sorted(wfx_schema.schema()["$defs"]["step"]["properties"]), "bogus"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["", "x", "5s", "10 minutes", "${{ inputs.a }}", "parallel", "fail", "a-b"]),
    st.sampled_from(
        ["sequential", "continue", "bash", "1m", "Abc", "a b", "python:m:f", "./x.yaml"]
    ),
    st.lists(st.sampled_from(["a", "b", "", 1, True]), max_size=3),
    st.dictionaries(st.sampled_from(["max", "delay", "A", "run", "x", "on"]), st.integers(0, 3)),
    st.dictionaries(
        st.sampled_from(["max", "delay", "backoff", "jitter"]), st.sampled_from(["1s", 2, 0.5])
    ),
)


@st.composite
def steps(draw: st.DrawFn) -> dict[str, Any]:
    step = dict(draw(st.sampled_from(BASES)))
    for _ in range(draw(st.integers(0, 2))):
        key = draw(st.sampled_from(STEP_KEYS))
        if draw(st.booleans()):
            step.pop(key, None)
        else:
            step[key] = draw(VALUES)
    return step


TOP_KEYS = ["wfx", "name", "timeout", "maxParallel", "type", "defaults", "env", "inputs", "bogus"]


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    st.lists(steps(), min_size=0, max_size=4),
    st.dictionaries(st.sampled_from(TOP_KEYS), VALUES, max_size=2),
    st.booleans(),
)
def test_random_workflows_get_the_same_verdict(
    step_list: list[Any], top: dict[str, Any], changed: bool
) -> None:
    agree({"wfx": 1, **(top if changed else {}), "steps": step_list})


def test_both_verdicts_come_up_in_random_workflows() -> None:
    seen: set[bool] = set()

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.lists(steps(), min_size=1, max_size=3))
    def collect(step_list: list[Any]) -> None:
        seen.add(PLAIN.is_valid({"wfx": 1, "steps": step_list}))

    collect()
    assert seen == {True, False}


def test_a_valid_file_is_checked_without_jsonschema(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text("wfx: 1\nsteps:\n  - {id: a, run: 'true'}\n")
    (tmp_path / "bad.yaml").write_text("wfx: 1\nsteps:\n  - {id: a, rnu: 'true'}\n")
    probe = (
        "import sys; from wfx import api; from wfx.diagnostics import DiagnosticsError\n"
        "try: api.load_document(sys.argv[1])\n"
        "except DiagnosticsError as exc: print(exc.diagnostics[0].message)\n"
        "print('jsonschema' in sys.modules)"
    )
    env = {**os.environ, "WFX_NO_CACHE": "1"}

    def imports_jsonschema(name: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, "-c", probe, str(tmp_path / name)],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        )
        return done.stdout.splitlines()

    assert imports_jsonschema("wf.yaml") == ["False"]
    bad = imports_jsonschema("bad.yaml")
    assert bad[-1] == "True"  # the full report still comes from jsonschema
    assert "exactly one of" in bad[0]


NAN_PLACES = {
    "timeout": {"wfx": 1, "timeout": float("nan"), "steps": [{"run": "x"}]},
    "factor": {"wfx": 1, "steps": [{"run": "x", "retries": {"factor": float("nan")}}]},
    "jitter": {"wfx": 1, "steps": [{"run": "x", "retries": {"jitter": float("nan")}}]},
    "resources": {"wfx": 1, "steps": [{"run": "x", "resources": {"gpu": float("nan")}}]},
}


@pytest.mark.parametrize("place", sorted(NAN_PLACES))
def test_nan_is_no_number_for_either_check(place: str) -> None:
    """`.nan` passes every `minimum` and `maximum` (no comparison with it holds), so wfx
    counts it as no number at all: both checks refuse it, where plain jsonschema admits
    it (it crashed the run when it reached a timeout)."""
    data = NAN_PLACES[place]
    assert STOCK.is_valid(data)
    assert not PLAIN.is_valid(data)
    assert not schemacheck.is_valid(data)
    assert not wfx_schema._validator().is_valid(data)
    finite = json.loads(json.dumps(data).replace("NaN", "1"))
    assert schemacheck.is_valid(finite) and wfx_schema._validator().is_valid(finite)


scalars_and_more = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 3) | st.floats(-3, 3) | st.text("ab", max_size=2),
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.text("ab", max_size=1), inner),
    max_leaves=4,
)


@given(st.lists(scalars_and_more, max_size=8))
def test_unique_items_has_jsonschemas_meaning_in_linear_time_for_scalars(items: list[Any]) -> None:
    """`uniqueItems` by a set of keys for scalars agrees with comparing every pair."""
    pairwise = not any(
        schemacheck._equal(a, b) for i, a in enumerate(items) for b in items[i + 1 :]
    )
    assert schemacheck._unique(items) == pairwise


def test_a_long_list_of_names_is_checked_without_comparing_pairs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every `needs` is such a list: pairwise, 3,000 names repeated by YAML aliases in a
    100 KB file took minutes to check."""
    calls = []
    monkeypatch.setattr(schemacheck, "_equal", lambda a, b: calls.append(1) or a == b)
    names = [f"s{i}" for i in range(3000)]
    assert schemacheck._unique(names)
    assert not schemacheck._unique([*names, "s7"])
    assert calls == []
