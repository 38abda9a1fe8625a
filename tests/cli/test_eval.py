"""`wfx eval`: values as JSON, contexts from the command line, caret diagnostics."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from wfx.cli import cli


def run_eval(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, ["eval", *args])
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize(
    ("expression", "printed"),
    [
        ("1 == '1'", "true"),
        ("'abc' || 0", '"abc"'),
        ("0x10", "16"),
        ("1.5", "1.5"),
        ("fromJSON('[1, {\"a\": null}]')", '[1, {"a": null}]'),
        ("${{ format('{0}{1}', 'a', 'b') }}", '"ab"'),
        ("null", "null"),
    ],
)
def test_values_print_as_json(expression: str, printed: str) -> None:
    assert run_eval(expression) == (0, printed + "\n", "")


def test_contexts_are_given_as_json() -> None:
    code, out, _ = run_eval(
        "inputs.env == 'PRD' && join(inputs.regions, '+')",
        "-c",
        'inputs={"env": "prd", "regions": ["eu", "us"]}',
    )
    assert (code, out) == (0, '"eu+us"\n')


def test_a_bad_expression_gets_a_caret_diagnostic() -> None:
    code, _, err = run_eval("1 == github.sha")
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("<expression>:1:6: error:")
    assert lines[1:3] == ["   1 | 1 == github.sha", "     |      ^^^^^^"]


def test_bad_context_json_is_a_diagnostic() -> None:
    code, _, err = run_eval("inputs", "-c", "inputs={nope")
    assert code == 2
    assert "context `inputs` is not valid JSON" in err


@pytest.mark.parametrize(
    "expression", ["Infinity", "${{ -Infinity }}", "NaN", "fromJSON('[1]')[5] || NaN"]
)
def test_numbers_json_cannot_hold_print_as_null(expression: str) -> None:
    code, out, _ = run_eval(expression)
    assert (code, json.loads(out)) == (0, None)


def test_from_json_of_a_number_too_large_is_an_error_not_infinity() -> None:
    code, out, err = run_eval("fromJSON('1e400')")
    assert (code, out) == (2, "")
    assert "the number 1e400 is out of range" in err
