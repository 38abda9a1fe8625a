"""Plan stage: ExecutionGraph -> Plan, everything knowable before running, as pure data.

No side effects, ever: this module starts no process, opens no file, imports no
step code. It resolves what depends only on inputs, env and the workflow's name,
decides each condition's static verdict, lays out retry schedules, the
compensation order and the worst-case duration of the run.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from wfx.compiler import concurrency_group, workflow_env
from wfx.diagnostics import Diagnostic, warning
from wfx.durations import format_duration
from wfx.expr import Expression, ExpressionError, Status, Template, is_truthy, to_string
from wfx.expr.ast import Logical, Not
from wfx.expr.ast import Node as ExprNode
from wfx.fanout import template_name
from wfx.fingerprint import fingerprint
from wfx.graph import (
    CallScope,
    ExecutionGraph,
    Node,
    NodeKind,
    Origin,
    RetrySchedule,
    Section,
    Setting,
    is_template,
    template_id,
)
from wfx.model import Action, Condition, Input, OnError, Step, StepId, StepKind

PLAN_VERSION = 1

#: named values that only exist while the run happens
RUNTIME_CONTEXTS = frozenset({"steps", "attempt", "secrets"})
#: named values a fan-out instance has (known now for a static fan-out's instances)
FAN_OUT_CONTEXTS = frozenset({"matrix", "item", "index"})
STATIC_WORKFLOW_FIELDS = frozenset({"name"})
#: what the plan shows in place of an expression that reads a secret
SECRET_MASK = "***"

_STATUSES = (
    Status(),
    Status(failed=True),
    Status(cancelled=True),
)


class Verdict(enum.Enum):
    """What can be said of a condition before running."""

    ALWAYS = "always"
    NEVER = "never"
    RUNTIME = "runtime"


@dataclass(frozen=True, slots=True)
class Unknown:
    """A value that only the run can provide; `reason` says which context it waits for."""

    reason: str

    def __str__(self) -> str:
        return f"<runtime: {self.reason}>"


@dataclass(frozen=True, slots=True)
class Resolved:
    """One `${{ }}` expression and what the plan knows of its value."""

    where: str
    text: str
    value: Any


@dataclass(frozen=True, slots=True)
class ConditionPlan:
    """A step's condition: its text, static verdict, and what the verdict rests on."""

    text: str
    verdict: Verdict
    explicit: bool
    note: str = ""


@dataclass(frozen=True, slots=True)
class PlannedAction:
    """What a step or its rollback executes, as it will run.

    Text holds each static `${{ }}` replaced by its value, each one only the run can
    evaluate kept as written, and each one that reads a secret as `***`. `shell` None
    is the built-in default; `working_directory` None is the workflow file's directory.
    `env` is what a process gets from the workflow (a Python step gets no environment);
    `own_env` the part of it not from the workflow's `env` (which the plan shows once).
    """

    kind: StepKind
    name: str | None
    run: str | None
    cmd: tuple[str, ...]
    uses: str | None
    with_: Mapping[str, Any]
    env: Mapping[str, str]
    own_env: Mapping[str, str]
    shell: str | None
    working_directory: str | None
    timeout: float | None
    source: Mapping[str, Any] = field(default_factory=dict)
    """The action as written, each `${{ }}` kept as an expression (no value in place):
    `run`, `cmd`, `env` (the whole chain, in layering order), `workingDirectory`, for
    exporters that must pass values to another engine's expressions (wfx.export)."""


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """Everything the plan knows of one leaf step."""

    id: StepId
    name: str | None
    kind: StepKind
    section: Section
    line: int
    groups: tuple[StepId, ...]
    needs: tuple[StepId, ...]
    stage: int
    condition: ConditionPlan
    settings: Mapping[str, Setting]
    retry: RetrySchedule
    timeout: float | None
    kill_grace: float
    on_error: OnError
    rollback: bool
    rollback_timeout: float | None
    command: str
    resolved: tuple[Resolved, ...]
    worst_case: float | None
    action: PlannedAction | None = None
    rollback_action: PlannedAction | None = None
    executor: str | None = None
    """Where the step's process runs (a name `--executor` takes); `local` for a Python
    step, which always runs in wfx's own process; None: the run's executor."""
    continue_on: tuple[int, ...] = ()
    """Exit codes whose final failure the run tolerates (`continueOn`)."""
    file: str | None = None
    """The file a sub-workflow's step is written in (`line` is in it); None: the top file."""
    cleanup: bool = False
    """A sub-workflow's `finally` step (it runs when that sub-workflow's steps are done)."""
    column: int = 1
    """The column of the step's first key on `line` (where diagnostics about it point)."""


@dataclass(frozen=True, slots=True)
class PlannedGroup:
    """A group of steps: how its children run together, and the condition they share."""

    id: StepId
    name: str | None
    type: str
    max_parallel: int | None
    condition: str | None
    groups: tuple[StepId, ...]
    section: Section
    group_timeout: float | None = None
    """`groupTimeout`: seconds one attempt of the whole group may take."""
    group_retries: RetrySchedule | None = None
    """`groupRetries`: how often, and after which waits, the whole group runs again."""

    uses: str | None = None
    """For a step that calls a sub-workflow: the `uses:` path as written."""
    file: str | None = None
    """For a call: the called file, as diagnostics name it."""
    with_: Mapping[str, Any] = field(default_factory=dict)
    """For a call: its `with`, static values in place (as the plan shows actions)."""
    secrets: tuple[str, ...] = ()
    """For a call: the secrets the sub-workflow reads (names only)."""
    line: int | None = None
    """The line the group is written on (in its own file: see its steps' `file`)."""
    column: int | None = None
    """The column of its first key on that line."""


