"""Static checks the compiler runs on a workflow before anything can run.

Each check is a function returning diagnostics, so all problems are reported at
once: names used in expressions (inputs, secrets, steps and their properties),
policies that contradict themselves, and data flow between steps that the
dependency graph does not guarantee.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wfx.diagnostics import Diagnostic, closest, error, warning
from wfx.expr import Expression, Reference, Template, unparse
from wfx.expr.ast import Binary, Index, Literal, NamedValue, Node, Property, walk
from wfx.expr.values import equals, to_number, to_string
from wfx.graph import ExecutionGraph, Section
from wfx.model import Action, FanOut, FanOutKind, Input, InputType, Step, StepId, Workflow
from wfx.walk import all_actions, all_steps, descendants

STEP_PROPERTIES = ("outputs", "status", "attempts", "duration", "exitCode")
WORKFLOW_PROPERTIES = ("name", "runId", "status")


@dataclass(frozen=True, slots=True)
class Site:
    """One expression in the file, with the step it belongs to (None: workflow level)."""

    expression: Expression
    owner: Step | None
    where: str
    in_rollback: bool = False


def iter_sites(workflow: Workflow) -> Iterator[Site]:
    """Every expression in the workflow, where it is and whose it is (found once per
    workflow: several checks of one compilation read them all)."""
    entry = _last_sites.entry
    if entry is None or entry[0] is not workflow:
        entry = (workflow, list(_find_sites(workflow)))
        _last_sites.entry = entry  # one assignment: a concurrent check sees a whole pair
    return iter(entry[1])


class _LastSites:
    """The sites of the workflow checked last (a strong reference to it: the identity
    test cannot be fooled by a recycled id)."""

    entry: tuple[Workflow, list[Site]] | None = None


_last_sites = _LastSites()


def _find_sites(workflow: Workflow) -> Iterator[Site]:
    for template in workflow.env.values():
        yield from _template_sites(template, None, "workflow `env`")
    for template in workflow.defaults.env.values():
        yield from _template_sites(template, None, "`defaults`")
    if workflow.defaults.working_directory is not None:
        yield from _template_sites(workflow.defaults.working_directory, None, "`defaults`")
    for template in workflow.outputs.values():
        yield from _template_sites(template, None, "workflow `outputs`")
    for step in all_steps(workflow):
        yield from _step_sites(step)


def _step_sites(step: Step) -> Iterator[Site]:
    if step.fan_out is not None and step.fan_out.expression is not None:
        yield Site(step.fan_out.expression, step, "`forEach`")
    if step.condition is not None and step.condition.expression is not None:
        yield Site(step.condition.expression, step, "step")
    for template in step.env.values():
        yield from _template_sites(template, step, "step")
    if step.working_directory is not None:
        yield from _template_sites(step.working_directory, step, "step")
    if step.action is not None:
        yield from _action_sites(step.action, step, in_rollback=False)
    if step.rollback is not None:
        yield from _action_sites(step.rollback, step, in_rollback=True)


def _action_sites(action: Action, step: Step, *, in_rollback: bool) -> Iterator[Site]:
    templates: list[Template] = [*action.cmd, *action.env.values()]
    if action.run is not None:
        templates.append(action.run)
    if action.working_directory is not None:
        templates.append(action.working_directory)
    templates.extend(_nested_templates(action.with_))
    for template in templates:
        for expression in template.expressions():
            yield Site(expression, step, "step", in_rollback)


def _nested_templates(value: Any) -> Iterator[Template]:
    if isinstance(value, Template):
        yield value
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from _nested_templates(item)
    elif isinstance(value, tuple | list):
        for item in value:
            yield from _nested_templates(item)


def _template_sites(template: Template, owner: Step | None, where: str) -> Iterator[Site]:
    for expression in template.expressions():
        yield Site(expression, owner, where)


# -- names used in expressions ----------------------------------------------------------------


def check_references(
    workflow: Workflow, ids: Mapping[Any, StepId], instance_ids: Iterable[str] = ()
) -> list[Diagnostic]:
    """Errors for expression names that cannot exist: unknown inputs, secrets, steps, fields,
    `matrix` axes, and `matrix`/`item`/`index` outside a fan-out.

    `instance_ids` are the ids of static fan-outs' instances (`build[api,3.12]`), which
    `steps['build[api,3.12]']` may name; any `id[...]` of a dynamic fan-out (or of a step
    of a dynamically fanned-out group) is allowed."""
    step_ids: dict[str, str] = {step_id.lower(): step_id for step_id in ids.values()}
    step_ids.update({i.lower(): i for i in instance_ids})
    known = _Names(
        inputs={i.name.lower(): i.name for i in workflow.inputs},
        secrets={s.value.lower(): s.value for s in workflow.secrets},
        steps=step_ids,
        fan_outs=_fan_out_scopes(workflow),
        dynamic={
            ids[member.path].lower()
            for s in all_steps(workflow)
            if s.fan_out is not None and s.fan_out.expression is not None
            for member in (s, *descendants(s))
        },
    )
    problems: list[Diagnostic] = []
    for site in iter_sites(workflow):
        for reference in site.expression.references():
            problem = known.check(reference, site)
            if problem is not None:
                problems.append(problem)
    return problems


def _fan_out_scopes(workflow: Workflow) -> dict[Any, tuple[FanOut, ...]]:
    """For each step inside a fan-out (the fanned-out step itself included), the fan-outs
    around it, outermost first (a nested fan-out's step sees the outer's values too)."""
    scopes: dict[Any, tuple[FanOut, ...]] = {}

    def mark(steps: Iterable[Step], inherited: tuple[FanOut, ...]) -> None:
        for step in steps:
            scope = (*inherited, step.fan_out) if step.fan_out else inherited
            if scope:
                scopes[step.path] = scope
            mark(step.steps, scope)

    mark(workflow.steps, ())
    mark(workflow.finally_, ())
    return scopes


@dataclass(frozen=True)
class _Names:
    inputs: Mapping[str, str]
    secrets: Mapping[str, str]
    steps: Mapping[str, str]
    fan_outs: Mapping[Any, tuple[FanOut, ...]]
    dynamic: set[str]

    def check(self, reference: Reference, site: Site) -> Diagnostic | None:
        head = reference.path[0].lower()
        handler = {
            "inputs": self.check_input,
            "secrets": self.check_secret,
            "steps": self.check_step,
            "workflow": self.check_workflow,
            "attempt": self.check_attempt,
            "matrix": self.check_matrix,
            "item": self.check_item,
            "index": self.check_item,
        }.get(head)
        return handler(reference, site) if handler else None

    def fan_outs_of(self, site: Site, kind: FanOutKind) -> list[FanOut]:
        """The fan-outs of `kind` around the site's step, outermost first."""
        found = () if site.owner is None else self.fan_outs.get(site.owner.path, ())
        return [f for f in found if f.kind is kind]

    def check_matrix(self, reference: Reference, site: Site) -> Diagnostic | None:
        fan_outs = self.fan_outs_of(site, FanOutKind.MATRIX)
        if not fan_outs:
            return _outside_fan_out(reference, site, "a step or group with `matrix:`")
        keys = {k.lower(): k for fan_out in fan_outs for k in fan_out.keys}
        return _check_member(reference, keys, "matrix axis", "axes are the keys of `matrix:`")

    def check_item(self, reference: Reference, site: Site) -> Diagnostic | None:
        if not self.fan_outs_of(site, FanOutKind.FOR_EACH):
            return _outside_fan_out(reference, site, "a step or group with `forEach:`")
        return None

    def check_input(self, reference: Reference, site: Site) -> Diagnostic | None:
        return _check_member(reference, self.inputs, "input", "declare it under `inputs:`")

    def check_secret(self, reference: Reference, site: Site) -> Diagnostic | None:
        return _check_member(reference, self.secrets, "secret", "list it under `secrets:`")

    def check_workflow(self, reference: Reference, site: Site) -> Diagnostic | None:
        names = {p.lower(): p for p in WORKFLOW_PROPERTIES}
        return _check_member(reference, names, "workflow property", None)

    def check_attempt(self, reference: Reference, site: Site) -> Diagnostic | None:
        if site.owner is not None:
            return None
        return error(
            "expr.context",
            f"`attempt` is not available in {site.where}; it exists only inside a step",
            reference.span,
        )

    def check_step(self, reference: Reference, site: Site) -> Diagnostic | None:
        if site.owner is None and site.where != "workflow `outputs`":
            return error(
                "expr.context",
                f"`steps` is not available in {site.where}; it is evaluated before any step runs",
                reference.span,
            )
        if len(reference.path) > 1 and _first_id(reference.path[1]).lower() in self.dynamic:
            return None  # an instance of a fan-out the run expands: known only then
        problem = _check_member(reference, self.steps, "step", "give the step an `id`")
        if problem is not None or len(reference.path) < 3:
            return problem
        names = {p.lower(): p for p in STEP_PROPERTIES}
        if reference.path[2].lower() in names:
            return None
        return _unknown(reference.path[2], names, "step property", reference, None)


