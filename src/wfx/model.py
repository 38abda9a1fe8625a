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
from typing import TYPE_CHECKING, Any, NewType, TypeAlias

from wfx.diagnostics import Diagnostic, DiagnosticsError, Span, error
from wfx.durations import parse_duration
from wfx.expr import Expression, ExpressionError, Template, parse, parse_template, to_string

if TYPE_CHECKING:  # the YAML reader is not needed to unpickle a cached model
    from wfx.source import Path_, SourceDocument

StepId = NewType("StepId", str)

#: the named values an expression may use anywhere in a workflow
CONTEXT_NAMES = (
    "inputs",
    "env",
    "secrets",
    "steps",
    "workflow",
    "attempt",
    "matrix",
    "item",
    "index",
)
#: the named values a `forEach` expression may use (it is evaluated before its instances)
FOR_EACH_NAMES = ("inputs", "steps", "workflow")


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


class ConcurrencyMode(enum.Enum):
    """What a run does when its concurrency group is taken by another run."""

    QUEUE = "queue"
    CANCEL = "cancel"
    FAIL = "fail"


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
    on: tuple[int | str, ...] | None = None
    """`on`: the exit codes (and `timeout`) worth retrying; None: not set, `("any",)`: any."""
    on_span: Span | None = None
    except_: tuple[int, ...] | None = None
    """`except`: exit codes never retried."""
    except_span: Span | None = None
    deadline: float | None = None
    """`deadline`: seconds all attempts and waits together may take."""


@dataclass(frozen=True, slots=True)
class Condition:
    """`condition`: an expression, or a literal boolean."""

    span: Span
    expression: Expression | None = None
    constant: bool | None = None


@dataclass(frozen=True, slots=True)
class Concurrency:
    """`concurrency`: the group (a template over `inputs`) and what to do when it is taken."""

    group: Template
    mode: ConcurrencyMode
    span: Span


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


class FanOutKind(enum.Enum):
    """How a step fans out into instances."""

    MATRIX = "matrix"
    FOR_EACH = "forEach"


@dataclass(frozen=True, slots=True)
class FanOut:
    """`matrix:` or `forEach:` on a step or group: how it becomes instances.

    A matrix keeps its axes in the order written, with `include` and `exclude` as written;
    a `forEach` holds its literal list (`items`) or the expression giving it.
    """

    kind: FanOutKind
    span: Span
    axes: tuple[tuple[str, tuple[Any, ...]], ...] = ()
    include: tuple[Mapping[str, Any], ...] = ()
    exclude: tuple[Mapping[str, Any], ...] = ()
    items: tuple[Any, ...] | None = None
    expression: Expression | None = None
    fail_fast: Located | None = None

    @property
    def keys(self) -> frozenset[str]:
        """Every name `matrix.<name>` may read: the axes and the keys `include` adds."""
        return frozenset(
            [name for name, _ in self.axes] + [k for entry in self.include for k in entry]
        )


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
    continue_on: Located | None = None
    """`continueOn`: exit codes (a tuple of ints) whose final failure lets the run go on."""
    env: Mapping[str, Template] = field(default_factory=dict)
    working_directory: Template | None = None
    shell: Located | None = None
    executor: Located | None = None
    resources: Located | None = None
    """Abstract resources (`{gpu: 1}`) the step's process holds: a Mapping[str, float]."""
    env_file: tuple[Located, ...] = ()
    """`envFile`: each dotenv path as written (a str), with where."""
    rollback: Action | None = None
    action: Action | None = None
    group_type: GroupType = GroupType.SEQUENTIAL
    max_parallel: Located | None = None
    steps: tuple[Step, ...] = ()
    group_timeout: Located | None = None
    """`groupTimeout`: seconds one attempt of the whole group may take (not inherited)."""
    group_retries: RetryPolicy | None = None
    """`groupRetries`: how often the whole group runs again after it failed (not inherited)."""
    fan_out: FanOut | None = None
    """`matrix:` or `forEach:`: the step is a template of instances."""
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
    continue_on: Located | None = None
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
    env_file: tuple[Located, ...] = ()
    """The workflow's `envFile`: each dotenv path as written (a str), with where."""
    concurrency: Concurrency | None = None
    env_file_values: Mapping[Path_, Mapping[str, str]] = field(default_factory=dict)
    """What the env files hold once read (:mod:`wfx.envfile`), by the path of the step that
    names them: `()` the workflow's `envFile`, :data:`COMMAND_LINE_ENV_FILE` `--env-file`.
    Empty until read: a workflow whose files were not read has no values from them."""
    max_instances: Located | None = None
    """`maxInstances`: the most instances one fan-out may create (None: the default)."""


