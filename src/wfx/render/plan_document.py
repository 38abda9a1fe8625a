"""The text plan as a small neutral document: what each section says, said once.

Two back ends lay it out: :mod:`wfx.render.plan_text` builds rich's renderables (a
terminal: colours, tables drawn by rich), :mod:`wfx.render.plan_plain` writes the same
characters rich would write off a terminal, without importing rich (a pipe, a CI log).
Neither reads a plan: every word of the plan text is chosen here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass

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
from wfx.render.characters import visible
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
)

#: how a `run` step with no `shell` setting runs (decided on the machine that runs it)
BUILTIN_SHELL = "bash -eo pipefail (built-in; sh -e where bash is missing)"

_VERDICT_STYLE = {Verdict.ALWAYS: "green", Verdict.NEVER: "red", Verdict.RUNTIME: "yellow"}

#: the columns of the Stages and Finally tables; the first two never wrap
STAGE_COLUMNS = ("stage", "step", "kind", "condition", "timeout", "retries", "onError", "rollback")
NO_WRAP_COLUMNS = ("stage", "step")


@dataclass(frozen=True)
class Span:
    """A run of text in one style (a rich style name; empty for the block's own)."""

    text: str
    style: str = ""


@dataclass(frozen=True)
class Paragraph:
    """Lines of text printed as they are (a rich Text): `spans` in order, the whole in
    `style`; `rstrip` drops the whitespace (the last line break) at its end."""

    spans: tuple[Span, ...]
    style: str = ""
    rstrip: bool = False

    @property
    def plain(self) -> str:
        """The characters printed, before any wrapping."""
        joined = "".join(span.text for span in self.spans)
        return joined.rstrip() if self.rstrip else joined


@dataclass(frozen=True)
class Cell:
    """One cell of a table. `words` is wfx's own wording (a duration, `fail`), which rich
    reads as markup; any text from the workflow is never `words`."""

    text: str
    style: str = ""
    words: bool = False


@dataclass(frozen=True)
class Grid:
    """A boxed table with a title and a header row (the Stages and Finally tables)."""

    title: str
    columns: tuple[str, ...]
    no_wrap: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]


@dataclass(frozen=True)
class Listing:
    """What a step runs, each line behind a `│` rule at `indent` (folded lines too)."""

    indent: int
    lines: tuple[str, ...]


Block = Paragraph | Grid | Listing


def plan_document(plan: Plan, *, verbose: bool = False) -> tuple[Block, ...]:
    """The whole plan as blocks, top to bottom: what each step runs always, and with
    `verbose` its environment, shell, directory, expressions and where settings come from.
    Characters that would not show (or would move the cursor) are written `<U+XXXX>`."""
    blocks: list[Block] = [_header(plan), _stages_table("Stages", plan.stages, plan)]
    if plan.finally_stages:
        blocks.append(_stages_table("Finally", plan.finally_stages, plan))
    calls = calls_in(plan)
    if calls:
        blocks.append(_sub_workflows(calls))
    blocks.append(_footer(plan))
    blocks += _what_runs(plan, verbose)
    return tuple(blocks)


def _header(plan: Plan) -> Paragraph:
    spans = [
        Span("Plan", "bold"),
        Span(f" for {_one_line(plan.name or plan.file)}"),
        Span(f" ({count(len(plan.steps), 'step')})\n"),
    ]
    if plan.description:
        spans.append(Span(_one_line(plan.description) + "\n", "italic"))
    spans.append(Span(f"fingerprint {plan.fingerprint}\n", "dim"))
    if plan.inputs:
        spans.append(Span("inputs:\n"))
        for name, given in plan.inputs.items():
            about = plan.input_descriptions.get(name)
            spans.append(Span(f"  {name} = {_one_line(value(given))}"))
            spans.append(Span(f"  ({_one_line(about)})\n" if about else "\n", "dim"))
    if plan.env:
        spans.append(Span("env:\n"))
        for name, shown in plan.env.items():
            spans.append(Span(f"  {name} = {_one_line(value(shown))}\n"))
    limits = run_settings(plan)
    if limits:
        spans.append(Span("run: " + ", ".join(limits) + "\n"))
    if plan.concurrency is not None:
        group, mode = plan.concurrency["group"], plan.concurrency["mode"]
        spans.append(Span(f"concurrency: group {_one_line(value(group))} ({mode})\n"))
    if plan.outputs:
        spans.append(Span("outputs (printed at the end of the run):\n"))
        for name, source in plan.outputs.items():
            spans.append(Span(f"  {name} = {_one_line(source)}\n"))
    return Paragraph(tuple(spans))


def _stages_table(title: str, stages: list[list[StepId]], plan: Plan) -> Grid:
    rows = []
    for number, stage in enumerate(stages, start=1):
        for position, step_id in enumerate(stage):
            stage_cell = Cell(str(number) if position == 0 else "", words=True)
            rows.append((stage_cell, *_step_cells(plan.steps[step_id])))
    return Grid(title, STAGE_COLUMNS, NO_WRAP_COLUMNS, tuple(rows))


def _step_cells(step: PlannedStep) -> Iterator[Cell]:
    yield Cell(step.id, "bold")
    yield Cell(step.kind.value, words=True)
    yield Cell(
        step.condition.verdict.value
        + (f" ({_one_line(step.condition.text)})" if step.condition.explicit else ""),
        _VERDICT_STYLE[step.condition.verdict],
    )
    yield Cell(duration(step.timeout, "none"), words=True)
    yield Cell(retries(step.retry), words=True)
    yield Cell(on_error(step.on_error, step.continue_on), words=True)
    yield Cell("yes" if step.rollback else "", words=True)