def _outside_fan_out(reference: Reference, site: Site, inside: str) -> Diagnostic:
    name = reference.path[0]
    where = site.where if site.owner is None else "this step"
    return error(
        "expr.context",
        f"`{name}` is not available in {where}; it exists only inside {inside}",
        reference.span,
        "`matrix` belongs to `matrix:` fan-outs, `item` and `index` to `forEach:`",
    )


def _check_member(
    reference: Reference, known: Mapping[str, str], what: str, hint: str | None
) -> Diagnostic | None:
    if len(reference.path) < 2 or reference.path[1].lower() in known:
        return None
    return _unknown(reference.path[1], known, what, reference, hint)


def _unknown(
    name: str, known: Mapping[str, str], what: str, reference: Reference, hint: str | None
) -> Diagnostic:
    close = closest(name.lower(), known)
    if close:
        hint = f"did you mean `{known[close]}`?"
    elif known and len(known) <= 8:
        hint = f"known: {', '.join(sorted(known.values()))}"
    return error(
        "expr.unknown-name",
        f"unknown {what} `{name}` in `{'.'.join(reference.path)}`",
        reference.span,
        hint,
    )


# -- constant expressions ---------------------------------------------------------------------


def check_constants(workflow: Workflow) -> list[Diagnostic]:
    """Errors an expression must raise whatever the run: a function called on literals only
    that fails (`format('{0} {1}', 'a')`, `fromJSON('not json')`), at its own position."""
    return [
        error(
            f"expr.{exc.stage}",
            exc.message[:1].lower() + exc.message[1:],
            exc.span,
            "this part uses literals only, so it fails every time it is evaluated",
        )
        for site in iter_sites(workflow)
        for exc in site.expression.constant_errors()
    ]


