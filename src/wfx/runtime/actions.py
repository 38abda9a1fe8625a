"""What a step does: one attempt of a shell script, an argv, or a Python callable.

Each attempt gets a fresh `$WFX_OUTPUT` file; its result is an :class:`Attempt` with
a status, the outputs, and why it failed. Interpolated values reach shell scripts
only through generated environment variables (:mod:`wfx.shell`) and `cmd`
items stay single argv entries, whatever they contain.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import math
import os
import shlex
import shutil
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from wfx.diagnostics import Span, WfxError
from wfx.durations import format_duration
from wfx.expr import Expression, ExpressionError, Status, Template, to_string
from wfx.model import Action, StepKind
from wfx.runtime.events import StepStatus
from wfx.runtime.executor import AttemptRequest, Executor, ExecutorError
from wfx.runtime.outputs import MAX_OUTPUT_BYTES
from wfx.shell import (
    DEFAULT_SHELL,
    DIRECT_SHELLS,
    FALLBACK_SHELL,
    SCRIPT_PLACEHOLDER,
    EvaluatedValueError,
    prepare_script,
    shell_program,
    simple_command,
)

#: a Python step: keyword arguments from `with`, returns a mapping of outputs (or None)
PythonAction = Callable[..., Any]

#: where a Python step runs: in wfx's own process, whatever the executor
LOCAL = "local"

#: output lines longer than this arrive in chunks of this many characters
MAX_LINE = 64 * 1024


@dataclass(frozen=True, slots=True)
class Attempt:
    """The result of one attempt of a step."""

    status: StepStatus
    outputs: Mapping[str, Any] = field(default_factory=dict)
    exit_code: int | None = None
    signal: int | None = None
    reason: str | None = None
    leftovers: tuple[str, ...] = ()
    span: Span | None = None
    """Where in the workflow file the failure is, when it is an expression's."""
    where: str | None = None
    """Where the attempt ran (`local`, a worker's address), as its executor says."""


@dataclass(slots=True)
class AttemptSetup:
    """Everything an attempt needs besides the action itself (built per attempt, not shared)."""

    step_id: str
    attempt: int
    contexts: Mapping[str, Any]
    env: Mapping[str, str]
    """The step's own variables (its `env:` and the `WFX_*` ones), not wfx's environment."""
    cwd: str
    timeout: float | None
    kill_grace: float
    shell: str | None
    on_output: Callable[[str, str], None]
    actions: Mapping[str, PythonAction]
    import_root: str | None = None
    key: str = ""
    """`run_id:step_id:attempt`, the attempt's idempotency key."""
    resources: Mapping[str, float] = field(default_factory=dict)
    """Abstract resources the attempt holds while it runs (`resources:`)."""


class ActionError(WfxError):
    """A step could not be executed as written (bad callable, unrenderable value...)."""


async def run_attempt(
    action: Action,
    setup: AttemptSetup,
    executor: Executor | None,
    *,
    request: AttemptRequest | None = None,
    started: Callable[[], None] | None = None,
    succeeded: Callable[[], None] | None = None,
) -> Attempt:
    """Run one attempt of `action`: a `run` or `cmd` step on `executor`, a Python step
    here, in-process (executor None), or on the executor a run gives Python steps (the
    what-if plan's simulation). Never raises for a failure of the step itself.

    `request`: the attempt's request made already (from `setup`); `started`: called once
    an executor that starts attempts without waiting (`begin`) has started this one, before
    the wait for its end; `succeeded`: then called as soon as that attempt is known to
    succeed, before its clean-up (`StartedAttempt.when_succeeded`)."""
    try:
        if request is not None:
            pass
        elif action.kind is StepKind.USES:
            if executor is None:
                return await _run_python(action, setup)
            request = python_request(action, setup)
        else:
            assert executor is not None
            request = attempt_request(action, setup)
    except ExpressionError as exc:
        return rendering_failed(exc, _RENDERED[action.kind])
    except ActionError as exc:
        return Attempt(StepStatus.FAILED, reason=_message(exc))
    assert executor is not None
    try:
        begin = None if started is None else getattr(executor, "begin", None)
        if begin is None or started is None:
            return await executor.run_attempt(request, setup.on_output)
        begun = begin(request, setup.on_output)
        if succeeded is not None and not isinstance(begun, Attempt):
            begun.when_succeeded(succeeded)
        started()
        return begun if isinstance(begun, Attempt) else await begun.finish()
    except ExecutorError as exc:
        return Attempt(StepStatus.FAILED, reason=f"executor `{executor.name}`: {exc}")


