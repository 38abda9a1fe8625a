"""Which steps a redrive or a part of a workflow runs, keeps or skips, as `wfx plan --retry`,
`--only`, `--from` and `--skip` show it after the plan: text, Markdown and JSON."""

from __future__ import annotations

from typing import Any

from wfx.render.characters import visible
from wfx.render.plan_markdown import prose
from wfx.selection import Choice, Disposition, Selection

#: how each disposition reads in text and Markdown
_WORDS = {Disposition.RUN: "runs", Disposition.KEEP: "kept", Disposition.SKIP: "skipped"}
_SYMBOLS = {Disposition.RUN: "▶", Disposition.KEEP: "✓", Disposition.SKIP: "-"}


def headline(selection: Selection) -> str:
    """One line: what is planned and how many steps run, are kept and are skipped."""
    counts = [
        f"{len(selection.with_(d))} {_WORDS[d]}"
        for d in Disposition
        if selection.with_(d) or d is Disposition.RUN
    ]
    return f"{_title(selection)}: {', '.join(counts)}"


def _title(selection: Selection) -> str:
    if selection.redrives is not None:
        return f"Redrive of run {selection.redrives}"
    options = " ".join(f"--{name} {' '.join(values)}" for name, values in selection.options.items())
    return f"Part of the workflow ({options})"


def selection_text(selection: Selection, finally_steps: list[str]) -> str:
    """The selection as plain lines for a terminal."""
    width = max((len(s) for s in selection.choices), default=0)
    lines = [headline(selection)]
    for choice in selection.choices.values():
        step = visible(choice.step).ljust(width)
        lines.append(f"  {_SYMBOLS[choice.disposition]} {step}  {visible(_phrase(choice))}")
    if finally_steps:
        lines.append("  finally (always runs): " + ", ".join(finally_steps))
    return "\n".join(lines)


def _phrase(choice: Choice) -> str:
    """`kept from run X`, `runs again: failed in run X`, `skipped: not selected`."""
    if choice.disposition is Disposition.KEEP:
        return f"kept from run {choice.source}"
    if choice.disposition is Disposition.SKIP:
        return f"skipped: {choice.reason}"
    return f"runs: {choice.reason}"


def selection_markdown(selection: Selection, finally_steps: list[str]) -> str:
    """The selection as a Markdown table."""
    lines = [f"**{prose(headline(selection))}**", "", "| step | | why |", "|---|---|---|"]
    for choice in selection.choices.values():
        word = _WORDS[choice.disposition]
        why = f"from run {choice.source}" if choice.source else choice.reason
        lines.append(f"| `{prose(choice.step)}` | {word} | {prose(why)} |")
    if finally_steps:
        lines += ["", "`finally` always runs: " + ", ".join(f"`{s}`" for s in finally_steps)]
    return "\n".join(lines)


def selection_to_dict(selection: Selection, changes: str | None = None) -> dict[str, Any]:
    """The selection as JSON-ready data (the plan's `selection`); `changes`: what changed in
    the workflow since the run a redrive starts from."""
    return {
        "redrives": selection.redrives,
        "changes": changes,
        "options": {name: list(values) for name, values in selection.options.items()},
        "steps": {
            choice.step: {
                "disposition": choice.disposition.value,
                "reason": choice.reason,
                "from": choice.source,
            }
            for choice in selection.choices.values()
        },
    }
