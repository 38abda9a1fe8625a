"""The run contexts: what a step's expressions read (`inputs`, `secrets`, `steps`,
`workflow`, `env`, `attempt`), what the status functions report to each step, whether a
step's condition lets it run, and the workflow outputs at the end."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from wfx import inputs as input_values
from wfx.diagnostics import DiagnosticsError
from wfx.expr import ExpressionError, Status, is_truthy
from wfx.fanout import Instance
from wfx.graph import CallScope, Node, NodeKind, Origin, Section, Setting
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
        self.scopes: dict[str, tuple[Mapping[str, Any], Mapping[str, str], Mapping[str, Any]]] = {}

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
            if group.status is StepStatus.FAILED:
                return f"sub-workflow call `{group_id}` failed to start"
        status = self.status(node, bad_upstream)
        condition = step.condition
        if condition is None:
            finishing = node.section is Section.FINALLY or node.cleanup
            passes = finishing or not (status.failed or status.cancelled)
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
        if node.cleanup:  # a sub-workflow's `finally`: how its own steps went
            return Status(failed=bad_upstream, cancelled=run.cancelled)
        independent_stop = run.failing and not bad_upstream
        return Status(failed=bad_upstream, cancelled=run.cancelled or independent_stop)

    def ending_status(self) -> Status:
        """The status of rollbacks and workflow outputs, which see the run as a whole."""
        return Status(failed=self.run.failing, cancelled=self.run.cancelled)

    # -- contexts ---------------------------------------------------------------------------

    def step(self, node: Node, attempt: int, status: Status | None = None) -> StepContexts:
        """The contexts of one attempt of `node`, its `env` rendered."""
        run = self.run
        inputs, secrets, steps = self.scope(node.scope)
        values: dict[str, Any] = {
            "inputs": inputs,
            "secrets": secrets,
            "steps": steps,
            "workflow": self.workflow(),
            "attempt": attempt,
            "env": {},
        }
        instance = node.instance
        if instance is not None:
            values.update(instance.visible())
            if instance.members or instance.outer is not None:
                values["steps"] = InstanceSteps(steps, run.steps_context, instance, node.scope)
        if status is None:
            status = self.status(node, run.states[node.index].bad)
        contexts = StepContexts(values, status)
        settings = node.settings
        if settings is not None and settings.env:
            env: dict[str, str] = {}
            contexts["env"] = env
            nested = instance is not None and instance.outer is not None
            for name, setting in settings.env.items():
                if nested and setting.origin is Origin.GROUP:
                    assert instance is not None
                    env[name] = group_env(setting, node.scope, instance, contexts)
                else:
                    env[name] = render_text(setting.value, contexts)
        return contexts

    # -- sub-workflows ----------------------------------------------------------------------

    def scope(self, prefix: str) -> tuple[Mapping[str, Any], Mapping[str, str], Mapping[str, Any]]:
        """The `inputs`, `secrets` and `steps` that expressions of the scope `prefix` read:
        a sub-workflow sees its own inputs, the secrets passed to it, its own steps."""
        run = self.run
        if not prefix:
            return run.graph.inputs, run.secrets.values, run.steps_context
        found = self.scopes.get(prefix)
        if found is None:
            call = run.graph.calls[prefix]
            names = {str(s.value) for s in call.workflow.secrets}
            secrets = {k: v for k, v in run.secrets.values.items() if k in names}
            inputs = run.call_inputs.get(prefix, call.inputs)
            found = (inputs, secrets, ScopedSteps(run.steps_context, prefix))
            if prefix in run.call_inputs:
                self.scopes[prefix] = found
        return found

    def enter_call(self, node: Node) -> str | None:
        """A sub-workflow call starts: render its `with` in the caller's contexts into the
        child's inputs. Returns why that failed, or None."""
        run = self.run
        call = run.graph.calls[f"{node.id}/"]
        contexts = self.step(node, 0)
        given = call.step.action.with_ if call.step.action is not None else {}
        rendered: dict[str, Any] = {}
        for name, template in given.items():
            try:
                rendered[name] = render_value(template, contexts)
            except ExpressionError as exc:
                return f"{exc.span}: `with.{name}` could not be evaluated: {exc.message}"
        spans = call.step.call.with_spans if call.step.call is not None else {}
        try:
            values = input_values.resolve(call.workflow, rendered, spans)
        except DiagnosticsError as exc:
            found = "; ".join(f"{d.span}: {d.message}" for d in exc.diagnostics)
            return f"the inputs of {call.workflow.file} are invalid: {found}"
        run.call_inputs[call.prefix] = values
        self.scopes.pop(call.prefix, None)
        return None

    def leave_call(self, node: Node, started: StepStatus) -> None:
        """A sub-workflow call ended: its `outputs`, evaluated in its own contexts, become
        the calling step's `steps.<id>.outputs`."""
        run = self.run
        call = run.graph.calls[f"{node.id}/"]
        state = run.states[node.index]
        outputs: dict[str, Any] = {}
        if started is StepStatus.SUCCESS:
            outputs = self.call_outputs(call, Status(failed=state.bad, cancelled=run.cancelled))
        state.outputs = outputs
        word = "failure" if state.bad or started.is_failure else "success"
        if started is StepStatus.SKIPPED:
            word = "skipped"
        run.steps_context[node.id] = {
            "outputs": outputs,
            "status": word,
            "attempts": 1,
            "duration": 0.0,
        }

    def call_outputs(self, call: CallScope, status: Status) -> dict[str, Any]:
        """A called workflow's `outputs`, masked; one that cannot be evaluated is None."""
        run = self.run
        inputs, secrets, steps = self.scope(call.prefix)
        values = {
            "inputs": inputs,
            "secrets": secrets,
            "steps": steps,
            "workflow": self.workflow(),
            "env": {},
            "attempt": 0,
        }
        contexts = StepContexts(values, status)
        outputs: dict[str, Any] = {}
        self._own_env(call.env, contexts, f"the env of {call.workflow.file} for its outputs")
        for name, template in call.workflow.outputs.items():
            try:
                outputs[name] = run.secrets.mask_value(render_value(template, contexts))
            except ExpressionError as exc:
                outputs[name] = None
                message = run.secrets.mask(
                    f"{exc.span}: output `{name}` of {call.workflow.file} could not be"
                    f" evaluated: {exc.message}"
                )
                run.emit(ev.Notice(run.run_id, run.now(), message, span=exc.span))
        return outputs

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
        self._own_env(run.graph.env, contexts, "the workflow's env for its outputs")
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

    def _own_env(self, settings: Mapping[str, Setting], contexts: StepContexts, what: str) -> None:
        """A workflow's own variables rendered into `contexts` (each seeing those before
        it) for its outputs; a notice when one cannot be (the outputs see those before)."""
        env: dict[str, str] = {}
        contexts["env"] = env
        run = self.run
        try:
            for name, setting in settings.items():
                env[name] = render_text(setting.value, contexts)
        except ExpressionError as exc:
            message = run.secrets.mask(f"{exc.span}: {what}: {exc.message}")
            run.emit(ev.Notice(run.run_id, run.now(), message, span=exc.span))