@dataclass(frozen=True, slots=True)
class PlannedFanOut:
    """A fan-out: its instances (a static one's ids), or for a dynamic one the expression
    that gives its list at run time and the template step (`id[*]`) every instance runs;
    its cap, failFast, instance limit, and what the worst case assumes of it."""

    id: StepId
    kind: str
    dynamic: bool
    instances: tuple[StepId, ...]
    max_parallel: int | None
    fail_fast: bool
    limit: int
    source: str
    assumption: str | None = None
    template: tuple[StepId, ...] = ()
    """A dynamic fan-out of a group: the steps of its body, as `test[*]`."""


@dataclass(frozen=True)
class Plan:
    """The whole plan: order, verdicts, schedules, compensation and worst case."""

    version: int
    file: str
    name: str | None
    fingerprint: str
    inputs: Mapping[str, Any]
    env: Mapping[str, Any]
    stages: list[list[StepId]]
    finally_stages: list[list[StepId]]
    steps: Mapping[StepId, PlannedStep]
    compensation: list[StepId]
    critical_path: list[StepId]
    worst_case_seconds: float | None
    timeout: float | None
    max_parallel: int | None
    secrets: tuple[str, ...]
    warnings: list[Diagnostic] = field(default_factory=list)
    description: str | None = None
    input_descriptions: Mapping[str, str] = field(default_factory=dict)
    groups: Mapping[StepId, PlannedGroup] = field(default_factory=dict)
    type: str = "sequential"
    """How the top-level steps run together: the workflow root is a group."""
    concurrency: Mapping[str, str] | None = None
    """The run's concurrency group resolved from the inputs: `{"group": …, "mode": …}`."""
    input_specs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Each declared input: type, default (if any), required, enum, pattern, description."""
    env_source: Mapping[str, str] = field(default_factory=dict)
    """The workflow's `env` as written, each `${{ }}` kept as an expression."""
    fan_outs: Mapping[StepId, PlannedFanOut] = field(default_factory=dict)
    outputs: Mapping[str, str] = field(default_factory=dict)
    """The workflow's `outputs` as written (what `wfx run` prints at its end), each `${{ }}`
    kept as an expression: only the run knows the values."""


def make_plan(graph: ExecutionGraph, warnings: Iterable[Diagnostic] = ()) -> Plan:
    """Resolve everything knowable about `graph` now, without touching the world."""
    workflow = graph.workflow
    planner = _Planner(graph)
    main = graph.stages(Section.MAIN)
    final = graph.stages(Section.FINALLY)
    ordered = [step_id for stage in (*main, *final) for step_id in stage]
    templates = graph.templates()
    steps = {
        step_id: planner.step(planner.template(templates[step_id]))
        if step_id in templates
        else planner.step(graph.node(step_id))
        for step_id in ordered
    }
    found = [*warnings, *planner.never_warnings(steps), *workspace_warnings(steps)]
    return Plan(
        version=PLAN_VERSION,
        file=workflow.file,
        name=workflow.name,
        fingerprint=fingerprint(workflow, graph.inputs),
        inputs=dict(graph.inputs),
        env=planner.workflow_env,
        stages=main,
        finally_stages=final,
        steps=steps,
        compensation=[
            step_id
            for stage in reversed(main)
            for step_id in reversed(stage)
            if steps[step_id].rollback
        ],
        critical_path=planner.critical_path(steps, Section.MAIN),
        worst_case_seconds=planner.worst_case(steps),
        timeout=None if workflow.timeout is None else float(workflow.timeout.value),
        max_parallel=None if workflow.max_parallel is None else int(workflow.max_parallel.value),
        type=workflow.group_type.value,
        secrets=tuple(str(s.value) for s in workflow.secrets),
        warnings=found,
        description=workflow.description,
        input_descriptions={i.name: i.description for i in workflow.inputs if i.description},
        groups={g.id: g for g in _groups(graph, planner)},
        concurrency=_concurrency(graph),
        input_specs={i.name: _input_spec(i) for i in workflow.inputs},
        env_source={name: _template_source(t) for name, t in workflow.env.items()},
        fan_outs={f.id: f for f in _fan_outs(graph, steps)},
        outputs={name: _template_source(t) for name, t in workflow.outputs.items()},
    )


def _concurrency(graph: ExecutionGraph) -> dict[str, str] | None:
    concurrency = graph.workflow.concurrency
    if concurrency is None:
        return None
    group = concurrency_group(graph.workflow, graph.inputs)
    return {"group": group or "", "mode": concurrency.mode.value}


def _input_spec(declared: Input) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": declared.type.value, "required": declared.required}
    if declared.has_default:
        spec["default"] = declared.default
    if declared.enum is not None:
        spec["enum"] = list(declared.enum)
    if declared.pattern is not None:
        spec["pattern"] = declared.pattern
    if declared.description:
        spec["description"] = declared.description
    return spec


