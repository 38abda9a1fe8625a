"""Positions, diagnostics and the error types shared by every stage.

Every problem wfx reports is a :class:`Diagnostic`: a severity, a stable code, a
message, where it is (a :class:`Span`) and an optional hint. Stages collect them
and raise one :class:`DiagnosticsError` carrying all of them, so the user sees
every problem at once.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Span:
    """A region of a source file: 1-based line and column, end inclusive-exclusive."""

    file: str
    line: int
    column: int
    end_line: int = 0
    end_column: int = 0

    def at_offset(self, start: int, end: int | None = None) -> Span:
        """The span `start`..`end` characters to the right on the same line (for sub-strings)."""
        stop = start if end is None else end
        return Span(self.file, self.line, self.column + start, self.line, self.column + stop)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class Severity(enum.Enum):
    """How bad a diagnostic is: errors stop the run, warnings do not."""

    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One reported problem, with the position it points at and an optional hint."""

    severity: Severity
    code: str
    message: str
    span: Span | None = None
    hint: str | None = None

    def sort_key(self) -> tuple[str, int, int, str]:
        """Order by file, line and column; diagnostics without a span come first."""
        if self.span is None:
            return ("", 0, 0, self.message)
        return (self.span.file, self.span.line, self.span.column, self.message)


def error(code: str, message: str, span: Span | None = None, hint: str | None = None) -> Diagnostic:
    """Build an error diagnostic: the one helper every stage uses to fail."""
    return Diagnostic(Severity.ERROR, code, message, span, hint)


def warning(
    code: str, message: str, span: Span | None = None, hint: str | None = None
) -> Diagnostic:
    """Build a warning diagnostic."""
    return Diagnostic(Severity.WARNING, code, message, span, hint)


def closest(word: str, choices: Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice most like `word` (difflib's ratio at least `cutoff`), for a "did you
    mean" hint; None when none is close. difflib is imported only when a hint is wanted:
    a valid file never asks."""
    from difflib import get_close_matches  # noqa: PLC0415 - only for a mistake

    close = get_close_matches(word, list(choices), n=1, cutoff=cutoff)
    return close[0] if close else None


def sorted_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Diagnostics sorted by position, duplicates removed."""
    return sorted(set(diagnostics), key=Diagnostic.sort_key)


def has_errors(diagnostics: Iterable[Diagnostic]) -> bool:
    """True when any diagnostic is an error."""
    return any(d.severity is Severity.ERROR for d in diagnostics)


class WfxError(Exception):
    """Base of every exception wfx raises on purpose."""


@dataclass
class DiagnosticsError(WfxError):
    """Raised when a stage found errors; carries every diagnostic found so far."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(self.__str__())

    def __str__(self) -> str:
        return "\n".join(
            f"{d.span or '<input>'}: {d.severity.value}: {d.message}" for d in self.diagnostics
        )
