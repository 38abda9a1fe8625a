"""Fan-out at run time: a dynamic `forEach` becomes instances when its list is known, and
every fan-out's instances are summed up as `steps.<id>` when the last one ends.

A dynamic fan-out's list comes from its `forEach` expression, evaluated once when the
fan-out's dependencies are done; a resumed run takes the list the journal recorded
instead, so the same items map to the same instances (`fetch[0]`...) and a finished
instance is restored, never run again (docs/language.md, "Fan-out"). A dynamic fan-out
of a group copies the body the compiler made once (`FanOutInfo.body`) per item.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from wfx.diagnostics import Span
from wfx.expr import ExpressionError, Status
from wfx.fanout import (
    PLACEHOLDER,
    Instance,
    aggregate_status,
    instance_name,
    item_instances,
)
from wfx.graph import FanOutInfo, Node, NodeKind
from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime.contexts import InstanceSteps, RunContexts
from wfx.runtime.resume import seed_node
from wfx.runtime.state import NodeState, RunState


class Expansion:
    """Creates the instances of dynamic fan-outs and sums up every fan-out's instances."""

    def __init__(self, run: RunState, contexts: RunContexts) -> None:
        self.run = run
        self.contexts = contexts
        self.total = sum(_instance_count(n) for n in run.graph.nodes)
        """The run's fan-out instances so far (static ones, then each dynamic list)."""

    def instances(self, start: Node, state: NodeState) -> list[Node] | str:
        """The instance nodes of the dynamic fan-out `start` opens, added to the run; or
        why there are none (the fan-out fails)."""
        run = self.run
        info = start.fan_out
        assert info is not None and info.template is not None
        recorded = None if run.resume is None else run.resume.fanouts.get(start.id)
        items = recorded if recorded is not None else self.items(start, state)
        if isinstance(items, str):
            return items
        where = _where(info)
        if len(items) > info.limit:
            state.span = where
            return (
                f"{where}: `forEach` gave {len(items)} items, more than the limit of"
                f" {info.limit} instances (the workflow's `maxInstances`)"
            )
        inner = sum(_instance_count(n) for n in info.body)
        count = len(items) * (1 + inner)  # a static fan-out in the body: once per item
        if self.total + count > info.limit:  # nested fan-outs multiply
            state.span = where
            return (
                f"{where}: `forEach` gave {len(items)} items; with the run's {self.total}"
                f" other instances that is more than the limit of {info.limit} instances in"
                " all (the workflow's `maxInstances`)"
            )
        self.total += count
        made = item_instances(start.id, items, _members(info.body), _outer(start))
        nodes = self.copies(start, made) if info.body else self.steps(start, made)
        run.add_nodes(nodes)
        for node in nodes:
            if node.kind is NodeKind.GROUP_START:
                self.contexts.group_starts[node.id] = node.index
        run.expanded[start.id] = [n.index for n in nodes]
        shown = run.secrets.mask_value(list(items))
        run.emit(
            ev.FanOutExpanded(
                run.run_id,
                run.now(),
                f"fan-out `{start.id}`: {len(nodes)} instances",
                start.id,
                "info",
                None,
                tuple(shown),
            )
        )
        for node in nodes:
            seed_node(run, node)
        return nodes

    def steps(self, start: Node, instances: list[Instance]) -> list[Node]:
        """A dynamic fan-out of a step: one node per instance, after the fan-out's start."""
        info = start.fan_out
        assert info is not None and info.template is not None
        base = len(self.run.nodes)
        return [
            Node(
                index=base + position,
                id=StepId(instance.own(start.id)),
                kind=NodeKind.STEP,
                step=info.template,
                section=start.section,
                deps=(start.index,),
                groups=(*start.groups, start.id),
                settings=info.settings,
                instance=instance,
                scope=start.scope,
            )
            for position, instance in enumerate(instances)
        ]

    def copies(self, start: Node, instances: list[Instance]) -> list[Node]:
        """A dynamic fan-out of a group: its body copied per instance, the placeholder key
        in ids and groups replaced by the instance's, deps renumbered (-1: the start)."""
        info = start.fan_out
        assert info is not None
        body = info.body
        base = len(self.run.nodes)
        nodes = []
        for instance in instances:
            key = instance.key
            for node in body:
                fan_out = node.fan_out  # a static fan-out inside the body: its instances
                if fan_out is not None:
                    named = tuple(StepId(instance_name(i, key)) for i in fan_out.instances)
                    fan_out = dataclasses.replace(fan_out, instances=named)
                nodes.append(
                    dataclasses.replace(
                        node,
                        index=base + node.index,
                        id=StepId(instance_name(node.id, key)),
                        deps=tuple(start.index if d < 0 else base + d for d in node.deps),
                        groups=tuple(StepId(instance_name(g, key)) for g in node.groups),
                        instance=_rekeyed(node.instance, instance),
                        fan_out=fan_out,
                    )
                )
            base += len(body)
        return nodes

    def items(self, start: Node, state: NodeState) -> list[Any] | str:
        """The list `forEach` gives now, or why it gives none."""
        info = start.fan_out
        assert info is not None and info.template is not None
        fan_out = info.template.fan_out
        assert fan_out is not None and fan_out.expression is not None
        expression = fan_out.expression
        inputs, _, steps = self.contexts.scope(start.scope)
        contexts = {"inputs": inputs, "steps": steps, "workflow": self.contexts.workflow()}
        around = _outer(start)  # inside an outer instance: its values and its own steps
        if around is not None:
            contexts.update(around.visible())
            contexts["steps"] = InstanceSteps(steps, self.run.steps_context, around, start.scope)
        try:
            value = expression.evaluate(contexts, status=Status())
        except ExpressionError as exc:
            state.span = exc.span
            return f"{exc.span}: `forEach` could not be evaluated: {exc.message}"
        if not isinstance(value, list | tuple):
            state.span = expression.span
            kind = "null" if value is None else type(value).__name__
            return (
                f"{expression.span}: `forEach` must give a list;"
                f" `${{{{ {expression.text.strip()} }}}}` gave a {kind}"
            )
        return list(value)

    def aggregate(self, end: Node) -> dict[str, Any]:
        """`steps.<fan-out>`: each instance's outputs in order (a list), the status of the
        whole (failed if one failed, success if one succeeded, else skipped), the attempts
        of all instances and the fan-out's duration."""
        run = self.run
        info = end.fan_out
        assert info is not None
        if info.dynamic:
            own = (run.nodes[i] for i in run.expanded.get(end.id, []))
            members = [n.index for n in own if _heads(n, end.id)]
        else:
            members = [run.node_index(i) for i in info.instances]
        outputs: list[Any] = []
        statuses: list[str] = []
        groups = {n.id for n in (run.nodes[i] for i in members) if _is_group_instance(n)}
        attempts = self.group_attempts(groups) if groups else 0
        for index in members:
            node = run.nodes[index]
            status, found = self.instance_result(node)
            statuses.append(status)
            outputs.append(found.get("outputs", {}))
            attempts += int(found.get("attempts", 0))
        start = run.states[self.contexts.group_starts[end.id]]
        ended = run.states[end.index].ended or 0.0
        return {
            "outputs": outputs,
            "status": aggregate_status(statuses),
            "attempts": attempts,
            "duration": ended - (start.ended or ended),
        }

    def group_attempts(self, instances: set[StepId]) -> int:
        """The attempts of every step inside the group instances among `instances` (a
        group has no attempts of its own): one pass over the run's steps."""
        total = 0
        for node in self.run.nodes:
            if node.is_step and not instances.isdisjoint(node.groups):
                total += int(self.run.steps_context.get(node.id, {}).get("attempts", 0))
        return total

    def instance_result(self, node: Node) -> tuple[str, dict[str, Any]]:
        """How one instance ended: a step's (or a call's) own context, or a group
        instance's summary."""
        run = self.run
        if not _is_group_instance(node):  # a step, or a sub-workflow call
            found = run.steps_context.get(node.id, {})
            return str(found.get("status", "skipped")), found
        start = run.states[self.contexts.group_starts[node.id]]
        if start.status.value == "skipped":
            return "skipped", {}
        return ("failed" if run.states[node.index].bad else "success"), {}


