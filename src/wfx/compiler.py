"""Compiler stage: Workflow (+ inputs) -> ExecutionGraph, in O(V + E).

Steps: give every step an id, lower steps and groups to nodes and edges, order
the nodes topologically (Kahn; when that stalls, every cycle is found in one pass by
Tarjan's strongly connected components), and work out each leaf step's effective
settings with their provenance. Structural errors (duplicate ids, unknown `needs`, cycles)
and the static checks of :mod:`wfx.checks` are reported together.
"""

from __future__ import annotations

import dataclasses
import functools
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from wfx import checks, inputs
from wfx.compilation import Compilation
from wfx.diagnostics import Diagnostic, DiagnosticsError, Span, closest, error, has_errors, warning
from wfx.expr import ExpressionError, Template, parse_template, to_string
from wfx.fanout import (
    PLACEHOLDER,
    Instance,
    TooManyInstancesError,
    max_instances,
    static_instances,
)
from wfx.graph import (
    NO_CONTINUE_ON,
    NO_EXECUTOR,
    NO_RESOURCES,
    CallScope,
    EffectiveSettings,
    ExecutionGraph,
    FanOutInfo,
    Node,
    NodeKind,
    Origin,
    RetrySchedule,
    Section,
    Setting,
    reachable,
)
from wfx.include import is_runtime, literal_value
from wfx.model import (
    COMMAND_LINE_ENV_FILE,
    CONTEXT_NAMES,
    FanOut,
    FanOutKind,
    GroupType,
    OnError,
    RetryPolicy,
    Step,
    StepId,
    Workflow,
)
from wfx.shell import DEFAULT_SHELL, check_environments, check_scripts
from wfx.walk import StepVisitor, all_steps, descendants

DEFAULT_KILL_GRACE = 10.0
DEFAULT_RETRY_DELAY = 1.0
DEFAULT_MAX_DELAY = 30.0
DEFAULT_FACTOR = 2.0
ON_ERROR_RETRY_ATTEMPTS = 3


def compile_workflow(
    workflow: Workflow,
    given_inputs: Mapping[str, Any] | None = None,
    input_spans: Mapping[str, Span] | None = None,
    *,
    require_inputs: bool = True,
    children: dict[int, Compilation | DiagnosticsError] | None = None,
) -> Compilation:
    """Compile `workflow` with the given inputs; raise DiagnosticsError listing every error.

    With `require_inputs` false (`wfx validate`), required inputs may be left out. The
    sub-workflows its steps call (loaded by :mod:`wfx.include`) are compiled once each
    (`children` remembers them by identity) and their nodes spliced into the graph.
    """
    ids = assign_ids(workflow)
    problems = list(_duplicate_ids(workflow, ids))
    values: dict[str, Any] = {}
    resolved = True
    try:
        values = inputs.resolve(workflow, given_inputs or {}, input_spans, require_inputs)
    except DiagnosticsError as exc:
        problems += exc.diagnostics
        resolved = False
    problems += _check_concurrency(workflow, values)
    lowering = _Lowering(workflow, ids, values if resolved else None, children)
    lowering.lower_all()
    problems += lowering.problems
    problems += lowering.settings.problems
    problems += inputs.check_defaults(workflow)
    problems += checks.check_references(workflow, ids, lowering.instance_ids)
    problems += checks.check_policies(workflow)
    problems += checks.check_callables(workflow)
    problems += checks.check_constants(workflow)
    problems += check_scripts(lowering.scripts.values(), workflow)
    problems += check_environments(workflow)
    problems += _body_cycles(lowering.nodes, lowering.bodies)
    nodes, cycles = _topological(_take_out_bodies(lowering.nodes, lowering.bodies))
    problems += cycles
    if has_errors(problems):
        raise DiagnosticsError(problems)
    graph = ExecutionGraph(
        workflow, tuple(nodes), _id_table(nodes), values, lowering.calls, workflow_env(workflow)
    )
    warnings = [p for p in problems if not has_errors([p])]
    warnings += checks.check_data_flow(graph)
    warnings += checks.check_comparisons(workflow)
    return Compilation(graph, warnings)


# -- concurrency ------------------------------------------------------------------------------


def concurrency_group(workflow: Workflow, inputs: Mapping[str, Any]) -> str | None:
    """The name of the run's concurrency group, its `${{ inputs.* }}` filled in; None when
    the workflow has no `concurrency`."""
    if workflow.concurrency is None:
        return None
    contexts = {"inputs": dict(inputs)}
    return "".join(
        part if isinstance(part, str) else to_string(part.evaluate(contexts))
        for part in workflow.concurrency.group.parts
    )


def _check_concurrency(workflow: Workflow, values: Mapping[str, Any]) -> list[Diagnostic]:
    """The group reads only declared inputs, and can be worked out from them."""
    if workflow.concurrency is None:
        return []
    declared = {i.name.lower() for i in workflow.inputs}
    problems = []
    for expression in workflow.concurrency.group.expressions():
        for reference in expression.references():
            path = reference.path
            if path[0].lower() == "inputs" and (len(path) < 2 or path[1].lower() not in declared):
                problems.append(
                    error(
                        "compile.concurrency-input",
                        f"the concurrency group reads `{'.'.join(path[:2])}`, which is not a"
                        " declared input",
                        reference.span,
                        "declare it under `inputs`",
                    )
                )
    if problems:
        return problems
    try:
        concurrency_group(workflow, values)
    except ExpressionError as exc:
        return [error("compile.concurrency", f"concurrency group: {exc.message}", exc.span)]
    return []


# -- ids --------------------------------------------------------------------------------------


def assign_ids(workflow: Workflow) -> dict[tuple[Any, ...], StepId]:
    """Each step's id by its document path: the author's id, or a stable derived one.

    A derived id comes from the position: the third top-level step is `step-3`, the
    second child of group `checks` is `checks-2`, the first `finally` step `finally-1`.
    """
    naming = _IdAssigner({s.id for s in all_steps(workflow) if s.id})
    naming.visit_workflow(workflow)
    return naming.ids


class _IdAssigner(StepVisitor):
    """Walks the steps, naming each one; `prefix` is the derived ids' stem at this level."""

    def __init__(self, taken: set[StepId]) -> None:
        self.taken = taken
        self.ids: dict[tuple[Any, ...], StepId] = {}
        self.prefix = "step"

    def visit_workflow(self, workflow: Workflow) -> None:
        self.visit_steps(workflow.steps)
        self.prefix = "finally"
        self.visit_steps(workflow.finally_)

    def visit_steps(self, steps: Iterable[Step]) -> None:
        prefix = self.prefix
        for position, step in enumerate(steps, start=1):
            step_id = step.id or _derived(f"{prefix}-{position}", self.taken)
            self.taken.add(step_id)
            self.ids[step.path] = step_id
            self.prefix = step_id
            self.visit(step)
        self.prefix = prefix


