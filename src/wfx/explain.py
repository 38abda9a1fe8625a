"""Explain one step: why it stands where it does, where its settings came from, and
what happens if it fails. Pure data, computed from the graph and the plan.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from wfx.compiler import group_settings
from wfx.graph import (
    ExecutionGraph,
    Node,
    NodeKind,
    Origin,
    RetrySchedule,
    Section,
    Setting,
    reachable,
)
from wfx.model import GroupType, OnError, StepId, StepKind
from wfx.plan import Plan, PlannedStep, Verdict


@dataclass(frozen=True, slots=True)
class Hop:
    """One link of the dependency chain: `step` waits for `waits_for` because of `reason`."""

    step: str
    waits_for: str
    reason: str
    line: int


@dataclass(frozen=True)
class Explanation:
    """Everything `wfx explain` says about one step."""

    step: PlannedStep
    chain: list[Hop]
    settings: dict[str, Setting]
    attempts: int
    delays: tuple[float, ...]
    on_error: OnError
    compensated: list[StepId]
    skipped_on_failure: list[StepId]
    cancelled_on_failure: list[StepId]
    still_run_on_failure: list[StepId] = field(default_factory=list)
    """For a `finally` step: the other `finally` steps that run even if it fails."""
    group_reruns: list[tuple[StepId, int]] = field(default_factory=list)
    """The groups around it with `groupRetries`, innermost first, and their re-runs."""

    @property
    def is_finally(self) -> bool:
        """A `finally` step: it starts after the main steps and compensation, whatever happened."""
        return self.step.section is Section.FINALLY


@dataclass(frozen=True)
class Child:
    """A direct child of a group: its id, its kind and where it is written."""

    id: StepId
    kind: StepKind
    line: int


@dataclass(frozen=True)
class GroupExplanation:
    """Everything `wfx explain` says about a group."""

    id: StepId
    line: int
    section: Section
    type: GroupType
    max_parallel: int | None
    condition: str | None
    chain: list[Hop]
    settings: dict[str, Setting]
    """What its children inherit unless they (or a group inside) set their own."""
    env: dict[str, Setting]
    children: list[Child]
    steps: list[StepId]
    """Every leaf step inside it, in the order they complete."""
    group_timeout: float | None = None
    """`groupTimeout`: seconds one attempt of the whole group may take."""
    group_retries: RetrySchedule | None = None
    """`groupRetries`: how the whole group runs again."""
    uses: str | None = None
    """For a step that calls a sub-workflow: the called file (its steps inherit nothing)."""


def explain(graph: ExecutionGraph, plan: Plan, step_id: str) -> Explanation:
    """Explain step `step_id` (raise KeyError when there is no such leaf step)."""
    step = plan.steps[StepId(step_id)]
    where = {**graph.ids, **graph.template_starts()}
    node = graph.nodes[where[StepId(step_id)]]  # a dynamic fan-out's `id[*]`: its start
    if step.section is Section.FINALLY:
        return _explain_finally(graph, plan, step, node)
    upstream = _closure(graph, node.index, backwards=True)
    downstream = _closure(graph, node.index, backwards=False)
    completion = [s for stage in plan.stages for s in stage]
    compensated = [
        s for s in reversed(completion) if plan.steps[s].rollback and where[s] in upstream
    ]
    affected = [
        graph.nodes[i].id
        for i in sorted(downstream)
        if graph.nodes[i].is_step and graph.nodes[i].section is Section.MAIN
    ]
    tolerated = step.on_error is OnError.CONTINUE
    skipped = [
        s
        for s in affected
        if not (_runs_after_failure(plan.steps[s]) or _cleans_up_after(plan.steps[s], step.id))
    ]
    skipped = [] if tolerated else skipped
    independent = [
        s
        for s in completion
        if s != step.id and where[s] not in upstream and where[s] not in downstream
    ]
    return _explanation(
        graph,
        node,
        step,
        compensated=[] if tolerated else compensated,
        skipped_on_failure=skipped,
        cancelled_on_failure=[] if tolerated else independent,
    )


def _explain_finally(
    graph: ExecutionGraph, plan: Plan, step: PlannedStep, node: Node
) -> Explanation:
    """A `finally` step's failure cancels nothing and undoes nothing: the main steps have ended
    and compensation has run; the other `finally` steps still run unless their own
    condition asks for success."""
    downstream = _closure(graph, node.index, backwards=False)
    others = [s for stage in plan.finally_stages for s in stage if s != step.id]
    tolerated = step.on_error is OnError.CONTINUE
    skipped = [
        s
        for s in others
        if not tolerated
        and graph.ids[s] in downstream
        and plan.steps[s].condition.explicit
        and not _runs_after_failure(plan.steps[s])
    ]
    return _explanation(
        graph,
        node,
        step,
        compensated=[],
        skipped_on_failure=skipped,
        cancelled_on_failure=[],
        still_run_on_failure=[s for s in others if s not in skipped],
    )


def _explanation(
    graph: ExecutionGraph,
    node: Node,
    step: PlannedStep,
    *,
    compensated: list[StepId],
    skipped_on_failure: list[StepId],
    cancelled_on_failure: list[StepId],
    still_run_on_failure: list[StepId] | None = None,
) -> Explanation:
    """What every explanation says of a step (its chain, settings and retries), with what
    its failure does, which differs between main and `finally` steps."""
    return Explanation(
        step=step,
        chain=_chain(graph, node),
        settings=dict(step.settings),
        attempts=step.retry.attempts,
        delays=step.retry.delays,
        on_error=step.on_error,
        compensated=compensated,
        skipped_on_failure=skipped_on_failure,
        cancelled_on_failure=cancelled_on_failure,
        still_run_on_failure=still_run_on_failure or [],
        group_reruns=[
            (group_id, schedule.attempts - 1)
            for group_id in reversed(node.groups)
            if (schedule := graph.nodes[graph.ids[group_id]].group_retry) is not None
            and schedule.attempts > 1
        ],
    )


def explain_group(graph: ExecutionGraph, plan: Plan, group_id: str) -> GroupExplanation:
    """Explain group `group_id` (raise KeyError when there is no such group)."""
    start = next(
        n for n in graph.nodes if n.kind is NodeKind.GROUP_START and n.id == StepId(group_id)
    )
    inside_group = (n for n in graph.nodes if n.scope == start.scope and start.id in n.groups)
    ids = {n.step.path: n.id for n in inside_group}  # an instance's own copies
    enclosing = tuple(
        n.step for n in graph.nodes if n.kind is NodeKind.GROUP_START and n.id in start.groups
    )
    own = group_settings(graph.workflow, start.step, enclosing)
    inside = [s for stage in (*plan.stages, *plan.finally_stages) for s in stage]
    return GroupExplanation(
        id=start.id,
        line=start.span.line,
        section=start.section,
        type=start.step.group_type,
        max_parallel=None
        if start.step.max_parallel is None
        else int(start.step.max_parallel.value),
        condition=_condition_text(start),
        chain=_chain(graph, start),
        settings={k: _as_group(v, start.id) for k, v in own.named().items()},
        env={k: _as_group(v, start.id) for k, v in own.env.items()},
        children=[Child(ids[c.path], c.kind, c.span.line) for c in start.step.steps],
        steps=[s for s in inside if start.id in plan.steps[s].groups],
        group_timeout=plan.groups[start.id].group_timeout,
        group_retries=start.group_retry,
        uses=plan.groups[start.id].file,
    )


def _condition_text(node: Node) -> str | None:
    condition = node.step.condition
    if condition is None:
        return None
    if condition.expression is not None:
        return condition.expression.text.strip()
    return "true" if condition.constant else "false"


def _as_group(setting: Setting, group_id: StepId) -> Setting:
    """A setting the group itself sets reads "group `id`", not "step"."""
    if setting.origin is Origin.STEP:
        return Setting(setting.value, Origin.GROUP, setting.span, group_id)
    return setting


def _cleans_up_after(step: PlannedStep, failed: StepId) -> bool:
    """A sub-workflow's `finally` step runs after a failure of a step of that sub-workflow."""
    return step.cleanup and failed.startswith(step.id.rsplit("/", 1)[0] + "/")


