"""Templates: text with ``${{ }}`` placeholders, parsed once, rendered many times."""

from __future__ import annotations

import pytest

from wfx.diagnostics import Span
from wfx.expr import Expression, ExpressionError, Status
from wfx.expr.template import parse_template

CONTEXTS = {"inputs": {"version": "v1.2.3", "replicas": 3, "tags": ["a", "b"]}}


def test_literal_text_has_no_expressions() -> None:
    template = parse_template("just text }} and { braces }")
    assert template.is_literal()
    assert template.expressions() == ()
    assert template.parts == ("just text }} and { braces }",)
    assert template.render({}) == "just text }} and { braces }"


def test_text_around_placeholders_renders_to_text() -> None:
    template = parse_template("app:${{ inputs.version }} x${{ inputs.replicas }}")
    assert not template.is_literal()
    assert [type(p) for p in template.parts] == [str, Expression, str, Expression]
    assert template.render(CONTEXTS) == "app:v1.2.3 x3"


def test_a_lone_placeholder_renders_to_the_raw_value() -> None:
    assert parse_template("${{ inputs.replicas }}").render(CONTEXTS) == 3.0
    assert parse_template("  ${{ inputs.tags }}\n").render(CONTEXTS) == ["a", "b"]
    assert parse_template("${{ inputs.tags }}!").render(CONTEXTS) == "Array!"


def test_two_placeholders_render_to_text() -> None:
    assert parse_template("${{ 1 }}${{ true }}").render({}) == "1true"


def test_status_reaches_the_expressions() -> None:
    template = parse_template("${{ failure() }}")
    assert template.render({}, status=Status(failed=True)) is True


def test_closing_braces_inside_strings_do_not_end_the_placeholder() -> None:
    template = parse_template("${{ format('}}{0}{{', 'x') }} and ${{ 'it''s }}' }}")
    assert template.render({}) == "}x{ and it's }}"


def test_names_are_checked_in_every_placeholder() -> None:
    with pytest.raises(ExpressionError, match="named-value: 'secrets'") as raised:
        parse_template("a ${{ inputs.x }} b ${{ secrets.Y }}", names=["inputs"])
    assert raised.value.stage == "parsing"
    assert raised.value.span == Span("<expression>", 1, 25, 1, 32)


@pytest.mark.parametrize("text", ["echo ${{ inputs.x", "${{ 'unterminated }}", "a ${{ b }} ${{"])
def test_unterminated_placeholder_is_a_parse_error(text: str) -> None:
    with pytest.raises(ExpressionError, match="Unterminated expression") as raised:
        parse_template(text, origin=Span("w.yml", 4, 11))
    error = raised.value
    assert error.stage == "parsing"
    opening = text.rindex("${{")
    assert error.start == opening
    assert error.span.line == 4
    assert error.span.column == 11 + opening


def test_error_positions_inside_a_multi_line_template() -> None:
    text = "line one\n  run ${{ nope.x }}"
    with pytest.raises(ExpressionError) as raised:
        parse_template(text, names=["inputs"], origin=Span("w.yml", 10, 7))
    error = raised.value
    assert error.span == Span("w.yml", 11, 17, 11, 21)  # indented like the first line
    assert (error.start, error.end) == (1, 5)  # offsets into the expression's own text


def test_expression_spans_point_into_the_file() -> None:
    template = parse_template("x: ${{ a.b }}", origin=Span("w.yml", 2, 5))
    (expression,) = template.expressions()
    assert expression.text == " a.b "
    assert expression.root.span == Span("w.yml", 2, 12, 2, 15)
    (reference,) = expression.references()
    assert reference.path == ("a", "b")
    assert reference.span == Span("w.yml", 2, 12, 2, 15)