def _fan_outs(
    graph: ExecutionGraph, steps: Mapping[StepId, PlannedStep]
) -> Iterable[PlannedFanOut]:
    for node in graph.nodes:
        info = node.fan_out
        if node.kind is not NodeKind.GROUP_START or info is None:
            continue
        assumption = None
        if info.dynamic:
            cost = _template_cost(node, steps)
            each = "" if cost is None else f" (each wave up to {format_duration(cost)})"
            if info.max_parallel is None:
                assumption = (
                    f"the worst case assumes all instances of `{node.id}` run at once"
                    " (it has no maxParallel)"
                )
            else:
                assumption = (
                    f"the worst case assumes `{node.id}` gets at most {info.max_parallel}"
                    f" items (one wave of maxParallel {info.max_parallel}); every further"
                    f" {info.max_parallel} items add a wave{each}"
                )
        yield PlannedFanOut(
            id=node.id,
            kind=info.kind.value,
            dynamic=info.dynamic,
            instances=info.instances,
            max_parallel=info.max_parallel,
            fail_fast=info.fail_fast,
            limit=info.limit,
            source=info.source,
            assumption=assumption,
            template=info.template_steps(),
        )


def _template_cost(start: Node, steps: Mapping[StepId, PlannedStep]) -> float | None:
    """The worst case of one instance of a dynamic fan-out: its template step's, or the
    sum of its group body's steps (None: unbounded)."""
    info = start.fan_out
    assert info is not None
    named = info.template_steps() or (template_id(start.id),)
    costs = [steps[s].worst_case for s in named]
    return None if None in costs else sum(c or 0.0 for c in costs)


def _template_steps(node: Node) -> tuple[StepId, ...]:
    """How plans name what a dynamic fan-out runs: `id[*]`, or its group body's steps."""
    assert node.fan_out is not None
    return node.fan_out.template_steps() or (template_id(node.id),)


def calls_in(plan: Plan) -> list[tuple[PlannedGroup, list[PlannedStep]]]:
    """Each sub-workflow call of the plan (outer before inner) with the steps it holds
    directly (a nested call's steps are listed under that call), for renderers."""
    found = []
    for group in plan.groups.values():
        if group.uses is None:
            continue
        prefix = f"{group.id}/"
        own = [
            step
            for step_id, step in plan.steps.items()
            if step_id.startswith(prefix) and "/" not in step_id[len(prefix) :]
        ]
        found.append((group, own))
    return found


def _groups(graph: ExecutionGraph, planner: _Planner) -> Iterable[PlannedGroup]:
    for node in graph.nodes:
        if node.kind is NodeKind.GROUP_START:
            step = node.step
            call = graph.calls.get(f"{node.id}/")
            max_parallel = step.max_parallel
            if call is not None:
                max_parallel = call.workflow.max_parallel
            group = PlannedGroup(
                id=node.id,
                name=step.name,
                type=step.group_type.value if call is None else call.workflow.group_type.value,
                max_parallel=None if max_parallel is None else int(max_parallel.value),
                condition=None
                if step.condition is None
                else _condition_text(step.condition, node.section),
                groups=node.groups,
                section=node.section,
                group_timeout=None
                if step.group_timeout is None
                else float(step.group_timeout.value),
                group_retries=node.group_retry,
                line=node.span.line,
                column=node.span.column,
            )
            yield group if call is None else planner.call(group, node, call)