def _sub_workflows(calls: list[tuple[PlannedGroup, list[PlannedStep]]]) -> Paragraph:
    """Each call with what it passes, and the steps it runs nested under it."""
    spans = [Span("Sub-workflows\n", "bold")]
    for group, steps in calls:
        pad = "  " * group.id.count("/")
        spans.append(Span(f"{pad}{_one_line(group.id)}", "bold"))
        spans.append(Span(f" uses {_one_line(group.uses or '')} ({_one_line(group.file or '')})\n"))
        shown = json.dumps(plain(group.with_), ensure_ascii=False)
        spans.append(Span(f"{pad}  with {_one_line(shown)}\n", "dim"))
        if group.secrets:
            spans.append(Span(f"{pad}  secrets: {_one_line(', '.join(group.secrets))}\n", "dim"))
        for position, step in enumerate(steps):
            rule = "└" if position == len(steps) - 1 else "├"
            spans.append(Span(f"{pad}  {rule} {_one_line(step.id)}"))
            spans.append(Span(" (finally)\n" if step.cleanup else "\n"))
    return Paragraph(tuple(spans))


def _footer(plan: Plan) -> Paragraph:
    spans = []
    for fan_out in plan.fan_outs.values():
        spans.append(Span("fan-out " + _one_line(fan_out_line(fan_out)) + "\n"))
        if fan_out.assumption:
            spans.append(Span("  " + _one_line(fan_out.assumption) + "\n", "dim"))
    if plan.compensation:
        spans.append(Span("compensation order: " + " → ".join(plan.compensation) + "\n"))
    if plan.critical_path:
        spans.append(Span("critical path: " + " → ".join(plan.critical_path) + "\n"))
    spans.append(Span("worst case: ", "bold"))
    spans.append(Span(duration(plan.worst_case_seconds) + "\n"))
    for group_id, limits in group_limits(plan):
        spans.append(Span(f"group {group_id}: {limits}\n"))
    for diagnostic in plan.warnings:
        style = "red" if diagnostic.severity is Severity.ERROR else "yellow"
        where = f"{diagnostic.span}: " if diagnostic.span else ""
        message = _one_line(diagnostic.message)
        spans.append(Span(f"{where}{diagnostic.severity.value}: {message}\n", style))
    return Paragraph(tuple(spans))


def _what_runs(plan: Plan, verbose: bool) -> list[Block]:
    blocks: list[Block] = [
        Paragraph(
            (
                Span("\nWhat runs"),
                Span(
                    " (values known now are shown in place; a script receives them as data in"
                    " environment variables, never as code)",
                    "dim",
                ),
            ),
            "bold",
        )
    ]
    elsewhere = runs_elsewhere(plan)
    for step in plan.steps.values():
        where = f", {_one_line(step.file)} line {step.line}" if step.file else f", line {step.line}"
        name = f" ({_one_line(step.name)})" if step.name else ""
        blocks.append(Paragraph((Span(step.id), Span(name), Span(where)), "bold"))
        blocks += _action(step.action, 2, verbose)
        place = where_it_runs(step, elsewhere or verbose)
        if place is not None:
            blocks.append(Paragraph((Span(f"  runs on: {_one_line(place)}"),), "dim"))
        if step.rollback_action is not None:
            called = step.rollback_action.name
            title = "  rollback" + (f" ({_one_line(called)})" if called else "") + ":"
            blocks.append(Paragraph((Span(title),)))
            blocks += _action(step.rollback_action, 4, verbose)
        if verbose:
            blocks.append(_details(step))
    return blocks


def _action(action: PlannedAction | None, indent: int, verbose: bool) -> list[Block]:
    """The script, argv or callable as a listing, and the settings it runs with."""
    if action is None:
        return []
    if action.run is not None:
        body = action.run.removesuffix("\n")
    elif action.uses is not None:
        body = action.uses + "\nwith " + json.dumps(plain(action.with_), ensure_ascii=False)
    else:
        body = "argv " + json.dumps(list(action.cmd), ensure_ascii=False)
    blocks: list[Block] = [Listing(indent, tuple(visible(body).split("\n")))]
    settings = _settings(action, indent, verbose)
    if settings.plain:
        blocks.append(settings)
    return blocks


def _settings(action: PlannedAction, indent: int, verbose: bool) -> Paragraph:
    """What a process runs with besides its text: a shell, directory or env that is not
    the default (all of them with `verbose`); the workflow's env is shown once, at the top."""
    if action.kind.value == "uses":
        return Paragraph((), "dim")
    spans = []
    pad = " " * indent
    if action.kind.value == "run" and (verbose or action.shell):
        spans.append(Span(f"{pad}shell: {_one_line(action.shell or BUILTIN_SHELL)}\n"))
    if verbose or action.working_directory:
        directory = _one_line(action.working_directory or "the workflow file's directory")
        spans.append(Span(f"{pad}working directory: {directory}\n"))
    for name, shown in (action.env if verbose else action.own_env).items():
        spans.append(Span(f"{pad}env {name} = {_one_line(value(shown))}\n"))
    return Paragraph(tuple(spans), "dim", rstrip=True)


def _details(step: PlannedStep) -> Paragraph:
    spans = []
    for name, setting in step.settings.items():
        spans.append(Span(f"  {name} from {_one_line(setting.describe())}\n"))
    for item in step.resolved:
        shown = _one_line(value(item.value))
        spans.append(Span(f"  ${{{{ {_one_line(item.text)} }}}} in {item.where} = {shown}\n"))
    return Paragraph(tuple(spans), "dim", rstrip=True)


def _one_line(text: str) -> str:
    """Workflow text for one line of the plan: line breaks and invisible characters named."""
    return visible(text).replace("\n", "<U+000A>").replace("\t", "<U+0009>")