def python_request(action: Action, setup: AttemptSetup) -> AttemptRequest:
    """A Python step's attempt as a request, for an executor that stands in for Python
    steps (the what-if plan's): it names the callable; nothing of it is rendered."""
    key = setup.key or f"-:{setup.step_id}:{setup.attempt}"
    return AttemptRequest(
        key=key,
        argv=(action.uses or "",),
        env={},
        cwd=setup.cwd,
        timeout=setup.timeout,
        kill_grace=setup.kill_grace,
    )


#: what a rendering error of each kind of action failed to render
_RENDERED = {StepKind.RUN: "`run`", StepKind.CMD: "`cmd`", StepKind.USES: "`with`"}


def rendering_failed(exc: ExpressionError, what: str) -> Attempt:
    """A failed attempt for an expression that could not be evaluated, naming the file,
    line and column of the expression."""
    reason = f"{exc.span}: cannot render {what}: {exc.message}"
    return Attempt(StepStatus.FAILED, reason=reason, span=exc.span)


def _message(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)


# -- shell and argv ---------------------------------------------------------------------------


def attempt_request(action: Action, setup: AttemptSetup) -> AttemptRequest:
    """One attempt of a `run` or `cmd` step as plain data for an executor: every value
    rendered here, on the client (the script text through wfx.shell.prepare_script)."""
    script: str | None = None
    suffix = ""
    direct: tuple[str, ...] | None = None
    if action.kind is StepKind.CMD:
        argv = tuple(render_text(item, setup.contexts) for item in action.cmd)
        env = setup.env
    else:
        assert action.run is not None
        try:
            prepared = prepare_script(
                action.run, lambda e: render_expression(e, setup.contexts), setup.shell
            )
        except EvaluatedValueError as exc:
            raise ActionError(str(exc)) from None
        env = {**setup.env, **prepared.env}
        if setup.shell and SCRIPT_PLACEHOLDER in setup.shell:
            argv = tuple(shell_argv(setup.shell))
            script = prepared.text
            suffix = _SCRIPT_SUFFIXES.get(shell_program(setup.shell), "")
        else:
            argv = (*shell_argv(setup.shell), prepared.text)
            direct = _direct_words(prepared.text, prepared.env, setup.shell)
    return AttemptRequest(
        key=setup.key,
        argv=argv,
        env=env,
        cwd=setup.cwd,
        timeout=setup.timeout,
        kill_grace=setup.kill_grace,
        script=script,
        script_suffix=suffix,
        resources=dict(setup.resources),
        output_limit=MAX_OUTPUT_BYTES,
        direct=direct,
    )


def _direct_words(
    text: str, values: Mapping[str, str], shell: str | None
) -> tuple[str, ...] | None:
    """The script's words when bash would only exec them (no `${{ }}` in it, a bash
    shell whose flags change nothing for one command, one simple command)."""
    if values or shell not in DIRECT_SHELLS or shell_argv(shell)[0] != "bash":
        return None
    return simple_command(text)


#: the file name ending some interpreters insist on for a script file (`pwsh` needs `.ps1`)
_SCRIPT_SUFFIXES = {"pwsh": ".ps1", "powershell": ".ps1", "python": ".py", "python3": ".py"}

#: Linux refuses a single argument or environment string longer than this (MAX_ARG_STRLEN)
MAX_ARGUMENT_BYTES = 128 * 1024


def unpassable(argv: Sequence[str], env: Mapping[str, str], cwd: str | None = None) -> str | None:
    """Why these arguments, variables or working directory cannot reach a process, or None
    when they can."""
    if cwd is not None and "\x00" in cwd:
        return "the working directory contains a NUL character, which no directory name can hold"
    for index, value in enumerate(argv):
        if "\x00" in value or len(value) * 4 >= MAX_ARGUMENT_BYTES:  # else surely passable
            problem = _unpassable_value(value)
            if problem is not None:
                return f"argument {index} {problem}"
    for name, value in env.items():
        if "\x00" in value or len(value) * 4 >= MAX_ARGUMENT_BYTES:
            problem = _unpassable_value(value)
            if problem is not None:
                return f"{name} {problem}"
    return None