#: the key of the values from `--env-file` in `Workflow.env_file_values`
COMMAND_LINE_ENV_FILE: Path_ = ("--env-file",)


def build(document: SourceDocument) -> Workflow:
    """Turn a schema-valid document into a Workflow; raise DiagnosticsError on bad expressions."""
    workflow, problems = build_with_problems(document)
    if problems:
        raise DiagnosticsError(problems)
    return workflow


def build_with_problems(
    document: SourceDocument, *, reuse_steps: bool = False
) -> tuple[Workflow, list[Diagnostic]]:
    """The Workflow plus the problems found; a bad expression becomes literal text so that
    later stages can still report their own problems in the same pass.

    With `reuse_steps` (an editor re-checking a file at each keystroke), a step written
    exactly as in a document built before, on the same lines, is that build's Step."""
    builder = _ModelBuilder(document, _BUILT_STEPS if reuse_steps else None)
    return builder.workflow(), builder.problems


#: Steps built before, with the problems found building them, by what they depend on
_StepKey: TypeAlias = "tuple[str, Path_, int, str, str]"
_BUILT_STEPS: dict[_StepKey, tuple[Step, tuple[Diagnostic, ...]]] = {}
_BUILT_STEPS_MAX = 50_000


class _ModelBuilder:
    """Walks the plain data once, building dataclasses and collecting problems."""

    def __init__(
        self,
        document: SourceDocument,
        built: dict[_StepKey, tuple[Step, tuple[Diagnostic, ...]]] | None = None,
    ) -> None:
        self.document = document
        self.positions = document.positions
        self.problems: list[Diagnostic] = []
        self.built = built

    def reused_step(self, data: Any, path: Path_) -> Step:
        """The step at `path`, built before if its text (the lines it spans, where they
        are) and its data (aliases can bring data from elsewhere) are the same."""
        if self.built is None:
            return self.step(data, path)
        span = self.span(path)
        lines = "\n".join(self.document.lines[span.line - 1 : max(span.end_line, span.line)])
        key = (self.document.name, path, span.line, lines, repr(data))
        found = self.built.get(key)
        if found is None:
            before = len(self.problems)
            found = (self.step(data, path), tuple(self.problems[before:]))
            self.built[key] = found
            while len(self.built) > _BUILT_STEPS_MAX:
                del self.built[next(iter(self.built))]
        else:
            self.problems.extend(found[1])
        return found[0]

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

    def exit_codes(self, data: Mapping[str, Any], key: str, path: Path_) -> Located | None:
        """A list of exit codes, as a tuple of ints."""
        if key not in data:
            return None
        return Located(tuple(int(c) for c in data[key]), self.span((*path, key)))

    def retries(self, value: Any, path: Path_) -> RetryPolicy:
        span = self.span(path)
        if isinstance(value, int | float):  # `3.0` is the integer 3, as JSON Schema has it
            return RetryPolicy(max=int(value), span=span)
        durations = {k: self.duration(value, k, path) for k in ("delay", "maxDelay", "deadline")}
        on = value.get("on")
        return RetryPolicy(
            max=int(value["max"]) if "max" in value else None,
            span=span,
            delay=_seconds(durations["delay"]),
            backoff=Backoff(value["backoff"]) if "backoff" in value else None,
            factor=float(value["factor"]) if "factor" in value else None,
            max_delay=_seconds(durations["maxDelay"]),
            jitter=float(value["jitter"]) if "jitter" in value else None,
            on=None if on is None else (("any",) if on == "any" else tuple(on)),
            on_span=self.span((*path, "on")) if "on" in value else None,
            except_=tuple(value["except"]) if "except" in value else None,
            except_span=self.span((*path, "except")) if "except" in value else None,
            deadline=_seconds(durations["deadline"]),
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
            env_file=self.env_file(data, root),
            concurrency=self.concurrency(data.get("concurrency")),
            max_instances=self.located(data, "maxInstances", root),
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
            continue_on=self.exit_codes(data, "continueOn", path),
            shell=self.located(data, "shell", path),
            working_directory=self.optional_template(data, "workingDirectory", path),
            env=self.env(data.get("env"), (*path, "env")),
            executor=self.located(data, "executor", path),
            resources=self.resources(data, path),
        )

    def concurrency(self, value: Any) -> Concurrency | None:
        """`concurrency`: a group name, or `{group, mode}`; the group may read only `inputs`."""
        if value is None:
            return None
        path: Path_ = ("concurrency",)
        if isinstance(value, str):
            text, mode, group_path = value, ConcurrencyMode.QUEUE, path
        else:
            text = str(value["group"])
            mode = ConcurrencyMode(value.get("mode", "queue"))
            group_path = (*path, "group")
        group = self.template(text, group_path)
        for expression in group.expressions():
            for reference in expression.references():
                if reference.path[0].lower() != "inputs":
                    self.problems.append(_concurrency_reference(reference.path, reference.span))
        return Concurrency(group, mode, self.span(path))

    def env_file(self, data: Mapping[str, Any], path: Path_) -> tuple[Located, ...]:
        """`envFile`: one path or a list of them, each with its position."""
        value = data.get("envFile")
        if value is None:
            return ()
        if isinstance(value, str):
            return (Located(value, self.span((*path, "envFile"))),)
        return tuple(Located(str(v), self.span((*path, "envFile", i))) for i, v in enumerate(value))

    def optional_template(self, data: Mapping[str, Any], key: str, path: Path_) -> Template | None:
        if key not in data:
            return None
        return self.template(str(data[key]), (*path, key))

    def steps(self, items: list[Any], path: Path_) -> tuple[Step, ...]:
        return tuple(self.reused_step(item, (*path, index)) for index, item in enumerate(items))

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
            continue_on=self.exit_codes(data, "continueOn", path),
            env=self.env(data.get("env"), (*path, "env")),
            working_directory=self.optional_template(data, "workingDirectory", path),
            shell=self.located(data, "shell", path),
            executor=self.located(data, "executor", path),
            resources=self.resources(data, path),
            env_file=self.env_file(data, path),
            rollback=self.action(data["rollback"], (*path, "rollback"))
            if "rollback" in data
            else None,
            action=self.action(data, path) if kind is not StepKind.GROUP else None,
            group_type=GroupType(data.get("type", "sequential")),
            max_parallel=self.located(data, "maxParallel", path),
            steps=self.steps(data.get("steps") or [], (*path, "steps")),
            group_timeout=self.duration(data, "groupTimeout", path),
            group_retries=self.retries(data["groupRetries"], (*path, "groupRetries"))
            if "groupRetries" in data
            else None,
            fan_out=self.fan_out(data, path),
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

    def fan_out(self, data: Mapping[str, Any], path: Path_) -> FanOut | None:
        """`matrix:` or `forEach:` of a step, if it has one."""
        fail_fast = self.located(data, "failFast", path)
        if "matrix" in data:
            matrix = data["matrix"]
            return FanOut(
                FanOutKind.MATRIX,
                self.span((*path, "matrix")),
                axes=tuple(
                    (name, tuple(values))
                    for name, values in matrix.items()
                    if name not in ("include", "exclude")
                ),
                include=tuple(dict(entry) for entry in matrix.get("include") or ()),
                exclude=tuple(dict(entry) for entry in matrix.get("exclude") or ()),
                fail_fast=fail_fast,
            )
        if "forEach" not in data:
            return None
        value = data["forEach"]
        span = self.span((*path, "forEach"))
        if isinstance(value, list):
            return FanOut(FanOutKind.FOR_EACH, span, items=tuple(value), fail_fast=fail_fast)
        text = str(value)
        opener = text.index("${{")
        inner = text[opener + 3 : text.rindex("}}")]
        origin = self.text_origin((*path, "forEach")).at_offset(opener + 3)
        try:
            expression = parse(inner, names=FOR_EACH_NAMES, origin=origin)
        except ExpressionError as exc:
            self.problems.append(_expression_diagnostic(exc, FOR_EACH_NAMES))
            return FanOut(FanOutKind.FOR_EACH, span, items=(), fail_fast=fail_fast)
        return FanOut(FanOutKind.FOR_EACH, span, expression=expression, fail_fast=fail_fast)

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


def _concurrency_reference(path: tuple[str, ...], span: Span) -> Diagnostic:
    return error(
        "model.concurrency-context",
        f"the concurrency group may use only `inputs`, not `{'.'.join(path[:2])}`",
        span,
        "the group is decided before the run starts: build it from inputs, e.g."
        " `deploy-${{ inputs.environment }}`",
    )


def _expression_diagnostic(
    exc: ExpressionError, names: tuple[str, ...] = CONTEXT_NAMES
) -> Diagnostic:
    message = exc.message[:1].lower() + exc.message[1:]
    hint = None
    if message.startswith("unrecognized named-value"):
        hint = f"available here: {', '.join(names)}"
    elif message.startswith("unrecognized function"):
        hint = (
            "functions: contains, startsWith, endsWith, format, join, toJSON, fromJSON, case,"
            " success, failure, always, cancelled"
        )
    return error(f"expr.{exc.stage}", message, exc.span, hint)