# -- comparisons that cannot go both ways -----------------------------------------------------


def check_comparisons(workflow: Workflow) -> list[Diagnostic]:
    """Warnings for `inputs.X == literal` (or `!=`) whose answer the declaration of X already
    fixes: a choice that is not among X's values, text that is no number for a number."""
    declared = {i.name.lower(): i for i in workflow.inputs}
    problems: list[Diagnostic] = []
    for site in iter_sites(workflow):
        for node in walk(site.expression.root):
            if isinstance(node, Binary) and node.op in ("==", "!="):
                problem = _fixed_comparison(node, declared)
                if problem is not None:
                    problems.append(problem)
    return problems


def _fixed_comparison(node: Binary, declared: Mapping[str, Input]) -> Diagnostic | None:
    for side, other in ((node.left, node.right), (node.right, node.left)):
        name = _input_read(side)
        declaration = declared.get(name.lower()) if name is not None else None
        if declaration is None or not isinstance(other, Literal):
            continue
        possible = _possible_values(declaration)
        if possible is None:
            if declaration.type is not InputType.NUMBER or not isinstance(other.value, str):
                continue
            if not math.isnan(to_number(other.value)):
                continue
            what = "a number"
        elif any(equals(value, other.value) for value in possible):
            continue
        elif declaration.type is InputType.BOOLEAN:
            what = "a boolean (true or false)"
        else:
            what = "one of " + ", ".join(to_string(v) if v != "" else "''" for v in possible)
        answer = "false" if node.op == "==" else "true"
        return warning(
            "compile.fixed-comparison",
            f"`{unparse(node)}` is always {answer}: input `{declaration.name}` is {what}",
            node.span,
            "compare with a value the input can take",
        )
    return None


def _input_read(node: Node) -> str | None:
    """X when `node` is `inputs.X` or `inputs['X']`."""
    if isinstance(node, Property | Index) and not (
        isinstance(node.target, NamedValue) and node.target.name.lower() == "inputs"
    ):
        return None
    if isinstance(node, Property):
        return node.name
    if isinstance(node, Index) and isinstance(node.index, Literal):
        return node.index.value if isinstance(node.index.value, str) else None
    return None


def _possible_values(declaration: Input) -> tuple[Any, ...] | None:
    """Every value the input can have, when they are few (None: too many to list)."""
    if declaration.type is InputType.BOOLEAN:
        return (True, False)
    if declaration.enum is None:
        return None
    absent = () if declaration.required or declaration.has_default else (_absent(declaration),)
    return (*declaration.enum, *absent)


def _absent(declaration: Input) -> Any:
    return 0 if declaration.type is InputType.NUMBER else ""


# -- callables --------------------------------------------------------------------------------