def _derived(candidate: str, taken: set[StepId]) -> StepId:
    while candidate in taken:
        candidate += "_"
    return StepId(candidate)


def _duplicate_ids(
    workflow: Workflow, ids: Mapping[tuple[Any, ...], StepId]
) -> Iterator[Diagnostic]:
    first: dict[str, Step] = {}
    for step in all_steps(workflow):
        if step.id is None:
            continue
        if step.id in first:
            earlier = first[step.id]
            yield error(
                "compile.duplicate-id",
                f"duplicate step id `{step.id}` (first used at line {earlier.span.line})",
                step.id_span,
                "step ids must be unique across the whole file",
            )
        else:
            first[step.id] = step


# -- lowering ---------------------------------------------------------------------------------


@dataclass
class _Draft:
    """A node under construction (indices are creation order until the topological sort)."""

    id: StepId
    kind: NodeKind
    step: Step
    section: Section
    groups: tuple[StepId, ...]
    deps: list[int] = field(default_factory=list)
    settings: EffectiveSettings | None = None
    group_retry: RetrySchedule | None = None
    instance: Instance | None = None
    fan_out: FanOutInfo | None = None
    scope: str = ""
    cleanup: bool = False


class _Lowering(StepVisitor):
    """Turns nested steps into draft nodes and edges, walking them with the step visitor.

    While siblings are lowered, `entry` is what the next of them waits for, `groups` the
    groups around them and `parallel` whether they start together (then `level_ends`
    collects their ends).
    """

    def __init__(
        self,
        workflow: Workflow,
        ids: Mapping[tuple[Any, ...], StepId],
        input_values: Mapping[str, Any] | None = None,
        children: dict[int, Compilation | DiagnosticsError] | None = None,
    ) -> None:
        self.workflow = workflow
        self.ids = ids
        self.input_values = input_values
        self.limit = max_instances(workflow.max_instances and workflow.max_instances.value)
        self.children = {} if children is None else children
        self.calls: dict[str, CallScope] = {}
        self.nodes: list[_Draft] = []
        self.ends: dict[StepId, int] = {}
        self.sections: dict[StepId, Section] = {}
        self.retried: set[StepId] = set()
        """Groups with `groupRetries`: steps outside them may not need steps inside."""
        self.pending_needs: list[tuple[int, Step, Instance | None]] = []
        self.instance: Instance | None = None
        self.instance_ids: set[str] = set()
        """Ids of the instances of static fan-outs (and their steps), which `steps.` may name."""
        self.bodies: list[tuple[int, int, int]] = []
        """Each dynamic fan-out of a group: its start, and where its body's drafts begin
        and end (they leave the graph for the fan-out's `body`: `_take_out_bodies`)."""
        self.scripts: dict[int, tuple[Step, str | None]] = {}
        """Each leaf step once (not once per instance) with its shell, for check_scripts."""
        self.problems: list[Diagnostic] = []
        self.settings = _SettingsResolver(workflow)
        self.section = Section.MAIN
        self.entry: list[int] = []
        self.groups: tuple[Step, ...] = ()
        self.parallel = False
        self.level_ends: list[int] = []
        self.group_path: tuple[StepId, ...] = ()
        """The ids of the groups around the next node (an instance's own copies)."""
        self.total_instances = 0
        self.over_total = False

    def lower_all(self) -> None:
        parallel = self.workflow.group_type is GroupType.PARALLEL
        self.lower_siblings(self.workflow.steps, Section.MAIN, [], (), parallel=parallel)
        self.lower_siblings(self.workflow.finally_, Section.FINALLY, [], (), parallel=False)
        for start, step, instance in self.pending_needs:
            self.resolve_needs(start, step, instance)

    def lower_siblings(
        self,
        steps: tuple[Step, ...],
        section: Section,
        entry: list[int],
        groups: tuple[Step, ...],
        *,
        parallel: bool,
    ) -> list[int]:
        """Lower siblings that start together (`parallel`) or one after another; return
        the ends to wait for."""
        outer = (self.section, self.entry, self.groups, self.parallel, self.level_ends)
        self.section, self.entry, self.groups = section, entry, groups
        self.parallel, self.level_ends = parallel, []
        path = self.group_path
        if groups:
            self.group_path = (*path, self.node_id(groups[-1]))
        self.visit_steps(steps)
        self.group_path = path
        ends = self.level_ends if parallel else self.entry
        self.section, self.entry, self.groups, self.parallel, self.level_ends = outer
        return ends

    def visit(self, step: Step) -> None:
        """A step with `matrix`/`forEach` is lowered as its instances (inside a fanned-out
        group's instance: once per outer instance, ids keyed by both); others as written."""
        if step.fan_out is None:
            super().visit(step)
        else:
            self.visit_fan_out(step, step.fan_out)

    def generic_visit(self, step: Step) -> None:
        """A leaf step: one node."""
        step_id = self.node_id(step)
        self.sections[step_id] = self.section
        index = self.add(step_id, NodeKind.STEP, step, self.section, self.group_ids(), self.entry)
        settings = self.settings.resolve(step, self.groups)
        self.nodes[index].settings = settings
        self.scripts.setdefault(id(step), (step, settings.shell.value))
        self.ends[step_id] = index
        self.pending_needs.append((index, step, self.instance))
        self.lowered(index)

    def visit_group(self, step: Step) -> None:
        """A group: a start node, its children, an end node."""
        step_id = self.node_id(step)
        group_ids = self.group_ids()
        self.sections[step_id] = self.section
        if step.group_retries is not None:
            self.retried.add(step_id)
        start = self.add(step_id, NodeKind.GROUP_START, step, self.section, group_ids, self.entry)
        self.pending_needs.append((start, step, self.instance))
        parallel = step.group_type is GroupType.PARALLEL
        inner = (*self.groups, step)
        ends = self.lower_siblings(step.steps, self.section, [start], inner, parallel=parallel)
        end = self.add(step_id, NodeKind.GROUP_END, step, self.section, group_ids, ends or [start])
        self.nodes[start].group_retry = self.nodes[end].group_retry = group_schedule(step)
        self.ends[step_id] = end
        self.lowered(end)

    # -- fan-out ----------------------------------------------------------------------------

    def visit_fan_out(self, step: Step, fan_out: FanOut) -> None:
        """A fan-out: a start barrier, its instances side by side, an end barrier that
        `needs: [id]` waits for. A dynamic one gets its instances at run time."""
        if self.over_total:
            return  # the instance limit is passed: lowering more would only cost
        step_id = self.node_id(step)  # inside an outer instance: `inner[api]`
        around = self.instance
        items = self.static_items(fan_out)
        dynamic = fan_out.kind is FanOutKind.FOR_EACH and fan_out.items is None and items is None
        body = dynamic and bool(step.steps)
        if body:
            refused = list(_not_in_a_dynamic_group(step))
            if refused:
                self.problems += refused
                return
        instances = [] if dynamic else self.instances(step_id, step, fan_out, items)
        if not self.count_instances(step_id, len(instances), fan_out.span):
            return
        info = self.fan_out_info(step_id, step, fan_out, instances, dynamic)
        if body:  # its body is compiled once, for a placeholder instance the run copies
            members = frozenset(self.ids[s.path] for s in descendants(step))
            instances = [Instance(step_id, PLACEHOLDER, 0, {}, members, around)]
        barrier = dataclasses.replace(step, condition=None, call=None)
        group_ids = self.group_ids()
        self.sections[step_id] = self.section
        start = self.add(
            step_id, NodeKind.GROUP_START, barrier, self.section, group_ids, self.entry
        )
        self.nodes[start].fan_out = info
        self.pending_needs.append((start, step, around))
        outer = (self.entry, self.parallel, self.level_ends, self.groups, self.group_path)
        self.entry, self.parallel, self.level_ends = [start], True, []
        self.groups = (*self.groups, barrier)
        self.group_path = (*self.group_path, step_id)
        mark = len(self.nodes)
        for instance in instances:
            if self.over_total:
                break
            self.lower_instance(step, step_id, instance, start, named=not body)
        self.instance = around
        ends = self.level_ends
        self.entry, self.parallel, self.level_ends, self.groups, self.group_path = outer
        if body:
            self.bodies.append((start, mark, len(self.nodes)))
        end = self.add(
            step_id, NodeKind.GROUP_END, barrier, self.section, group_ids, ends or [start]
        )
        self.nodes[end].fan_out = info
        self.ends[step_id] = end
        self.lowered(end)

    def lower_instance(
        self, step: Step, step_id: StepId, instance: Instance, start: int, *, named: bool
    ) -> None:
        """One instance of a fan-out, after its start: a group, a call, or the step."""
        self.instance = instance
        if named:  # `steps['build[api]']` may name it
            self.instance_ids.add(instance.own(step_id))
            self.instance_ids.update(instance.place(m) for m in instance.members)
        self.entry = [start]
        if step.steps:
            super().visit(dataclasses.replace(step, max_parallel=None, fan_out=None))
        elif step.call is not None:  # each instance calls the sub-workflow
            self.visit_uses(dataclasses.replace(step, max_parallel=None, fan_out=None))
        else:
            self.generic_visit(step)

    def count_instances(self, step_id: StepId, count: int, span: Span) -> bool:
        """Count a static fan-out's instances against the limit for all fan-outs together
        (nested ones multiply); over it, say so once and lower no more of them."""
        self.total_instances += count
        if self.total_instances <= self.limit:
            return True
        if not self.over_total:
            self.over_total = True
            what = f"with the fan-outs around it and before it, {self.total_instances} or more"
            self.problems.append(too_many_instances(step_id, what, self.limit, span))
        return False

    def static_items(self, fan_out: FanOut) -> list[Any] | None:
        """The list of a `forEach` expression that reads only inputs, evaluated now (None:
        only the run knows it, or it failed and a problem says why)."""
        expression = fan_out.expression
        if expression is None or any(
            r.path[0].lower() in ("steps", "workflow") for r in expression.references()
        ):
            return None
        if self.input_values is None:
            return []
        contexts = {"inputs": self.input_values}
        if self.instance is not None:  # a nested fan-out's list may read the outer's values
            contexts.update(self.instance.visible())
        try:
            value = expression.evaluate(contexts)
        except ExpressionError as exc:
            self.problems.append(error("compile.for-each", exc.message, exc.span))
            return []
        if not isinstance(value, list | tuple):
            self.problems.append(not_a_list(expression.text.strip(), value, fan_out.span))
            return []
        return list(value)

    def instances(
        self, step_id: StepId, step: Step, fan_out: FanOut, items: list[Any] | None
    ) -> list[Instance]:
        members = frozenset(self.ids[s.path] for s in descendants(step))
        try:
            return static_instances(step_id, fan_out, self.limit, items, members, self.instance)
        except TooManyInstancesError as exc:
            self.problems.append(too_many_instances(step_id, str(exc), self.limit, fan_out.span))
            return []

    def fan_out_info(
        self,
        step_id: StepId,
        step: Step,
        fan_out: FanOut,
        instances: list[Instance],
        dynamic: bool,
    ) -> FanOutInfo:
        settings = self.settings.resolve(step, self.groups) if dynamic and not step.steps else None
        if settings is not None:
            self.scripts.setdefault(id(step), (step, settings.shell.value))
        return FanOutInfo(
            kind=fan_out.kind,
            dynamic=dynamic,
            instances=tuple(StepId(i.own(step_id)) for i in instances),
            max_parallel=None if step.max_parallel is None else int(step.max_parallel.value),
            fail_fast=True if fan_out.fail_fast is None else bool(fan_out.fail_fast.value),
            limit=self.limit,
            source="" if fan_out.expression is None else fan_out.expression.text.strip(),
            settings=settings,
            template=step if dynamic else None,
        )

    def node_id(self, step: Step) -> StepId:
        """A step's node id: its own, or inside a fan-out instance `id[key]` (nested:
        `id[outer][inner]`)."""
        step_id = self.ids[step.path]
        return step_id if self.instance is None else StepId(self.instance.place(step_id))

    def visit_uses(self, step: Step) -> None:
        """A Python step is a leaf; a step that calls a sub-workflow is a group of the
        child's nodes."""
        if step.call is None:
            self.generic_visit(step)
            return
        if step.call.workflow is None:
            if step.call.file is None:  # "" : the include stage already said why
                self.problems.append(_not_included(step))
            self.generic_visit(step)
            return
        child = self.child(step.call.workflow)
        if child is not None:
            self.splice(step, child.graph)

    def child(self, workflow: Workflow) -> Compilation | None:
        """The called workflow compiled on its own (once per file), its problems kept."""
        found = self.children.get(id(workflow))
        if found is None:
            try:
                found = compile_workflow(workflow, require_inputs=False, children=self.children)
                self.problems += found.warnings
                self.problems += _ignored_in_child(workflow)
            except DiagnosticsError as exc:
                found = exc
                self.problems += exc.diagnostics
            self.children[id(workflow)] = found
        return found if isinstance(found, Compilation) else None

    def splice(self, step: Step, child: ExecutionGraph) -> None:
        """The child's nodes between the caller's start and end barriers, ids prefixed with
        the caller's; its `finally` steps after its main steps, as cleanup."""
        step_id = self.node_id(step)
        prefix = f"{step_id}/"
        group_ids = self.group_ids()
        self.sections[step_id] = self.section
        start = self.add(step_id, NodeKind.GROUP_START, step, self.section, group_ids, self.entry)
        self.pending_needs.append((start, step, None))
        base = len(self.nodes)
        inner = (*group_ids, step_id)
        main_ends = _sinks(child, Section.MAIN)
        for node in child.nodes:
            deps = [base + d for d in node.deps]
            if not deps:
                roots = main_ends if node.section is Section.FINALLY else []
                deps = [base + i for i in roots] or [start]
            self.nodes.append(
                _Draft(
                    StepId(prefix + node.id),
                    node.kind,
                    node.step,
                    self.section,
                    (*inner, *(StepId(prefix + g) for g in node.groups)),
                    deps,
                    settings=node.settings,
                    group_retry=node.group_retry,
                    instance=_within(node.instance, prefix, self.instance),
                    fan_out=None if node.fan_out is None else node.fan_out.under(prefix, inner),
                    scope=prefix + node.scope,
                    cleanup=node.cleanup or node.section is Section.FINALLY,
                )
            )
        sinks = _sinks(child, Section.FINALLY) or main_ends
        ends = [base + i for i in sinks] or [start]
        end = self.add(step_id, NodeKind.GROUP_END, step, self.section, group_ids, ends)
        self.ends[step_id] = end
        for key, scope in child.calls.items():
            self.calls[prefix + key] = _prefixed(scope, prefix)
        known = None
        if self.instance is not None and self.input_values is not None:
            known = {"inputs": self.input_values, **self.instance.visible()}
        self.calls[prefix] = _call_scope(step, step_id, child.workflow, known, child.env)
        self.lowered(end)

    def group_ids(self) -> tuple[StepId, ...]:
        """The ids of the groups around the next node: inside a fan-out instance, the
        fan-out, then the instance's own copies (`id[key]`) of its groups."""
        return self.group_path

    def lowered(self, end: int) -> None:
        """A sibling was lowered: the next one waits for it, or it is one of the ends."""
        if self.parallel:
            self.level_ends.append(end)
        else:
            self.entry = [end]

    def add(
        self,
        step_id: StepId,
        kind: NodeKind,
        step: Step,
        section: Section,
        groups: tuple[StepId, ...],
        deps: list[int],
    ) -> int:
        draft = _Draft(step_id, kind, step, section, groups, list(deps), instance=self.instance)
        self.nodes.append(draft)
        return len(self.nodes) - 1

    def resolve_needs(self, index: int, step: Step, instance: Instance | None) -> None:
        section = self.nodes[index].section
        deps = self.nodes[index].deps
        known = set(deps)  # a list of thousands of needs is checked in linear time
        for ref in step.needs:
            name = ref.id
            if instance is not None:
                name = StepId(instance.resolve(ref.id))  # a sibling in the same instance
            end = self.ends.get(name)
            if end is None:
                self.problems.append(_unknown_need(ref.id, ref.span, self.ends))
            elif section is Section.MAIN and self.sections[name] is Section.FINALLY:
                self.problems.append(
                    error(
                        "compile.needs-finally",
                        f"`{ref.id}` is a `finally` step; main steps cannot wait for it",
                        ref.span,
                        "`finally` steps run after all main steps, whatever happened",
                    )
                )
            elif self.into_retried_group(index, end, ref.span) is not None:
                pass
            elif end not in known:
                known.add(end)
                deps.append(end)

    def may_need(self, index: int, instance: Instance | None, ref: str, waiting: set[int]) -> bool:
        """Whether node `index` may wait for `ref` as `resolve_needs` decides, without a
        cycle (`waiting`: the nodes that wait for it)."""
        name = StepId(ref if instance is None else instance.resolve(ref))
        end = self.ends.get(name)
        if end is None or end in waiting:
            return False
        if self.nodes[index].section is Section.MAIN and self.sections[name] is Section.FINALLY:
            return False
        problems = len(self.problems)
        refused = self.into_retried_group(index, end, self.nodes[index].step.span)
        del self.problems[problems:]
        return refused is None

    def into_retried_group(self, index: int, end: int, span: Span) -> StepId | None:
        """A step outside a group with `groupRetries` that needs a step inside it would see
        the results of an attempt the group may undo and run again: report it."""
        inside = set(self.nodes[index].groups) | {self.nodes[index].id}
        for group_id in self.nodes[end].groups:
            if group_id in self.retried and group_id not in inside:
                target = self.nodes[end].id
                self.problems.append(
                    error(
                        "compile.needs-into-retried-group",
                        f"`needs` names `{target}`, inside group `{group_id}`, which has"
                        " `groupRetries`: its results may be rolled back and made again",
                        span,
                        f"need the group itself (`needs: {group_id}`), which ends once its"
                        " last attempt has",
                    )
                )
                return group_id
        return None


