"""The one exception of the expression language, and where its positions point.

Every failure — a bad character, a syntax error, an unknown name, a bad
``format`` string — is an :class:`ExpressionError`. It keeps the stage, the bare
message and the offsets as attributes (never glued into the message), so each
caller renders them its own way.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Final

from wfx.diagnostics import Diagnostic, Span, WfxError, error

LEXING: Final = "lexing"
"""Stage of errors in the characters themselves (and of a text over the length limit)."""
PARSING: Final = "parsing"
"""Stage of syntax errors, unknown names and functions, wrong argument counts, deep nesting."""
EVALUATION: Final = "evaluation"
"""Stage of errors found while evaluating (a bad ``format`` string, too much memory...)."""

ANONYMOUS_FILE: Final = "<expression>"
"""The file name of spans when the expression's place in a file is unknown."""


class ExpressionError(WfxError):
    """An expression that cannot be lexed, parsed or evaluated, and where it went wrong."""

    stage: str
    message: str
    start: int
    end: int
    span: Span

    def __init__(
        self, message: str, *, stage: str, start: int = 0, end: int = 0, span: Span | None = None
    ) -> None:
        self.message = message
        self.stage = stage
        self.start = start
        self.end = max(start, end)
        self.span = span if span is not None else Locator(None, ()).span(start, self.end)
        super().__init__(f"{self.span}: {message}")

    def __reduce__(self) -> tuple[object, ...]:
        return (_rebuild, (self.message, self.stage, self.start, self.end, self.span))

    def diagnostic(self) -> Diagnostic:
        """This error as a :class:`Diagnostic`, for stages that collect problems."""
        return error(f"expr.{self.stage}", self.message, self.span)


def _rebuild(message: str, stage: str, start: int, end: int, span: Span) -> ExpressionError:
    return ExpressionError(message, stage=stage, start=start, end=end, span=span)


class EvaluationFailure(ExpressionError):  # noqa: N818 - an ExpressionError, not a new kind
    """A value or function refused its input; the evaluator re-raises it with a position."""

    def __init__(self, message: str) -> None:
        super().__init__(message, stage=EVALUATION)


@dataclass(frozen=True, slots=True)
class Locator:
    """Turns character offsets into an expression's text into spans in its file."""

    origin: Span | None
    newlines: tuple[int, ...]

    @classmethod
    def of(cls, text: str, origin: Span | None) -> Locator:
        """The locator for `text`, whose first character sits at `origin` (None: unknown)."""
        if origin is None or "\n" not in text:
            return cls(origin, ())
        return cls(origin, tuple(i for i, c in enumerate(text) if c == "\n"))

    def span(self, start: int, end: int) -> Span:
        """Where the characters `start`..`end` are: in the file, or columns of the bare text."""
        if self.origin is None:
            return Span(ANONYMOUS_FILE, 1, start + 1, 1, end + 1)
        line, column = self._point(start)
        end_line, end_column = self._point(end)
        return Span(self.origin.file, line, column, end_line, end_column)

    def _point(self, offset: int) -> tuple[int, int]:
        assert self.origin is not None
        before = bisect.bisect_left(self.newlines, offset)
        if before == 0:
            return self.origin.line, self.origin.column + offset
        # later lines share the first line's indentation (a YAML block scalar's)
        indent = self.origin.column - 1
        return self.origin.line + before, offset - self.newlines[before - 1] + indent