class _Planner:
    """Holds the static contexts and computes per-step facts."""

    def __init__(self, graph: ExecutionGraph) -> None:
        self.graph = graph
        self.scope = ""
        """The sub-workflow call whose step is being planned (its id prefix; "": none)."""
        self.body_groups = {
            n.id: n
            for start in graph.nodes
            if is_template(start) and start.fan_out is not None
            for n in start.fan_out.body
            if n.kind is NodeKind.GROUP_START
        }
        """The groups of dynamic group fan-outs' bodies (in no stage: the run copies them)."""
        self.body_owners = {
            StepId(template_name(n.id)): start
            for start in graph.nodes
            if is_template(start) and start.fan_out is not None
            for n in start.fan_out.body
            if n.is_step
        }
        """The start of the dynamic group fan-out each body step (`test[*]`) belongs to."""
        workflow = graph.workflow
        self.bindings: dict[str, Any] = {}
        """The `matrix` or `item`/`index` of the fan-out instance being planned."""
        self.base: dict[str, Any] = {
            "inputs": dict(graph.inputs),
            "workflow": {"name": workflow.name or ""},
        }
        self.workflow_env = self.resolve_env_chain(workflow_env(workflow))
        self.stage_of = {
            step_id: i
            for section in Section
            for i, stage in enumerate(graph.stages(section))
            for step_id in stage
        }

    # -- static evaluation ------------------------------------------------------------------

    def contexts(self, env: Mapping[str, Any]) -> dict[str, Any]:
        if self.scope:  # a sub-workflow's expressions read its own inputs
            inputs = self.graph.calls[self.scope].inputs
            return {**self.base, **self.bindings, "inputs": inputs, "env": dict(env)}
        return {**self.base, **self.bindings, "env": dict(env)}

    def runtime_input(self, path: tuple[str, ...]) -> bool:
        """Whether `inputs.X` in the current sub-workflow is given by a `${{ }}` value."""
        if not self.scope or len(path) < 2:
            return False
        return path[1] in self.graph.calls[self.scope].runtime_inputs

    def unknown_reason(self, expression: Expression, env: Mapping[str, Any]) -> str | None:
        """Why `expression` cannot be evaluated now, or None when it can."""
        for reference in expression.references():
            head = reference.path[0].lower()
            if head in RUNTIME_CONTEXTS or (head in FAN_OUT_CONTEXTS and head not in self.bindings):
                return ".".join(reference.path[:2])
            if head == "inputs" and self.runtime_input(reference.path):
                return ".".join(reference.path[:2])
            if head == "workflow" and (
                len(reference.path) < 2 or reference.path[1].lower() not in STATIC_WORKFLOW_FIELDS
            ):
                return ".".join(reference.path[:2])
            if head == "env" and _env_unknown(reference.path, env):
                return ".".join(reference.path[:2])
        return None

    def evaluate(self, expression: Expression, env: Mapping[str, Any]) -> Any:
        reason = self.unknown_reason(expression, env)
        if reason is not None:
            return Unknown(reason)
        try:
            return expression.evaluate(self.contexts(env))
        except ExpressionError as exc:
            return Unknown(f"evaluation error: {exc.message}")

    def render(self, template: Template, env: Mapping[str, Any]) -> Any:
        values = [self.evaluate(e, env) for e in template.expressions()]
        missing = next((v for v in values if isinstance(v, Unknown)), None)
        if missing is not None:
            return missing
        return template.render(self.contexts(env))

    # -- per step ---------------------------------------------------------------------------

    def template(self, start: Node) -> Node:
        """The step every instance of a dynamic fan-out runs, as a node named `id[*]`."""
        if start.is_step:  # a step of a dynamic group's body, already named `test[*]`
            return start
        info = start.fan_out
        assert info is not None and info.template is not None
        return dataclasses.replace(
            start,
            id=template_id(start.id),
            kind=NodeKind.STEP,
            step=info.template,
            settings=info.settings,
        )

    def call(self, group: PlannedGroup, node: Node, call: CallScope) -> PlannedGroup:
        """A group that is a sub-workflow call: what it calls, with which values."""
        self.scope = node.scope
        own, self.bindings = self.bindings, {} if node.instance is None else node.instance.visible()
        given = call.step.action.with_ if call.step.action is not None else {}
        shown = self.display_value(given, {})  # a fanned-out call's `with` reads its instance
        self.scope, self.bindings = "", own
        return dataclasses.replace(
            group,
            uses=call.step.call.path if call.step.call is not None else None,
            file=call.workflow.file,
            with_=shown,
            secrets=tuple(str(s.value) for s in call.workflow.secrets),
        )

    def step(self, node: Node) -> PlannedStep:
        self.scope = node.scope
        try:
            return self.plan_step(node)
        finally:
            self.scope = ""

    def plan_step(self, node: Node) -> PlannedStep:
        settings = node.settings
        assert settings is not None
        self.bindings = {} if node.instance is None else node.instance.visible()
        env = self.resolve_env_chain(settings.env, node)
        retry: RetrySchedule = settings.retry.value
        timeout = settings.timeout.value
        kill_grace = float(settings.kill_grace.value)
        rollback = node.step.rollback
        rollback_timeout = timeout
        if rollback is not None and rollback.timeout is not None:
            rollback_timeout = float(rollback.timeout.value)
        return PlannedStep(
            id=node.id,
            name=node.step.name,
            kind=node.step.kind,
            section=node.section,
            line=node.span.line,
            column=node.span.column,
            groups=node.groups,
            needs=self.needs(node),
            stage=self.stage_of[node.id],
            condition=self.condition(node, env),
            settings={**settings.named(), **{f"env.{k}": v for k, v in settings.env.items()}},
            retry=retry,
            timeout=None if timeout is None else float(timeout),
            kill_grace=kill_grace,
            on_error=settings.on_error.value,
            rollback=rollback is not None,
            rollback_timeout=None if rollback_timeout is None else float(rollback_timeout),
            command=_command_text(node.step),
            resolved=tuple(self.resolved(node.step, env)),
            worst_case=_worst_case(retry, timeout, kill_grace),
            action=self.action(node, node.step.action, env, timeout),
            rollback_action=(
                None
                if rollback is None
                else self.action(node, rollback, env, rollback_timeout, rollback=True)
            ),
            executor="local" if node.step.kind is StepKind.USES else settings.executor.value,
            continue_on=tuple(settings.continue_on.value or ()),
            file=node.span.file if node.scope else None,
            cleanup=node.cleanup,
        )

    def action(
        self,
        node: Node,
        action: Action | None,
        env: Mapping[str, Any],
        timeout: Any,
        *,
        rollback: bool = False,
    ) -> PlannedAction | None:
        """`action` as it will run: the step's shell, directory and env, a rollback's own
        where it sets them (its env added to the step's)."""
        if action is None:
            return None
        settings = node.settings
        assert settings is not None
        shell = None if settings.shell.origin is Origin.BUILTIN else str(settings.shell.value)
        directory: Template | None = settings.working_directory.value
        shown_env = {}
        for name, setting in settings.env.items():
            own, self.bindings = self.bindings, self.env_bindings(setting, node)
            shown_env[name] = self.display(setting.value, env)
            self.bindings = own
        own_env = {
            name: shown_env[name]
            for name, setting in settings.env.items()
            if setting.origin is not Origin.WORKFLOW
        }
        if rollback:
            shell = str(action.shell.value) if action.shell is not None else shell
            directory = action.working_directory or directory
            added = {name: self.display(t, env) for name, t in action.env.items()}
            shown_env.update(added)
            own_env.update(added)
        process = action.kind is not StepKind.USES
        source_env = {name: _template_source(t.value) for name, t in settings.env.items()}
        if rollback:
            source_env.update({name: _template_source(t) for name, t in action.env.items()})
        source: dict[str, Any] = {"env": source_env if process else {}}
        if action.run is not None:
            source["run"] = _template_source(action.run)
        if action.cmd:
            source["cmd"] = [_template_source(t) for t in action.cmd]
        if directory is not None and process:
            source["workingDirectory"] = _template_source(directory)
        return PlannedAction(
            kind=action.kind,
            name=action.name,
            run=None if action.run is None else self.display(action.run, env),
            cmd=tuple(self.display(t, env) for t in action.cmd),
            uses=action.uses,
            with_=self.display_value(action.with_, env),
            env=shown_env if process else {},
            own_env=own_env if process else {},
            shell=shell if action.kind is StepKind.RUN else None,
            working_directory=(
                None if directory is None or not process else self.display(directory, env)
            ),
            timeout=None if timeout is None else float(timeout),
            source=source,
        )

    def display(self, template: Template, env: Mapping[str, Any]) -> str:
        """`template` as text: static values in place, runtime `${{ }}` kept, secrets masked."""
        return "".join(
            part if isinstance(part, str) else self.display_expression(part, env)
            for part in template.parts
        )

    def display_expression(self, expression: Expression, env: Mapping[str, Any]) -> str:
        """One `${{ }}` as text: its value, `***` for a secret, or itself when only the run
        can evaluate it."""
        if _reads_secret(expression):
            return SECRET_MASK
        value = self.evaluate(expression, env)
        if isinstance(value, Unknown):
            return "${{ " + expression.text.strip() + " }}"
        return to_string(value)

    def display_value(self, value: Any, env: Mapping[str, Any]) -> Any:
        """A `with` value as the callable receives it: a lone static `${{ }}` keeps its type."""
        if isinstance(value, Template):
            lone = _lone_expression(value)
            if lone is not None and not _reads_secret(lone):
                found = self.evaluate(lone, env)
                if not isinstance(found, Unknown):
                    return found
            return self.display(value, env)
        if isinstance(value, Mapping):
            return {key: self.display_value(item, env) for key, item in value.items()}
        if isinstance(value, tuple | list):
            return [self.display_value(item, env) for item in value]
        return value

    def needs(self, node: Node) -> tuple[StepId, ...]:
        """The leaf steps `node` waits for directly, in the order they are written."""
        owner = self.body_owners.get(node.id)
        if owner is not None:
            return self.body_needs(owner, node)
        found = [self.graph.nodes[i] for i in self.graph.step_dependencies(node.index)]
        ordered = sorted(found, key=lambda dep: dep.span)
        found_ids: list[StepId] = []
        for dep in ordered:
            found_ids.extend(_template_steps(dep) if is_template(dep) else (dep.id,))
        return tuple(found_ids)

    def body_needs(self, start: Node, node: Node) -> tuple[StepId, ...]:
        """What a step of a dynamic group's body waits for: steps of the body (looking
        through its barriers), or, at its start, what the fan-out waits for."""
        assert start.fan_out is not None
        body = start.fan_out.body
        outside: tuple[StepId, ...] = ()
        inside: list[Node] = []
        seen: set[int] = set()
        stack = list(node.deps)
        while stack:
            dep = stack.pop()
            if dep in seen:
                continue
            seen.add(dep)
            if dep < 0:
                outside = self.needs(start)
            elif body[dep].is_step:
                inside.append(body[dep])
            else:
                stack.extend(body[dep].deps)
        ordered = sorted(inside, key=lambda n: (n.span, n.index))
        return (*outside, *(StepId(template_name(n.id)) for n in ordered))

    def resolve_env_chain(
        self, env: Mapping[str, Setting], node: Node | None = None
    ) -> dict[str, Any]:
        """Env values in layering order, each able to see the ones resolved before it; in
        a nested fan-out, a group's with the values of the instance around that group."""
        resolved: dict[str, Any] = {}
        for name, setting in env.items():
            if node is None:
                resolved[name] = self.render(setting.value, resolved)
                continue
            own, self.bindings = self.bindings, self.env_bindings(setting, node)
            resolved[name] = self.render(setting.value, resolved)
            self.bindings = own
        return resolved

    def env_bindings(self, setting: Setting, node: Node) -> dict[str, Any]:
        """The fan-out values an env `setting` of `node` is rendered with: the instance's,
        or in a nested fan-out, for a group's env, those of the instance around that group
        (as the run does)."""
        instance = node.instance
        if instance is None or instance.outer is None or setting.origin is not Origin.GROUP:
            return self.bindings
        level = instance.around(str(setting.source), node.scope) or instance
        return level.visible()

    def resolved(self, step: Step, env: Mapping[str, Any]) -> Iterable[Resolved]:
        action = step.action
        if action is None:
            return
        templates: list[tuple[str, Template]] = []
        if action.run is not None:
            templates.append(("run", action.run))
        templates.extend((f"cmd[{i}]", t) for i, t in enumerate(action.cmd))
        templates.extend(_with_templates(action.with_, "with"))
        templates.extend((f"env.{k}", t) for k, t in step.env.items())
        for where, template in templates:
            for expression in template.expressions():
                yield Resolved(where, expression.text.strip(), self.evaluate(expression, env))

    def condition(self, node: Node, env: Mapping[str, Any]) -> ConditionPlan:
        verdicts = [self.group_verdict(group_id, env) for group_id in node.groups]
        own = self.verdict(node.step.condition, env)
        verdict = _combine([*(v for v, _ in verdicts), own[0]])
        text = _condition_text(node.step.condition, node.section)
        notes = [n for _, n in verdicts if n] + ([own[1]] if own[1] else [])
        return ConditionPlan(text, verdict, node.step.condition is not None, "; ".join(notes))

    def group_verdict(self, group_id: StepId, env: Mapping[str, Any]) -> tuple[Verdict, str]:
        """An enclosing group's condition, judged in the group's own scope (a call's
        condition reads the caller's inputs, not the child's)."""
        group = self.body_groups.get(group_id) or self.graph.node(group_id)
        inner, self.scope = self.scope, group.scope
        try:
            return self.verdict(group.step.condition, env)
        finally:
            self.scope = inner

    def verdict(self, condition: Condition | None, env: Mapping[str, Any]) -> tuple[Verdict, str]:
        if condition is None:
            return Verdict.ALWAYS, ""
        if condition.constant is not None:
            return (Verdict.ALWAYS if condition.constant else Verdict.NEVER), ""
        expression = condition.expression
        assert expression is not None
        statuses = _STATUSES if expression.uses_status_function() else _STATUSES[:1]
        outcomes = {self.truth(expression, expression.root, env, status) for status in statuses}
        if outcomes == {True}:
            return Verdict.ALWAYS, ""
        if outcomes == {False}:
            return Verdict.NEVER, ""
        reason = self.unknown_reason(expression, env)
        if reason is not None:
            return Verdict.RUNTIME, f"waits for {reason}"
        return Verdict.RUNTIME, "depends on how earlier steps end"

    def truth(
        self, whole: Expression, node: ExprNode, env: Mapping[str, Any], status: Status
    ) -> bool | None:
        """Three-valued truth of `node`: `inputs.deploy && steps.x.outputs.ok` is False now
        when `inputs.deploy` is false, whatever the step will output (None: unknown)."""
        if isinstance(node, Logical):
            parts = [self.truth(whole, operand, env, status) for operand in node.operands]
            decisive = node.op != "&&"
            if decisive in parts:
                return decisive
            return None if None in parts else not decisive
        if isinstance(node, Not):
            inner = self.truth(whole, node.operand, env, status)
            return None if inner is None else not inner
        part = Expression(whole.text, node, whole.span)
        if self.unknown_reason(part, env) is not None:
            return None
        try:
            return _truthy(part.evaluate(self.contexts(env), status=status))
        except ExpressionError:
            return None

    def never_warnings(self, steps: Mapping[StepId, PlannedStep]) -> list[Diagnostic]:
        return [
            warning(
                "plan.never-runs",
                f"step `{step.id}` can never run: its condition is false for these inputs",
                self.graph.node(step.id).span,
            )
            for step in steps.values()
            if step.condition.verdict is Verdict.NEVER
        ]

    # -- durations --------------------------------------------------------------------------

    def longest(
        self, steps: Mapping[StepId, PlannedStep], section: Section
    ) -> tuple[float | None, list[StepId]]:
        """The longest path through `section` by worst-case step cost, and its steps."""
        best: dict[int, float] = {}
        previous: dict[int, int | None] = {}
        starts: dict[StepId, int] = {}
        unbounded = False
        for node in self.graph.nodes:
            if node.section is not section:
                continue
            cost = 0.0
            if node.is_step or is_template(node):
                step_cost = (
                    _template_cost(node, steps) if is_template(node) else steps[node.id].worst_case
                )
                if step_cost is None:
                    unbounded = True
                cost = step_cost or 0.0
            elif node.kind is NodeKind.GROUP_START:
                starts[node.id] = node.index
            origin = max(node.deps, key=lambda d: best.get(d, 0.0), default=None)
            best[node.index] = cost + (best.get(origin, 0.0) if origin is not None else 0.0)
            previous[node.index] = origin
            if node.kind is NodeKind.GROUP_END and node.id in starts:
                began = best[starts[node.id]]
                best[node.index] = began + _whole_group(node, best[node.index] - began, steps)
        if not best:
            return 0.0, []
        # a path ends at a top-level node: a group's end counts what its whole runs take
        end = max((i for i in best if not self.graph.nodes[i].groups), key=lambda i: best[i])
        path: list[StepId] = []
        cursor: int | None = end
        while cursor is not None:
            node = self.graph.nodes[cursor]
            if is_template(node):
                path.extend(reversed(_template_steps(node)))
            elif node.is_step:
                path.append(node.id)
            cursor = previous.get(cursor)
        return (None if unbounded else best[end]), list(reversed(path))

    def critical_path(self, steps: Mapping[StepId, PlannedStep], section: Section) -> list[StepId]:
        return self.longest(steps, section)[1]

    def worst_case(self, steps: Mapping[StepId, PlannedStep]) -> float | None:
        """Upper bound of the run's duration: main steps (capped), compensation, finally."""
        workflow = self.graph.workflow
        main = self.bounded(steps, Section.MAIN)
        if workflow.timeout is not None:
            cap = float(workflow.timeout.value)
            main = cap if main is None else min(main, cap)
        rollbacks = [
            None if s.rollback_timeout is None else s.rollback_timeout + s.kill_grace
            for s in steps.values()
            if s.rollback
        ]
        compensation = None if None in rollbacks else sum(r or 0.0 for r in rollbacks)
        final = self.bounded(steps, Section.FINALLY)
        if main is None or compensation is None or final is None:
            return None
        return round(main + compensation + final, 3)

    def bounded(self, steps: Mapping[StepId, PlannedStep], section: Section) -> float | None:
        """The critical path, widened by Graham's bound when `maxParallel` limits the run."""
        path, _ = self.longest(steps, section)
        if path is None:
            return None
        limit = self.parallel_limit()
        members = [s for s in steps.values() if s.section is section]
        total = sum(s.worst_case or 0.0 for s in members)
        if limit is None or limit >= len(members):
            return path
        return min(total, (total - path) / limit + path)

    def parallel_limit(self) -> int | None:
        workflow = self.graph.workflow
        limits = [int(workflow.max_parallel.value)] if workflow.max_parallel else []
        limits += [
            int(n.step.max_parallel.value)
            for n in self.graph.nodes
            if not n.is_step and n.step.max_parallel is not None
        ]
        return min(limits) if limits else None