#: modules a `uses` step may not name: the running program itself, and wfx's own code
_FORBIDDEN_MODULES = ("__main__", "wfx")


def check_callables(workflow: Workflow) -> list[Diagnostic]:
    """Errors for `uses` naming `__main__` (whatever program runs wfx) or wfx's own modules."""
    problems: list[Diagnostic] = []
    for action, _, _ in all_actions(workflow):
        if action.uses is not None:
            problem = _forbidden_callable(action)
            if problem is not None:
                problems.append(problem)
    return problems


def _forbidden_callable(action: Action) -> Diagnostic | None:
    module = action.uses.split(":")[1] if action.uses and action.uses.count(":") == 2 else ""
    top = module.split(".")[0]
    if top not in _FORBIDDEN_MODULES:
        return None
    what = "the program running wfx" if top == "__main__" else "wfx's own code"
    return error(
        "compile.forbidden-callable",
        f"`uses` cannot name module `{module}`: it is {what}, not a step's code",
        action.uses_span or action.span,
        "put the function in a module of its own next to the workflow file,"
        " e.g. `python:my_tools:deploy`",
    )


# -- policies ---------------------------------------------------------------------------------


def check_policies(workflow: Workflow) -> list[Diagnostic]:
    """Errors for settings that cannot work where they are written."""
    problems: list[Diagnostic] = []
    for step in all_steps(workflow):
        if step.steps and step.rollback is not None:
            problems.append(
                error(
                    "compile.group-rollback",
                    "`rollback` belongs on a step that runs something, not on a group",
                    step.rollback.span,
                    "put a `rollback` on each step of the group that needs undoing",
                )
            )
    return problems


# -- data flow --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Read:
    """A leaf step's `steps.X` reference whose target X is a known step or group."""

    target: int
    name: StepId
    reference: Reference


def check_data_flow(graph: ExecutionGraph) -> list[Diagnostic]:
    """Warnings for `steps.X` read by a step that does not wait for X (it may not have run).

    One pass in topological order: each node carries the set of read targets among its
    ancestors as a bitset (bits only for steps that something reads), released as soon as
    its last dependent has taken it. That is one step per node and edge instead of one
    ancestor walk per reading step; each step is an OR of machine words (a 20,000-step
    chain of reads ORs at most 2.5 kB at a time).
    """
    reads = _reads(graph)
    bits = {read.target: 0 for found in reads.values() for read in found}
    for position, target in enumerate(bits):
        bits[target] = 1 << position
    dependents = [0] * len(graph.nodes)
    for node in graph.nodes:
        for dep in node.deps:
            dependents[dep] += 1
    upstream: dict[int, int] = {}
    problems: list[Diagnostic] = []
    for node in graph.nodes:
        mask = 0
        for dep in node.deps:
            mask |= upstream[dep] | bits.get(dep, 0)
            dependents[dep] -= 1
            if dependents[dep] == 0:
                del upstream[dep]
        if dependents[node.index]:
            upstream[node.index] = mask
        for read in reads.get(node.index, ()):
            if not mask & bits[read.target]:
                problems.append(_not_upstream(node.id, read))
    return problems


def _reads(graph: ExecutionGraph) -> dict[int, list[_Read]]:
    """The `steps.X` references of each main leaf step (and dynamic fan-out, whose
    `forEach` is evaluated when its start is reached), by node index."""
    by_name = {step_id.lower(): (step_id, index) for step_id, index in graph.ids.items()}
    reads: dict[int, list[_Read]] = {}
    for node in graph.nodes:
        template = node.fan_out.template if node.fan_out and node.fan_out.dynamic else None
        if node.section is not Section.MAIN or not (node.is_step or template):
            continue
        if node.scope:  # a sub-workflow's steps were checked when it was compiled
            continue
        for site in _step_sites(template or node.step):
            for reference in site.expression.references():
                if reference.path[0].lower() != "steps" or len(reference.path) < 2:
                    continue
                found = by_name.get(reference.path[1].lower())
                if found is None or (found[0] == node.id and site.in_rollback):
                    continue
                reads.setdefault(node.index, []).append(_Read(found[1], found[0], reference))
    return reads


def _first_id(name: str) -> str:
    """`fetch` for `fetch[api][0]`: the step an instance id names."""
    return name.split("[", 1)[0]


def _not_upstream(reader: StepId, read: _Read) -> Diagnostic:
    target = read.name
    return warning(
        "compile.not-upstream",
        f"`{reader}` reads `steps.{target}` but does not wait for `{target}`",
        read.reference.span,
        f"add `needs: [{target}]` so the value exists when `{reader}` runs",
    )
