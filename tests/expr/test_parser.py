"""Parsing: the AST it builds, where errors point, what is rejected before evaluation."""

from __future__ import annotations

import pytest

from wfx.diagnostics import Span
from wfx.expr import ExpressionError, Reference, parse, unparse
from wfx.expr.ast import (
    Binary,
    Filter,
    FunctionCall,
    Index,
    Literal,
    Logical,
    NamedValue,
    Not,
    Property,
)


def test_builds_an_ast_of_plain_nodes() -> None:
    root = parse("!(a.b[0] == 'x') && contains(c.*, 1) || d").root
    assert root == Logical(
        "||",
        (
            Logical(
                "&&",
                (
                    Not(
                        Binary(
                            "==",
                            Index(Property(NamedValue("a"), "b"), Literal(0.0)),
                            Literal("x"),
                        )
                    ),
                    FunctionCall("contains", (Filter(NamedValue("c")), Literal(1.0))),
                ),
            ),
            NamedValue("d"),
        ),
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("null", None),
        ("true", True),
        ("false", False),
        ("0xff", 255.0),
        ("0o17", 15.0),
        ("0b101", 5.0),
        ("-1.5e2", -150.0),
        (".5", 0.5),
        ("'it''s'", "it's"),
        ("'a''''b'", "a''b"),
        ("Infinity", float("inf")),
        ("-Infinity", float("-inf")),
    ],
)
def test_literals(text: str, value: object) -> None:
    assert parse(text).root == Literal(value)  # type: ignore[arg-type]


def test_nan_literal_equals_itself_in_the_ast() -> None:
    assert parse("NaN").root == Literal(float("nan"))
    assert Literal(True) != Literal(1.0)


def test_empty_expression_is_null() -> None:
    assert parse("").root == Literal(None)
    assert parse("  \n ").root == Literal(None)


def test_keywords_after_a_dot_are_names() -> None:
    assert parse("a.true.null.NaN").root == Property(
        Property(Property(NamedValue("a"), "true"), "null"), "NaN"
    )


def test_parentheses_leave_no_node() -> None:
    assert parse("((a))").root == NamedValue("a")
    assert parse("(a || b) && c").root == Logical(
        "&&", (Logical("||", (NamedValue("a"), NamedValue("b"))), NamedValue("c"))
    )


def test_trailing_comma_in_arguments_is_allowed_as_on_github() -> None:
    assert parse("format('{0}', 1,)").root == FunctionCall("format", (Literal("{0}"), Literal(1.0)))


@pytest.mark.parametrize(
    ("text", "stage"),
    [
        ("a == ", "parsing"),
        ("a b", "parsing"),
        ("'abc'[0]", "parsing"),  # only names, calls and groups take an index
        ("1.foo", "lexing"),
        ("'a'.foo", "lexing"),
        ("a*b", "lexing"),
        ("a = b", "lexing"),
        ("a & b", "lexing"),
        ("'open", "lexing"),
        ("1 2 0x1Z", "lexing"),  # every lexing error wins over a syntax error
        ("a.1", "parsing"),
        ("x" * 21_001, "lexing"),
    ],
)
def test_rejected_text(text: str, stage: str) -> None:
    with pytest.raises(ExpressionError) as raised:
        parse(text)
    assert raised.value.stage == stage


def test_unknown_names_and_functions_are_parse_errors_even_when_never_evaluated() -> None:
    with pytest.raises(ExpressionError, match="named-value: 'nope'") as raised:
        parse("false && nope", names=["github"])
    assert raised.value.stage == "parsing"
    with pytest.raises(ExpressionError, match="Unrecognized function: 'nope'"):
        parse("false && nope()")


def test_names_ignore_case_and_none_allows_any() -> None:
    found = parse("GitHub.ref", names=["github"])
    assert [r.path for r in found.references()] == [("GitHub", "ref")]
    assert found.evaluate({"github": {"ref": "main"}}) == "main"
    with pytest.raises(ExpressionError, match="named-value: 'GitHub'"):
        parse("GitHub.ref", names=["inputs"])
    anything = parse("anything.at.all")
    assert [r.path for r in anything.references()] == [("anything", "at", "all")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("contains('a')", "Too few parameters supplied: 'contains'"),
        ("join(1, 2, 3)", "Too many parameters supplied: 'join'"),
        ("case(true, 1, false, 2)", "Even number of parameters supplied"),
        ("success(1)", "Too many parameters supplied: 'success'"),
    ],
)
def test_argument_counts_are_checked_when_parsing(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message) as raised:
        parse(text)
    assert raised.value.stage == "parsing"


def test_function_names_ignore_case() -> None:
    expression = parse("TOJSON(fromjson('[]')) && Success()")
    assert expression.functions() == frozenset({"tojson", "fromjson", "success"})
    assert expression.uses_status_function()
    assert not parse("contains(a, b)").uses_status_function()


