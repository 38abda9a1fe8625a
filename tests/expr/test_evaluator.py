"""Evaluation beyond GitHub's own cases: status, memory, odd contexts, wfx's result types."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from wfx.expr import ExpressionError, Status, evaluate, is_truthy, parse, to_string
from wfx.expr.ast import FunctionCall, Literal
from wfx.expr.functions import to_json


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (None, [True, False, True, False]),
        (Status(), [True, False, True, False]),
        (Status(failed=True), [False, True, True, False]),
        (Status(cancelled=True), [False, False, True, True]),
    ],
)
def test_status_functions(status: Status | None, expected: list[bool]) -> None:
    results = [
        evaluate(f"{name}()", {}, status=status)
        for name in ("success", "failure", "always", "cancelled")
    ]
    assert results == expected


def test_logical_operators_return_an_operand() -> None:
    contexts = {"a": "", "b": [1], "c": 0}
    assert evaluate("a || b", contexts) == [1.0]
    assert evaluate("b && c", contexts) == 0.0
    assert evaluate("a && b", contexts) == ""
    assert evaluate("c || a", contexts) == ""


def test_properties_and_contexts_ignore_case() -> None:
    contexts = {"Env": {"HOME": "/root"}}
    assert evaluate("env.home", contexts) == "/root"
    assert evaluate("ENV['Home']", contexts) == "/root"


def test_an_exact_key_wins_over_one_differing_in_case() -> None:
    assert evaluate("env.path", {"env": {"PATH": "upper", "path": "lower"}}) == "lower"


def test_missing_things_are_null() -> None:
    contexts = {"a": {"b": [1, 2]}}
    assert evaluate("a.nope.deeper", contexts) is None
    assert evaluate("a.b[5]", contexts) is None
    assert evaluate("a.b.length", contexts) is None
    assert parse("z.y").evaluate({}) is None


def test_results_are_plain_json_data_with_float_numbers() -> None:
    result = evaluate("a", {"a": ({"n": 1, 2: True}, [3])})
    assert result == [{"n": 1.0, "2": True}, [3.0]]
    assert isinstance(result, list)
    assert type(result[0]["n"]) is float
    assert type(evaluate("a.*", {"a": {"x": 1}})) is list


def test_contexts_may_be_any_mapping_and_sequence() -> None:
    class Context(dict[str, Any]):
        pass

    assert evaluate("c.items[1]", Context(c=Context(items=(1, 2)))) == 2.0


def test_unsupported_context_values_are_evaluation_errors() -> None:
    with pytest.raises(ExpressionError, match="Unsupported value of type 'object'") as raised:
        evaluate("format('{0}', a.b)", {"a": {"b": object()}})
    assert raised.value.stage == "evaluation"
    assert evaluate("a.c", {"a": {"b": object(), "c": 1}}) == 1.0  # only what is touched


def test_a_value_containing_itself_is_an_error_not_a_hang() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    with pytest.raises(ExpressionError, match="contains itself"):
        evaluate("a", {"a": loop})
    with pytest.raises(ExpressionError, match="contains itself"):
        evaluate("toJSON(a)", {"a": loop})
    shared = [1]
    assert evaluate("a", {"a": [shared, shared]}) == [[1.0], [1.0]]


def test_evaluation_errors_point_at_the_function() -> None:
    with pytest.raises(ExpressionError) as raised:
        evaluate("a == format('{1}', 'x')", {"a": 1})
    error = raised.value
    assert error.stage == "evaluation"
    assert (error.start, error.end) == (5, 23)
    assert "references more arguments" in error.message


@pytest.mark.parametrize(
    "template", ["{0", "0}", "{x}", "{0:x}", "{ 0}", "{0.__class__}", "{-1}", "}{"]
)
def test_format_rejects_bad_placeholders(template: str) -> None:
    with pytest.raises(ExpressionError, match="format string is invalid"):
        evaluate(f"format('{template}', 'a')", {})


def test_format_placeholders_and_escapes() -> None:
    assert evaluate("format('{{{0}}} {1}{0} {00}', 'a', 'b')", {}) == "{a} ba a"
    with pytest.raises(ExpressionError, match="more arguments"):
        evaluate("format('{99999999999999999999}', 'a')", {})


def test_live_results_are_limited_to_one_mebibyte() -> None:
    big = "x" * 300_000
    assert len(evaluate("format('{0}', a)", {"a": big})) == 300_000
    with pytest.raises(ExpressionError, match="maximum allowed memory") as raised:
        evaluate("format('{0}{0}', a) == format('{0}{0}', a)", {"a": big})
    assert raised.value.stage == "evaluation"


def test_sequential_results_do_not_add_up_but_the_total_is_bounded() -> None:
    contexts = {"a": "x" * 200_000}
    expression = " && ".join(["format('{0}{0}', a)"] * 10)
    assert len(evaluate(expression, contexts)) == 400_000
    with pytest.raises(ExpressionError, match="maximum allowed memory"):
        evaluate(" && ".join(["format('{0}{0}', a)"] * 100), contexts)


def test_join_and_to_json_count_their_output() -> None:
    with pytest.raises(ExpressionError, match="maximum allowed memory"):
        evaluate("join(a, a[0])", {"a": ["x" * 1000] * 1000})
    with pytest.raises(ExpressionError, match="maximum allowed memory"):
        evaluate("toJSON(a)", {"a": ["x" * 1000] * 1000})


def test_from_json_rejects_what_javascript_rejects() -> None:
    for text in ("NaN", "[Infinity]", "{'a': 1}", "[1,]", "", "   "):
        with pytest.raises(ExpressionError) as raised:
            evaluate("fromJSON(a)", {"a": text})
        assert raised.value.stage == "evaluation"
    assert evaluate("fromJSON(a)", {"a": "[1e308, -1e-400]"}) == [1e308, 0]


@pytest.mark.parametrize("text", ["1e400", "-1e400", "[1, 1e309]", "1" * 5000, '{"a": -2e308}'])
def test_from_json_refuses_numbers_json_cannot_hold(text: str) -> None:
    # a double cannot hold them: Infinity would come back, which is not a JSON value
    with pytest.raises(ExpressionError) as raised:
        evaluate("fromJSON(a)", {"a": text})
    assert raised.value.stage == "evaluation"
    assert "is out of range" in raised.value.message


def test_deep_json_is_an_evaluation_error_not_a_recursion_error() -> None:
    for depth in (100_000, 5_000):
        with pytest.raises(ExpressionError) as raised:
            evaluate("fromJSON(a)", {"a": "[" * depth + "]" * depth})
        assert raised.value.stage == "evaluation"


def nested_lists(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


def test_deep_values_survive_to_json_and_results() -> None:
    assert evaluate("toJSON(a)", {"a": nested_lists(400)}).count("[") == 401
    with pytest.raises(ExpressionError, match="maximum allowed memory"):  # indentation adds up
        evaluate("toJSON(a)", {"a": nested_lists(5_000)})
    result = evaluate("a", {"a": nested_lists(5_000)})
    for _ in range(5_000):
        result = result[0]
    assert result == []


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "true"),
        (1.0, "1"),
        (-0.0, "0"),
        (0.1 + 0.2, "0.3"),
        (1e15, "1E+15"),
        (123456789012345.0, "123456789012345"),
        (1e-5, "1E-05"),
        (0.0001, "0.0001"),
        (2**70, "1.18059162071741E+21"),
        (math.nan, "NaN"),
        (-math.inf, "-Infinity"),
        ([1], "Array"),
        ({}, "Object"),
        ("ß", "ß"),
    ],
)
def test_to_string(value: Any, text: str) -> None:
    assert to_string(value) == text


@pytest.mark.parametrize(
    ("value", "truthy"),
    [
        (None, False),
        (0, False),
        (math.nan, False),
        ("", False),
        ("0", True),
        ([], True),
        ({}, True),
        (-1, True),
    ],
)
def test_is_truthy(value: Any, truthy: bool) -> None:
    assert is_truthy(value) is truthy


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1e21, "1e+21"),
        (1e-7, "1e-7"),
        (1.5e-6, "0.0000015"),
        (123456789012345680000.0, "123456789012345680000"),
        (0.5, "0.5"),
        (-2.0, "-2"),
        (math.nan, "null"),
        ('\ud800\n"', '"\\ud800\\n\\""'),
    ],
)
def test_to_json_writes_javascript_numbers_and_strings(value: Any, text: str) -> None:
    assert to_json(value) == text


def test_to_json_matches_json_module_for_plain_data() -> None:
    value = {"a": [1.5, "x", None, True, {"b": []}], "c": {}}
    assert to_json(value) == json.dumps(value, indent=2)


def test_strings_compare_as_upper_case_utf16_code_units() -> None:
    assert evaluate("'a' < '['", {}) is True
    assert evaluate("'\uffff' < '\U00010000'", {}) is False  # U+10000 is D800 DC00 in UTF-16
    assert evaluate("'ı' == 'I'", {}) is False


def test_a_hand_built_tree_with_an_unknown_function_fails_cleanly() -> None:
    expression = parse("1")
    broken = type(expression)(
        expression.text, FunctionCall("nope", (Literal(1.0),)), expression.span
    )
    with pytest.raises(ExpressionError, match="Unrecognized function"):
        broken.evaluate({})
