"""Model stage: schema-valid plain data -> typed, frozen dataclasses with spans.

Durations are parsed here, once, into seconds; every ``${{ }}`` expression (in
``condition``, ``run``, ``cmd``, ``env``, ``with``, ``outputs``...) is parsed here,
once, into an AST. Later stages never look at raw YAML data again.

The model records only what the author wrote (``None`` for "not set"): working out
effective settings from defaults and enclosing groups is the compiler's job, so
that it can say where each setting came from.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, NewType

from wfx.diagnostics import Diagnostic, DiagnosticsError, Span, error
from wfx.durations import parse_duration
from wfx.expr import Expression, ExpressionError, Template, parse, parse_template, to_string
from wfx.source import Path_, SourceDocument

StepId = NewType("StepId", str)

#: the named values an expression may use anywhere in a workflow
CONTEXT_NAMES = ("inputs", "env", "secrets", "steps", "workflow", "attempt")


class StepKind(enum.Enum):
    """What a step does: a group of steps, a shell script, an argv, a Python callable."""

    GROUP = "group"
    RUN = "run"
    CMD = "cmd"
    USES = "uses"


class GroupType(enum.Enum):
    """How a group orders its children."""

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class OnError(enum.Enum):
    """What a final failure of a step means for the run."""

    FAIL = "fail"
    CONTINUE = "continue"
    RETRY = "retry"


class Backoff(enum.Enum):
    """How the delay between attempts grows."""

    EXPONENTIAL = "exponential"
    LINEAR = "linear"
    CONSTANT = "constant"


class InputType(enum.Enum):
    """The declared type of a workflow input."""

    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    CHOICE = "choice"


@dataclass(frozen=True, slots=True)
class Located:
    """A setting's value together with where it was written."""

    value: Any
    span: Span


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`retries`: how many extra attempts and how long to wait before each."""

    max: int | None
    span: Span
    delay: float | None = None
    backoff: Backoff | None = None
    factor: float | None = None
    max_delay: float | None = None
    jitter: float | None = None


@dataclass(frozen=True, slots=True)
class Condition:
    """`condition`: an expression, or a literal boolean."""

    span: Span
    expression: Expression | None = None
    constant: bool | None = None


@dataclass(frozen=True, slots=True)
class Input:
    """A declared workflow input."""

    name: str
    type: InputType
    span: Span
    default: Any = None
    has_default: bool = False
    required: bool = False
    enum: tuple[Any, ...] | None = None
    pattern: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)
class Action:
    """What a leaf step (or a rollback) executes."""

    kind: StepKind
    span: Span
    run: Template | None = None
    cmd: tuple[Template, ...] = ()
    uses: str | None = None
    with_: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, Template] = field(default_factory=dict)
    timeout: Located | None = None
    working_directory: Template | None = None
    shell: Located | None = None
    name: str | None = None
    uses_span: Span | None = None


@dataclass(frozen=True, slots=True)
class Call:
    """A `uses: ./file.yaml` step's call of a sub-workflow.

    The model records what the author wrote; the include stage (:mod:`wfx.include`) loads
    the file and fills in `workflow` (and `file`, the name diagnostics use for it)."""

    path: str
    span: Span
    with_spans: Mapping[str, Span] = field(default_factory=dict)
    secrets: tuple[Located, ...] = ()
    inherit_secrets: bool = False
    secrets_span: Span | None = None
    file: str | None = None
    """The called file's name in diagnostics; "" when it could not be loaded (the include
    stage said why), None before the include stage ran."""
    workflow: Workflow | None = None


def is_workflow_reference(uses: str) -> bool:
    """Whether a `uses:` value names a workflow file (`./x.yaml`, `../x.yaml`, or an absolute
    path, which the include stage refuses) rather than a `python:MODULE:FUNCTION` callable."""
    return uses.startswith(("./", "../", "/"))


@dataclass(frozen=True, slots=True)
class StepRef:
    """A step id named somewhere (in `needs`), with where it was named."""

    id: StepId
    span: Span


@dataclass(frozen=True, slots=True)
class Step:
    """A step as written: a group or a leaf, with the settings the author gave it."""

    kind: StepKind
    span: Span
    path: Path_
    id: StepId | None = None
    id_span: Span | None = None
    name: str | None = None
    needs: tuple[StepRef, ...] = ()
    condition: Condition | None = None
    retries: RetryPolicy | None = None
    timeout: Located | None = None
    kill_grace: Located | None = None
    on_error: Located | None = None
    env: Mapping[str, Template] = field(default_factory=dict)
    working_directory: Template | None = None
    shell: Located | None = None
    executor: Located | None = None
    resources: Located | None = None
    """Abstract resources (`{gpu: 1}`) the step's process holds: a Mapping[str, float]."""
    rollback: Action | None = None
    action: Action | None = None
    group_type: GroupType = GroupType.SEQUENTIAL
    max_parallel: Located | None = None
    steps: tuple[Step, ...] = ()
    call: Call | None = None
    """Set on a `uses: ./file.yaml` step: the sub-workflow it calls."""


