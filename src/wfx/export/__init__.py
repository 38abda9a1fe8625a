"""Export: a workflow's plan as another engine's workflow (`wfx export`).

An exporter reads the plan (the JSON contract of `wfx plan --format json`, built by
render/plan_json.py), never the YAML a second time. What the target cannot express
faithfully is a Loss, with the step and its line: `wfx export` refuses to write a lossy
result (exit 2) unless `--allow-lossy`, and then says each loss on stderr and in a
comment at the top of the output. Never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from wfx.diagnostics import Diagnostic, DiagnosticsError, Severity, Span, error
from wfx.render.characters import visible

#: the targets `wfx export --to` knows
TARGETS = ("github-actions", "argo")


@dataclass(frozen=True, slots=True)
class Loss:
    """One thing the target cannot express as wfx means it."""

    kind: str
    """A short name of what is lost: `retries`, `jitter`, `rollback`, `python`..."""
    message: str
    step: str | None = None
    line: int | None = None
    column: int = 1

    def diagnostic(self, file: str, severity: Severity) -> Diagnostic:
        """The loss as an error (no `--allow-lossy`) or a warning, at its step's line."""
        where = f"step `{self.step}`: " if self.step else ""
        span = Span(file, self.line or 1, self.column)
        hint = "pass --allow-lossy to export anyway, with this loss written as a comment"
        return Diagnostic(
            severity,
            f"export.{self.kind}",
            f"[{self.kind}] {where}{self.message}",
            span,
            hint if severity is Severity.ERROR else None,
        )

    def comment(self) -> str:
        """The loss as one line of the output's header comment."""
        where = f"step `{self.step}` (line {self.line}): " if self.step else ""
        return f"[{self.kind}] {where}{self.message}"


@dataclass
class Losses:
    """The losses an exporter finds, in the order found."""

    found: list[Loss] = field(default_factory=list)

    def add(self, kind: str, message: str, step: Any = None) -> None:
        """Record a loss (once); `step` is the plan's step record (with `id`, `line`)."""
        if step is None:
            loss = Loss(kind, message)
        else:
            column = int(step.get("column") or 1)
            loss = Loss(kind, message, str(step["id"]), int(step["line"]), column)
        if loss not in self.found:
            self.found.append(loss)


def group_position(plan: dict[str, Any], group_id: str) -> dict[str, Any] | None:
    """A group as a loss names it: its id, at its line (None: at the workflow's top)."""
    line = ((plan.get("groups") or {}).get(group_id) or {}).get("line")
    column = ((plan.get("groups") or {}).get(group_id) or {}).get("column")
    return None if line is None else {"id": group_id, "line": line, "column": column}


def first_with_rollback(plan: dict[str, Any]) -> dict[str, Any] | None:
    """The step (record with its `id`) written first of those with a rollback: where a
    loss about the saga's rollback order stands."""
    found = [
        {**step, "id": step_id}
        for step_id, step in (plan.get("steps") or {}).items()
        if step.get("rollbackAction") and step.get("line")
    ]
    return min(found, key=lambda s: int(s["line"]), default=None)


def unmapped_losses(plan: dict[str, Any], losses: Losses, target: str) -> None:
    """The losses of what neither target maps: the workflow's outputs, a concurrency group,
    a group's own timeout and retries, a step's executor, and `continueOn` (both targets
    continue after every failure or none)."""
    outputs = plan.get("outputs") or {}
    if outputs:
        losses.add(
            "workflow-outputs",
            f"the workflow's outputs ({', '.join(outputs)}): `wfx run` prints them at its end;"
            f" the export does not carry them to {target}",
        )
    concurrency = plan.get("concurrency")
    if concurrency:
        losses.add(
            "concurrency",
            f"concurrency group `{concurrency.get('group')}` ({concurrency.get('mode')}):"
            f" {target} does not hold the runs of a group one at a time as wfx does",
        )
    for group_id, group in (plan.get("groups") or {}).items():
        where = group_position(plan, group_id)
        if group.get("groupTimeout") is not None:
            losses.add(
                "group-timeout",
                f"groupTimeout {group['groupTimeout']:g}s: {target} has no timeout for a"
                " group of steps as a whole",
                where,
            )
        retries = group.get("groupRetries")
        if retries and retries.get("attempts", 1) > 1:
            losses.add(
                "group-retries",
                f"groupRetries (up to {retries['attempts']} attempts): {target} does not run"
                " a group of steps again as a whole",
                where,
            )
    for step_id, step in (plan.get("steps") or {}).items():
        executor = step.get("executor")
        if executor not in (None, "local"):
            losses.add(
                "executor",
                f"executor `{executor}`: the step runs where {target} runs every step",
                {**step, "id": step_id},
            )
        codes = step.get("continueOn")
        if codes:
            listed = ", ".join(str(c) for c in codes)
            losses.add(
                "continue-on",
                f"continueOn [{listed}]: {target} cannot tell exit codes apart, so the step's"
                " failure fails the run whatever its exit code",
                {**step, "id": step_id},
            )


