"""The run contexts: what a step's expressions read (`inputs`, `secrets`, `steps`,
`workflow`, `env`, `attempt`), what the status functions report to each step, whether a
step's condition lets it run, and the workflow outputs at the end."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from wfx.expr import ExpressionError, Status, is_truthy
from wfx.fanout import Instance
from wfx.graph import Node, NodeKind, Section
from wfx.model import Step
from wfx.runtime import events as ev
from wfx.runtime.actions import StepContexts, render_text, render_value
from wfx.runtime.events import StepStatus
from wfx.runtime.state import RunState


class RunContexts:
    """Builds every expression context of one run from its state."""

    def __init__(self, run: RunState) -> None:
        self.run = run
        self.group_starts = {
            n.id: n.index for n in run.graph.nodes if n.kind is NodeKind.GROUP_START
        }
        """Each group's start barrier (a fan-out's included) by the group's id."""

    # -- conditions -------------------------------------------------------------------------

    def bad_upstream(self, node: Node) -> bool:
        """Whether a step this node depends on (transitively) failed without `continue`."""
        states = self.run.states
        for dep in node.deps:
            state = states[dep]
            if state.bad or (state.status.is_failure and not state.tolerated):
                return True
        return False

    def decide(self, node: Node, step: Step, bad_upstream: bool) -> str | None:
        """None when the node runs, else why it is skipped."""
        run = self.run
        quiet = not (bad_upstream or run.failing or run.cancelled or run.skipped_groups)
        if step.condition is None and quiet:
            return None  # the common case, decided without building a status
        for group_id in node.groups:
            group = run.states[self.group_starts[group_id]]
            if group.status is StepStatus.SKIPPED:
                return f"group `{group_id}` was skipped"
        status = self.status(node, bad_upstream)
        condition = step.condition
        if condition is None:
            passes = node.section is Section.FINALLY or not (status.failed or status.cancelled)
            return None if passes else why_not(status)
        if condition.constant is not None:
            return None if condition.constant else "its condition is false"
        expression = condition.expression
        assert expression is not None
        if not expression.uses_status_function() and (status.failed or status.cancelled):
            return why_not(status)
        try:
            contexts = self.step(node, 0, status)
        except ExpressionError as exc:  # the `env` the condition may read
            run.states[node.index].span = exc.span
            return f"{exc.span}: cannot render the step: {exc.message}"
        try:
            value = expression.evaluate(contexts, status=status)
        except ExpressionError as exc:
            run.states[node.index].span = exc.span
            return f"{exc.span}: its condition could not be evaluated: {exc.message}"
        return None if is_truthy(value) else "its condition is false"

    # -- status functions -------------------------------------------------------------------

    def status(self, node: Node, bad_upstream: bool) -> Status:
        """What the status functions report for `node` now: the one answer its condition
        and its text (`run`, `cmd`, `env`, `with`) both get."""
        run = self.run
        if node.section is Section.FINALLY:
            return Status(failed=run.failing or bad_upstream, cancelled=run.cancelled)
        independent_stop = run.failing and not bad_upstream
        return Status(failed=bad_upstream, cancelled=run.cancelled or independent_stop)

    def ending_status(self) -> Status:
        """The status of rollbacks and workflow outputs, which see the run as a whole."""
        return Status(failed=self.run.failing, cancelled=self.run.cancelled)

    # -- contexts ---------------------------------------------------------------------------

    def step(self, node: Node, attempt: int, status: Status | None = None) -> StepContexts:
        """The contexts of one attempt of `node`, its `env` rendered."""
        run = self.run
        values: dict[str, Any] = {
            "inputs": run.graph.inputs,
            "secrets": run.secrets.values,
            "steps": run.steps_context,
            "workflow": self.workflow(),
            "attempt": attempt,
            "env": {},
        }
        instance = node.instance
        if instance is not None:
            values.update(instance.bindings)
            if instance.members:
                values["steps"] = InstanceSteps(run.steps_context, instance)
        if status is None:
            status = self.status(node, run.states[node.index].bad)
        contexts = StepContexts(values, status)
        settings = node.settings
        if settings is not None and settings.env:
            env: dict[str, str] = {}
            contexts["env"] = env
            for name, setting in settings.env.items():
                env[name] = render_text(setting.value, contexts)
        return contexts

    def workflow(self) -> dict[str, Any]:
        """The `workflow` context: name, run id, and how the run stands."""
        return {
            "name": self.run.graph.workflow.name or "",
            "runId": self.run.run_id,
            "status": self.status_word(),
        }

    def status_word(self) -> str:
        """`workflow.status`: cancelled, failure or success."""
        if self.run.cancelled:
            return "cancelled"
        if self.run.failing:
            return "failure"
        return "success"

    def workflow_outputs(self) -> dict[str, Any]:
        """The workflow's outputs, masked; one that cannot be evaluated is None, and a
        notice says why."""
        run = self.run
        values = {
            "inputs": run.graph.inputs,
            "secrets": run.secrets.values,
            "steps": run.steps_context,
            "workflow": self.workflow(),
            "env": {},
            "attempt": 0,
        }
        contexts = StepContexts(values, self.ending_status())
        outputs: dict[str, Any] = {}
        for name, template in run.graph.workflow.outputs.items():
            try:
                outputs[name] = run.secrets.mask_value(render_value(template, contexts))
            except ExpressionError as exc:
                outputs[name] = None
                message = run.secrets.mask(
                    f"{exc.span}: workflow output `{name}` could not be evaluated: {exc.message}"
                )
                run.emit(ev.Notice(run.run_id, run.now(), message, span=exc.span))
        return outputs


class InstanceSteps(Mapping[str, Any]):
    """The `steps` context inside an instance of a fanned-out group: its own steps' names
    mean the instance's copies (`test` is `test[api]`), every other name as outside."""

    def __init__(self, steps: Mapping[str, Any], instance: Instance) -> None:
        self.steps = steps
        self.instance = instance

    def __getitem__(self, name: str) -> Any:
        if name in self.instance.members:
            return self.steps[self.instance.own(name)]
        return self.steps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def why_not(status: Status) -> str:
    """Why a step without a status function does not run under `status`."""
    if status.failed:
        return "a step it depends on failed"
    return "the run is stopping"


def uses_status_function(node: Node) -> bool:
    """Whether `node`'s condition calls a status function (it runs even when stopping)."""
    condition = node.step.condition
    return bool(condition and condition.expression and condition.expression.uses_status_function())
