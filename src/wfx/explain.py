"""Explain one step: why it stands where it does, where its settings came from, and
what happens if it fails. Pure data, computed from the graph and the plan.
"""

from __future__ import annotations

from dataclasses import dataclass

from wfx.graph import ExecutionGraph, Node, NodeKind, Section, Setting
from wfx.model import OnError, StepId
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


def explain(graph: ExecutionGraph, plan: Plan, step_id: str) -> Explanation:
    """Explain step `step_id` (raise KeyError when there is no such leaf step)."""
    step = plan.steps[StepId(step_id)]
    node = graph.node(step_id)
    upstream = _closure(graph, node.index, backwards=True)
    downstream = _closure(graph, node.index, backwards=False)
    completion = [s for stage in plan.stages for s in stage]
    compensated = [
        s for s in reversed(completion) if plan.steps[s].rollback and graph.ids[s] in upstream
    ]
    affected = [
        graph.nodes[i].id
        for i in sorted(downstream)
        if graph.nodes[i].is_step and graph.nodes[i].section is Section.MAIN
    ]
    tolerated = step.on_error is OnError.CONTINUE
    skipped = [] if tolerated else [s for s in affected if not _runs_after_failure(plan.steps[s])]
    independent = [
        s
        for s in completion
        if s != step.id and graph.ids[s] not in upstream and graph.ids[s] not in downstream
    ]
    return Explanation(
        step=step,
        chain=_chain(graph, node),
        settings=dict(step.settings),
        attempts=step.retry.attempts,
        delays=step.retry.delays,
        on_error=step.on_error,
        compensated=[] if tolerated else compensated,
        skipped_on_failure=skipped,
        cancelled_on_failure=[] if tolerated else independent,
    )


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
    seen: set[int] = set()
    stack = list(edges.get(start, ()))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(edges.get(current, ()))
    return seen


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
