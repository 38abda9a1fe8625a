"""The plan as Markdown, written to be posted as a pull-request comment.

Everything a workflow contains reaches the page through three doors, and none of them
lets it add structure: prose (names, descriptions, values in tables) has every ASCII
punctuation character backslash-escaped and its lines joined; short code (conditions,
expressions) goes in a code span whose backtick fence is longer than any run inside;
scripts, argv and `with` go in fenced code blocks whose fence is longer than any
backtick run inside. Characters that would not show (controls, zero-width and
bidirectional marks) are written as `<U+XXXX>` first, so nothing can hide or reorder
what is shown.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from wfx.model import StepId
from wfx.plan import Plan, PlannedAction, PlannedStep, calls_in, runs_elsewhere, where_it_runs
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
BUILTIN_SHELL = "`bash -eo pipefail` (built-in; `sh -e` where bash is missing)"

_VERDICT_MARK = {"always": "✅ always", "never": "⛔ never", "runtime": "⏳ runtime"}
_PUNCTUATION = re.compile(r"([!-/:-@\[-`{-~])")
_BACKTICKS = re.compile(r"`+")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def prose(text: str) -> str:
    """`text` as inert inline Markdown: one line, every ASCII punctuation escaped."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(_LINE_BREAK.split(visible(text))))


def code(text: str) -> str:
    """`text` as one inline code span (a line break shown as `<U+000A>`)."""
    shown = visible(text).replace("\n", "<U+000A>").replace("\t", "<U+0009>")
    longest = max((len(m) for m in _BACKTICKS.findall(shown)), default=0)
    fence = "`" * (longest + 1)
    if shown.strip(" ") and (shown[0] in "` " or shown[-1] in "` "):
        shown = f" {shown} "
    return f"{fence}{shown}{fence}"


def fenced(text: str, info: str = "") -> list[str]:
    """`text` as a fenced code block: no line inside can close it."""
    shown = visible(text)
    longest = max((len(m) for m in _BACKTICKS.findall(shown)), default=0)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", *shown.split("\n"), fence]


def render_markdown(plan: Plan) -> str:
    """Title, inputs, a summary, a table of stages, what each step runs, and collapsed
    per-step details."""
    lines = [f"### wfx plan: {prose(plan.name or plan.file)}", ""]
    if plan.description:
        lines += [prose(plan.description), ""]
    lines += [*_inputs(plan), _summary(plan), ""]
    lines += _stage_table(plan.stages, plan)
    if plan.finally_stages:
        lines += ["", "**Finally**", "", *_stage_table(plan.finally_stages, plan)]
    if plan.fan_outs:
        lines += ["", "**Fan-outs**", ""]
        for fan_out in plan.fan_outs.values():
            lines.append(f"- {prose(fan_out_line(fan_out))}")
            if fan_out.assumption:
                lines.append(f"  ({prose(fan_out.assumption)})")
    lines += _sub_workflows(plan)
    if plan.compensation:
        lines += [
            "",
            "**Compensation order** (if the last step fails): "
            + " → ".join(f"`{s}`" for s in plan.compensation),
        ]
    limits = group_limits(plan)
    if limits:
        lines += ["", "**Groups as a whole**", ""]
        lines += [f"- {code(group_id)}: {text}" for group_id, text in limits]
    if plan.warnings:
        lines += ["", "**Warnings**", ""]
        lines += [
            f"- line {d.span.line if d.span else '?'}: {prose(d.message)}" for d in plan.warnings
        ]
    lines += [
        "",
        "**What runs** (values known now are shown in place; a script receives them",
        "as data in environment variables, never as code)",
        "",
    ]
    for step in plan.steps.values():
        lines += _what_runs(step)
    lines += ["<details><summary>Step details</summary>", ""]
    for step in plan.steps.values():
        lines += _details(step, runs_elsewhere(plan))
    lines += ["</details>", "", f"<sub>fingerprint `{plan.fingerprint}`</sub>", ""]
    return "\n".join(lines)


def _inputs(plan: Plan) -> list[str]:
    rows = []
    if plan.inputs:
        rows += ["| input | value | description |", "|---|---|---|"]
        for name, given in plan.inputs.items():
            about = plan.input_descriptions.get(name, "")
            rows.append(f"| `{name}` | {prose(value(given))} | {prose(about)} |")
        rows.append("")
    if plan.concurrency is not None:
        group, mode = plan.concurrency["group"], plan.concurrency["mode"]
        rows += [f"Concurrency group {prose(value(group))} (`{mode}`)", ""]
    if plan.env:
        rows += ["| env | value |", "|---|---|"]
        rows += [f"| `{name}` | {prose(value(shown))} |" for name, shown in plan.env.items()]
        rows.append("")
    if plan.outputs:
        rows += ["| output (printed at the end of the run) | value |", "|---|---|"]
        rows += [f"| `{name}` | {prose(source)} |" for name, source in plan.outputs.items()]
        rows.append("")
    return rows