def acceptable_needs(workflow: Workflow, path: tuple[Any, ...], names: Iterable[str]) -> list[str]:
    """Of `names`, those the step written at document `path` may add to its `needs`
    without an error (for an editor's completion): what `resolve_needs` accepts (a known
    step; not a `finally` step for a main step; not inside a group with `groupRetries`
    the step is outside of) that does not wait, even through others, for the step itself
    (a cycle). Its instances (in a fanned-out group) must all accept a name."""
    values: dict[str, Any] | None
    try:
        values = inputs.resolve(workflow, {}, None, False)
    except DiagnosticsError:
        values = None
    lowering = _Lowering(workflow, assign_ids(workflow), values)
    lowering.lower_all()
    entries = [(i, inst) for i, step, inst in lowering.pending_needs if step.path == path]
    dependents: list[list[int]] = [[] for _ in lowering.nodes]
    for index, node in enumerate(lowering.nodes):
        for dep in node.deps:
            dependents[dep].append(index)
    waiting = {index: {index} | reachable(dependents.__getitem__, [index]) for index, _ in entries}
    return [
        name
        for name in names
        if entries and all(lowering.may_need(i, inst, name, waiting[i]) for i, inst in entries)
    ]


def _within(instance: Instance | None, prefix: str, caller: Instance | None) -> Instance | None:
    """A child node's instance seen from the caller (ids under `prefix`). In a fanned-out
    call, a child node outside the child's own fan-outs (their barriers included) belongs
    to the caller's instance, whose `failFast` then decides for its failures; the child's
    instances keep their own chain (their ids hold the caller's key in `prefix` already)."""
    return caller if instance is None else instance.under(prefix)