def _reads_secret(expression: Expression) -> bool:
    return any(r.path[0].lower() == "secrets" for r in expression.references())


def _lone_expression(template: Template) -> Expression | None:
    """The expression of a template that is one `${{ }}` and nothing else (but spaces)."""
    expressions = template.expressions()
    literal = "".join(p for p in template.parts if isinstance(p, str))
    return expressions[0] if len(expressions) == 1 and not literal.strip() else None


def _env_unknown(path: tuple[str, ...], env: Mapping[str, Any]) -> bool:
    if len(path) < 2:
        return any(isinstance(v, Unknown) for v in env.values())
    lowered = {k.lower(): v for k, v in env.items()}
    return isinstance(lowered.get(path[1].lower()), Unknown)


def _combine(verdicts: list[Verdict]) -> Verdict:
    if Verdict.NEVER in verdicts:
        return Verdict.NEVER
    if Verdict.RUNTIME in verdicts:
        return Verdict.RUNTIME
    return Verdict.ALWAYS


def _truthy(value: Any) -> bool:
    return is_truthy(value)


def _condition_text(condition: Condition | None, section: Section) -> str:
    if condition is None:
        return "always()" if section is Section.FINALLY else "success()"
    if condition.expression is not None:
        return condition.expression.text.strip()
    return "true" if condition.constant else "false"