def test_error_offsets_and_span_without_origin() -> None:
    with pytest.raises(ExpressionError) as raised:
        parse("github.ref == env.X", names=["github"])
    error = raised.value
    assert (error.start, error.end) == (14, 17)
    assert error.span == Span("<expression>", 1, 15, 1, 18)
    assert error.message == "Unrecognized named-value: 'env'"
    assert str(error) == "<expression>:1:15: Unrecognized named-value: 'env'"


def test_error_span_with_origin_on_one_line() -> None:
    with pytest.raises(ExpressionError) as raised:
        parse("github.ref == env.X", names=["github"], origin=Span("w.yml", 7, 20))
    assert raised.value.span == Span("w.yml", 7, 34, 7, 37)
    assert (raised.value.start, raised.value.end) == (14, 17)


def test_error_span_with_origin_on_a_later_line() -> None:
    text = "github.ref == 'x'\n  && env.X"
    with pytest.raises(ExpressionError) as raised:
        parse(text, names=["github"], origin=Span("w.yml", 7, 20))
    # a later line shares the first line's indentation (as in a YAML block scalar)
    assert raised.value.span == Span("w.yml", 8, 25, 8, 28)
    assert text[raised.value.start : raised.value.end] == "env"


def test_nodes_carry_spans_but_compare_without_them() -> None:
    here = parse("a.b", origin=Span("w.yml", 3, 5))
    there = parse("a.b")
    assert here.root == there.root
    assert here.root.span == Span("w.yml", 3, 5, 3, 8)
    assert here.span == Span("w.yml", 3, 5, 3, 8)
    assert isinstance(here.root, Property)
    assert here.root.target.span == Span("w.yml", 3, 5, 3, 6)


def test_references_follow_literal_paths() -> None:
    expression = parse(
        "steps.build.outputs['x'] == env.HOME && join(matrix.*.name, inputs[format('{0}', a)])"
    )
    paths = [r.path for r in expression.references()]
    assert paths == [
        ("steps", "build", "outputs", "x"),
        ("env", "HOME"),
        ("matrix",),
        ("inputs",),
        ("a",),
    ]


def test_reference_spans_cover_the_path() -> None:
    (reference,) = parse("  steps.Build.outputs.x[0]", origin=Span("w.yml", 2, 1)).references()
    assert reference == Reference(("steps", "Build", "outputs", "x"), Span("w.yml", 2, 3, 2, 24))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a || b && c", "a || b && c"),
        ("(a || b) && c", "(a || b) && c"),
        ("a == (b == c)", "a == (b == c)"),
        ("(a == b) == c", "a == b == c"),
        ("!(a == b)", "!(a == b)"),
        ("(fromJSON('[1]'))[0]", "fromJSON('[1]')[0]"),
        ("('abc').length", "('abc').length"),
        ("x['it''s']", "x['it''s']"),
        ("a[*].b.*", "a.*.b.*"),
        ("-0 == 1.5e300", "-0 == 1.5e+300"),
    ],
)
def test_unparse(text: str, expected: str) -> None:
    expression = parse(text)
    assert unparse(expression) == expected
    assert parse(unparse(expression)).root == expression.root


def test_unparse_adds_the_parentheses_a_hand_built_tree_needs() -> None:
    tree = Not(Logical("||", (Literal(1.0), Logical("||", (NamedValue("a"), Literal("b"))))))
    assert unparse(tree) == "!(1 || (a || 'b'))"
    assert parse(unparse(tree)).root == tree
    assert unparse(Property(NamedValue("a"), "not a name")) == "a['not a name']"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("!" * 49 + "true", True),
        ("!" * 50 + "true", False),
        ("a" + ".b" * 49, True),
        ("a" + ".b" * 50, False),
        ("a" + "[0]" * 49, True),
        ("a" + "[0]" * 50, False),
        ("(" * 49 + "1" + ")" * 49, True),
        ("(" * 50 + "1" + ")" * 50, False),
        ("f(" * 10, False),  # unbalanced: a syntax error, not a crash
        (" || ".join(["a"] * 200), True),  # a flat run adds one level only
        ("1" + " == 1" * 100, True),  # comparisons do not count on GitHub...
        ("1" + " == 1" * 128, False),  # ...but wfx bounds the tree they build
    ],
)
def test_depth_limit_is_githubs(text: str, ok: bool) -> None:
    if ok:
        parse(text)
        return
    with pytest.raises(ExpressionError) as raised:
        parse(text)
    assert raised.value.stage == "parsing"


def test_depth_counts_like_githubs_parser_for_nested_logic() -> None:
    # each level adds two: the function's argument, and the `||` after its first operand
    def nested(levels: int) -> str:
        return "format('x' || " * levels + "'y'" + ")" * levels

    parse(nested(24))
    with pytest.raises(ExpressionError, match="depth 50"):
        parse(nested(25))


def test_parse_is_cached_and_returns_equal_expressions() -> None:
    assert parse("a.b", names={"a"}) is parse("a.b", names=["A"])