def _not_in_a_dynamic_group(group: Step) -> Iterator[Diagnostic]:
    """What a group fanned out over a list known only at run time may not hold: its body
    is copied per item as the run goes, and these need the whole graph before it."""
    assert group.fan_out is not None
    if group.group_retries is not None:
        yield _refused_in_body("`groupRetries` on", group.group_retries.span, group)
    for step in descendants(group):
        if step.call is not None:
            where = step.call.span
            yield _refused_in_body("a sub-workflow call inside", where, group)
        elif step.group_retries is not None:
            yield _refused_in_body("`groupRetries` inside", step.group_retries.span, group)
        elif step.fan_out is not None and _known_at_run_time(step.fan_out):
            what = "a `forEach` known only at run time inside"
            yield _refused_in_body(what, step.fan_out.span, group)


def _known_at_run_time(fan_out: FanOut) -> bool:
    """Whether a fan-out's list comes from `steps` or `workflow` (a dynamic `forEach`)."""
    expression = fan_out.expression
    return expression is not None and any(
        r.path[0].lower() in ("steps", "workflow") for r in expression.references()
    )


def _refused_in_body(what: str, span: Span, group: Step) -> Diagnostic:
    assert group.fan_out is not None
    return error(
        "compile.dynamic-group-fan-out",
        f"{what} a group fanned out over a list known only at run time is not"
        f" supported (the group's `forEach` is at line {group.fan_out.span.line})",
        span,
        "give the group a list known before running (literal or from `inputs`), or move"
        " this out of the group",
    )


