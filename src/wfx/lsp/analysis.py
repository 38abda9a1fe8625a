"""One analysis per version of a document: the text checked exactly as `wfx validate` checks
a file (``api.check_text``), its diagnostics as ranges, and where each step id is written.

Nothing here raises on any text: a broken file is diagnostics, and a bug in a stage
becomes one diagnostic saying so, not a crashed server.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wfx import api
from wfx.diagnostics import Diagnostic, Severity, error
from wfx.lsp.text import Position, Range, span_range
from wfx.plan import Plan, make_plan

if TYPE_CHECKING:
    from wfx.source import Path_, SourceDocument

#: `id: NAME` in block style (`- id: x`, `  id: x`) or flow style (`{id: x, ...}`)
_ID_LINE = re.compile(r"(?:^\s*(?:-\s+)*|[{,]\s*)id:\s*[\"']?([A-Za-z_][A-Za-z0-9_-]*)")
_STEP_LISTS = ("steps", "finally")


@dataclass(frozen=True, slots=True)
class LspDiagnostic:
    """A diagnostic as an editor shows it: a range, a severity, a code and the message
    (with its hint on a second line)."""

    range: Range
    severity: Severity
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class StepSite:
    """Where a step is written: its id and the range of the id's value."""

    id: str
    range: Range
    path: tuple[Any, ...] | None = None
    """The step's path in the document (None when found in text that does not parse)."""


class Analysis:
    """A document's text and everything the features read from it, computed once."""

    def __init__(self, text: str, name: str) -> None:
        self.text = text
        self.name = name
        self.lines = text.splitlines() or [""]
        self.checked = _check(text, name)
        if self.checked.document is not None:
            _PARSED.pop(name, None)
            _PARSED[name] = self.checked.document
            while len(_PARSED) > _PARSED_MAX:
                del _PARSED[next(iter(_PARSED))]

    @property
    def document(self) -> SourceDocument | None:
        """The parsed document (None when the YAML cannot be read)."""
        return self.checked.document

    @functools.cached_property
    def diagnostics(self) -> list[LspDiagnostic]:
        """Every diagnostic `wfx validate` reports for this text, as ranges."""
        return [self._as_lsp(d) for d in self.checked.diagnostics]

    def _as_lsp(self, diagnostic: Diagnostic) -> LspDiagnostic:
        message = diagnostic.message
        if diagnostic.hint:
            message += f"\nhint: {diagnostic.hint}"
        return LspDiagnostic(
            span_range(diagnostic.span, self.lines), diagnostic.severity, diagnostic.code, message
        )

    @functools.cached_property
    def steps(self) -> dict[str, StepSite]:
        """Each step id written in the file and where: from the parsed document, else (the
        YAML is half typed) from lines that look like `id: NAME`."""
        if self.document is not None and isinstance(self.document.data, dict):
            return {site.id: site for site in document_steps(self.document)}
        return {site.id: site for site in _text_steps(self.lines)}

    @functools.cached_property
    def plan(self) -> Plan | None:
        """The plan of a workflow without errors (what `wfx explain` reads), else None."""
        compilation = self.checked.compilation
        if compilation is None:
            return None
        try:
            return make_plan(compilation.graph, compilation.warnings)
        except Exception:  # a bug in the plan must not take hover down with it
            return None


#: the last text of each file (by name) that parsed, as parsed: completion in a half-typed
#: `needs` repairs the text, often back to an earlier version (`needs: [a` -> `needs: [a]`)
_PARSED: dict[str, SourceDocument] = {}
_PARSED_MAX = 32


def parsed_before(name: str, text: str) -> SourceDocument | None:
    """The document of `text` if it is the last text of file `name` that parsed."""
    found = _PARSED.get(name)
    return found if found is not None and found.text == text else None


def analyse(text: str, name: str) -> Analysis:
    """Analyse one version of a workflow text named `name` (its path, for messages)."""
    return Analysis(text, name)


def _check(text: str, name: str) -> api.CheckedText:
    try:
        return api.check_text(text, name)
    except Exception as exc:  # any escape is a wfx bug: say so in the editor, keep serving
        problem = f"internal error in wfx while checking this file: {type(exc).__name__}: {exc}"
        hint = "please report it, with the file; `wfx validate FILE` shows the traceback"
        return api.CheckedText([error("lsp.internal", problem, None, hint)])


def document_steps(document: SourceDocument) -> Iterator[StepSite]:
    """Each step with an id in a parsed document, with where its id is written."""
    lines = document.lines or [""]
    for path, step in walk_steps(document.data, ()):
        step_id = step.get("id")
        if isinstance(step_id, str):
            span = document.positions.value((*path, "id"))
            yield StepSite(step_id, span_range(span, lines), path)


def walk_steps(data: Any, path: Path_) -> Iterator[tuple[Path_, dict[str, Any]]]:
    """Each step mapping under `data` (in `steps` and `finally`, nested ones too), with
    its path."""
    if not isinstance(data, dict):
        return
    for key in _STEP_LISTS:
        items = data.get(key)
        if not isinstance(items, list):
            continue
        for index, step in enumerate(items):
            if isinstance(step, dict):
                here = (*path, key, index)
                yield here, step
                yield from walk_steps(step, here)


def _text_steps(lines: list[str]) -> Iterator[StepSite]:
    for number, line in enumerate(lines):
        for match in _ID_LINE.finditer(line):
            start, end = match.span(1)
            yield StepSite(match.group(1), Range(Position(number, start), Position(number, end)))