def _unpassable_value(value: str) -> str | None:
    if "\x00" in value:
        return "contains a NUL character, which no process can receive"
    # a character is at most 4 bytes in UTF-8: only a long value needs encoding
    if len(value.encode("utf-8", errors="surrogateescape")) >= MAX_ARGUMENT_BYTES:
        return (
            f"is longer than {MAX_ARGUMENT_BYTES // 1024} KiB, more than a process"
            " can receive; pass large values through a file in $WFX_WORKSPACE"
        )
    return None


def shell_argv(shell: str | None) -> list[str]:
    """The argv prefix for a shell setting (None: the built-in default). A shell with `{0}`
    gets the script as a file in place of `{0}`; any other gets `-c SCRIPT`."""
    if shell is None:
        return list(_default_shell())
    if SCRIPT_PLACEHOLDER in shell:
        return shlex.split(shell)
    return [*shlex.split(shell), "-c"]


@functools.cache
def _default_shell() -> tuple[str, ...]:
    """The default shell where wfx runs (`bash -eo pipefail`, else `sh -e`), with `-c`."""
    chosen = DEFAULT_SHELL if shutil.which("bash") else FALLBACK_SHELL
    return (*shlex.split(chosen), "-c")


# -- rendering --------------------------------------------------------------------------------


class StepContexts(dict[str, Any]):
    """The contexts a step's expressions read, with the status its status functions
    (`success()`, `failure()`, `always()`, `cancelled()`) report: the engine decides the
    step's condition with the same Status, so `run:` text and `condition:` agree."""

    __slots__ = ("status",)

    def __init__(self, values: Mapping[str, Any], status: Status) -> None:
        super().__init__(values)
        self.status = status


def status_of(contexts: Mapping[str, Any]) -> Status | None:
    """The status `contexts` carry (None: the default of a quiet, successful run)."""
    return contexts.status if isinstance(contexts, StepContexts) else None


def render_expression(expression: Expression, contexts: Mapping[str, Any]) -> str:
    """An expression's value as the text a script or argv receives."""
    return to_string(expression.evaluate(contexts, status=status_of(contexts)))


def render_text(template: Template, contexts: Mapping[str, Any]) -> str:
    """A template rendered to text."""
    if template.is_literal():
        return "".join(p for p in template.parts if isinstance(p, str))
    return "".join(
        part if isinstance(part, str) else render_expression(part, contexts)
        for part in template.parts
    )