def _runs_after_failure(step: PlannedStep) -> bool:
    text = step.condition.text.lower()
    return step.condition.verdict is not Verdict.NEVER and any(
        f in text for f in ("always()", "failure()")
    )


def _closure(graph: ExecutionGraph, start: int, *, backwards: bool) -> set[int]:
    """Indices reachable from `start` along dependencies (or dependents)."""
    if backwards:
        edges = {n.index: n.deps for n in graph.nodes}
    else:
        reverse: dict[int, list[int]] = {}
        for node in graph.nodes:
            for dep in node.deps:
                reverse.setdefault(dep, []).append(node.index)
        edges = {k: tuple(v) for k, v in reverse.items()}
    return reachable(lambda index: edges.get(index, ()), [start])


def _chain(graph: ExecutionGraph, node: Node) -> list[Hop]:
    """The longest chain of waits ending at `node`: the reason it sits in its stage."""
    levels = graph.levels()
    hops: list[Hop] = []
    current = node
    while current.deps:
        dep = graph.nodes[max(current.deps, key=lambda d: (levels[d], d))]
        hops.append(Hop(current.id, dep.id, _reason(current, dep), current.span.line))
        current = dep
    merged = [h for h in hops if h.step != h.waits_for or h.reason.startswith("inside")]
    return list(reversed(merged))


def _reason(node: Node, dep: Node) -> str:
    needs = {ref.id for ref in node.step.needs}
    if dep.id in needs and node.kind is not NodeKind.GROUP_END:
        return "needs"
    if dep.kind is NodeKind.GROUP_START and dep.id in node.groups:
        return f"inside group `{dep.id}`, which starts only when its own dependencies are done"
    if node.kind is NodeKind.GROUP_END:
        return f"group `{node.id}` ends when all of its steps are done"
    if dep.kind is NodeKind.GROUP_END:
        return f"comes after group `{dep.id}` in a sequential group"
    return "comes after it in a sequential group"
