"""What the server answers, as pure functions of an :class:`Analysis` and a position:
hover, completion and go-to-definition. None of them raises on any text."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from wfx.checks import STEP_PROPERTIES, WORKFLOW_PROPERTIES
from wfx.explain import explain, explain_group
from wfx.lsp.analysis import Analysis
from wfx.lsp.context import Context, context_at, frames, sibling_keys
from wfx.lsp.keys import KeyDoc, key_doc, keys_at, kinds_at, requirements_at, values_at
from wfx.lsp.needs import flow_needs_site, needs_completions
from wfx.lsp.text import Position, Range, word_at
from wfx.render.explain_text import render_explanation, render_group_explanation

T = TypeVar("T")
_log = logging.getLogger(__name__)

#: the names an expression may start with
CONTEXT_NAMES = ("inputs", "steps", "env", "secrets", "workflow")
_STEP_REFERENCE = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_-]*)")
_AFTER_STEPS = re.compile(r"\bsteps\.([A-Za-z0-9_-]*)$")
_AFTER_STEP_ID = re.compile(r"\bsteps\.([A-Za-z_][A-Za-z0-9_-]*)\.([A-Za-z]*)$")
_AFTER_INPUTS = re.compile(r"\binputs\.([A-Za-z0-9_-]*)$")
_AFTER_WORKFLOW = re.compile(r"\bworkflow\.([A-Za-z]*)$")
_NAME_START = re.compile(r"(?:^|[^\w.-])[A-Za-z_]?\w*$")


@dataclass(frozen=True, slots=True)
class Hover:
    """Markdown to show, and the range it is about."""

    markdown: str
    range: Range


@dataclass(frozen=True, slots=True)
class Completion:
    """One completion: its label, what kind of thing it is, a one-line detail, Markdown
    documentation, the text to insert and the range of the typed text it replaces."""

    label: str
    kind: str
    """`key`, `value`, `step` or `name`."""
    detail: str
    documentation: str
    insert: str
    replace: Range


# --- hover -------------------------------------------------------------------------------


def hover(analysis: Analysis, position: Position) -> Hover | None:
    """The description of the key under the cursor; on a step's id (where it is written, in
    `needs` or in `steps.<id>`), the step's effective settings and where they come from."""
    return _guarded(
        "hover", None, lambda: _step_hover(analysis, position) or _key_hover(analysis, position)
    )


def _guarded(feature: str, fallback: T, answer: Callable[[], T]) -> T:
    """`answer()`, or `fallback` (and a logged error) if it fails: one bad answer must
    never take the server, and the editor's session, down with it."""
    try:
        return answer()
    except Exception:
        _log.exception("wfx lsp: %s failed", feature)
        return fallback


def _key_hover(analysis: Analysis, position: Position) -> Hover | None:
    line = _line(analysis, position.line)
    for frame in frames(line):
        if frame.key is None or not frame.column <= position.character <= frame.column + len(
            frame.key
        ):
            continue
        context = context_at(analysis.lines, position.line, frame.column)
        doc = key_doc(context.path, frame.key)
        if doc is None:
            return None
        where = Range(
            Position(position.line, frame.column),
            Position(position.line, frame.column + len(frame.key)),
        )
        text = _key_markdown(doc)
        if frame.key == "id" and frame.value in analysis.steps:
            text += "\n\n---\n\n" + _step_markdown(analysis, frame.value)
        return Hover(text, where)
    return None


def _key_markdown(doc: KeyDoc) -> str:
    parts = [f"**`{doc.name}`**", doc.markdown]
    if doc.values:
        parts.append("Values: " + ", ".join(f"`{_show(v)}`" for v in doc.values))
    if doc.hint:
        parts.append(f"*Hint:* {doc.hint}")
    return "\n\n".join(part for part in parts if part)


def _step_hover(analysis: Analysis, position: Position) -> Hover | None:
    found = _step_at(analysis, position)
    if found is None:
        return None
    step_id, where = found
    return Hover(_step_markdown(analysis, step_id), where)


def _step_at(analysis: Analysis, position: Position) -> tuple[str, Range] | None:
    """The step id under the cursor: where a step is written, in `needs`, or in `steps.<id>`."""
    for site in analysis.steps.values():
        if site.range.contains(position):
            return site.id, site.range
    target = _reference_at(analysis, position)
    if target is not None and target[0] in analysis.steps:
        return target
    return None


def _step_markdown(analysis: Analysis, step_id: str) -> str:
    """What `wfx explain` says of the step, or why it cannot say it yet."""
    plan = analysis.plan
    compilation = analysis.checked.compilation
    if plan is None or compilation is None:
        return (
            f"step `{step_id}`\n\nIts effective settings show here once the file has no"
            " errors (`wfx explain FILE STEP`)."
        )
    graph = compilation.graph
    if step_id in plan.steps:
        text = render_explanation(explain(graph, plan, step_id))
    elif step_id in graph.ids:
        text = render_group_explanation(explain_group(graph, plan, step_id))
    else:
        return f"step `{step_id}`"
    return "```text\n" + text.rstrip("\n") + "\n```"


# --- completion ----------------------------------------------------------------------------


def complete(analysis: Analysis, position: Position) -> list[Completion]:
    """What may be written at the cursor: keys the schema allows here, fixed values, step
    ids in `needs`, and names inside expressions (`steps.`, `inputs.`, `workflow.`)."""
    return _guarded("completion", [], lambda: _complete(analysis, position))