def _take_out_bodies(drafts: list[_Draft], bodies: list[tuple[int, int, int]]) -> list[_Draft]:
    """The drafts without the bodies of dynamic group fan-outs, each body moved into its
    fan-out's `body` (deps as positions in it, -1 the fan-out's start). A body step's
    `needs` of a step outside the group become the fan-out's own: the list is evaluated,
    and every instance starts, after them."""
    if not bodies:
        return drafts
    inside = [False] * len(drafts)
    for _, first, last in bodies:
        for index in range(first, last):
            inside[index] = True
    for start, first, last in bodies:
        body = []
        for index in range(first, last):
            draft = drafts[index]
            deps = []
            for dep in draft.deps:
                if first <= dep < last:
                    deps.append(dep - first)
                elif dep == start:
                    deps.append(-1)
                elif dep not in drafts[start].deps:
                    drafts[start].deps.append(dep)
            body.append(_node(draft, index - first, tuple(sorted(set(deps)))))
        info = drafts[start].fan_out
        assert info is not None
        info = dataclasses.replace(info, body=tuple(body))
        drafts[start].fan_out = info
        drafts[last].fan_out = info  # the end barrier, added right after the body
        drafts[last].deps = [start]
    position: dict[int, int] = {}
    for index, is_inside in enumerate(inside):
        if not is_inside:
            position[index] = len(position)
    kept = []
    for index, draft in enumerate(drafts):
        if not inside[index]:
            draft.deps = [position[d] for d in draft.deps if not inside[d]]
            kept.append(draft)
    return kept


def _body_cycles(drafts: list[_Draft], bodies: list[tuple[int, int, int]]) -> list[Diagnostic]:
    """The dependency cycles among the steps of each dynamic group fan-out's body: the body
    leaves the graph (the run copies it per item), so the graph's own sort never sees them,
    and an instance whose steps wait for each other would wait forever."""
    found: list[Diagnostic] = []
    for _, first, last in bodies:
        body = [
            dataclasses.replace(
                draft,
                id=StepId(draft.id.removesuffix(f"[{PLACEHOLDER}]")),  # named as written
                deps=[d - first for d in draft.deps if first <= d < last],
            )
            for draft in drafts[first:last]
        ]
        found += _topological(body)[1]
    return found


def _node(draft: _Draft, index: int, deps: tuple[int, ...]) -> Node:
    """A draft as the node `index` with `deps`."""
    return Node(
        index=index,
        id=draft.id,
        kind=draft.kind,
        step=draft.step,
        section=draft.section,
        deps=deps,
        groups=draft.groups,
        settings=draft.settings,
        group_retry=draft.group_retry,
        instance=draft.instance,
        fan_out=draft.fan_out,
        scope=draft.scope,
        cleanup=draft.cleanup,
    )


def not_a_list(text: str, value: Any, span: Span) -> Diagnostic:
    """`forEach: ${{ text }}` gave `value`, which is not a list."""
    kind = type(value).__name__ if value is not None else "null"
    return error(
        "compile.for-each-not-a-list",
        f"`forEach` must give a list; `${{{{ {text} }}}}` gives a {kind}",
        span,
        "give a list, e.g. `${{ fromJSON(inputs.items) }}` for a JSON array",
    )


def too_many_instances(step_id: str, what: str, limit: int, span: Span) -> Diagnostic:
    """A fan-out over the `maxInstances` limit."""
    return error(
        "compile.too-many-instances",
        f"fan-out `{step_id}` would create too many instances: {what}, the limit is {limit}",
        span,
        "raise the workflow's `maxInstances` (default 10000), or split the fan-out",
    )


def _sinks(graph: ExecutionGraph, section: Section) -> list[int]:
    """The nodes of `section` nothing else waits for: the ends to wait for."""
    waited = {d for node in graph.nodes for d in node.deps}
    return [n.index for n in graph.nodes if n.index not in waited and n.section is section]


def _prefixed(scope: CallScope, prefix: str) -> CallScope:
    """A nested call seen from one level up: its ids and scope under `prefix`."""
    return CallScope(
        StepId(prefix + scope.id),
        prefix + scope.scope,
        scope.step,
        scope.workflow,
        scope.inputs,
        scope.runtime_inputs,
        scope.env,
    )


def _call_scope(
    step: Step,
    step_id: StepId,
    child: Workflow,
    known: Mapping[str, Any] | None = None,
    env: Mapping[str, Setting] | None = None,
) -> CallScope:
    """A call's scope, with the child's inputs as far as they are known before the run:
    literal `with` values (coerced), in a fanned-out call also the ones that read only
    the instance's values and the caller's inputs (`known`), and the child's defaults."""
    given = {} if step.action is None else step.action.with_
    declared = {d.name for d in child.inputs}
    plain = {name: literal_value(value) for name, value in given.items() if name in declared}
    for name, value in given.items():
        if known is not None and name in plain and is_runtime(plain[name]):
            plain[name] = _known_value(value, known, plain[name])
    runtime = frozenset(name for name, value in plain.items() if is_runtime(value))
    static = {name: value for name, value in plain.items() if name not in runtime}
    try:
        values = inputs.resolve(child, static, require=False)
    except DiagnosticsError:  # reported by the include stage, at the `with` value
        values = {}
    return CallScope(step_id, "", step, child, values, runtime, env or {})


