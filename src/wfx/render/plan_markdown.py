"""The plan as Markdown, written to be posted as a pull-request comment."""

from __future__ import annotations

from wfx.model import StepId
from wfx.plan import Plan, PlannedStep
from wfx.render.units import delays, duration

_VERDICT_MARK = {"always": "✅ always", "never": "⛔ never", "runtime": "⏳ runtime"}


def render_markdown(plan: Plan) -> str:
    """A summary line, a table of stages, and collapsed per-step details."""
    lines = [f"### wfx plan: {_escape(plan.name or plan.file)}", "", _summary(plan), ""]
    lines += _stage_table(plan.stages, plan)
    if plan.finally_stages:
        lines += ["", "**Finally**", "", *_stage_table(plan.finally_stages, plan)]
    if plan.compensation:
        lines += [
            "",
            "**Compensation order** (if the last step fails): "
            + " → ".join(f"`{s}`" for s in plan.compensation),
        ]
    if plan.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [
            f"- line {d.span.line if d.span else '?'}: {_escape(d.message)}" for d in plan.warnings
        ]
    lines += ["", "<details><summary>Step details</summary>", ""]
    for step in plan.steps.values():
        lines += _details(step)
    lines += ["</details>", "", f"<sub>fingerprint `{plan.fingerprint}`</sub>", ""]
    return "\n".join(lines)


def _summary(plan: Plan) -> str:
    count = len(plan.steps)
    stages = len(plan.stages)
    parts = [
        f"**{count} step{_plural(count)}** in {stages} stage{_plural(stages)}",
        f"worst case **{duration(plan.worst_case_seconds)}**",
        f"{len(plan.compensation)} with rollback",
    ]
    never = [s.id for s in plan.steps.values() if s.condition.verdict.value == "never"]
    if never:
        parts.append(f"{len(never)} that never run")
    return ", ".join(parts) + "."


def _plural(count: int) -> str:
    return "" if count == 1 else "s"


def _stage_table(stages: list[list[StepId]], plan: Plan) -> list[str]:
    rows = [
        "| stage | step | kind | condition | timeout | retries | onError | rollback |",
        "|---:|---|---|---|---|---|---|---|",
    ]
    for number, stage in enumerate(stages, start=1):
        for step_id in stage:
            rows.append(_row(number, plan.steps[step_id]))
    return rows


def _row(stage: int, step: PlannedStep) -> str:
    retries = (
        f"{step.retry.attempts - 1} ({delays(step.retry.delays)})" if step.retry.delays else "0"
    )
    cells = [
        str(stage),
        f"`{step.id}`",
        step.kind.value,
        _VERDICT_MARK[step.condition.verdict.value],
        duration(step.timeout, "none"),
        retries,
        step.on_error.value,
        "↩️" if step.rollback else "",
    ]
    return "| " + " | ".join(cells) + " |"


def _details(step: PlannedStep) -> list[str]:
    lines = [f"**`{step.id}`** (line {step.line})", ""]
    if step.needs:
        lines.append("- needs: " + ", ".join(f"`{n}`" for n in step.needs))
    lines.append(f"- condition: `{_escape(step.condition.text)}` → {step.condition.verdict.value}")
    for name, setting in step.settings.items():
        lines.append(f"- {name}: from {setting.describe()}")
    for item in step.resolved:
        shown = repr(item.value) if item.is_static else str(item.value)
        lines.append(f"- `${{{{ {_escape(item.text)} }}}}` in {item.where} = {_escape(shown)}")
    lines.append("")
    return lines


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")
