"""Positions and ranges in a text, as the language server speaks of them: 0-based lines
and 0-based character columns (code points; the server converts to the client's units)."""

from __future__ import annotations

from dataclasses import dataclass

from wfx.diagnostics import Span


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in a text: 0-based line and character."""

    line: int
    character: int


@dataclass(frozen=True, slots=True)
class Range:
    """A region of a text, end exclusive."""

    start: Position
    end: Position

    def contains(self, position: Position) -> bool:
        """True when `position` lies in the range (its end included: the cursor after a word)."""
        return self.start <= position <= self.end


def span_range(span: Span | None, lines: list[str]) -> Range:
    """The range of a wfx Span (1-based, end exclusive); a span without an end (or an empty
    one) covers the word it starts at, so an editor has something to underline."""
    if span is None:
        return Range(Position(0, 0), Position(0, len(lines[0]) if lines else 0))
    start = Position(max(span.line - 1, 0), max(span.column - 1, 0))
    end = Position(max(span.end_line - 1, 0), max(span.end_column - 1, 0))
    if end <= start:
        end = Position(start.line, _word_end(lines, start))
    return Range(start, end)


def _word_end(lines: list[str], start: Position) -> int:
    line = lines[start.line] if start.line < len(lines) else ""
    end = start.character
    while end < len(line) and not line[end].isspace():
        end += 1
    return max(end, start.character + 1) if start.character < len(line) else start.character


def word_at(line: str, character: int, extra: str = "-_") -> tuple[str, int, int]:
    """The word (letters, digits and `extra`) around `character` in `line`: the word, its
    start and its end."""
    start = end = min(max(character, 0), len(line))
    while start > 0 and (line[start - 1].isalnum() or line[start - 1] in extra):
        start -= 1
    while end < len(line) and (line[end].isalnum() or line[end] in extra):
        end += 1
    return line[start:end], start, end