def _complete(analysis: Analysis, position: Position) -> list[Completion]:
    line = _line(analysis, position.line)
    before = line[: position.character]
    context = context_at(analysis.lines, position.line, position.character)
    if _in_expression(before, context):
        return _expression_completions(analysis, before, position)
    if _in_needs(context) or flow_needs_site(analysis.lines, position) is not None:
        return _need_completions(analysis, before, position)
    if context.in_value:
        return _value_completions(context, before, position)
    return _key_completions(analysis, context, before, position)


def _in_expression(before: str, context: Context) -> bool:
    opening = before.rfind("${{")
    if opening >= 0 and "}}" not in before[opening:]:
        return True
    return context.in_value and context.key == "condition"


def _in_needs(context: Context) -> bool:
    if context.in_value and context.key == "needs":
        return True
    return context.path[-2:] == ("needs", None)


def _expression_completions(
    analysis: Analysis, before: str, position: Position
) -> list[Completion]:
    replace = _typed_range(before, position)
    if _AFTER_STEPS.search(before):
        return _step_completions(analysis, before, position)
    if match := _AFTER_STEP_ID.search(before):
        return [
            Completion(name, "name", f"steps.{match.group(1)}.{name}", "", name, replace)
            for name in STEP_PROPERTIES
        ]
    if _AFTER_INPUTS.search(before):
        return [
            Completion(name, "name", "input", "", name, replace) for name in _input_names(analysis)
        ]
    if _AFTER_WORKFLOW.search(before):
        return [
            Completion(name, "name", f"workflow.{name}", "", name, replace)
            for name in WORKFLOW_PROPERTIES
        ]
    if _NAME_START.search(before):
        return [Completion(n, "name", "context", "", n, replace) for n in CONTEXT_NAMES]
    return []


def _step_completions(analysis: Analysis, before: str, position: Position) -> list[Completion]:
    replace = _typed_range(before, position)
    return [
        Completion(site.id, "step", f"step, line {site.range.start.line + 1}", "", site.id, replace)
        for site in analysis.steps.values()
    ]


def _need_completions(analysis: Analysis, before: str, position: Position) -> list[Completion]:
    """The ids `wfx validate` accepts in this step's `needs` (see :mod:`wfx.lsp.needs`)."""
    replace = _typed_range(before, position)
    return [
        Completion(site.id, "step", f"step, line {site.range.start.line + 1}", "", site.id, replace)
        for site in needs_completions(analysis, position)
    ]


def _value_completions(context: Context, before: str, position: Position) -> list[Completion]:
    replace = _typed_range(before, position)
    return [
        Completion(
            _show(value), "value", f"{context.key}: {_show(value)}", "", _show(value), replace
        )
        for value in values_at(context.value_path)
    ]


def _key_completions(
    analysis: Analysis, context: Context, before: str, position: Position
) -> list[Completion]:
    present = sibling_keys(analysis.lines, position.line, context.column)
    kinds = kinds_at(context.path)
    chosen = present & kinds
    needs = requirements_at(context.path)
    replace = _typed_range(before, position)
    return [
        Completion(name, "key", doc.summary, _key_markdown(doc), f"{name}: ", replace)
        for name, doc in keys_at(context.path).items()
        if name not in present
        and not (chosen and name in kinds)
        and not (chosen and any(k in kinds and k not in chosen for k in needs.get(name, [])))
    ]


def _typed_range(before: str, position: Position) -> Range:
    """The range of the word typed just before the cursor (empty when none)."""
    start = len(before)
    while start > 0 and (before[start - 1].isalnum() or before[start - 1] in "_-"):
        start -= 1
    return Range(Position(position.line, start), position)


def _input_names(analysis: Analysis) -> list[str]:
    document = analysis.document
    data = document.data if document is not None else None
    inputs = data.get("inputs") if isinstance(data, dict) else None
    return [str(name) for name in inputs] if isinstance(inputs, dict) else []


# --- definition ----------------------------------------------------------------------------


def definition(analysis: Analysis, position: Position) -> Range | None:
    """Where the step named under the cursor (in `needs` or in `steps.<id>`) is written."""
    return _guarded("definition", None, lambda: _definition(analysis, position))


def _definition(analysis: Analysis, position: Position) -> Range | None:
    target = _reference_at(analysis, position)
    site = None if target is None else analysis.steps.get(target[0])
    return None if site is None else site.range


def _reference_at(analysis: Analysis, position: Position) -> tuple[str, Range] | None:
    """The step id under the cursor when it names a step: a `needs` entry or `steps.<id>`."""
    line = _line(analysis, position.line)
    for match in _STEP_REFERENCE.finditer(line):
        start, end = match.span(1)
        if start <= position.character <= end:
            return match.group(1), _on_line(position.line, start, end)
    word, start, end = word_at(line, position.character)
    if not word:
        return None
    context = context_at(analysis.lines, position.line, start)
    if _in_needs(context):
        return word, _on_line(position.line, start, end)
    return None


def _on_line(line: int, start: int, end: int) -> Range:
    return Range(Position(line, start), Position(line, end))


def _line(analysis: Analysis, number: int) -> str:
    return analysis.lines[number] if 0 <= number < len(analysis.lines) else ""


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