def _known_value(value: Any, known: Mapping[str, Any], otherwise: Any) -> Any:
    """A `with` template evaluated now when it reads only names in `known`; else
    `otherwise` (known only at run time)."""
    if not isinstance(value, Template):
        return otherwise
    heads = {r.path[0].lower() for e in value.expressions() for r in e.references()}
    if not heads <= set(known):
        return otherwise
    try:
        return value.render(known)
    except ExpressionError:
        return otherwise


def _not_included(step: Step) -> Diagnostic:
    assert step.call is not None
    return error(
        "compile.not-included",
        f"the sub-workflow `{step.call.path}` was not loaded",
        step.call.span,
        "compile workflows read with wfx.api (load, compile_file), which load sub-workflows",
    )


def _ignored_in_child(workflow: Workflow) -> list[Diagnostic]:
    """A called workflow's root `timeout` bounds a run, and a call is not a run."""
    if workflow.timeout is None:
        return []
    return [
        warning(
            "include.ignored-timeout",
            "the workflow `timeout` is ignored when this file is called as a sub-workflow",
            workflow.timeout.span,
            "set `timeout` in its `defaults` (per step attempt) to bound its steps",
        )
    ]


def _unknown_need(name: str, span: Span, known: Iterable[str]) -> Diagnostic:
    close = closest(name, known)
    hint = f"did you mean `{close}`?" if close else "`needs` names the `id` of another step"
    return error("compile.unknown-need", f"`needs` names unknown step `{name}`", span, hint)


# -- topological order and cycles -------------------------------------------------------------


def _topological(drafts: list[_Draft]) -> tuple[list[Node], list[Diagnostic]]:
    """Nodes renumbered in Kahn order, or one diagnostic per dependency cycle."""
    dependents: list[list[int]] = [[] for _ in drafts]
    missing = [len(d.deps) for d in drafts]
    for index, draft in enumerate(drafts):
        for dep in draft.deps:
            dependents[dep].append(index)
    ready = deque(i for i, count in enumerate(missing) if count == 0)
    order: list[int] = []
    while ready:
        index = ready.popleft()
        order.append(index)
        for child in dependents[index]:
            missing[child] -= 1
            if missing[child] == 0:
                ready.append(child)
    if len(order) < len(drafts):
        return [], _cycle_diagnostics(drafts, {i for i, m in enumerate(missing) if m > 0})
    position = {old: new for new, old in enumerate(order)}
    nodes = [
        Node(
            index=position[old],
            id=drafts[old].id,
            kind=drafts[old].kind,
            step=drafts[old].step,
            section=drafts[old].section,
            deps=tuple(sorted(position[d] for d in drafts[old].deps)),
            groups=drafts[old].groups,
            settings=drafts[old].settings,
            group_retry=drafts[old].group_retry,
            instance=drafts[old].instance,
            fan_out=drafts[old].fan_out,
            scope=drafts[old].scope,
            cleanup=drafts[old].cleanup,
        )
        for old in order
    ]
    return nodes, []


def _cycle_diagnostics(drafts: list[_Draft], stuck: set[int]) -> list[Diagnostic]:
    """One diagnostic per knot of dependencies (strongly connected component), each
    naming one cycle through it step by step, in the order the knots are written."""
    knots = []
    for component in _strongly_connected(drafts, stuck):
        cycle = _cycle_in(drafts, component)
        on_cycle = {d.id for d in cycle}
        others = {drafts[i].id: drafts[i] for i in component if drafts[i].id not in on_cycle}
        knots.append((cycle, sorted(others.values(), key=lambda d: d.step.span)))
    knots.sort(key=lambda knot: knot[0][0].step.span)
    return [_cycle_diagnostic(cycle, others) for cycle, others in knots]


def _strongly_connected(drafts: list[_Draft], among: set[int]) -> list[set[int]]:
    """The strongly connected components of the dependency edges within `among` that hold a
    cycle (more than one node, or a node that waits for itself)."""
    return _Tarjan(drafts, among).knots()


class _Tarjan:
    """Tarjan's algorithm with an explicit stack: one pass, O(V + E), no recursion limit."""

    def __init__(self, drafts: list[_Draft], among: set[int]) -> None:
        self.drafts = drafts
        self.among = among
        self.order: dict[int, int] = {}
        self.low: dict[int, int] = {}
        self.stack: list[int] = []
        self.on_stack: set[int] = set()
        self.found: list[set[int]] = []

    def knots(self) -> list[set[int]]:
        """Every component that is a cycle, in the order their first node is reached."""
        for root in sorted(self.among):
            if root not in self.order:
                self.visit(root)
        return self.found

    def visit(self, root: int) -> None:
        """Depth-first from `root` along dependencies, closing components on the way back."""
        self.enter(root)
        work: list[tuple[int, Iterator[int]]] = [(root, iter(self.drafts[root].deps))]
        while work:
            node, deps = work[-1]
            child = self.next_unvisited(node, deps)
            if child is not None:
                self.enter(child)
                work.append((child, iter(self.drafts[child].deps)))
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                self.low[parent] = min(self.low[parent], self.low[node])
            if self.low[node] == self.order[node]:
                self.close(node)

    def enter(self, node: int) -> None:
        """Number `node` in visiting order and put it on the stack."""
        self.order[node] = self.low[node] = len(self.order)
        self.stack.append(node)
        self.on_stack.add(node)

    def next_unvisited(self, node: int, deps: Iterator[int]) -> int | None:
        """The next dependency not yet visited; ones still on the stack lower `node`'s link."""
        for dep in deps:
            if dep not in self.among:
                continue
            if dep not in self.order:
                return dep
            if dep in self.on_stack:
                self.low[node] = min(self.low[node], self.order[dep])
        return None

    def close(self, root: int) -> None:
        """`root` heads a component: take it off the stack, keep it if it is a cycle."""
        component: set[int] = set()
        while True:
            member = self.stack.pop()
            self.on_stack.discard(member)
            component.add(member)
            if member == root:
                break
        if len(component) > 1 or root in self.drafts[root].deps:
            self.found.append(component)


def _cycle_in(drafts: list[_Draft], component: set[int]) -> list[_Draft]:
    """A shortest cycle through the component's first-written step (breadth-first along
    dependencies inside the component), one entry per step."""
    start = min(component, key=lambda i: (drafts[i].step.span, i))
    came_from: dict[int, int] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for dep in drafts[node].deps:
            if dep == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return _collapse([drafts[i] for i in reversed(path)])
            if dep in component and dep not in came_from:
                came_from[dep] = node
                queue.append(dep)
    raise AssertionError("a strongly connected component always has a cycle")