def _command_text(step: Step) -> str:
    action = step.action
    if action is None:
        return ""
    if action.run is not None:
        return _template_source(action.run)
    if action.cmd:
        return json.dumps([_template_source(t) for t in action.cmd])
    return action.uses or ""


def _template_source(template: Template) -> str:
    return "".join(
        part if isinstance(part, str) else "${{ " + part.text.strip() + " }}"
        for part in template.parts
    )


def _with_templates(value: Any, where: str) -> Iterable[tuple[str, Template]]:
    if isinstance(value, Template):
        yield where, value
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _with_templates(item, f"{where}.{key}")
    elif isinstance(value, tuple | list):
        for index, item in enumerate(value):
            yield from _with_templates(item, f"{where}[{index}]")


def _whole_group(group: Node, one_run: float, steps: Mapping[StepId, PlannedStep]) -> float:
    """The worst case of a group from its start to its end, given its steps' longest path
    (`one_run`): bounded by its `groupTimeout` (plus the longest kill grace inside), and
    times its `groupRetries` attempts, each failed one followed by its rollbacks and wait."""
    inside = [s for s in steps.values() if group.id in s.groups]
    limit = group.step.group_timeout
    if limit is not None:
        grace = max((s.kill_grace for s in inside), default=0.0)
        one_run = min(one_run, float(limit.value) + grace)
    schedule = group.group_retry
    if schedule is None or schedule.attempts < 2:
        return one_run
    undo = sum((s.rollback_timeout or 0.0) + s.kill_grace for s in inside if s.rollback)
    waits = sum(d * (1 + schedule.jitter) for d in schedule.delays)
    total = schedule.attempts * one_run + (schedule.attempts - 1) * undo + waits
    if schedule.deadline is not None:
        total = min(total, schedule.deadline + undo + one_run)
    return total


