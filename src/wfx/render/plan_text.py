"""The plan for a terminal: rich tables, colour only where the terminal wants it."""

from __future__ import annotations

import json
from collections.abc import Iterator

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wfx.diagnostics import Severity
from wfx.model import StepId
from wfx.plan import Plan, PlannedAction, PlannedStep, Verdict
from wfx.render.units import count, duration, plain, retries, value, visible

_VERDICT_STYLE = {Verdict.ALWAYS: "green", Verdict.NEVER: "red", Verdict.RUNTIME: "yellow"}


def render_text(plan: Plan, *, verbose: bool = False) -> RenderableType:
    """The whole plan as one rich renderable: what each step runs always, and with
    `verbose` its environment, shell, directory, expressions and where settings come from.
    Text from the workflow is never read as markup, and characters that would not show
    (or would move the cursor) are written as `<U+XXXX>`."""
    parts: list[RenderableType] = [_header(plan), _stages_table("Stages", plan.stages, plan)]
    if plan.finally_stages:
        parts.append(_stages_table("Finally", plan.finally_stages, plan))
    parts.append(_footer(plan))
    parts.append(_what_runs(plan, verbose))
    return Group(*parts)


def _header(plan: Plan) -> Text:
    text = Text()
    text.append("Plan", style="bold")
    text.append(f" for {_one_line(plan.name or plan.file)}")
    text.append(f" ({count(len(plan.steps), 'step')})\n")
    if plan.description:
        text.append(_one_line(plan.description) + "\n", style="italic")
    text.append(f"fingerprint {plan.fingerprint}\n", style="dim")
    if plan.inputs:
        text.append("inputs:\n")
        for name, given in plan.inputs.items():
            about = plan.input_descriptions.get(name)
            text.append(f"  {name} = {_one_line(value(given))}")
            text.append(f"  ({_one_line(about)})\n" if about else "\n", style="dim")
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
        + (f" ({_one_line(step.condition.text)})" if step.condition.explicit else ""),
        style=_VERDICT_STYLE[step.condition.verdict],
    )
    yield duration(step.timeout, "none")
    yield retries(step.retry)
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
        message = _one_line(diagnostic.message)
        text.append(f"{where}{diagnostic.severity.value}: {message}\n", style=style)
    return text


def _what_runs(plan: Plan, verbose: bool) -> Text:
    text = Text()
    text.append("\nWhat runs", style="bold")
    text.append(
        " (values known now are shown in place; a script receives them as data in"
        " environment variables, never as code)\n",
        style="dim",
    )
    for step in plan.steps.values():
        text.append(f"{step.id}", style="bold")
        text.append(f" ({_one_line(step.name)})" if step.name else "")
        text.append(f", line {step.line}\n")
        text.append_text(_action(step.action, "  ", verbose))
        if step.rollback_action is not None:
            name = step.rollback_action.name
            text.append("  rollback" + (f" ({_one_line(name)})" if name else "") + ":\n")
            text.append_text(_action(step.rollback_action, "    ", verbose))
        if verbose:
            text.append_text(_details(step))
    return text


def _action(action: PlannedAction | None, indent: str, verbose: bool) -> Text:
    """The script, argv or callable, one `│ `-prefixed line per line of text, so no line
    of it can pass for a line of the plan."""
    text = Text()
    if action is None:
        return text
    if action.run is not None:
        body = action.run.removesuffix("\n")
    elif action.uses is not None:
        body = action.uses + "\nwith " + json.dumps(plain(action.with_), ensure_ascii=False)
    else:
        body = "argv " + json.dumps(list(action.cmd), ensure_ascii=False)
    for line in visible(body).split("\n"):
        text.append(f"{indent}│ ", style="dim")
        text.append(line + "\n")
    if verbose and action.kind.value != "uses":
        if action.kind.value == "run":
            text.append(f"{indent}shell: {_one_line(action.shell or 'built-in')}\n", style="dim")
        directory = _one_line(action.working_directory or "the workflow's directory")
        text.append(f"{indent}working directory: {directory}\n", style="dim")
        for name, shown in action.env.items():
            text.append(f"{indent}env {name} = {_one_line(value(shown))}\n", style="dim")
    return text


def _details(step: PlannedStep) -> Text:
    text = Text(style="dim")
    for name, setting in step.settings.items():
        text.append(f"  {name} from {_one_line(setting.describe())}\n")
    for item in step.resolved:
        shown = _one_line(value(item.value))
        text.append(f"  ${{{{ {_one_line(item.text)} }}}} in {item.where} = {shown}\n")
    return text


def _one_line(text: str) -> str:
    """Workflow text for one line of the plan: line breaks and invisible characters named."""
    return visible(text).replace("\n", "<U+000A>").replace("\t", "<U+0009>")