def _is_group_instance(node: Node) -> bool:
    """An instance of a fanned-out group (not a step, nor a call of a sub-workflow, whose
    own context already sums up its steps)."""
    return not node.is_step and node.step.call is None


def _rekeyed(found: Instance | None, instance: Instance) -> Instance | None:
    """A body node's instance in `instance`: the placeholder becomes it, an instance of a
    fan-out inside the body gets its key in its fan-out's id and `instance` around it."""
    if found is None or found.key == PLACEHOLDER:
        return instance
    outer = _rekeyed(found.outer, instance)
    return dataclasses.replace(
        found, fan_out=instance_name(found.fan_out, instance.key), outer=outer
    )


def _outer(start: Node) -> Instance | None:
    """The instance a dynamic fan-out is nested in, if any. In a fanned-out call, the
    call's instance is not one: the child's ids carry its key in their prefix already."""
    instance = start.instance
    return instance if instance is not None and instance.fan_out.startswith(start.scope) else None


def _instance_count(node: Node) -> int:
    """The static instances of the fan-out `node` starts (0 for other nodes)."""
    if node.kind is not NodeKind.GROUP_START or node.fan_out is None:
        return 0
    return len(node.fan_out.instances)


def _where(info: FanOutInfo) -> Span:
    """Where a dynamic fan-out's `forEach` is written."""
    assert info.template is not None and info.template.fan_out is not None
    return info.template.fan_out.span


def _members(body: tuple[Node, ...]) -> frozenset[str]:
    """The steps of a dynamic group's body, by the ids its instances' `steps` name."""
    placeholder = next((n.instance for n in body if n.instance is not None), None)
    return frozenset() if placeholder is None else placeholder.members


def _heads(node: Node, fan_out: str) -> bool:
    """Whether `node` stands for a whole instance of `fan_out` (a step, or the end of an
    instance group)."""
    instance = node.instance
    is_head = instance is not None and node.id == instance.own(fan_out)
    return is_head and node.kind is not NodeKind.GROUP_START