class Names:
    """Names unique in the target (its jobs, tasks, templates): a step id the target would
    write like another one (`a_b` and `a-b` for Argo; `build` and `Build` for GitHub,
    which ignores case), or like a name of the exporter's own, gets a suffix."""

    def __init__(self, reserved: tuple[str, ...] = ()) -> None:
        self._used = {name.casefold() for name in reserved}

    def take(self, base: str) -> str:
        """`base`, or `base-2`, `base-3`... : the first not taken yet; now taken."""
        name, number = base, 1
        while name.casefold() in self._used:
            number += 1
            name = f"{base}-{number}"
        self._used.add(name.casefold())
        return name


@dataclass(frozen=True, slots=True)
class Exported:
    """The target's workflow as text, and every loss in it."""

    text: str
    losses: tuple[Loss, ...]


def header(target: str, file: str, losses: tuple[Loss, ...]) -> str:
    """The comment every exported file starts with: where it came from, what was lost."""
    lines = [f"# Exported by `wfx export --to {target}` from {file}; edit the wfx workflow."]
    if losses:
        lines.append("# LOSSY: what this file does differently from the wfx workflow:")
        lines += [f"#   - {loss.comment()}" for loss in losses]
    return "\n".join(_one_line(line) for line in lines) + "\n"


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, with a string that holds NEL, U+2028 or U+2029 written in
    double quotes, the one style where YAML escapes them: written raw (as PyYAML writes
    them in the other styles) they are line breaks to the reader, and a script that
    holds one would come out changed."""


def _string(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = '"' if any(c in value for c in _LINE_BREAKING) else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_LINE_BREAKING = "\x85\u2028\u2029"
_Dumper.add_representer(str, _string)


def dump_yaml(document: Any) -> str:
    """The exported document as YAML text that reads back exactly as `document`."""
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, width=10_000, allow_unicode=True)


def _one_line(text: str) -> str:
    """Text fit for one YAML comment line: a YAML 1.1 reader (PyYAML's, YamlDotNet's) also
    ends a comment at NEL, U+2028 and U+2029, and would read what follows as the file's
    own keys; every such character (and any control) is written out as `<U+XXXX>`."""
    return visible(text).replace("\n", " ").replace("\t", " ")


def export_plan(plan: dict[str, Any], target: str, **options: str) -> Exported:
    """The plan (as `plan_to_dict` gives it) as a workflow of `target`, with its losses;
    `options` are the target's own (Argo: `image`). A plan with a fan-out is refused
    (DiagnosticsError), and so is one that calls a sub-workflow: no target mapping for
    them yet (a fan-out's instances, a call's own inputs), and no lossy one."""
    unsupported = [*_fan_outs(plan), *_calls(plan)]
    if unsupported:
        raise DiagnosticsError(unsupported)
    if target == "github-actions":
        from wfx.export.github import export_github  # noqa: PLC0415 - each target on demand

        return export_github(plan)
    if target == "argo":
        from wfx.export.argo import export_argo  # noqa: PLC0415 - each target on demand

        return export_argo(plan, **options)
    raise ValueError(f"unknown export target {target!r}")


def _fan_outs(plan: dict[str, Any]) -> list[Diagnostic]:
    """A diagnostic for each fan-out (`matrix`, `forEach`) of the plan, at its line."""
    steps: dict[str, Any] = plan.get("steps") or {}
    return [
        _refused(
            plan,
            "export.fan-out",
            f"`{fan_out_id}` fans out (`matrix` or `forEach`), which export does not map to"
            " the target yet",
            "write the instances out as steps to export this workflow",
            [
                s
                for i, s in steps.items()
                if i.split("[", 1)[0] == fan_out_id
                or i.startswith(f"{fan_out_id}[")
                or fan_out_id in (s.get("groups") or ())
            ],
        )
        for fan_out_id in plan.get("fanOuts") or {}
    ]


def _calls(plan: dict[str, Any]) -> list[Diagnostic]:
    """A diagnostic for each sub-workflow call (`uses: ./file.yaml`) of the plan."""
    steps: dict[str, Any] = plan.get("steps") or {}
    return [
        _refused(
            plan,
            "export.sub-workflow",
            f"`{group_id}` calls the sub-workflow `{group['uses']}`, which export does not"
            " map to the target yet",
            "export the called workflow on its own, or inline its steps",
            [s for i, s in steps.items() if i.startswith(f"{group_id}/") and not s.get("file")],
        )
        for group_id, group in (plan.get("groups") or {}).items()
        if group.get("uses") is not None
    ]


def _refused(
    plan: dict[str, Any], code: str, message: str, hint: str, steps: list[dict[str, Any]]
) -> Diagnostic:
    """An error at the line of the first of `steps` (the planned steps it is about), in
    its file (a sub-workflow's step names its own)."""
    first = next((s for s in steps if s.get("line")), None)
    line = 1 if first is None else first["line"]
    column = 1 if first is None else first.get("column") or 1
    where = plan["file"] if first is None else first.get("file") or plan["file"]
    return error(code, message, Span(where, line, column, line, column), hint)