def _cycle_diagnostic(cycle: list[_Draft], others: list[_Draft]) -> Diagnostic:
    chain = ", which waits for ".join(f"`{d.id}` ({_where(d.step)})" for d in cycle)
    more = ""
    if others:
        listed = ", ".join(f"`{d.id}` ({_where(d.step)})" for d in others)
        more = f"; other cycles through the same steps also involve {listed}"
    return error(
        "compile.cycle",
        f"dependency cycle: {chain}, which waits for `{cycle[0].id}`{more}",
        cycle[0].step.id_span or cycle[0].step.span,
        "remove one of these `needs` (or move the step out of its group)",
    )


def _where(step: Step) -> str:
    return f"{step.span.file}:{step.span.line}"


def _collapse(cycle: list[_Draft]) -> list[_Draft]:
    """Cycle nodes in "waits for" order, one entry per step (a group's barriers merged),
    starting from the step written first."""
    result: list[_Draft] = []
    for draft in cycle:
        if not result or result[-1].id != draft.id:
            result.append(draft)
    if len(result) > 1 and result[0].id == result[-1].id:
        result.pop()
    first = min(range(len(result)), key=lambda i: result[i].step.span)
    return result[first:] + result[:first]


def _id_table(nodes: list[Node]) -> dict[StepId, int]:
    table: dict[StepId, int] = {}
    for node in nodes:
        if node.kind is not NodeKind.GROUP_START:
            table[node.id] = node.index
    return table


# -- effective settings -----------------------------------------------------------------------


class _SettingsResolver:
    """Works out a leaf step's settings: step, then enclosing groups, defaults, built-in."""

    def __init__(self, workflow: Workflow) -> None:
        self.workflow = workflow
        self.defaults = workflow.defaults
        self.problems: list[Diagnostic] = []

    def resolve(self, step: Step, groups: tuple[Step, ...]) -> EffectiveSettings:
        chain = (step, *reversed(groups))
        on_error = self.pick(chain, "on_error", OnError.FAIL)
        return EffectiveSettings(
            timeout=self.pick(chain, "timeout", None),
            retry=self.retry(chain, on_error.value),
            kill_grace=self.pick(chain, "kill_grace", DEFAULT_KILL_GRACE),
            on_error=on_error,
            shell=self.pick(chain, "shell", DEFAULT_SHELL),
            working_directory=self.pick_raw(chain, "working_directory"),
            env=self.env(chain),
            executor=self.pick(chain, "executor", None, NO_EXECUTOR),
            resources=self.pick(chain, "resources", None, NO_RESOURCES),
            continue_on=self.continue_on(chain, on_error),
        )

    def continue_on(self, chain: tuple[Step, ...], on_error: Setting) -> Setting:
        """`continueOn`: continue for those exit codes, fail for the others; with an
        effective `onError: continue` (which continues for every failure) it is an error."""
        setting = self.pick(chain, "continue_on", None, NO_CONTINUE_ON)
        if setting.value is None:
            return setting
        if 0 in setting.value:
            self.report(
                error(
                    "compile.continue-on-zero",
                    "`continueOn` lists exit code 0, which is success and never fails",
                    setting.span,
                    "list the failing exit codes (1 to 255) the run may go on after",
                )
            )
        if on_error.value is OnError.CONTINUE:
            self.report(
                error(
                    "compile.continue-on-conflict",
                    f"`continueOn` with `onError: continue` (from {on_error.describe()}):"
                    " `onError: continue` already goes on after every failure",
                    setting.span,
                    "drop `onError: continue`, or set `onError: fail` on the step:"
                    " `continueOn` means continue for these codes and fail for the others",
                )
            )
        return setting

    def pick(
        self, chain: tuple[Step, ...], attribute: str, builtin: Any, shared: Setting | None = None
    ) -> Setting:
        """The nearest `Located` value of `attribute` in the chain, then defaults, then
        built-in (`shared`, when given, is that built-in setting, made once)."""
        for owner in chain:
            located = getattr(owner, attribute)
            if located is not None:
                return _setting(located.value, owner, chain[0], located.span)
        located = getattr(self.defaults, attribute)
        if located is not None:
            return Setting(located.value, Origin.DEFAULTS, located.span)
        return shared or Setting(builtin, Origin.BUILTIN)

    def pick_raw(self, chain: tuple[Step, ...], attribute: str) -> Setting:
        """Like `pick`, for settings stored as a bare template (workingDirectory)."""
        for owner in chain:
            value = getattr(owner, attribute)
            if value is not None:
                return _setting(value, owner, chain[0], owner.span)
        value = getattr(self.defaults, attribute)
        if value is not None:
            return Setting(value, Origin.DEFAULTS, self.defaults.span)
        return Setting(None, Origin.BUILTIN)

    def retry(self, chain: tuple[Step, ...], on_error: OnError) -> Setting:
        """The merged retry policy: each field, `max` included, from the nearest place that
        sets it. `onError: retry` without any `max` (or only a `defaults` one of 0) means 3
        attempts."""
        found: list[tuple[Step | None, RetryPolicy]] = [
            (owner, owner.retries) for owner in chain if owner.retries is not None
        ]
        if self.defaults.retries is not None:
            found.append((None, self.defaults.retries))

        def nearest(name: str) -> tuple[Step | None, RetryPolicy] | None:
            for owner, policy in found:
                if getattr(policy, name) is not None:
                    return owner, policy
            return None

        def field_value(name: str) -> Any:
            for _, policy in found:
                value = getattr(policy, name)
                if value is not None:
                    return value
            return None

        setter = nearest("max")
        retries = field_value("max")
        # `defaults` saying "no retries" is no policy for a step that asks to be retried
        only_defaults_say_none = retries == 0 and setter is not None and setter[0] is None
        if retries is None or (only_defaults_say_none and on_error is OnError.RETRY):
            retries = ON_ERROR_RETRY_ATTEMPTS - 1 if on_error is OnError.RETRY else 0
        elif retries == 0 and on_error is OnError.RETRY and setter is not None:
            self.problems.append(_retry_without_retries(setter[1], chain[0]))
        value = schedule(
            retries,
            field_value("delay"),
            field_value("backoff"),
            field_value("factor"),
            field_value("max_delay"),
            field_value("jitter"),
            on=field_value("on"),
            except_=field_value("except_"),
            deadline=field_value("deadline"),
        )
        self.check_retry_codes(nearest("on"), nearest("except_"), value)
        origin = setter or (found[0] if found else None)
        if origin is None:
            return Setting(value, Origin.BUILTIN)
        owner, policy = origin
        if owner is None:
            return Setting(value, Origin.DEFAULTS, policy.span)
        return _setting(value, owner, chain[0], policy.span)

    def check_retry_codes(
        self,
        on: tuple[Step | None, RetryPolicy] | None,
        except_: tuple[Step | None, RetryPolicy] | None,
        value: RetrySchedule,
    ) -> None:
        """`on` and `except` of the merged policy: no exit code 0 (success never fails), and
        no code in both (reported once per place written)."""
        for pair, codes, key in ((on, value.on or (), "on"), (except_, value.except_, "except")):
            if pair is not None and 0 in codes:
                span = pair[1].on_span if key == "on" else pair[1].except_span
                self.report(
                    error(
                        "compile.retry-exit-code-zero",
                        f"`retries.{key}` lists exit code 0, which is success and never fails",
                        span,
                        "list the failing exit codes (1 to 255)",
                    )
                )
        both = sorted(set(value.on or ()) & set(value.except_), key=str)
        if both and except_ is not None:
            listed = ", ".join(str(c) for c in both)
            self.report(
                error(
                    "compile.retry-on-except",
                    f"exit code{'s' if len(both) > 1 else ''} {listed} in both `retries.on`"
                    " and `retries.except`",
                    except_[1].except_span,
                    "a code is either retried (`on`) or never retried (`except`): list it once",
                )
            )

    def report(self, problem: Diagnostic) -> None:
        """Add a problem once (a group's policy is merged into each of its children)."""
        if problem not in self.problems:
            self.problems.append(problem)

    def env(self, chain: tuple[Step, ...]) -> dict[str, Setting]:
        """Env layered workflow -> defaults -> outer groups -> inner groups -> step; at
        each level that has both, `envFile` first and `env` over it."""
        merged = workflow_env(self.workflow)
        for name, template in self.defaults.env.items():
            merged[name] = Setting(template, Origin.DEFAULTS, self.defaults.span)
        for owner in reversed(chain):
            if owner.env_file:
                span = owner.env_file[0].span
                for name, text in self.workflow.env_file_values.get(owner.path, {}).items():
                    merged[name] = _setting(Template((text,)), owner, chain[0], span)
            for name, template in owner.env.items():
                merged[name] = _setting(template, owner, chain[0], owner.span)
        return merged