def _summary(plan: Plan) -> str:
    parts = [
        f"**{count(len(plan.steps), 'step')}** in {count(len(plan.stages), 'stage')}",
        f"worst case **{duration(plan.worst_case_seconds)}**",
        f"{len(plan.compensation)} with rollback",
        *run_settings(plan),
    ]
    never = [s.id for s in plan.steps.values() if s.condition.verdict.value == "never"]
    if never:
        parts.append(f"{len(never)} that never " + ("runs" if len(never) == 1 else "run"))
    return ", ".join(parts) + "."


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
    cells = [
        str(stage),
        f"`{step.id}`",
        step.kind.value,
        _VERDICT_MARK[step.condition.verdict.value],
        duration(step.timeout, "none"),
        retries(step.retry),
        on_error(step.on_error, step.continue_on),
        "↩️" if step.rollback else "",
    ]
    return "| " + " | ".join(cells) + " |"


def _sub_workflows(plan: Plan) -> list[str]:
    """Each call with what it passes, and its steps as a nested list under it."""
    calls = calls_in(plan)
    if not calls:
        return []
    lines = ["", "**Sub-workflows**", ""]
    for group, steps in calls:
        pad = "  " * group.id.count("/")
        shown = json.dumps(plain(group.with_), ensure_ascii=False)
        lines.append(
            f"{pad}- `{group.id}` uses {code(group.uses or '')} ({prose(group.file or '')})"
            f" with {code(shown)}"
            + (f", secrets {code(', '.join(group.secrets))}" if group.secrets else "")
        )
        lines += [
            f"{pad}  - `{step.id}`" + (" (finally)" if step.cleanup else "") for step in steps
        ]
    return lines


def _what_runs(step: PlannedStep) -> list[str]:
    title = f"`{step.id}`" + (f" ({prose(step.name)})" if step.name else "")
    where = f"{prose(step.file)} line {step.line}" if step.file else f"line {step.line}"
    lines = [f"{title}, {where}:", ""]
    lines += action_lines(step.action)
    if step.rollback_action is not None:
        name = step.rollback_action.name
        lines += [f"rollback of `{step.id}`" + (f" ({prose(name)})" if name else "") + ":", ""]
        lines += action_lines(step.rollback_action)
    return lines


def _unusual_settings(action: PlannedAction) -> list[str]:
    """A shell, directory or env of its own: they change what the text above does."""
    if action.kind.value == "uses":
        return []
    lines = [f"- shell: {code(action.shell)}"] if action.shell else []
    if action.working_directory:
        lines.append(f"- working directory: {code(action.working_directory)}")
    lines += [f"- env `{name}` = {code(text)}" for name, text in action.own_env.items()]
    return [*lines, ""] if lines else []


def action_lines(action: PlannedAction | None) -> list[str]:
    """The script, argv or callable and its `with`, each in its own code block."""
    if action is None:
        return []
    if action.run is not None:
        block = fenced(action.run.removesuffix("\n"), "sh")
    elif action.uses is not None:
        block = _json_block({"uses": action.uses, "with": plain(action.with_)})
    else:
        block = _json_block(list(action.cmd))
    return [*block, "", *_unusual_settings(action)]


def _json_block(data: Any) -> list[str]:
    return fenced(json.dumps(_visible_data(data), indent=2, ensure_ascii=False), "json")


def _visible_data(data: Any) -> Any:
    """Strings in `data` with invisible characters named, as in scripts (JSON would write
    controls as `\\u001b` but leave bidirectional marks invisible)."""
    if isinstance(data, str):
        return visible(data)
    if isinstance(data, dict):
        return {visible(k): _visible_data(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_visible_data(v) for v in data]
    return data


def _details(step: PlannedStep, elsewhere: bool) -> list[str]:
    lines = [f"**`{step.id}`** (line {step.line})", ""]
    if step.needs:
        lines.append("- needs: " + ", ".join(f"`{n}`" for n in step.needs))
    lines.append(f"- condition: {code(step.condition.text)} → {step.condition.verdict.value}")
    if step.condition.note:
        lines.append(f"  ({prose(step.condition.note)})")
    place = where_it_runs(step, always=elsewhere)
    if place is not None:
        lines.append(f"- runs on: {prose(place)}")
    lines += _runs_with(step.action, "")
    if step.rollback_action is not None:
        lines += _runs_with(step.rollback_action, "rollback ")
    for name, setting in step.settings.items():
        lines.append(f"- {prose(name)}: from {prose(setting.describe())}")
    for item in step.resolved:
        expression = code("${{ " + item.text + " }}")
        lines.append(f"- {expression} in {prose(item.where)} = {prose(value(item.value))}")
    lines.append("")
    return lines


def _runs_with(action: PlannedAction | None, prefix: str) -> Iterable[str]:
    if action is None or action.kind.value == "uses":
        return
    if action.kind.value == "run":
        yield f"- {prefix}shell: " + (code(action.shell) if action.shell else BUILTIN_SHELL)
    directory = action.working_directory
    yield f"- {prefix}working directory: " + (
        code(directory) if directory else "the workflow file's directory"
    )
    yield from _env_lines(action.env, prefix)


def _env_lines(env: Mapping[str, Any], prefix: str) -> Iterable[str]:
    for name, text in env.items():
        yield f"- {prefix}env `{name}` = {code(str(text))}"