def _worst_case(retry: RetrySchedule, timeout: Any, kill_grace: float) -> float | None:
    """Every attempt running into its timeout and kill grace, plus every wait between;
    a retries deadline bounds it (the last attempt still gets its kill grace)."""
    bounded = None if retry.deadline is None else retry.deadline + kill_grace
    if timeout is None:
        return None if bounded is None else round(bounded, 3)
    per_attempt = float(timeout) + kill_grace
    total = retry.attempts * per_attempt + sum(d * (1 + retry.jitter) for d in retry.delays)
    if bounded is not None:
        total = min(total, bounded)
    return round(total, 3) if math.isfinite(total) else None


# -- comparing two plans ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Change:
    """One difference between two plans: which step (None: the whole run) and what."""

    step: StepId | None
    field: str
    before: Any
    after: Any


def workspace_warnings(steps: Mapping[StepId, PlannedStep]) -> list[Diagnostic]:
    """A workflow that sends steps to another machine gets one warning: `$WFX_WORKSPACE`
    is a path, and a remote step sees that path on its worker, which is the directory the
    other steps see only when it is storage they all share (`wfx run --workspace`)."""
    remote = [
        s
        for s in steps.values()
        if s.kind is not StepKind.USES and s.executor not in (None, "local")
    ]
    if not remote:
        return []
    first = remote[0]
    setting = first.settings["executor"]
    return [
        warning(
            "plan.workspace-not-shared",
            f"{len(remote)} step{'s run' if len(remote) > 1 else ' runs'} on"
            f" `{first.executor}` (`{first.id}`"
            + (" and others" if len(remote) > 1 else "")
            + "): each sees $WFX_WORKSPACE at the path the run gives it, on its own worker;"
            " it is one directory for all steps only when that path is storage every worker"
            " and this machine share",
            setting.span,
            "run with `--workspace PATH` naming a shared directory (docs/distributed.md)",
        )
    ]


