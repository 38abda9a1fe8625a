"""Diagnostics as compiler-style text, as JSON, or as GitHub Actions annotations
(SARIF logs: :mod:`wfx.render.sarif`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping

from wfx.diagnostics import Diagnostic, Severity
from wfx.render.characters import indented, visible

#: file name -> its text, so a diagnostic can quote the line it points at
Sources = Mapping[str, str]

_MAX_QUOTE = 160


def as_text(diagnostics: Iterable[Diagnostic], sources: Sources) -> str:
    """`file:line:col: error: message`, the source line, a caret under the column, the hint."""
    blocks = [_text_block(d, sources) for d in diagnostics]
    return "\n".join(blocks)


def _text_block(diagnostic: Diagnostic, sources: Sources) -> str:
    span = diagnostic.span
    where = f"{span}: " if span else ""
    message = indented(diagnostic.message, "    ")
    lines = [f"{where}{diagnostic.severity.value}: {message}"]
    if span is not None:
        quoted = _quote(sources.get(span.file), span.line, span.column, span)
        lines.extend(quoted)
    if diagnostic.hint:
        lines.append(f"  = hint: {indented(diagnostic.hint, '    ')}")
    return "\n".join(lines)


def _quote(text: str | None, line: int, column: int, span: object) -> list[str]:
    if text is None:
        return []
    source_lines = text.splitlines()
    if not 0 < line <= len(source_lines):
        return []
    source = source_lines[line - 1].expandtabs(1)
    start = max(0, column - 1 - _MAX_QUOTE // 2) if len(source) > _MAX_QUOTE else 0
    shown = source[start : start + _MAX_QUOTE]
    width = 1
    end_line = getattr(span, "end_line", 0)
    end_column = getattr(span, "end_column", 0)
    if end_line == line and end_column > column:
        width = min(end_column - column, max(1, len(shown) - (column - 1 - start)))
    gutter = f"{line:>4} | "
    before = visible(shown[: column - 1 - start])
    marked = visible(shown[column - 1 - start : column - 1 - start + width])
    caret = " " * (len(gutter) - 2) + "| " + " " * len(before) + "^" * len(marked)
    return [gutter + visible(shown), caret]


def as_json(diagnostics: Iterable[Diagnostic]) -> str:
    """A JSON list of diagnostics: severity, code, message, file, line, column, end, hint."""
    return json.dumps([_json_record(d) for d in diagnostics], indent=2)


def _json_record(diagnostic: Diagnostic) -> dict[str, object]:
    span = diagnostic.span
    return {
        "severity": diagnostic.severity.value,
        "code": diagnostic.code,
        "message": diagnostic.message,
        "file": span.file if span else None,
        "line": span.line if span else None,
        "column": span.column if span else None,
        "endLine": span.end_line if span else None,
        "endColumn": span.end_column if span else None,
        "hint": diagnostic.hint,
    }


def as_github(diagnostics: Iterable[Diagnostic]) -> str:
    """GitHub Actions workflow commands (`::error file=...,line=...,col=...::message`)."""
    return "\n".join(_github_line(d) for d in diagnostics)


def _github_line(diagnostic: Diagnostic) -> str:
    command = "error" if diagnostic.severity is Severity.ERROR else "warning"
    span = diagnostic.span
    properties = ""
    if span is not None:
        fields = [
            f"file={_escape_property(span.file)}",
            f"line={span.line}",
            f"col={span.column}",
        ]
        if span.end_line == span.line and span.end_column > span.column:
            fields.append(f"endColumn={span.end_column}")
        fields.append(f"title={_escape_property(diagnostic.code)}")
        properties = " " + ",".join(fields)
    message = diagnostic.message + (f" (hint: {diagnostic.hint})" if diagnostic.hint else "")
    return f"::{command}{properties}::{_escape_data(visible(message))}"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


FORMATTERS: Mapping[str, Callable[[list[Diagnostic], Sources], str]] = {
    "text": as_text,
    "json": lambda diagnostics, _sources: as_json(diagnostics),
    "github": lambda diagnostics, _sources: as_github(diagnostics),
}
