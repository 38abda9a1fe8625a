"""The plan for a terminal: rich tables, colour only where the terminal wants it."""

from __future__ import annotations

import json
from collections.abc import Iterator

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from wfx.diagnostics import Severity
from wfx.model import StepId
from wfx.plan import (
    Plan,
    PlannedAction,
    PlannedGroup,
    PlannedStep,
    Verdict,
    calls_in,
    runs_elsewhere,
    where_it_runs,
)
from wfx.render.units import (
    count,
    duration,
    fan_out_line,
    group_limits,
    on_error,
    plain,
    retries,
    run_settings,
    value,
    visible,
)

#: how a `run` step with no `shell` setting runs (decided on the machine that runs it)
BUILTIN_SHELL = "bash -eo pipefail (built-in; sh -e where bash is missing)"

_VERDICT_STYLE = {Verdict.ALWAYS: "green", Verdict.NEVER: "red", Verdict.RUNTIME: "yellow"}


def render_text(plan: Plan, *, verbose: bool = False) -> RenderableType:
    """The whole plan as one rich renderable: what each step runs always, and with
    `verbose` its environment, shell, directory, expressions and where settings come from.
    Text from the workflow is never read as markup, and characters that would not show
    (or would move the cursor) are written as `<U+XXXX>`."""
    parts: list[RenderableType] = [_header(plan), _stages_table("Stages", plan.stages, plan)]
    if plan.finally_stages:
        parts.append(_stages_table("Finally", plan.finally_stages, plan))
    calls = calls_in(plan)
    if calls:
        parts.append(_sub_workflows(calls))
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
    if plan.env:
        text.append("env:\n")
        for name, shown in plan.env.items():
            text.append(f"  {name} = {_one_line(value(shown))}\n")
    limits = run_settings(plan)
    if limits:
        text.append("run: " + ", ".join(limits) + "\n")
    if plan.concurrency is not None:
        group, mode = plan.concurrency["group"], plan.concurrency["mode"]
        text.append(f"concurrency: group {_one_line(value(group))} ({mode})\n")
    if plan.outputs:
        text.append("outputs (printed at the end of the run):\n")
        for name, source in plan.outputs.items():
            text.append(f"  {name} = {_one_line(source)}\n")
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
    yield on_error(step.on_error, step.continue_on)
    yield "yes" if step.rollback else ""


def _sub_workflows(calls: list[tuple[PlannedGroup, list[PlannedStep]]]) -> Text:
    """Each call with what it passes, and the steps it runs nested under it."""
    text = Text()
    text.append("Sub-workflows\n", style="bold")
    for group, steps in calls:
        pad = "  " * group.id.count("/")
        text.append(f"{pad}{_one_line(group.id)}", style="bold")
        text.append(f" uses {_one_line(group.uses or '')} ({_one_line(group.file or '')})\n")
        shown = json.dumps(plain(group.with_), ensure_ascii=False)
        text.append(f"{pad}  with {_one_line(shown)}\n", style="dim")
        if group.secrets:
            text.append(f"{pad}  secrets: {_one_line(', '.join(group.secrets))}\n", style="dim")
        for position, step in enumerate(steps):
            rule = "└" if position == len(steps) - 1 else "├"
            text.append(f"{pad}  {rule} {_one_line(step.id)}")
            text.append(" (finally)\n" if step.cleanup else "\n")
    return text


def _footer(plan: Plan) -> Text:
    text = Text()
    for fan_out in plan.fan_outs.values():
        text.append("fan-out " + _one_line(fan_out_line(fan_out)) + "\n")
        if fan_out.assumption:
            text.append("  " + _one_line(fan_out.assumption) + "\n", style="dim")
    if plan.compensation:
        text.append("compensation order: " + " → ".join(plan.compensation) + "\n")
    if plan.critical_path:
        text.append("critical path: " + " → ".join(plan.critical_path) + "\n")
    text.append("worst case: ", style="bold")
    text.append(duration(plan.worst_case_seconds) + "\n")
    for group_id, limits in group_limits(plan):
        text.append(f"group {group_id}: {limits}\n")
    for diagnostic in plan.warnings:
        style = "red" if diagnostic.severity is Severity.ERROR else "yellow"
        where = f"{diagnostic.span}: " if diagnostic.span else ""
        message = _one_line(diagnostic.message)
        text.append(f"{where}{diagnostic.severity.value}: {message}\n", style=style)
    return text