def runs_elsewhere(plan: Plan) -> bool:
    """Whether the workflow names an executor for some step (then every step says where
    it runs, Python steps included)."""
    return any(s.settings["executor"].origin is not Origin.BUILTIN for s in plan.steps.values())


def where_it_runs(step: PlannedStep, always: bool) -> str | None:
    """Where the step runs, for the plan: shown when it names an executor, or `always`."""
    if step.kind is StepKind.USES:
        return "local (a Python step runs in wfx's own process)" if always else None
    if step.executor is not None:
        setting = step.settings["executor"]
        replaced = "; --executor replaces it" if setting.origin is Origin.DEFAULTS else ""
        return f"{step.executor} (from {setting.describe()}{replaced})"
    return "the run's executor (--executor, else local)" if always else None


def _step_facts(step: PlannedStep) -> dict[str, Any]:
    """What a reviewer compares of a step, in the plan's own terms (durations in seconds,
    the retry schedule, the command as it will run)."""
    return {
        "name": step.name,
        "stage": step.stage + 1,
        "needs": list(step.needs),
        "condition": f"{step.condition.verdict.value} ({step.condition.text})",
        "timeout": step.timeout,
        "killGrace": step.kill_grace,
        "retries": step.retry,
        "onError": step.on_error.value,
        "continueOn": list(step.continue_on) or None,
        "rollback": step.rollback,
        "executor": step.executor,
        **_action_facts(step.action, "", {}),
        **_action_facts(
            step.rollback_action, "rollback.", step.action.own_env if step.action else {}
        ),
    }


def _action_facts(
    action: PlannedAction | None, prefix: str, inherited: Mapping[str, str]
) -> dict[str, Any]:
    """An action's facts; env variables from the workflow or equal to what it inherits are
    left to their owner."""
    if action is None:
        return {}
    own_env = {k: v for k, v in action.own_env.items() if inherited.get(k) != v}
    facts: dict[str, Any] = {
        "run": action.run,
        "cmd": list(action.cmd) if action.kind is StepKind.CMD else None,
        "uses": action.uses,
        "with": dict(action.with_) if action.uses is not None else None,
        "shell": action.shell,
        "workingDirectory": action.working_directory,
        **{f"env.{name}": text for name, text in own_env.items()},
    }
    if prefix:
        facts["timeout"] = action.timeout
    return {prefix + name: fact for name, fact in facts.items() if fact is not None}


def _run_facts(plan: Plan) -> dict[str, Any]:
    return {
        "name": plan.name,
        "description": plan.description,
        "inputs": dict(plan.inputs),
        **{f"env.{name}": text for name, text in plan.env.items()},
        "compensation": plan.compensation,
        "worstCaseSeconds": plan.worst_case_seconds,
        "timeout": plan.timeout,
        "maxParallel": plan.max_parallel,
        **{
            f"groups.{group.id}.{name}": fact
            for group in plan.groups.values()
            for name, fact in (
                ("groupTimeout", group.group_timeout),
                ("groupRetries", group.group_retries),
            )
            if fact is not None
        },
    }


def _changed(
    step: StepId | None, before: Mapping[str, Any], after: Mapping[str, Any]
) -> list[Change]:
    names = [*before, *(name for name in after if name not in before)]
    added_or_removed = ("rollback.timeout" in before) != ("rollback.timeout" in after)
    return [
        Change(step, name, before.get(name), after.get(name))
        for name in names
        if before.get(name) != after.get(name)
        and not (added_or_removed and name in _ROLLBACK_SETTINGS)
    ]


#: a rollback's settings, not listed when the rollback itself is added or removed
_ROLLBACK_SETTINGS = frozenset({"rollback.timeout", "rollback.shell", "rollback.workingDirectory"})


def diff_plans(base: Plan, head: Plan) -> list[Change]:
    """What changed from `base` to `head`: steps, order, conditions, timeouts, retries,
    commands (script, argv, callable, `with`, env, shell, directory, rollback), the
    compensation order and the worst case."""
    changes: list[Change] = []
    for step_id in base.steps.keys() - head.steps.keys():
        changes.append(Change(step_id, "step", "present", "removed"))
    for step_id in head.steps.keys() - base.steps.keys():
        changes.append(Change(step_id, "step", "absent", "added"))
    for step_id in [s for s in head.steps if s in base.steps]:
        changes += _changed(
            step_id, _step_facts(base.steps[step_id]), _step_facts(head.steps[step_id])
        )
    return changes + _changed(None, _run_facts(base), _run_facts(head))