@dataclass(frozen=True, slots=True)
class Defaults:
    """`defaults`: settings every step inherits unless it or its group overrides them."""

    span: Span | None = None
    timeout: Located | None = None
    kill_grace: Located | None = None
    retries: RetryPolicy | None = None
    on_error: Located | None = None
    shell: Located | None = None
    working_directory: Template | None = None
    env: Mapping[str, Template] = field(default_factory=dict)
    executor: Located | None = None
    resources: Located | None = None


@dataclass(frozen=True, slots=True)
class Workflow:
    """A whole workflow file, typed."""

    file: str
    span: Span
    name: str | None
    description: str | None
    inputs: tuple[Input, ...]
    secrets: tuple[Located, ...]
    env: Mapping[str, Template]
    defaults: Defaults
    timeout: Located | None
    max_parallel: Located | None
    steps: tuple[Step, ...]
    finally_: tuple[Step, ...]
    outputs: Mapping[str, Template]
    data: Mapping[str, Any] = field(repr=False, default_factory=dict)
    group_type: GroupType = GroupType.SEQUENTIAL
    """How the top-level `steps` run: the workflow is a group (`finally` stays sequential)."""


def build(document: SourceDocument) -> Workflow:
    """Turn a schema-valid document into a Workflow; raise DiagnosticsError on bad expressions."""
    workflow, problems = build_with_problems(document)
    if problems:
        raise DiagnosticsError(problems)
    return workflow


def build_with_problems(document: SourceDocument) -> tuple[Workflow, list[Diagnostic]]:
    """The Workflow plus the problems found; a bad expression becomes literal text so that
    later stages can still report their own problems in the same pass."""
    builder = _ModelBuilder(document)
    return builder.workflow(), builder.problems