class InstanceSteps(Mapping[str, Any]):
    """The `steps` context inside an instance of a fanned-out group: its own steps' names
    mean the instance's copies (`test` is `test[api]`), every other name as outside. In a
    sub-workflow (`scope`, e.g. `deploy/`) names are the child's own: `test` is the run's
    `deploy/test[api]`."""

    def __init__(
        self, steps: Mapping[str, Any], run_steps: Mapping[str, Any], instance: Instance, scope: str
    ) -> None:
        self.steps = steps
        self.run_steps = run_steps
        self.instance = instance
        self.scope = scope

    def __getitem__(self, name: str) -> Any:
        full = self.scope + name
        resolved = self.instance.resolve(full)
        if resolved != full:
            return self.run_steps[resolved]
        return self.steps[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)


def group_env(setting: Setting, scope: str, instance: Instance, contexts: StepContexts) -> str:
    """A group's `env` value for a step of a nested fan-out: rendered with the `matrix`/
    `item`/`index` of the instance around that group, not of the fan-outs inside it (so
    `${{ item }}` in an outer group's `env` is the outer item)."""
    level = instance.around(str(setting.source), scope)
    if level is instance or level is None:  # None: outside every fan-out (or unnamed)
        return render_text(setting.value, contexts)
    values = {k: v for k, v in contexts.items() if k not in ("matrix", "item", "index")}
    values.update(level.visible())
    return render_text(setting.value, StepContexts(values, contexts.status))


def why_not(status: Status) -> str:
    """Why a step without a status function does not run under `status`."""
    if status.failed:
        return "a step it depends on failed"
    return "the run is stopping"


def uses_status_function(node: Node) -> bool:
    """Whether `node`'s condition calls a status function (it runs even when stopping)."""
    condition = node.step.condition
    return bool(condition and condition.expression and condition.expression.uses_status_function())


class ScopedSteps(Mapping[str, Any]):
    """The `steps` context of a sub-workflow: the run's, seen through the call's id prefix
    (`steps.push` inside call `deploy` is the run's `deploy/push`)."""

    __slots__ = ("_prefix", "_steps")

    def __init__(self, steps: Mapping[str, Any], prefix: str) -> None:
        self._steps = steps
        self._prefix = prefix

    def __getitem__(self, key: str) -> Any:
        if "/" in key:
            raise KeyError(key)
        return self._steps[self._prefix + key]

    def __iter__(self) -> Iterator[str]:
        size = len(self._prefix)
        for key in self._steps:
            if key.startswith(self._prefix) and "/" not in key[size:]:
                yield key[size:]

    def __len__(self) -> int:
        return sum(1 for _ in self)
