"""A plan diff as text, Markdown or JSON, for reviewers of a workflow change."""

from __future__ import annotations

import json
from typing import Any

from wfx.plan import Change
from wfx.render.plan_json import json_value


def _show(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, list):
        return " → ".join(str(v) for v in value) if value else "(empty)"
    return str(value)


def _subject(change: Change) -> str:
    return f"step `{change.step}`" if change.step else "run"


def diff_text(changes: list[Change]) -> str:
    """One line per change; `no changes` when the plans are the same."""
    if not changes:
        return "no changes to the plan"
    lines = []
    for change in changes:
        if change.field == "step":
            lines.append(f"{'+' if change.after == 'added' else '-'} step {change.step}")
        else:
            lines.append(
                f"~ {_subject(change).replace('`', '')} {change.field}: "
                f"{_show(change.before)} -> {_show(change.after)}"
            )
    return "\n".join(lines)


def diff_markdown(changes: list[Change]) -> str:
    """A Markdown table of changes, ready for a pull-request comment."""
    if not changes:
        return "### wfx plan diff\n\nNo changes to the plan.\n"
    rows = ["### wfx plan diff", "", "| | what | before | after |", "|---|---|---|---|"]
    for change in changes:
        mark = {"added": "➕", "removed": "➖"}.get(str(change.after), "✏️")
        if change.field == "step":
            rows.append(f"| {mark} | {_subject(change)} | | {change.after} |")
        else:
            rows.append(
                f"| {mark} | {_subject(change)} {change.field} | {_show(change.before)} | "
                f"{_show(change.after)} |"
            )
    return "\n".join(rows) + "\n"


def diff_json(changes: list[Change]) -> str:
    """The changes as a JSON list of {step, field, before, after}."""
    records = [
        {
            "step": c.step,
            "field": c.field,
            "before": json_value(c.before),
            "after": json_value(c.after),
        }
        for c in changes
    ]
    return json.dumps({"version": 1, "changes": records}, indent=2, ensure_ascii=False)
