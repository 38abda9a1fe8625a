"""A plan diff as text, Markdown or JSON, for reviewers of a workflow change.

Values are shown in the plan's own units (`10s`, `2 (1s, 2s)`, `false`, `"staging"`);
a changed script is shown line by line, as a diff of its own.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from wfx.graph import RetrySchedule
from wfx.plan import Change
from wfx.render.characters import visible
from wfx.render.plan_json import json_value, retry_filters
from wfx.render.plan_markdown import fenced, prose
from wfx.render.units import (
    duration,
    jitter_range,
    plain,
    retries,
    value,
)

#: the `--format`s a diff can be shown in
DIFF_FORMATS = ("text", "markdown", "json")

_DURATIONS = frozenset({"timeout", "killGrace", "rollback.timeout", "worstCaseSeconds"})
_LISTS = frozenset({"needs", "compensation"})
_WORDS = frozenset({"condition", "onError", "uses", "rollback.uses", "name", "description"})


def show(change_field: str, item: Any) -> str:
    """One side of a change in the plan's units (a script stays multi-line)."""
    if change_field in _DURATIONS or change_field.endswith(".groupTimeout"):
        unbounded = "unbounded" if change_field == "worstCaseSeconds" else "none"
        return duration(item, unbounded)
    if isinstance(item, RetrySchedule):
        return retries(item)
    if item is None:
        return "none"
    if change_field in _LISTS and isinstance(item, list):
        joiner = " → " if change_field == "compensation" else ", "
        return joiner.join(str(v) for v in item) if item else "(empty)"
    if isinstance(item, str) and (
        change_field in _WORDS or change_field.endswith(("run", "shell", "workingDirectory"))
    ):
        return item
    return value(item)


def _is_block(change: Change) -> bool:
    return any("\n" in show(change.field, side) for side in (change.before, change.after))


def _line_diff(change: Change) -> list[str]:
    before = show(change.field, change.before) if change.before is not None else ""
    after = show(change.field, change.after) if change.after is not None else ""
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=2)
    return [line for line in lines if not line.startswith(("---", "+++"))]


def _subject(change: Change) -> str:
    return f"step {change.step}" if change.step else "run"


def diff_text(changes: list[Change]) -> str:
    """One line per change (a changed script: its line diff below); `no changes to the plan`
    when the plans are the same."""
    if not changes:
        return "no changes to the plan"
    lines = []
    for change in changes:
        if change.field == "step":
            lines.append(f"{'+' if change.after == 'added' else '-'} step {change.step}")
        elif _is_block(change):
            lines.append(f"~ {_subject(change)} {change.field}:")
            lines += [f"    {visible(line)}" for line in _line_diff(change)]
        else:
            before = _one_line(show(change.field, change.before))
            after = _one_line(show(change.field, change.after))
            lines.append(f"~ {_subject(change)} {change.field}: {before} -> {after}")
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return visible(text).replace("\t", "<U+0009>")


def diff_markdown(changes: list[Change]) -> str:
    """A Markdown table of changes and a diff block per changed script, ready for a
    pull-request comment (no workflow text can add structure to it)."""
    if not changes:
        return "### wfx plan diff\n\nNo changes to the plan.\n"
    rows = ["### wfx plan diff", "", "| | what | before | after |", "|---|---|---|---|"]
    blocks: list[str] = []
    for change in changes:
        subject = f"step `{change.step}`" if change.step else "run"
        mark = {"added": "➕", "removed": "➖"}.get(str(change.after), "✏️")
        if change.field == "step":
            rows.append(f"| {mark} | {subject} | | {change.after} |")
        elif _is_block(change):
            rows.append(f"| {mark} | {subject} {prose(change.field)} | see below | |")
            blocks += ["", f"{subject} {prose(change.field)}:", ""]
            blocks += fenced("\n".join(_line_diff(change)), "diff")
        else:
            before = prose(show(change.field, change.before))
            after = prose(show(change.field, change.after))
            rows.append(f"| {mark} | {subject} {prose(change.field)} | {before} | {after} |")
    return "\n".join(rows + blocks) + "\n"


def _json_fact(item: Any) -> Any:
    if isinstance(item, RetrySchedule):
        return {
            "attempts": item.attempts,
            "delays": list(item.delays),
            "waitRanges": [list(jitter_range(d, item.jitter)) for d in item.delays],
            "jitter": item.jitter,
            **{k: v for k, v in retry_filters(item).items() if v not in ("any", [], None)},
        }
    return json_value(plain(item))


def diff_json(changes: list[Change]) -> str:
    """The changes as a JSON list of {step, field, before, after} (durations in seconds)."""
    records = [
        {
            "step": c.step,
            "field": c.field,
            "before": _json_fact(c.before),
            "after": _json_fact(c.after),
        }
        for c in changes
    ]
    return json.dumps({"version": 1, "changes": records}, indent=2, ensure_ascii=False)
