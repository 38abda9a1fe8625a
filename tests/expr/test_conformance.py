"""GitHub's own expression test data (actions/languageservices), every case, by id.

The cases are copied into the project, with the license that covers them, in
tests/expr/conformance/ (see its README.md). Each names its contexts, which are
also the complete list of allowed names. Missing cases fail the suite: they
are part of what every clone must run.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from wfx.expr import ExpressionError, evaluate

CONFORMANCE = Path(__file__).resolve().parent / "conformance"
CASES_FILE = CONFORMANCE / "cases.json"
EXPECTED_CASES = 1_020


def _load_cases() -> list[Any]:
    if not CASES_FILE.is_file():
        return []  # test_the_cases_are_all_there fails, loudly
    cases = json.loads(CASES_FILE.read_text(encoding="utf-8"))
    return [pytest.param(case, id=case["id"]) for case in cases]


def test_the_cases_are_all_there_with_their_license() -> None:
    assert CASES_FILE.is_file(), f"conformance cases missing: {CASES_FILE}"
    assert len(_load_cases()) == EXPECTED_CASES
    assert "MIT License" in (CONFORMANCE / "LICENSE").read_text(encoding="utf-8")


def kind_of(value: Any) -> str:
    """The GitHub kind name of a result value."""
    if value is None:
        return "Null"
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, (int, float)):
        return "Number"
    if isinstance(value, str):
        return "String"
    if isinstance(value, list):
        return "Array"
    assert isinstance(value, dict), f"unexpected result type {type(value)}"
    return "Object"


_NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def same(actual: Any, expected: Any) -> bool:
    """Equal as GitHub values: kinds must match, numbers compare numerically, NaN equals NaN."""
    if isinstance(expected, dict) and set(expected) == {"$number"}:
        expected = _NON_FINITE[expected["$number"]]
    if kind_of(actual) != kind_of(expected):
        return False
    if isinstance(expected, float) and math.isnan(expected):
        return math.isnan(actual)
    if isinstance(expected, list):
        return len(actual) == len(expected) and all(map(same, actual, expected))
    if isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            same(actual[key], value) for key, value in expected.items()
        )
    return bool(actual == expected)


@pytest.mark.parametrize("case", _load_cases())
def test_case(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(ExpressionError) as raised:
            evaluate(case["expr"], case["contexts"])
        assert raised.value.stage == case["error_kind"], raised.value
        return
    actual = evaluate(case["expr"], case["contexts"])
    assert kind_of(actual) == case["expected_kind"], actual
    assert same(actual, case["expected"]), (actual, case["expected"])


def test_numbers_come_back_as_float() -> None:
    assert type(evaluate("foo", {"foo": 3})) is float
    assert evaluate("foo", {"foo": [1, {"a": 2}]}) == [1.0, {"a": 2.0}]
    assert type(evaluate("foo", {"foo": [1]})[0]) is float