def render_value(value: Any, contexts: Mapping[str, Any]) -> Any:
    """A `with` value: templates rendered (a lone `${{ }}` keeps its type), the rest as is."""
    if isinstance(value, Template):
        return plain_numbers(value.render(contexts, status=status_of(contexts)))
    if isinstance(value, Mapping):
        return {k: render_value(v, contexts) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [render_value(v, contexts) for v in value]
    return value


def plain_numbers(value: Any) -> Any:
    """Expression numbers are floats; hand whole ones (also nested) to Python code as int."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {k: plain_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_numbers(v) for v in value]
    return value


# -- Python callables -------------------------------------------------------------------------


async def _run_python(action: Action, setup: AttemptSetup) -> Attempt:
    assert action.uses is not None
    function = resolve_callable(action.uses, setup.actions, setup.import_root)
    kwargs = render_value(action.with_, setup.contexts) if action.with_ else {}
    call = _bind(function, kwargs)
    try:
        if setup.timeout is None:
            result = await call()
        else:
            result = None
            with anyio.move_on_after(setup.timeout) as scope:
                result = await call()
            if scope.cancelled_caught:
                reason = f"timed out after {format_duration(setup.timeout, '?')}"
                return Attempt(StepStatus.TIMEOUT, reason=reason)
    except anyio.get_cancelled_exc_class() as exc:
        if anyio.current_effective_deadline() == -math.inf:
            raise  # the run is stopping (or a timeout): the engine's cancel scopes handle it
        return Attempt(StepStatus.FAILED, reason=_python_failure(exc))  # raised by the step
    except BaseException as exc:  # SystemExit, KeyboardInterrupt...: the step fails, not wfx
        return Attempt(StepStatus.FAILED, reason=_python_failure(exc))
    try:
        outputs = _outputs_of(result)
    except ActionError as exc:
        return Attempt(StepStatus.FAILED, reason=exc.args[0])
    return Attempt(StepStatus.SUCCESS, outputs)


def _bind(function: PythonAction, kwargs: Any) -> Callable[[], Awaitable[Any]]:
    if not isinstance(kwargs, Mapping):
        raise ActionError("`with` must be a mapping of keyword arguments")
    signature, is_async = _describe(function)
    if signature is not None and not _fits(function, signature, kwargs):
        try:
            signature.bind(**kwargs)
        except TypeError as exc:
            raise ActionError(f"`with` does not fit {_name(function)}: {exc}") from None
    if is_async:

        async def call_async() -> Any:
            return await function(**kwargs)

        return call_async

    def call_capturing() -> Any:
        try:
            return function(**kwargs)
        except BaseException as exc:  # carried back as an Exception: see _Raised
            raise _Raised(exc) from None

    async def call_in_thread() -> Any:
        try:
            return await anyio.to_thread.run_sync(call_capturing, abandon_on_cancel=True)
        except _Raised as raised:
            raise raised.original from None

    return call_in_thread


class _Raised(Exception):  # noqa: N818 - a carrier, not an error of its own
    """What a step's function raised in its worker thread. A BaseException such as
    GeneratorExit crossing from a thread into the event loop escapes every handler (it
    ends the whole run), so it travels as a plain exception and is raised again here."""

    def __init__(self, original: BaseException) -> None:
        super().__init__(original)
        self.original = original


_DESCRIBED: dict[Any, tuple[inspect.Signature | None, bool]] = {}
_FITTING: set[tuple[Any, frozenset[str]]] = set()


def _fits(function: PythonAction, signature: inspect.Signature, kwargs: Mapping[str, Any]) -> bool:
    """Whether these keyword names are known to bind (checked once per name set)."""
    key = (function, frozenset(kwargs))
    if key in _FITTING:
        return True
    try:
        signature.bind(**kwargs)
    except TypeError:
        return False
    _FITTING.add(key)
    return True


def _describe(function: PythonAction) -> tuple[inspect.Signature | None, bool]:
    """The callable's signature (None for builtins without one) and whether it is async,
    worked out once per callable."""
    known = _DESCRIBED.get(function)
    if known is None:
        try:
            signature: inspect.Signature | None = inspect.signature(function)
        except (TypeError, ValueError):
            signature = None
        known = _DESCRIBED[function] = (signature, inspect.iscoroutinefunction(function))
    return known


def _name(function: PythonAction) -> str:
    return getattr(function, "__qualname__", repr(function))


def _python_failure(exc: BaseException) -> str:
    import traceback  # noqa: PLC0415 - only when a Python step raised

    frames = traceback.extract_tb(exc.__traceback__)
    where = f" ({Path(frames[-1].filename).name}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def _outputs_of(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        raise ActionError(
            f"a Python step returns a mapping of outputs (or None), not {type(result).__name__}"
        )
    return {str(k): v for k, v in result.items()}


def resolve_callable(
    uses: str, overrides: Mapping[str, PythonAction], import_root: str | None
) -> PythonAction:
    """The callable `python:MODULE:FUNCTION` names: an override, or imported."""
    if uses in overrides:
        return overrides[uses]
    _, module_name, attribute = uses.split(":", 2)
    module = _import(module_name, import_root)
    function = getattr(module, attribute, None)
    if not callable(function):
        raise ActionError(f"`{uses}`: module `{module_name}` has no callable `{attribute}`")
    return function  # type: ignore[no-any-return]


def _import(module_name: str, import_root: str | None) -> Any:
    if import_root is not None and import_root not in sys.path:
        sys.path.insert(0, import_root)
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ActionError(f"cannot import `{module_name}`: {exc}") from None
    except anyio.get_cancelled_exc_class():
        raise
    except BaseException as exc:  # the module itself is broken (or exits)
        raise ActionError(f"importing `{module_name}` failed: {_python_failure(exc)}") from None


def inherited_environment() -> dict[str, str]:
    """wfx's environment as steps inherit it."""
    return dict(os.environ)
