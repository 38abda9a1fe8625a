"""A what-if plan (`wfx plan --fail/--timeout`) as text, Markdown or JSON."""

from __future__ import annotations

import json
from typing import Any

from wfx.graph import Section
from wfx.render.characters import visible
from wfx.render.plan_markdown import code, prose
from wfx.render.units import duration
from wfx.runtime.events import StepStatus
from wfx.whatif import StepOutcome, WhatIf

WHATIF_VERSION = 1

_SECTIONS = (Section.MAIN, Section.FINALLY)


def whatif_to_dict(result: WhatIf) -> dict[str, Any]:
    """The what-if as plain JSON-ready data (`version` changes when a meaning does)."""
    return {
        "version": WHATIF_VERSION,
        "file": result.file,
        "failures": [
            {"step": f.step, "attempt": f.attempt, "as": "timeout" if f.timeout else "failure"}
            for f in result.failures
        ],
        "status": result.status.value,
        "exitCode": result.exit_code,
        "reason": result.reason,
        "steps": [_step(s) for s in _ordered(result)],
        "compensation": list(result.compensation),
        "finally": [
            {"id": s.id, "status": s.status.value}
            for s in result.steps
            if s.section is Section.FINALLY
        ],
        "notes": list(result.notes),
    }


def _step(outcome: StepOutcome) -> dict[str, Any]:
    return {
        "id": outcome.id,
        "section": outcome.section.value,
        "status": outcome.status.value,
        "attempts": outcome.attempts,
        "retryWaits": list(outcome.retry_waits),
        "rollback": None if outcome.rolled_back is None else outcome.rolled_back.value,
        "reason": outcome.reason,
    }


def render_json(result: WhatIf) -> str:
    """The what-if as indented JSON."""
    return json.dumps(whatif_to_dict(result), indent=2, ensure_ascii=False)


def _ordered(result: WhatIf) -> list[StepOutcome]:
    """Main steps first, then the `finally` steps, each in the graph's order."""
    return [s for section in _SECTIONS for s in result.steps if s.section is section]


def _asked(result: WhatIf) -> str:
    return ", ".join(str(f) for f in result.failures) or "nothing fails"


def _detail(outcome: StepOutcome) -> str:
    parts = []
    if outcome.attempts > 1:
        parts.append(f"{outcome.attempts} attempts")
    if outcome.retry_waits:
        parts.append("waits " + ", ".join(duration(w) for w in outcome.retry_waits))
    if outcome.reason and outcome.status is not StepStatus.SUCCESS:
        parts.append(outcome.reason)
    if outcome.rolled_back is not None:
        parts.append(f"then {outcome.rolled_back.value}")
    return "; ".join(parts)


def render_text(result: WhatIf) -> str:
    """The what-if for a terminal: the failures asked for, every step's end, the
    rollbacks in order, the `finally` steps and the exit code."""
    lines = [f"What if: {visible(_asked(result))}  ({visible(result.file)})", ""]
    width = max((len(s.id) for s in result.steps), default=4)
    for section in _SECTIONS:
        chosen = [s for s in result.steps if s.section is section]
        if not chosen:
            continue
        lines.append("Steps" if section is Section.MAIN else "Finally")
        for s in chosen:
            detail = _detail(s)
            row = f"  {visible(s.id):<{width}}  {s.status.value:<10}"
            lines.append((row + "  " + visible(detail)).rstrip() if detail else row.rstrip())
        lines.append("")
    order = " → ".join(visible(s) for s in result.compensation) or "none"
    lines.append(f"Compensation (in order): {order}")
    end = f"Run: {result.status.value}, exit code {result.exit_code}"
    lines.append(end + (f" ({visible(result.reason)})" if result.reason else ""))
    if result.notes:
        lines += ["", "Notes (what the simulation assumed):"]
        lines += [f"  - {visible(n)}" for n in result.notes]
    return "\n".join(lines)


def render_markdown(result: WhatIf) -> str:
    """The what-if as Markdown for a pull-request comment (workflow text made inert)."""
    asked = ", ".join(code(str(f)) for f in result.failures) or "nothing fails"
    lines = [f"### wfx what-if: {asked} in {prose(result.file)}", ""]
    lines += ["| step | section | ends | detail |", "|---|---|---|---|"]
    for s in _ordered(result):
        detail = prose(_detail(s)) if _detail(s) else ""
        lines.append(f"| {code(s.id)} | {s.section.value} | {s.status.value} | {detail} |")
    order = " → ".join(code(s) for s in result.compensation) or "none"
    lines += ["", f"**Compensation** (in order): {order}", ""]
    reason = f" — {prose(result.reason)}" if result.reason else ""
    lines.append(f"**Run:** {result.status.value}, exit code **{result.exit_code}**{reason}")
    if result.notes:
        lines += ["", "<details><summary>What the simulation assumed</summary>", ""]
        lines += [f"- {prose(n)}" for n in result.notes]
        lines += ["", "</details>"]
    return "\n".join(lines)