class _ModelBuilder:
    """Walks the plain data once, building dataclasses and collecting problems."""

    def __init__(self, document: SourceDocument) -> None:
        self.document = document
        self.positions = document.positions
        self.problems: list[Diagnostic] = []

    # -- positions --------------------------------------------------------------------------

    def span(self, path: Path_) -> Span:
        return self.positions.value(path)

    def text_origin(self, path: Path_) -> Span:
        """Where the first character of the string at `path` sits in the file."""
        span = self.span(path)
        line = self.document.line(span.line)
        opener = line[span.column - 1 : span.column]
        if opener in ("'", '"'):
            return Span(span.file, span.line, span.column + 1, span.end_line, span.end_column)
        if opener in ("|", ">"):
            following = self.document.line(span.line + 1)
            indent = len(following) - len(following.lstrip(" "))
            return Span(span.file, span.line + 1, indent + 1, span.end_line, span.end_column)
        return span

    # -- expressions ------------------------------------------------------------------------

    def template(self, text: str, path: Path_) -> Template:
        try:
            return parse_template(text, names=CONTEXT_NAMES, origin=self.text_origin(path))
        except ExpressionError as exc:
            self.problems.append(_expression_diagnostic(exc))
            return Template((text,))

    def value_template(self, value: Any, path: Path_) -> Any:
        """Templates for every string inside a nested `with` value."""
        if isinstance(value, str):
            return self.template(value, path)
        if isinstance(value, list):
            return tuple(self.value_template(item, (*path, i)) for i, item in enumerate(value))
        if isinstance(value, dict):
            return {k: self.value_template(v, (*path, k)) for k, v in value.items()}
        return value

    def env(self, data: Mapping[str, Any] | None, path: Path_) -> dict[str, Template]:
        return {
            name: self.template(_env_text(value), (*path, name))
            for name, value in (data or {}).items()
        }

    def condition(self, value: Any, path: Path_) -> Condition:
        span = self.span(path)
        if isinstance(value, bool):
            return Condition(span, constant=value)
        text = str(value).strip()
        origin = self.text_origin(path)
        if text.startswith("${{") and text.endswith("}}"):
            inner = text[3:-2]
            origin = origin.at_offset(str(value).index("${{") + 3)
            text = inner
        try:
            return Condition(span, expression=parse(text, names=CONTEXT_NAMES, origin=origin))
        except ExpressionError as exc:
            self.problems.append(_expression_diagnostic(exc))
            return Condition(span, constant=False)

    # -- small settings ---------------------------------------------------------------------

    def located(self, data: Mapping[str, Any], key: str, path: Path_) -> Located | None:
        if key not in data:
            return None
        return Located(data[key], self.span((*path, key)))

    def resources(self, data: Mapping[str, Any], path: Path_) -> Located | None:
        """`resources:` as a read-only mapping of names to amounts (floats)."""
        if "resources" not in data:
            return None
        amounts = {str(k): float(v) for k, v in data["resources"].items()}
        return Located(MappingProxyType(amounts), self.span((*path, "resources")))

    def duration(self, data: Mapping[str, Any], key: str, path: Path_) -> Located | None:
        if key not in data:
            return None
        span = self.span((*path, key))
        try:
            return Located(parse_duration(data[key]), span)
        except ValueError:
            self.problems.append(
                error("model.duration", f"`{key}` is not a duration: {data[key]!r}", span)
            )
            return None

    def enum_value(
        self, data: Mapping[str, Any], key: str, path: Path_, kind: type[enum.Enum]
    ) -> Located | None:
        if key not in data:
            return None
        return Located(kind(data[key]), self.span((*path, key)))

    def retries(self, value: Any, path: Path_) -> RetryPolicy:
        span = self.span(path)
        if isinstance(value, int):
            return RetryPolicy(max=value, span=span)
        durations = {k: self.duration(value, k, path) for k in ("delay", "maxDelay")}
        return RetryPolicy(
            max=int(value["max"]) if "max" in value else None,
            span=span,
            delay=_seconds(durations["delay"]),
            backoff=Backoff(value["backoff"]) if "backoff" in value else None,
            factor=float(value["factor"]) if "factor" in value else None,
            max_delay=_seconds(durations["maxDelay"]),
            jitter=float(value["jitter"]) if "jitter" in value else None,
        )

    # -- structure --------------------------------------------------------------------------

    def workflow(self) -> Workflow:
        data: Mapping[str, Any] = self.document.data
        root: Path_ = ()
        return Workflow(
            file=self.document.name,
            span=self.span(root),
            name=data.get("name"),
            description=data.get("description"),
            inputs=tuple(self.input(n, v) for n, v in (data.get("inputs") or {}).items()),
            secrets=tuple(
                Located(name, self.span(("secrets", i)))
                for i, name in enumerate(data.get("secrets") or [])
            ),
            env=self.env(data.get("env"), ("env",)),
            defaults=self.defaults(data.get("defaults")),
            timeout=self.duration(data, "timeout", root),
            max_parallel=self.located(data, "maxParallel", root),
            steps=self.steps(data.get("steps") or [], ("steps",)),
            finally_=self.steps(data.get("finally") or [], ("finally",)),
            outputs={
                name: self.template(str(value), ("outputs", name))
                for name, value in (data.get("outputs") or {}).items()
            },
            data=data,
            group_type=GroupType(data.get("type", "sequential")),
        )

    def input(self, name: str, data: Mapping[str, Any]) -> Input:
        kind = InputType(data.get("type", "string"))
        return Input(
            name=name,
            type=kind,
            span=self.positions.key(("inputs", name)),
            default=data.get("default"),
            has_default="default" in data,
            required=bool(data.get("required", False)),
            enum=tuple(data["enum"]) if "enum" in data else None,
            pattern=data.get("pattern"),
            description=data.get("description"),
        )

    def defaults(self, data: Mapping[str, Any] | None) -> Defaults:
        if not data:
            return Defaults()
        path: Path_ = ("defaults",)
        return Defaults(
            span=self.span(path),
            timeout=self.duration(data, "timeout", path),
            kill_grace=self.duration(data, "killGrace", path),
            retries=self.retries(data["retries"], (*path, "retries"))
            if "retries" in data
            else None,
            on_error=self.enum_value(data, "onError", path, OnError),
            shell=self.located(data, "shell", path),
            working_directory=self.optional_template(data, "workingDirectory", path),
            env=self.env(data.get("env"), (*path, "env")),
            executor=self.located(data, "executor", path),
            resources=self.resources(data, path),
        )

    def optional_template(self, data: Mapping[str, Any], key: str, path: Path_) -> Template | None:
        if key not in data:
            return None
        return self.template(str(data[key]), (*path, key))

    def steps(self, items: list[Any], path: Path_) -> tuple[Step, ...]:
        return tuple(self.step(item, (*path, index)) for index, item in enumerate(items))

    def step(self, data: Mapping[str, Any], path: Path_) -> Step:
        kind = _kind_of(data)
        needs = data.get("needs", [])
        needs_list = [needs] if isinstance(needs, str) else list(needs)
        needs_paths = [(*path, "needs")] if isinstance(needs, str) else None
        return Step(
            kind=kind,
            span=self.span(path),
            path=path,
            id=StepId(data["id"]) if "id" in data else None,
            id_span=self.span((*path, "id")) if "id" in data else None,
            name=data.get("name"),
            needs=tuple(
                StepRef(
                    StepId(item),
                    self.span(needs_paths[0] if needs_paths else (*path, "needs", i)),
                )
                for i, item in enumerate(needs_list)
            ),
            condition=self.condition(data["condition"], (*path, "condition"))
            if "condition" in data
            else None,
            retries=self.retries(data["retries"], (*path, "retries"))
            if "retries" in data
            else None,
            timeout=self.duration(data, "timeout", path),
            kill_grace=self.duration(data, "killGrace", path),
            on_error=self.enum_value(data, "onError", path, OnError),
            env=self.env(data.get("env"), (*path, "env")),
            working_directory=self.optional_template(data, "workingDirectory", path),
            shell=self.located(data, "shell", path),
            executor=self.located(data, "executor", path),
            resources=self.resources(data, path),
            rollback=self.action(data["rollback"], (*path, "rollback"))
            if "rollback" in data
            else None,
            action=self.action(data, path) if kind is not StepKind.GROUP else None,
            group_type=GroupType(data.get("type", "sequential")),
            max_parallel=self.located(data, "maxParallel", path),
            steps=self.steps(data.get("steps") or [], (*path, "steps")),
            call=self.call(data, path) if kind is StepKind.USES else None,
        )

    def call(self, data: Mapping[str, Any], path: Path_) -> Call | None:
        """What a `uses: ./file.yaml` step calls (None for a Python callable)."""
        uses = str(data["uses"])
        if not is_workflow_reference(uses):
            return None
        given = data.get("secrets")
        names = given if isinstance(given, list) else []
        return Call(
            path=uses,
            span=self.span((*path, "uses")),
            with_spans={name: self.span((*path, "with", name)) for name in data.get("with") or {}},
            secrets=tuple(
                Located(name, self.span((*path, "secrets", i))) for i, name in enumerate(names)
            ),
            inherit_secrets=given == "inherit",
            secrets_span=self.span((*path, "secrets")) if "secrets" in data else None,
        )

    def action(self, data: Mapping[str, Any], path: Path_) -> Action:
        kind = _kind_of(data)
        return Action(
            kind=kind,
            span=self.span(path),
            run=self.template(data["run"], (*path, "run")) if kind is StepKind.RUN else None,
            cmd=tuple(
                self.template(str(item), (*path, "cmd", i))
                for i, item in enumerate(data.get("cmd") or [])
            ),
            uses=data.get("uses"),
            with_=self.value_template(data.get("with") or {}, (*path, "with")),
            env=self.env(data.get("env"), (*path, "env")),
            timeout=self.duration(data, "timeout", path),
            working_directory=self.optional_template(data, "workingDirectory", path),
            shell=self.located(data, "shell", path),
            name=data.get("name"),
            uses_span=self.span((*path, "uses")) if kind is StepKind.USES else None,
        )


def _kind_of(data: Mapping[str, Any]) -> StepKind:
    for kind in (StepKind.GROUP, StepKind.RUN, StepKind.CMD, StepKind.USES):
        key = "steps" if kind is StepKind.GROUP else kind.value
        if key in data:
            return kind
    return StepKind.RUN


def _env_text(value: Any) -> str:
    if isinstance(value, bool | int | float):
        return to_string(float(value) if not isinstance(value, bool) else value)
    return str(value)


def _seconds(located: Located | None) -> float | None:
    return None if located is None else float(located.value)


def _expression_diagnostic(exc: ExpressionError) -> Diagnostic:
    message = exc.message[:1].lower() + exc.message[1:]
    hint = None
    if message.startswith("unrecognized named-value"):
        hint = f"available here: {', '.join(CONTEXT_NAMES)}"
    elif message.startswith("unrecognized function"):
        hint = (
            "functions: contains, startsWith, endsWith, format, join, toJSON, fromJSON, case,"
            " success, failure, always, cancelled"
        )
    return error(f"expr.{exc.stage}", message, exc.span, hint)
