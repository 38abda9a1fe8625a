"""The plan for a terminal: rich tables, colour only where the terminal wants it."""

from __future__ import annotations

from collections.abc import Iterator

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wfx.diagnostics import Severity
from wfx.model import StepId
from wfx.plan import Plan, PlannedStep, Verdict
from wfx.render.units import delays, duration

_VERDICT_STYLE = {Verdict.ALWAYS: "green", Verdict.NEVER: "red", Verdict.RUNTIME: "yellow"}


def render_text(plan: Plan) -> RenderableType:
    """The whole plan as one rich renderable."""
    parts: list[RenderableType] = [_header(plan), _stages_table("Stages", plan.stages, plan)]
    if plan.finally_stages:
        parts.append(_stages_table("Finally", plan.finally_stages, plan))
    parts.append(_footer(plan))
    return Group(*parts)


def _header(plan: Plan) -> Text:
    text = Text()
    text.append("Plan", style="bold")
    text.append(f" for {plan.name or plan.file}\n")
    text.append(f"fingerprint {plan.fingerprint}\n", style="dim")
    if plan.inputs:
        shown = ", ".join(f"{k}={v!r}" for k, v in plan.inputs.items())
        text.append(f"inputs: {shown}\n")
    limits = []
    if plan.timeout is not None:
        limits.append(f"timeout {duration(plan.timeout)}")
    if plan.max_parallel is not None:
        limits.append(f"maxParallel {plan.max_parallel}")
    if limits:
        text.append("run: " + ", ".join(limits) + "\n")
    return text


def _stages_table(title: str, stages: list[list[StepId]], plan: Plan) -> Table:
    table = Table(title=title, title_justify="left", expand=False, show_lines=False)
    for column in (
        "stage",
        "step",
        "kind",
        "condition",
        "timeout",
        "retries",
        "onError",
        "rollback",
    ):
        table.add_column(column, no_wrap=column in ("stage", "step"))
    for number, stage in enumerate(stages, start=1):
        for position, step_id in enumerate(stage):
            step = plan.steps[step_id]
            table.add_row(str(number) if position == 0 else "", *_step_cells(step))
    return table


def _step_cells(step: PlannedStep) -> Iterator[RenderableType]:
    yield Text(step.id, style="bold")
    yield step.kind.value
    yield Text(
        step.condition.verdict.value
        + (f" ({step.condition.text})" if step.condition.explicit else ""),
        style=_VERDICT_STYLE[step.condition.verdict],
    )
    yield duration(step.timeout, "none")
    yield f"{step.retry.attempts - 1} ({delays(step.retry.delays)})" if step.retry.delays else "0"
    yield step.on_error.value
    yield "yes" if step.rollback else ""


def _footer(plan: Plan) -> Text:
    text = Text()
    if plan.compensation:
        text.append("compensation order: " + " → ".join(plan.compensation) + "\n")
    if plan.critical_path:
        text.append("critical path: " + " → ".join(plan.critical_path) + "\n")
    text.append("worst case: ", style="bold")
    text.append(duration(plan.worst_case_seconds) + "\n")
    for diagnostic in plan.warnings:
        style = "red" if diagnostic.severity is Severity.ERROR else "yellow"
        where = f"{diagnostic.span}: " if diagnostic.span else ""
        text.append(f"{where}{diagnostic.severity.value}: {diagnostic.message}\n", style=style)
    return text