def workflow_env(workflow: Workflow) -> dict[str, Setting]:
    """The variables every step starts from, later layers winning: `--env-file`, the
    workflow's `envFile`, its `env`. A file's value of a name listed in `secrets` is
    `${{ secrets.NAME }}` (its value is the secret's, masked; the plan shows `***`); any
    other file value is literal text, never an expression."""
    secrets = {str(s.value) for s in workflow.secrets}
    file_span = workflow.env_file[0].span if workflow.env_file else None
    merged: dict[str, Setting] = {}
    for key, span in ((COMMAND_LINE_ENV_FILE, None), ((), file_span)):
        for name, text in workflow.env_file_values.get(key, {}).items():
            value = _secret_reference(name) if name in secrets else Template((text,))
            merged[name] = Setting(value, Origin.WORKFLOW, span)
    for name, template in workflow.env.items():
        merged[name] = Setting(template, Origin.WORKFLOW)
    return merged


def _secret_reference(name: str) -> Template:
    return parse_template("${{ secrets." + name + " }}", names=CONTEXT_NAMES)


def group_settings(
    workflow: Workflow, group: Step, enclosing: tuple[Step, ...]
) -> EffectiveSettings:
    """What a group hands down to its children: its own settings, else its enclosing groups'
    (outermost first in `enclosing`), `defaults`, or the built-in ones."""
    return _SettingsResolver(workflow).resolve(group, enclosing)


def group_schedule(group: Step) -> RetrySchedule | None:
    """The schedule of a group's `groupRetries` (None without one): the group's own policy
    only (it is not inherited), with the built-in waits for what it leaves out."""
    policy = group.group_retries
    if policy is None:
        return None
    return schedule(
        policy.max or 0,
        policy.delay,
        policy.backoff,
        policy.factor,
        policy.max_delay,
        policy.jitter,
        on=policy.on,
        except_=policy.except_,
        deadline=policy.deadline,
    )


def _retry_without_retries(policy: RetryPolicy, step: Step) -> Diagnostic:
    where = "" if step.retries is policy else f" (step `{step.id or _path_name(step)}` inherits it)"
    return error(
        "compile.retry-without-retries",
        f"`onError: retry` with `retries: 0` can never retry{where}",
        policy.span,
        "give `retries` a number above 0, or drop it to get 3 attempts",
    )


def _setting(value: Any, owner: Step, step: Step, span: Span) -> Setting:
    if owner is step:
        return Setting(value, Origin.STEP, span)
    return Setting(value, Origin.GROUP, span, owner.id or _path_name(owner))


def _path_name(step: Step) -> str:
    return ".".join(str(p) for p in step.path)


def schedule(
    retries: int,
    delay: float | None,
    backoff: Any,
    factor: float | None,
    max_delay: float | None,
    jitter: float | None,
    *,
    on: tuple[int | str, ...] | None = None,
    except_: tuple[int, ...] | None = None,
    deadline: float | None = None,
) -> RetrySchedule:
    """A retry policy's actual waits: `min(delay * factor^(n-1), maxDelay)` for exponential,
    with the failures it retries (`on`, `except`) and its `deadline`."""
    base = DEFAULT_RETRY_DELAY if delay is None else delay
    kind = "exponential" if backoff is None else str(getattr(backoff, "value", backoff))
    growth = DEFAULT_FACTOR if factor is None else factor
    cap = DEFAULT_MAX_DELAY if max_delay is None else max_delay
    return _schedule(retries, base, kind, growth, cap, jitter or 0.0, on, except_ or (), deadline)


@functools.lru_cache(maxsize=256)
def _schedule(
    retries: int,
    base: float,
    kind: str,
    growth: float,
    cap: float,
    jitter: float,
    on: tuple[int | str, ...] | None,
    except_: tuple[int, ...],
    deadline: float | None,
) -> RetrySchedule:
    """One schedule per distinct policy: the steps that share a policy (a `defaults` one,
    say) share its waits, up to 10,000 of them."""
    return RetrySchedule(
        attempts=retries + 1,
        delay=base,
        backoff=kind,
        factor=growth,
        max_delay=cap,
        jitter=jitter,
        delays=_waits(retries, base, kind, growth, cap),
        on=None if on is None or "any" in on else on,
        except_=except_,
        deadline=deadline,
    )


def _waits(retries: int, base: float, kind: str, growth: float, cap: float) -> tuple[float, ...]:
    """The wait before each retry, none above `cap`. Exponential waits are multiplied up
    one at a time and stop growing at the cap, so a huge factor or delay reaches the cap
    (or infinity) instead of overflowing, and a zero delay stays zero."""
    waits = []
    wait = base
    for attempt in range(1, retries + 1):
        if kind == "exponential":
            waits.append(min(wait, cap))
            if 0 < wait < cap:
                wait *= growth
        elif kind == "linear":
            waits.append(min(base * attempt, cap))
        else:
            waits.append(min(base, cap))
    return tuple(waits)
