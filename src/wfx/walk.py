"""The one walker over a workflow's steps, shaped as Jinja's ``NodeVisitor``.

Every stage that needs "each step of the file" (the compiler's ids, the static checks,
lint) walks with :class:`StepVisitor` or the helpers built on it, so the order of a walk
(main steps then `finally`, a group before its children, a step's action before its
rollback) is decided here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

from wfx.model import Action, Step, Workflow


class StepVisitor:
    """Walks steps in document order: `visit(step)` calls `visit_<kind>` (`visit_group`,
    `visit_run`, `visit_cmd`, `visit_uses`) when the subclass defines it, else
    `generic_visit`, which visits the step's action and rollback (`visit_action`) and then
    its children. A `visit_<kind>` method calls `self.generic_visit(step)` to walk on."""

    def visit_workflow(self, workflow: Workflow) -> None:
        """Visit the top-level steps, then the `finally` steps."""
        self.visit_steps(workflow.steps)
        self.visit_steps(workflow.finally_)

    def visit_steps(self, steps: Iterable[Step]) -> None:
        """Visit siblings in the order they are written."""
        for step in steps:
            self.visit(step)

    def visit(self, step: Step) -> None:
        """Dispatch on the step's kind."""
        method: Callable[[Step], None] = getattr(
            self, f"visit_{step.kind.value}", self.generic_visit
        )
        method(step)

    def generic_visit(self, step: Step) -> None:
        """Visit the step's action, its rollback, then its children."""
        if step.action is not None:
            self.visit_action(step.action, step, rollback=False)
        if step.rollback is not None:
            self.visit_action(step.rollback, step, rollback=True)
        self.visit_steps(step.steps)

    def visit_action(self, action: Action, step: Step, *, rollback: bool) -> None:
        """Called for what `step` runs (`rollback` false) and for its rollback; no-op here."""


class _Collector(StepVisitor):
    """Every step visited, in walking order."""

    def __init__(self) -> None:
        self.steps: list[Step] = []

    def visit(self, step: Step) -> None:
        self.steps.append(step)
        super().visit(step)


def descendants(step: Step) -> Iterator[Step]:
    """Every step nested in `step`, depth first (its children, theirs, ...)."""
    for child in step.steps:
        yield child
        yield from descendants(child)


def all_steps(workflow: Workflow) -> list[Step]:
    """Every step of the workflow: the main steps (and descendants), then `finally`."""
    collector = _Collector()
    collector.visit_workflow(workflow)
    return collector.steps


class _ActionCollector(StepVisitor):
    """Every action visited with its step and whether it is a rollback."""

    def __init__(self) -> None:
        self.actions: list[tuple[Action, Step, bool]] = []

    def visit_action(self, action: Action, step: Step, *, rollback: bool) -> None:
        self.actions.append((action, step, rollback))


def all_actions(workflow: Workflow) -> list[tuple[Action, Step, bool]]:
    """Every action of the workflow (steps' and rollbacks'), with its step and whether it
    is a rollback, in walking order."""
    collector = _ActionCollector()
    collector.visit_workflow(workflow)
    return collector.actions
