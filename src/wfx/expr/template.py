"""Text with ``${{ expr }}`` placeholders, split once into literal parts and Expressions.

A template that is exactly one placeholder (whitespace around it allowed)
renders to the raw value, of any type; any other renders to text, each value
converted with GitHub's string coercion.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any, Final

from wfx.diagnostics import Span
from wfx.expr.errors import ANONYMOUS_FILE, PARSING, ExpressionError, Locator
from wfx.expr.evaluator import Expression
from wfx.expr.functions import Status
from wfx.expr.parser import parse
from wfx.expr.values import to_string

OPEN: Final = "${{"
"""What opens a placeholder."""
CLOSE: Final = "}}"
"""What closes a placeholder (outside the expression's string literals)."""


@dataclass(frozen=True, slots=True)
class Template:
    """A text split into literal parts and the Expressions of its placeholders."""

    parts: tuple[str | Expression, ...]

    def is_literal(self) -> bool:
        """Whether the text has no placeholder."""
        return not self.expressions()

    def expressions(self) -> tuple[Expression, ...]:
        """The Expressions of the placeholders, in order."""
        return tuple(p for p in self.parts if isinstance(p, Expression))

    def render(self, contexts: Mapping[str, Any], *, status: Status | None = None) -> Any:
        """The raw value of a lone placeholder, else the text with every value in it."""
        expressions = self.expressions()
        literals = [p for p in self.parts if isinstance(p, str)]
        if len(expressions) == 1 and not "".join(literals).strip():
            return expressions[0].evaluate(contexts, status=status)
        return "".join(
            p if isinstance(p, str) else to_string(p.evaluate(contexts, status=status))
            for p in self.parts
        )


def parse_template(
    text: str, *, names: Collection[str] | None = None, origin: Span | None = None
) -> Template:
    """Split `text` at its ``${{ ... }}`` placeholders and parse each expression.

    An ``${{`` without its ``}}`` (string literals inside are skipped) is an
    ExpressionError at stage "parsing". Without `origin`, spans count lines and
    columns within `text`.
    """
    locator = Locator.of(text, origin or Span(ANONYMOUS_FILE, 1, 1))
    parts: list[str | Expression] = []
    position = 0
    while (opening := text.find(OPEN, position)) >= 0:
        if opening > position:
            parts.append(text[position:opening])
        inner = opening + len(OPEN)
        closing = _closing(text, inner)
        if closing < 0:
            raise ExpressionError(
                f"Unterminated expression: '{OPEN}' without '{CLOSE}'",
                stage=PARSING,
                start=opening,
                end=len(text),
                span=locator.span(opening, len(text)),
            )
        parts.append(parse(text[inner:closing], names=names, origin=locator.span(inner, inner)))
        position = closing + len(CLOSE)
    if position < len(text):
        parts.append(text[position:])
    return Template(tuple(parts))


def _closing(text: str, position: int) -> int:
    """Where the ``}}`` closing a placeholder is, skipping quoted strings; -1 when there is none."""
    while True:
        closing = text.find(CLOSE, position)
        quote = text.find("'", position)
        if closing < 0 or quote < 0 or closing < quote:
            return closing
        position = _after_string(text, quote)
        if position < 0:
            return -1


def _after_string(text: str, quote: int) -> int:
    """Where the string literal starting at `quote` ends (quotes inside are doubled), or -1."""
    position = quote + 1
    while True:
        end = text.find("'", position)
        if end < 0:
            return -1
        if text.startswith("'", end + 1):
            position = end + 2
        else:
            return end + 1
