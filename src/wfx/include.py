"""Include stage: the sub-workflows that `uses: ./file.yaml` steps call, loaded and checked.

Runs after the model stage, before the compiler. For each step that calls a workflow file
it finds the file (relative to the calling file), refuses any path that leaves the
project root (RELIABILITY-TESTS T16: `..`, absolute paths, symbolic links pointing out,
NUL, backslashes), loads it with the same safe YAML loader and limits as the top file
(:mod:`wfx.source`), checks it against the schema and types it (:mod:`wfx.model`), then
follows its own calls. Include cycles and chains deeper than :data:`MAX_DEPTH` are errors
naming every file and line of the chain. Each file is loaded once, however often it is
called.

It also checks each call against the called file: `with` against the child's typed
`inputs` (a mismatch names the caller's value and the child's declaration), the secrets
passed (`secrets: [A, B]` or `inherit`) against the secrets the child declares, and that
the calling step sets nothing a sub-workflow takes from its own file.

The project root is the directory holding the top workflow unless `--root` names
another; every path check happens before the file is opened.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wfx import inputs, model
from wfx.confine import confine, project_root, within
from wfx.diagnostics import Diagnostic, DiagnosticsError, Span, error
from wfx.expr import Template
from wfx.model import Call, Input, Step, Workflow
from wfx.walk import all_steps

if TYPE_CHECKING:
    from wfx import source

#: how deep sub-workflows may call sub-workflows (the top workflow is depth 0)
MAX_DEPTH = 10
#: how many steps a workflow may hold once every call is expanded (a file calling a file
#: ten times, ten levels deep, must not build 10^10 nodes)
MAX_EXPANDED_STEPS = 100_000

#: settings a step that calls a sub-workflow may not have: the child's own file sets them
_CALLER_SETTINGS = (
    ("retries", "retries"),
    ("timeout", "timeout"),
    ("kill_grace", "killGrace"),
    ("on_error", "onError"),
    ("executor", "executor"),
    ("resources", "resources"),
    ("rollback", "rollback"),
)


@dataclass(frozen=True, slots=True)
class _Link:
    """One call on the way to a file: the file at `file` (a real path) calls `path` at
    `span`."""

    file: str
    span: Span
    path: str


@dataclass
class Inclusion:
    """The result of the include stage: the workflow with its calls filled in, the
    problems found, and the text of every included file by its name in diagnostics."""

    workflow: Workflow
    problems: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)


def include(workflow: Workflow, root: str | Path | None = None) -> Inclusion:
    """Load every sub-workflow `workflow` calls (recursively), confined to `root` (default:
    the directory holding `workflow`'s file); return the workflow with each call's
    `workflow` filled in and every problem found."""
    top = os.path.realpath(workflow.file)
    chosen = project_root(workflow.file, root)
    includer = _Includer(chosen)
    if not within(top, chosen):
        includer.blocked = True
        includer.problems.append(
            error(
                "include.root",
                f"the workflow {workflow.file} is not inside the project root {chosen}",
                None,
                "choose a --root that contains the workflow file",
            )
        )
    resolved = includer.resolve(workflow, top, ())
    total = _expanded_steps(resolved, {})
    if total > MAX_EXPANDED_STEPS:
        first = next(s.call for s in all_steps(resolved) if s.call is not None)
        assert first is not None
        includer.problems.append(
            error(
                "include.too-large",
                "with its sub-workflows expanded, the workflow has more than"
                f" {MAX_EXPANDED_STEPS:,} steps",
                first.span,
                "call fewer sub-workflows, or fewer times",
            )
        )
        resolved = includer.without_calls(resolved)
    return Inclusion(resolved, includer.problems, includer.sources)


def _expanded_steps(workflow: Workflow, memo: dict[int, int]) -> int:
    """The number of steps `workflow` holds with every call expanded (each file counted
    once: the calls form a DAG once cycles are refused)."""
    known = memo.get(id(workflow))
    if known is not None:
        return known
    total = 0
    for step in all_steps(workflow):
        total += 1
        child = step.call.workflow if step.call is not None else None
        if child is not None:
            total += _expanded_steps(child, memo)
        if total > MAX_EXPANDED_STEPS:
            break
    memo[id(workflow)] = total
    return total


def has_calls(workflow: Workflow) -> bool:
    """Whether any step of `workflow` calls a sub-workflow."""
    return any(step.call is not None for step in all_steps(workflow))


class _Includer:
    """Walks a workflow's steps, loading the files they call; one per include stage."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.loaded: dict[str, Workflow | None] = {}
        self.problems: list[Diagnostic] = []
        self.sources: dict[str, str] = {}
        self.blocked = False
        """Set when the top file is outside the root: no call is followed."""

    # -- walking ----------------------------------------------------------------------------

    def resolve(self, workflow: Workflow, real: str, chain: tuple[_Link, ...]) -> Workflow:
        """`workflow` (whose file is at `real`) with every call in it loaded."""
        if not has_calls(workflow):
            return workflow
        steps = self.steps(workflow.steps, workflow, real, chain)
        finally_ = self.steps(workflow.finally_, workflow, real, chain)
        return dataclasses.replace(workflow, steps=steps, finally_=finally_)

    def steps(
        self, steps: tuple[Step, ...], workflow: Workflow, real: str, chain: tuple[_Link, ...]
    ) -> tuple[Step, ...]:
        return tuple(self.step(step, workflow, real, chain) for step in steps)

    def step(self, step: Step, workflow: Workflow, real: str, chain: tuple[_Link, ...]) -> Step:
        if step.steps:
            return dataclasses.replace(step, steps=self.steps(step.steps, workflow, real, chain))
        call = step.call
        if call is None:
            return step
        self.problems += _caller_settings(step)
        failed = dataclasses.replace(step, call=dataclasses.replace(call, file="", workflow=None))
        if self.blocked:
            return failed
        target = self.confine(call, real)
        if target is None:
            return failed
        name = _display_name(workflow.file, call.path)
        child = self.load(target, name, call, (*chain, _Link(real, call.span, call.path)))
        if child is None:
            return failed
        self.problems += check_with(step, call, child)
        self.problems += check_secrets(call, workflow, child)
        return dataclasses.replace(
            step, call=dataclasses.replace(call, workflow=child, file=child.file)
        )

    def without_calls(self, workflow: Workflow) -> Workflow:
        """`workflow` with every call marked as not loaded (its problem is reported)."""
        self.blocked = True
        return self.resolve(workflow, "", ())

    # -- paths ------------------------------------------------------------------------------

    def confine(self, call: Call, caller: str) -> str | None:
        """The real path of the file `call` names, or None (with a problem) when the path
        is refused: nothing outside the root, or in `.git`, is opened or even looked up."""
        found = confine(call.path, os.path.dirname(caller), self.root, "sub-workflow")
        if found.real is None:
            self.problems.append(
                error(f"include.{found.kind}", found.message, call.span, _PATH_HINT)
            )
        return found.real

    # -- loading ----------------------------------------------------------------------------

    def load(self, real: str, name: str, call: Call, chain: tuple[_Link, ...]) -> Workflow | None:
        """The typed, resolved workflow at `real`, loaded once; None when it has problems."""
        if any(link.file == real for link in chain):
            self.problems.append(_chain_error("include.cycle", "include cycle", chain, call))
            return None
        if len(chain) > MAX_DEPTH:
            what = f"sub-workflows nested deeper than {MAX_DEPTH} levels"
            self.problems.append(_chain_error("include.depth", what, chain, call))
            return None
        if real in self.loaded:
            return self.loaded[real]
        self.loaded[real] = None
        document = self.read(real, name, call)
        if document is None:
            return None
        self.sources[name] = document.text
        from wfx import schema, schemacheck  # noqa: PLC0415 - only a workflow with calls

        found = [] if schemacheck.is_valid(document.data) else schema.validate(document)
        if found:
            self.problems += found
            return None
        child, problems = model.build_with_problems(document)
        self.problems += problems
        child = self.resolve(child, real, chain)
        self.loaded[real] = child
        return child

    def read(self, real: str, name: str, call: Call) -> source.SourceDocument | None:
        """Parse the file at `real` with the safe loader; it is opened without following a
        symbolic link (one swapped in after the path was checked is refused)."""
        from wfx import source  # noqa: PLC0415 - only a workflow with calls reads more files

        try:
            descriptor = os.open(real, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
            with os.fdopen(descriptor, "rb") as handle:
                raw = handle.read(source.MAX_BYTES + 1)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            self.problems.append(
                error(
                    "include.read",
                    f"cannot read the sub-workflow `{call.path}` ({name}): {reason}",
                    call.span,
                    "the path is relative to the file that holds this step",
                )
            )
            return None
        try:
            document = source.loads(raw, name)
        except DiagnosticsError as exc:
            first = exc.diagnostics[0] if exc.diagnostics else None
            where = first.span if first is not None else None
            at = f" at line {where.line}, column {where.column}" if where else ""
            said = f" ({first.message})" if first is not None else ""
            self.problems.append(_not_a_workflow(call, name, f"its YAML does not parse{at}{said}"))
            return None
        if not isinstance(document.data, dict) or "wfx" not in document.data:
            self.problems.append(_not_a_workflow(call, name, "it has no `wfx:` key"))
            return None
        return document


_PATH_HINT = (
    "a sub-workflow is a file under the project root (the top workflow's directory, or"
    " --root), named relative to the calling file, e.g. `./workflows/deploy.yaml`"
)


def _not_a_workflow(call: Call, name: str, why: str) -> Diagnostic:
    """A called file that is not a wfx workflow, said at the call: none of its lines is
    quoted (the diagnostic points at no place in it), for it may be any file under the
    root (`.env`, holding the secrets an earlier CI step wrote), and a pull request's
    plan is shown in public."""
    return error(
        "include.not-a-workflow",
        f"the sub-workflow `{call.path}` ({name}) is not a wfx workflow: {why}",
        call.span,
        "a sub-workflow is a wfx workflow file (a mapping with `wfx: 1` and `steps`);"
        " its contents are not shown until it is one",
    )


def _display_name(caller_name: str, path: str) -> str:
    """The name diagnostics give the called file: its path as the caller's name spells it."""
    return os.path.normpath(os.path.join(os.path.dirname(caller_name), path))


def _chain_error(code: str, what: str, chain: tuple[_Link, ...], call: Call) -> Diagnostic:
    steps = " -> ".join(f"{link.span} uses `{link.path}`" for link in chain)
    return error(
        code,
        f"{what}: {steps}",
        call.span,
        "a workflow cannot call itself, directly or through others"
        if code == "include.cycle"
        else f"flatten the calls: at most {MAX_DEPTH} levels of sub-workflows",
    )


# -- checks of a call against the called file --------------------------------------------------


def _caller_settings(step: Step) -> list[Diagnostic]:
    """A step that calls a sub-workflow takes its settings from that file, not from itself."""
    problems = []
    for attribute, key in _CALLER_SETTINGS:
        value = getattr(step, attribute)
        if value is not None:
            problems.append(_caller_setting(key, value.span))
    if step.env:
        problems.append(_caller_setting("env", step.span))
    if step.working_directory is not None:
        problems.append(_caller_setting("workingDirectory", step.span))
    return problems


def _caller_setting(key: str, span: Span) -> Diagnostic:
    return error(
        "include.caller-setting",
        f"`{key}` cannot be set on a step that calls a sub-workflow",
        span,
        "a sub-workflow's steps take their settings from its own file (its `defaults`);"
        " pass values through `with` and its `inputs`",
    )


def check_with(step: Step, call: Call, child: Workflow) -> list[Diagnostic]:
    """`with` checked against the child's `inputs`: unknown names, literal values of the
    wrong type, required inputs left out. Values with `${{ }}` are checked when rendered."""
    declared = {d.name: d for d in child.inputs}
    given: Mapping[str, Any] = step.action.with_ if step.action is not None else {}
    problems: list[Diagnostic] = []
    for name, value in given.items():
        span = call.with_spans.get(name, call.span)
        declaration = declared.get(name)
        if declaration is None:
            problems.append(_unknown_input(name, child, span))
            continue
        literal = literal_value(value)
        if literal is _RUNTIME:
            continue
        try:
            inputs.coerce(declaration, literal)
        except inputs.InputValueError as exc:
            problems.append(_bad_input(declaration, child, str(exc), span))
    for declaration in child.inputs:
        missing = declaration.name not in given
        if missing and declaration.required and not declaration.has_default:
            problems.append(
                error(
                    "include.missing-input",
                    f"the sub-workflow {child.file} requires input `{declaration.name}`"
                    f" (declared at {declaration.span})",
                    call.span,
                    f"pass it under `with:`, e.g. `{declaration.name}: ...`",
                )
            )
    return problems


class _Runtime:
    """Marks a `with` value only the run can give (it holds `${{ }}`)."""


_RUNTIME = _Runtime()


def literal_value(value: Any) -> Any:
    """A `with` value as plain data, or the `_RUNTIME` marker when it holds `${{ }}`."""
    if isinstance(value, Template):
        if not value.is_literal():
            return _RUNTIME
        return "".join(p for p in value.parts if isinstance(p, str))
    if isinstance(value, Mapping):
        items = {k: literal_value(v) for k, v in value.items()}
        return _RUNTIME if any(v is _RUNTIME for v in items.values()) else items
    if isinstance(value, tuple | list):
        listed = [literal_value(v) for v in value]
        return _RUNTIME if any(v is _RUNTIME for v in listed) else listed
    return value


def is_runtime(value: Any) -> bool:
    """Whether a value from :func:`literal_value` is known only at run time."""
    return value is _RUNTIME


def _unknown_input(name: str, child: Workflow, span: Span) -> Diagnostic:
    names = ", ".join(f"`{d.name}`" for d in child.inputs) or "none"
    return error(
        "include.unknown-input",
        f"the sub-workflow {child.file} has no input `{name}`",
        span,
        f"its inputs: {names}",
    )


def _bad_input(declaration: Input, child: Workflow, why: str, span: Span) -> Diagnostic:
    return error(
        "include.input-type",
        f"`with.{declaration.name}`: {why}; input `{declaration.name}` of {child.file} is"
        f" declared `type: {declaration.type.value}` at {declaration.span}",
        span,
        "give a value of the declared type (a `${{ }}` value is checked when the run renders it)",
    )


def check_secrets(call: Call, caller: Workflow, child: Workflow) -> list[Diagnostic]:
    """The secrets passed must be the caller's own; each secret the child declares must be
    passed (by name, or all with `inherit`)."""
    own = {str(s.value) for s in caller.secrets}
    problems = [
        error(
            "include.unknown-secret",
            f"`{named.value}` is not a secret of this workflow",
            named.span,
            "list it under the workflow's `secrets:` first",
        )
        for named in call.secrets
        if named.value not in own
    ]
    passed = own if call.inherit_secrets else {str(s.value) for s in call.secrets}
    for declared in child.secrets:
        if declared.value in passed:
            continue
        problems.append(
            error(
                "include.secret-not-passed",
                f"the sub-workflow {child.file} needs secret `{declared.value}` (declared at"
                f" {declared.span}), which this step does not pass",
                call.secrets_span or call.span,
                f"add `secrets: [{declared.value}]` to the step, or `secrets: inherit`",
            )
        )
    return problems


def passed_secrets(call: Call) -> tuple[str, ...]:
    """The names of the secrets a call's child may read: those it declares (each one
    checked to be passed)."""
    assert call.workflow is not None
    return tuple(str(s.value) for s in call.workflow.secrets)
