"""The step ids that may be completed in a step's `needs`: exactly those `wfx validate`
would accept there, asked of the compiler (:func:`wfx.compiler.acceptable_needs`).

While `needs` is being typed the file rarely parses (`needs: [a, `), so the text is
repaired first: the `needs` value becomes a flow list of the ids already complete in it
(the word at the cursor left out), and lines the YAML reader still stumbles on elsewhere
(another half-typed key) are blanked, keeping every line where it was.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from dataclasses import dataclass

from wfx import model, source
from wfx.compiler import acceptable_needs
from wfx.diagnostics import DiagnosticsError
from wfx.lsp.analysis import Analysis, StepSite, document_steps, parsed_before, walk_steps
from wfx.lsp.context import frames
from wfx.lsp.text import Position, word_at

#: an id as the schema allows it, not part of a longer word
_ID = re.compile(r"(?<![\w-])[A-Za-z_][A-Za-z0-9_-]*(?![\w-])")
#: `needs:` as a key of a flow mapping (`{id: x, needs: ...`)
_FLOW_NEEDS = re.compile(r"[{,]\s*needs:\s*")
#: a comment: `#` at the start or after a blank
_COMMENT = re.compile(r"(?:^|\s)#.*$")
#: where the YAML reader says the construct it could not read began
_BEGAN = re.compile(r"began at line (\d+)")
#: the keys of which a step has exactly one
_KINDS = frozenset({"run", "cmd", "uses", "steps"})
#: how many lines the YAML reader may still stumble on before giving up
_REPAIRS = 3


@dataclass(frozen=True, slots=True)
class NeedsSite:
    """A `needs` being typed: the line of its key, the column its value starts at, the
    last line of its value, and the ids already complete in it."""

    key_line: int
    value_start: int
    last_line: int
    listed: tuple[str, ...]
    rest: str = ""
    """In a flow mapping (`- {id: x, needs: [a, b], run: ...}`): what follows the value
    on its line, kept (closed with `}` when the mapping is not yet)."""


def needs_completions(analysis: Analysis, position: Position) -> list[StepSite]:
    """The steps the step at the cursor may name in its `needs`, in document order."""
    site = needs_site(analysis.lines, position)
    if site is None:
        return []
    fixed = _repaired_lines(analysis.lines, site)
    key = (analysis.name, site.key_line, "\n".join(fixed))
    found = _LAST.get(key)
    if found is None:  # each keystroke in the same entry repairs to the same text
        found = _accepted(analysis, site, fixed)
        _LAST.clear()
        _LAST[key] = found
    return found


#: the last answer, by the file's name, the line of the `needs` and the repaired text
_LAST: dict[tuple[str, int, str], list[StepSite]] = {}


def _accepted(analysis: Analysis, site: NeedsSite, fixed: list[str]) -> list[StepSite]:
    repaired = _parsed(fixed, analysis.name, site)
    if repaired is None:
        return _fallback(analysis, site)
    document, steps = repaired
    path = _step_path(document, steps, site.key_line)
    if path is None:
        return _fallback(analysis, site)
    try:
        workflow, _ = model.build_with_problems(_with_kinds(document), reuse_steps=True)
        written = [s.id for s in steps if s.id not in site.listed]
        accepted = set(acceptable_needs(workflow, path, written))
    except Exception:  # a model too broken to compile: offer what the text shows
        own = {s.id for s in steps if s.path == path}
        return [s for s in _fallback(analysis, site) if s.id not in own]
    return [s for s in steps if s.id in accepted]


def needs_site(lines: list[str], position: Position) -> NeedsSite | None:
    """The `needs` whose value holds the cursor (None when it cannot be found)."""
    flow = flow_needs_site(lines, position)
    if flow is not None:
        return flow
    key = _needs_key(lines, position)
    if key is None:
        return None
    key_line, key_column = key
    value_start = key_column + len("needs:")
    last_line = key_line
    for number in range(key_line + 1, len(lines)):
        line = lines[number]
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        indent = len(line) - len(line.lstrip(" "))
        if indent > key_column or (indent == key_column and stripped.startswith("-")):
            last_line = number
        else:
            break
    typed = _typed_word(lines, position)
    listed: dict[str, None] = {}
    for number in range(key_line, last_line + 1):
        line = lines[number]
        start = value_start if number == key_line else 0
        text = _COMMENT.sub("", line[start:])
        for match in _ID.finditer(text):
            where = (number, start + match.start())
            if where != typed:
                listed.setdefault(match.group(0), None)
    return NeedsSite(key_line, value_start, last_line, tuple(listed))


def flow_needs_site(lines: list[str], position: Position) -> NeedsSite | None:
    """The `needs` of a step written as a flow mapping on one line, when the cursor is in
    its value (None otherwise)."""
    line = lines[position.line] if position.line < len(lines) else ""
    before = line[: position.character]
    keys = list(_FLOW_NEEDS.finditer(before))
    if not keys:
        return None
    start = keys[-1].end()
    typed = before[start:]
    if typed.startswith("["):
        if "]" in typed:
            return None
        close = line.find("]", position.character)
        end = len(line) if close < 0 else close + 1
    else:
        if "," in typed or "}" in typed:
            return None
        ends = [i for i in (line.find(",", start), line.find("}", start)) if i >= 0]
        end = min(ends, default=len(line))
    rest = line[end:]
    if line[:start].count("{") > line[:start].count("}") + rest.count("}"):
        rest = rest.rstrip() + "}"  # the mapping is not closed yet
    word = _typed_word(lines, position)
    listed = {
        m.group(0): None
        for m in _ID.finditer(line[start:end])
        if (position.line, start + m.start()) != word
    }
    return NeedsSite(position.line, start, position.line, tuple(listed), rest)


def _needs_key(lines: list[str], position: Position) -> tuple[int, int] | None:
    """The line and column of the `needs` key the cursor is in the value of: on the
    cursor's line, else the nearest key above (a block list's items are not keys)."""
    for number in range(min(position.line, len(lines) - 1), -1, -1):
        line = lines[number]
        keys = [f for f in frames(line) if f.key is not None]
        if not keys:
            continue
        if keys[-1].key != "needs":
            return None
        if number == position.line and position.character < keys[-1].column + len("needs:"):
            return None
        return number, keys[-1].column
    return None


def _typed_word(lines: list[str], position: Position) -> tuple[int, int] | None:
    """Where the word at the cursor starts (it is being typed: not yet listed)."""
    line = lines[position.line] if position.line < len(lines) else ""
    word, start, _ = word_at(line, position.character)
    return (position.line, start) if word else None


def _repaired_lines(lines: list[str], site: NeedsSite) -> list[str]:
    """The lines with the `needs` rewritten as `[listed ids]` on its key's line."""
    fixed = list(lines)
    key_line = fixed[site.key_line]
    listed = "[" + ", ".join(site.listed) + "]"
    fixed[site.key_line] = key_line[: site.value_start].rstrip() + " " + listed + site.rest
    for number in range(site.key_line + 1, site.last_line + 1):
        fixed[number] = ""
    return fixed