def _what_runs(plan: Plan, verbose: bool) -> Group:
    parts: list[RenderableType] = []
    heading = Text("\nWhat runs", style="bold")
    heading.append(
        " (values known now are shown in place; a script receives them as data in"
        " environment variables, never as code)",
        style="dim",
    )
    parts.append(heading)
    elsewhere = runs_elsewhere(plan)
    for step in plan.steps.values():
        title = Text(step.id, style="bold")
        title.append(f" ({_one_line(step.name)})" if step.name else "")
        title.append(
            f", {_one_line(step.file)} line {step.line}" if step.file else f", line {step.line}"
        )
        parts += [title, *_action(step.action, 2, verbose)]
        place = where_it_runs(step, elsewhere or verbose)
        if place is not None:
            parts.append(Text(f"  runs on: {_one_line(place)}", style="dim"))
        if step.rollback_action is not None:
            name = step.rollback_action.name
            parts.append(Text("  rollback" + (f" ({_one_line(name)})" if name else "") + ":"))
            parts += _action(step.rollback_action, 4, verbose)
        if verbose:
            parts.append(_details(step))
    return Group(*parts)


def _action(action: PlannedAction | None, indent: int, verbose: bool) -> list[RenderableType]:
    """The script, argv or callable behind a `│` rule drawn on every printed line (wrapped
    ones too), so no text of it can pass for a line of the plan."""
    if action is None:
        return []
    if action.run is not None:
        body = action.run.removesuffix("\n")
    elif action.uses is not None:
        body = action.uses + "\nwith " + json.dumps(plain(action.with_), ensure_ascii=False)
    else:
        body = "argv " + json.dumps(list(action.cmd), ensure_ascii=False)
    listing = Table(
        box=box.MINIMAL, show_header=False, show_edge=False, pad_edge=False, padding=(0, 1)
    )
    listing.add_column(width=indent - 2)
    listing.add_column(overflow="fold")
    for line in visible(body).split("\n"):
        listing.add_row("", Text(line))
    parts: list[RenderableType] = [listing]
    settings = _settings(action, indent, verbose)
    if settings.plain:
        parts.append(settings)
    return parts


def _settings(action: PlannedAction, indent: int, verbose: bool) -> Text:
    """What a process runs with besides its text: a shell, directory or env that is not
    the default (all of them with `verbose`); the workflow's env is shown once, at the top."""
    text = Text(style="dim")
    if action.kind.value == "uses":
        return text
    pad = " " * indent
    if action.kind.value == "run" and (verbose or action.shell):
        text.append(f"{pad}shell: {_one_line(action.shell or BUILTIN_SHELL)}\n")
    if verbose or action.working_directory:
        directory = _one_line(action.working_directory or "the workflow file's directory")
        text.append(f"{pad}working directory: {directory}\n")
    for name, shown in (action.env if verbose else action.own_env).items():
        text.append(f"{pad}env {name} = {_one_line(value(shown))}\n")
    text.rstrip()
    return text


def _details(step: PlannedStep) -> Text:
    text = Text(style="dim")
    for name, setting in step.settings.items():
        text.append(f"  {name} from {_one_line(setting.describe())}\n")
    for item in step.resolved:
        shown = _one_line(value(item.value))
        text.append(f"  ${{{{ {_one_line(item.text)} }}}} in {item.where} = {shown}\n")
    text.rstrip()
    return text


def _one_line(text: str) -> str:
    """Workflow text for one line of the plan: line breaks and invisible characters named."""
    return visible(text).replace("\n", "<U+000A>").replace("\t", "<U+0009>")