def _parsed(
    lines: list[str], name: str, site: NeedsSite
) -> tuple[source.SourceDocument, list[StepSite]] | None:
    """The repaired lines parsed; lines the reader still rejects are blanked, a few at
    most (None: it still does not parse)."""
    fixed = list(lines)
    for _ in range(_REPAIRS):
        text = "\n".join(fixed) + "\n"
        try:
            document = parsed_before(name, text) or source.loads(text, name)
        except DiagnosticsError as exc:
            number = _culprit(exc)
            if not 0 <= number < len(fixed) or not fixed[number] or number == site.key_line:
                return None
            fixed[number] = ""
            continue
        if not isinstance(document.data, dict):
            return None
        return document, list(document_steps(document))
    return None


def _culprit(exc: DiagnosticsError) -> int:
    """The 0-based line a YAML error comes from: where the construct it was reading
    began (an unclosed `[`, a half-typed key), else where the reader stopped (-1: none)."""
    for diagnostic in exc.diagnostics:
        began = _BEGAN.search(diagnostic.hint or "")
        if began is not None:
            return int(began.group(1)) - 1
        if diagnostic.span is not None:
            return diagnostic.span.line - 1
    return -1


def _step_path(
    document: source.SourceDocument, steps: list[StepSite], key_line: int
) -> tuple[object, ...] | None:
    """The document path of the step whose `needs` key is on `key_line`."""
    for site in steps:
        if site.path is None:
            continue
        needs = (*site.path, "needs")
        if needs in document.positions.keys and document.positions.key(needs).line == (
            key_line + 1
        ):
            return site.path
    return None


def _with_kinds(document: source.SourceDocument) -> source.SourceDocument:
    """The document with its steps' half-typed keys (`retries:` with no value yet) left
    out, and each step not yet given a kind (`- id: new` then `needs: [`, its `run` still
    to come) given an empty `run`, which names and orders nothing."""
    unfinished = [
        path
        for path, step in walk_steps(document.data, ())
        if None in step.values() or not _KINDS.intersection(step)
    ]
    if not unfinished:
        return document
    data = copy.deepcopy(document.data)
    for path in unfinished:
        step = data
        for part in path:
            step = step[part]
        for key in [k for k, v in step.items() if v is None]:
            del step[key]
        if not _KINDS.intersection(step):
            step["run"] = ""
    return dataclasses.replace(document, data=data)


def _fallback(analysis: Analysis, site: NeedsSite) -> list[StepSite]:
    """When the file cannot be compiled even repaired: the ids written, less those listed
    (the compiler is what knows which of them would make a cycle)."""
    return [s for s in analysis.steps.values() if s.id not in site.listed]
