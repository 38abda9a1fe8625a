"""The public Python API: load, validate, compile, plan, run and evaluate. The CLI calls
only this (and picks the renderers itself).

Every function either returns a result or raises :class:`DiagnosticsError` with
every problem found; any other exception escaping from here is a bug in wfx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

from wfx.diagnostics import (
    Diagnostic,
    DiagnosticsError,
    Span,
    error,
    has_errors,
    sorted_diagnostics,
)

if TYPE_CHECKING:
    from wfx.compilation import Compilation
    from wfx.graph import ExecutionGraph
    from wfx.model import StepId, Workflow
    from wfx.plan import Change, Plan
    from wfx.runtime.concurrency import Gate
    from wfx.runtime.engine import RunOptions, RunResult
    from wfx.runtime.events import EventSink
    from wfx.runtime.executor import Executor
    from wfx.runtime.journal import Journal, ResumeState, RunRecord, StepRecord
    from wfx.runtime.process import Leftover
    from wfx.selection import Selection
    from wfx.source import SourceDocument
    from wfx.whatif import WhatIf

#: a value as JSON (and YAML) writes it: what inputs, outputs and expressions hold
#: (read-only containers, so that a `dict[str, str]` is one too)
JSONValue: TypeAlias = (
    str | int | float | bool | Sequence["JSONValue"] | Mapping[str, "JSONValue"] | None
)
#: a workflow's input values by name
InputValues: TypeAlias = Mapping[str, JSONValue]
#: a Python callable standing in for a `uses: python:MODULE:FUNCTION` step
StepFunction: TypeAlias = Callable[..., object]
#: turns the plan changes between two definitions into one line of text (the CLI's renderer)
DescribeChanges: TypeAlias = Callable[[list["Change"]], str]


@dataclass(frozen=True)
class Report:
    """The outcome of checking files: every diagnostic, and the text of each file read."""

    diagnostics: list[Diagnostic] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when no diagnostic is an error (warnings allowed)."""
        return not has_errors(self.diagnostics)


def load_document(path: str | Path) -> SourceDocument:
    """Read a workflow file and check it against the schema; return the SourceDocument."""
    from wfx import schema, schemacheck, source

    document = source.load(path)
    if schemacheck.is_valid(document.data):
        return document  # jsonschema is imported only to explain what is wrong
    problems = schema.validate(document)
    if problems:
        raise DiagnosticsError(sorted_diagnostics(problems))
    return document


def load(path: str | Path, *, root: str | Path | None = None) -> Workflow:
    """Read, schema-check and type a workflow file and the sub-workflows it calls (confined
    to `root`, by default the file's directory); return the model's Workflow."""
    from wfx import model

    workflow, problems, _ = _included(model.build(load_document(path)), root)
    if problems:
        raise DiagnosticsError(sorted_diagnostics(problems))
    return workflow


def _included(
    workflow: Workflow, root: str | Path | None
) -> tuple[Workflow, list[Diagnostic], list[str]]:
    """`workflow` with its sub-workflows loaded (wfx.include), the problems found, and the
    files read."""
    from wfx.include import has_calls, include

    if not has_calls(workflow):
        return workflow, [], []
    inclusion = include(workflow, root)
    return inclusion.workflow, inclusion.problems, list(inclusion.sources)


def compile_file(
    path: str | Path,
    inputs: InputValues | None = None,
    input_spans: Mapping[str, Span] | None = None,
    *,
    require_inputs: bool = True,
    env_files: Sequence[str | Path] = (),
    cache: str | Path | None = None,
    on_fresh_model: Callable[[Workflow, list[str]], None] | None = None,
    root: str | Path | None = None,
    on_fresh_compilation: Callable[[Compilation], None] | None = None,
) -> Compilation:
    """Load and compile a workflow with inputs; return a Compilation (graph + warnings).

    The sub-workflows it calls are loaded (confined to `root`, by default the file's
    directory), then the env files it names and `env_files` (`--env-file`) are read.
    Model problems (bad expressions), problems of the sub-workflows, env file problems
    and compiler problems are reported together. `cache`: a state directory whose model
    cache may spare reading and checking the files again (see wfx.runtime.modelcache);
    None reads them afresh. `on_fresh_model` is given the model and the files it called
    when it was not in the cache and had no problems (before the env files are read into
    it: what `remember_model` may keep). The cache may also hold the graph compiled with
    these inputs (no env files); `on_fresh_compilation` is given a compilation that was not
    taken from there (what `remember_compilation` may keep).
    """
    variant = None
    if cache is not None and not env_files:
        from wfx.runtime.modelcache import ModelCache, compilation_variant

        store = ModelCache.at(cache)
        variant = compilation_variant(inputs, input_spans, require_inputs)
        if store is not None and (hit := store.load_compiled(path, root, variant)) is not None:
            from wfx.compilation import Compilation

            return Compilation(hit.graph, hit.warnings)
    checked, problems, files = _model_and_origin(path, cache, root)
    compilation = _compile_model(
        checked, problems, inputs, input_spans, require_inputs, env_files, root
    )
    if files is not None and on_fresh_model is not None:
        on_fresh_model(checked, files)
    if variant is not None and on_fresh_compilation is not None:
        on_fresh_compilation(compilation)
    return compilation


def compile_document(
    document: SourceDocument,
    inputs: InputValues | None = None,
    input_spans: Mapping[str, Span] | None = None,
    *,
    require_inputs: bool = True,
    reuse_steps: bool = False,
    env_files: Sequence[str | Path] = (),
    root: str | Path | None = None,
) -> Compilation:
    """Compile a schema-valid SourceDocument with inputs (as :func:`compile_file` does,
    the sub-workflows it calls included); `reuse_steps` reuses the model of steps
    unchanged since an earlier call (editors)."""
    from wfx import model

    workflow, problems = model.build_with_problems(document, reuse_steps=reuse_steps)
    workflow, included, _ = _included(workflow, root)
    return _compile_model(
        workflow, [*problems, *included], inputs, input_spans, require_inputs, env_files, root
    )


def _compile_model(
    checked: Workflow,
    problems: list[Diagnostic],
    inputs: InputValues | None,
    input_spans: Mapping[str, Span] | None,
    require_inputs: bool,
    env_files: Sequence[str | Path],
    root: str | Path | None = None,
) -> Compilation:
    """A checked model compiled, with the env files read into it (those the workflow
    names from under `root`); every problem at once."""
    from wfx import envfile
    from wfx.compiler import compile_workflow

    try:
        workflow = envfile.load(checked, env_files, root)
    except DiagnosticsError as exc:
        workflow, problems = checked, [*problems, *exc.diagnostics]
    try:
        compilation = compile_workflow(workflow, inputs, input_spans, require_inputs=require_inputs)
    except DiagnosticsError as exc:
        raise DiagnosticsError(sorted_diagnostics([*problems, *exc.diagnostics])) from None
    if problems:
        raise DiagnosticsError(sorted_diagnostics(problems))
    return compilation


def checked_model(
    path: str | Path, cache: str | Path | None = None, root: str | Path | None = None
) -> tuple[Workflow, list[Diagnostic]]:
    """The model of the workflow at `path` with the sub-workflows it calls, and the problems
    found building it, taken from the model cache in the state directory `cache` when it
    holds the files as they are now."""
    workflow, problems, _ = _model_and_origin(path, cache, root)
    return workflow, problems


def _model_and_origin(
    path: str | Path, cache: str | Path | None, root: str | Path | None
) -> tuple[Workflow, list[Diagnostic], list[str] | None]:
    """`checked_model`, and when the model was built afresh (not taken from the cache)
    the files of the sub-workflows it calls (None: it came from the cache)."""
    if cache is not None:
        from wfx.runtime.modelcache import ModelCache

        store = ModelCache.at(cache)
        if store is not None and (hit := store.load(path, root)) is not None:
            return hit.workflow, hit.problems, None
    from wfx import model

    workflow, problems = model.build_with_problems(load_document(path))
    workflow, included, files = _included(workflow, root)
    return workflow, [*problems, *included], files


def remember_model(
    path: str | Path,
    cache: str | Path,
    workflow: Workflow,
    files: Sequence[str] = (),
    root: str | Path | None = None,
) -> None:
    """Keep the model of the workflow at `path` (with the sub-workflow `files` it calls),
    which compiled without errors, in the model cache of the state directory `cache`
    (unless it came from there)."""
    from wfx.runtime.modelcache import CachedModel, ModelCache

    store = ModelCache.at(cache)
    if store is not None:
        store.store(path, root, CachedModel(workflow, []), files)


def remember_compilation(
    path: str | Path,
    cache: str | Path,
    compilation: Compilation,
    inputs: InputValues | None = None,
    input_spans: Mapping[str, Span] | None = None,
    root: str | Path | None = None,
) -> None:
    """Keep the graph of the workflow at `path` compiled with `inputs` (as given, at
    `input_spans`) in the model cache of the state directory `cache`, unless its workflow
    calls sub-workflows or reads env files (see wfx.runtime.modelcache)."""
    from wfx.runtime.modelcache import CachedCompilation, ModelCache, compilation_variant

    store = ModelCache.at(cache)
    if store is not None:
        variant = compilation_variant(inputs, input_spans, True)
        compiled = CachedCompilation(compilation.graph, compilation.warnings)
        store.store_compiled(path, root, variant, compiled)


def validate(
    paths: str | Path | Sequence[str | Path],
    inputs: InputValues | None = None,
    *,
    root: str | Path | None = None,
) -> Report:
    """Check one workflow file (or several) through every static stage, as `wfx validate`
    does; nothing runs. Input values are optional: required ones may be left out."""
    return check([paths] if isinstance(paths, str | Path) else paths, inputs, root=root)


def check(
    paths: Sequence[str | Path],
    inputs: InputValues | None = None,
    input_spans: Mapping[str, Span] | None = None,
    *,
    root: str | Path | None = None,
) -> Report:
    """Validate each file through every static stage; collect all diagnostics (those of
    the sub-workflows it calls too, with their files' text)."""
    report = Report()
    for path in paths:
        try:
            compilation = compile_file(path, inputs, input_spans, require_inputs=False, root=root)
            report.diagnostics.extend(compilation.warnings)
        except DiagnosticsError as exc:
            report.diagnostics.extend(exc.diagnostics)
        report.sources[str(path)] = _source_text(path)
    for diagnostic in report.diagnostics:
        named = diagnostic.span.file if diagnostic.span else None
        if named and named not in report.sources and not _in_env_file(diagnostic):
            report.sources[named] = _source_text(named)  # a file the include stage read
    report.diagnostics[:] = sorted_diagnostics(report.diagnostics)
    return report


def _in_env_file(diagnostic: Diagnostic) -> bool:
    """A problem at a line of an env file, whose text is never quoted (it may be a secret)."""
    return diagnostic.code in ("envfile.syntax", "envfile.name", "envfile.no-value")


@dataclass(frozen=True)
class CheckedText:
    """A workflow text checked as `wfx validate` checks a file: every diagnostic, the parsed
    document (None when the YAML is unreadable) and the compilation (None on errors)."""

    diagnostics: list[Diagnostic]
    document: SourceDocument | None = None
    compilation: Compilation | None = None


def check_text(text: str, name: str, inputs: InputValues | None = None) -> CheckedText:
    """Check workflow `text` named `name` through every static stage (for editors: the
    text in the buffer, not the file on disk); nothing runs."""
    from wfx import schema, source

    try:
        document = source.loads(text, name)
    except DiagnosticsError as exc:
        return CheckedText(sorted_diagnostics(exc.diagnostics))
    problems = schema.validate(document)
    if problems:
        return CheckedText(sorted_diagnostics(problems), document)
    try:
        compilation = compile_document(document, inputs, require_inputs=False, reuse_steps=True)
    except DiagnosticsError as exc:
        return CheckedText(sorted_diagnostics(exc.diagnostics), document)
    return CheckedText(sorted_diagnostics(compilation.warnings), document, compilation)


def _source_text(path: str | Path) -> str:
    from wfx.source import MAX_BYTES

    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def lint_files(paths: Sequence[str | Path]) -> tuple[list[Diagnostic], dict[str, str]]:
    """Lint findings of valid workflow files (DiagnosticsError with every invalid file's
    problems if any is invalid, and the findings of the valid ones with them: a hook given
    many files reports everything at once)."""
    from wfx.lint import lint

    findings: list[Diagnostic] = []
    problems: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for path in paths:
        try:
            findings.extend(lint(compile_file(path, require_inputs=False).graph.workflow))
        except DiagnosticsError as exc:
            problems.extend(exc.diagnostics)
        sources[str(path)] = _source_text(path)
    if problems:
        raise DiagnosticsError(sorted_diagnostics([*problems, *findings]))
    return sorted_diagnostics(findings), sources


def parse_input_assignments(assignments: Iterable[str]) -> dict[str, str]:
    """`name=value` strings (from `-i`) as a mapping; raise DiagnosticsError on bad ones."""
    values: dict[str, str] = {}
    problems: list[Diagnostic] = []
    for assignment in assignments:
        name, sep, value = assignment.partition("=")
        if not sep or not name.strip():
            problems.append(
                error("inputs.syntax", f"`{assignment}` is not NAME=VALUE", None, "e.g. -i env=prd")
            )
            continue
        values[name.strip()] = value
    if problems:
        raise DiagnosticsError(problems)
    return values


def load_inputs_file(path: str | Path) -> tuple[dict[str, JSONValue], dict[str, Span]]:
    """Input values from a JSON or YAML mapping file, with each value's position."""
    from wfx import source

    document = source.load(path)
    if not isinstance(document.data, dict):
        raise DiagnosticsError(
            [error("inputs.file", "an inputs file must hold a mapping of name: value", None)]
        )
    spans = {name: document.positions.key((name,)) for name in document.data}
    return cast(dict[str, JSONValue], dict(document.data)), spans


def evaluate(expression: str, contexts: Mapping[str, JSONValue]) -> JSONValue:
    """Evaluate a GitHub Actions-style expression; `contexts` names every allowed name."""
    from wfx.expr import evaluate as evaluate_expression

    return cast(JSONValue, evaluate_expression(expression, contexts))


def plan_file(
    path: str | Path,
    inputs: InputValues | None = None,
    input_spans: Mapping[str, Span] | None = None,
    *,
    env_files: Sequence[str | Path] = (),
    cache: str | Path | None = None,
    root: str | Path | None = None,
) -> tuple[ExecutionGraph, Plan]:
    """Compile and plan a workflow without side effects; return (graph, plan). `cache`: a
    state directory whose model cache is read (never written)."""
    from wfx.plan import make_plan

    compilation = compile_file(
        path, inputs, input_spans, env_files=env_files, cache=cache, root=root
    )
    return compilation.graph, make_plan(compilation.graph, compilation.warnings)


def what_if(graph: ExecutionGraph, fails: Iterable[str], timeouts: Iterable[str] = ()) -> WhatIf:
    """What a run of `graph` does when the steps `fails` names fail and those `timeouts`
    names time out (`STEP` or `STEP@ATTEMPT`), decided by the engine in a simulation that
    runs nothing (`wfx plan --fail`). Raises DiagnosticsError for a bad step name."""
    from wfx.whatif import parse_failures
    from wfx.whatif import what_if as simulate

    return simulate(graph, parse_failures(graph, fails, timeouts))


def plan(path: str | Path, inputs: InputValues | None = None) -> Plan:
    """What running the workflow at `path` with `inputs` would do, worked out without
    running anything (`wfx plan`): stages, conditions, retries, compensation, durations."""
    return plan_file(path, inputs)[1]


def plan_base(spec: str, path: str | Path, inputs: InputValues | None) -> Plan | None:
    """The plan to compare against: `spec` is a file, or `git:REV` for `path` at a revision.

    A workflow that does not exist at the base is an empty plan (everything is added).
    `git:REV` runs `git show` (read-only, at the edge: `wfx.runtime.git`).
    """
    from wfx import model, schema, source
    from wfx.compiler import compile_workflow
    from wfx.plan import make_plan

    if spec.startswith("git:"):
        text = _git_show(spec[4:], Path(path))
        if text is None:
            return None
        name = f"{spec}:{Path(path).name}"
        document = source.loads(text, name)
    else:
        document = source.load(spec)
    problems = schema.validate(document)
    if problems:
        raise DiagnosticsError(sorted_diagnostics(problems))
    workflow = model.build(document)
    if spec.startswith("git:"):
        included = _no_calls_at_revisions(workflow)
    else:
        workflow, included, _ = _included(workflow, None)
    if included:
        raise DiagnosticsError(sorted_diagnostics(included))
    compilation = compile_workflow(workflow, inputs)
    return make_plan(compilation.graph, compilation.warnings)


def _no_calls_at_revisions(workflow: Workflow) -> list[Diagnostic]:
    from wfx.include import has_calls

    if not has_calls(workflow):
        return []
    message = f"{workflow.file} calls sub-workflows, which are not read at git revisions"
    return [error("plan.git", message, None, "compare with a file: --diff OLD.yaml")]


def _git_show(revision: str, path: Path) -> bytes | None:
    from wfx.runtime.git import GitError, show_file

    try:
        return show_file(revision, path)
    except GitError as exc:
        raise DiagnosticsError(
            [error("plan.git", f"cannot read {path.name} at `{revision}`: {exc}", None)]
        ) from None


def run_graph(
    graph: ExecutionGraph,
    options: RunOptions | Callable[[], RunOptions],
    executors: OpenedExecutors | None = None,
) -> RunResult:
    """Run a compiled graph to the end on a fresh event loop; return the RunResult.

    `options` is a RunOptions, or a function returning one that is called once the
    `executors` (from :func:`open_executors`) have started, so a run is recorded only
    when they could: an executor that cannot start raises DiagnosticsError first. The
    executors are closed when the run ends."""
    import dataclasses
    from contextlib import AsyncExitStack

    import anyio

    from wfx.runtime.engine import run as run_async
    from wfx.runtime.executor import ExecutorError

    async def main() -> RunResult:
        async with AsyncExitStack() as stack:
            if executors is not None:
                for executor in executors.all():
                    try:
                        await executor.start()
                    except ExecutorError as exc:
                        raise DiagnosticsError([_executor_error(executor.name, exc)]) from None
                    stack.push_async_callback(executor.close)
            chosen = options() if callable(options) else options
            if executors is not None:
                chosen = dataclasses.replace(
                    chosen, executor=executors.default, executors=executors.named
                )
            return await run_async(graph, options=chosen)

    return anyio.run(main)


def run(
    path: str | Path,
    inputs: InputValues | None = None,
    *,
    actions: Mapping[str, StepFunction] | None = None,
    events: EventSink | None = None,
    workspace: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    root: str | Path | None = None,
) -> RunResult:
    """Compile and run the workflow at `path` to the end, without a journal, and return how
    it ended (`result.status`, `result.exit_code`, each step's outputs).

    `actions` stands in for `uses: python:...` steps by name, `events` receives every
    event as it happens, `workspace` is `$WFX_WORKSPACE` (a new temporary directory by
    default) and `environ` the environment the steps start from (default: this process's).
    """
    from wfx.runtime.engine import RunOptions

    options = RunOptions(
        actions=dict(actions or {}),
        events=events,
        environ=environ,
        workspace=Path(workspace) if workspace is not None else None,
    )
    return run_graph(compile_file(path, inputs, root=root).graph, options)


@dataclass(frozen=True)
class OpenedExecutors:
    """The executors a run needs, opened but not started: the run's own (None: local)
    and each one a step's `executor:` names."""

    default: Executor | None
    named: Mapping[str, Executor]

    def all(self) -> list[Executor]:
        """Each executor once, the run's first."""
        found = [self.default] if self.default is not None else []
        return found + [e for e in self.named.values() if e is not self.default]


def open_executors(graph: ExecutionGraph, chosen: str | None) -> OpenedExecutors:
    """Open (without starting) the run's executor `chosen` (`--executor` or
    `WFX_EXECUTOR`; None: the workflow's `defaults`, else this machine) and every
    executor the steps of
    `graph` name; an unknown name, or a backend that is not installed, raises
    DiagnosticsError (exit 2) before anything runs or is recorded."""
    from wfx.runtime.executor import ExecutorError, open_executor
    from wfx.runtime.executors import names_needed

    problems: list[Diagnostic] = []
    opened: dict[str, Executor] = {}
    wanted = [] if chosen is None else [chosen]
    for name in [*wanted, *names_needed(graph, chosen is not None)]:
        if name in opened:
            continue
        try:
            opened[name] = open_executor(name)
        except ExecutorError as exc:
            problems.append(_executor_error(name, exc))
    if problems:
        raise DiagnosticsError(problems)
    default = None if chosen is None else opened[chosen]
    return OpenedExecutors(default, opened)


def _executor_error(name: str, exc: Exception) -> Diagnostic:
    hint = "choose `local`, `dask://HOST:PORT` or `dask:local` (--executor or WFX_EXECUTOR)"
    message = str(exc) if f"`{name}`" in str(exc) else f"executor `{name}`: {exc}"
    return error("run.executor", message, None, hint)


# -- durable runs -----------------------------------------------------------------------------


def definition_of(workflow: Workflow) -> str:
    """The normalised workflow as canonical JSON (what the fingerprint covers)."""
    import json

    return json.dumps(workflow.data, sort_keys=True, separators=(",", ":"), default=str)


def check_run_paths(
    files: Mapping[str, str | Path | None], directories: Mapping[str, str | Path | None]
) -> list[Diagnostic]:
    """Problems with the paths a run's options name, found before anything is recorded:
    `files` (e.g. `--events`) are written, so their directory must exist; `directories`
    (e.g. `--workspace`, `--state-dir`) are made when missing, but never their parents.
    Keys say where each path came from (`--events`, `$WFX_STATE_DIR`...)."""
    problems = []
    for origin, path in files.items():
        found = None if path is None else _file_problem(Path(path))
        if found is not None:
            problems.append(_path_error(origin, path, found))
    for origin, path in directories.items():
        found = None if path is None else _directory_problem(Path(path))
        if found is not None:
            problems.append(_path_error(origin, path, found))
    return problems


def failpoint_problems() -> list[Diagnostic]:
    """What is wrong with the items of `WFX_FAILPOINT` that arm nothing (a test hook:
    wfx.runtime.failpoints), so a run is not started with a misspelt failpoint."""
    from wfx.runtime.failpoints import problems

    hint = (
        "NAME:N crashes wfx; step-fail:STEP[@ATTEMPT] and step-timeout:STEP[@ATTEMPT] fail a step"
    )
    return [error("cli.failpoint", problem, None, hint) for problem in problems()]


def _path_error(origin: str, path: str | Path | None, problem: str) -> Diagnostic:
    hint = "choose another path"
    if "does not exist" in problem:
        hint = "wfx makes only the last directory of a path: create the others first"
    return error("cli.path", f"{origin} {path}: {problem}", None, hint)


def _file_problem(path: Path) -> str | None:
    if path.is_dir():
        return "is a directory, not a file"
    return _parent_problem(path) or _unwritable(path if path.exists() else path.parent)


def _directory_problem(path: Path) -> str | None:
    if path.exists():
        return None if path.is_dir() else "is a file, not a directory"
    if path.is_symlink():
        return "is a broken symbolic link"
    return _parent_problem(path) or _unwritable(path.parent)


def _parent_problem(path: Path) -> str | None:
    parent = path.parent
    if parent.is_dir():
        return None
    if parent.exists() or any(p.exists() and not p.is_dir() for p in parent.parents):
        blocking = next(p for p in (parent, *parent.parents) if p.exists())
        return f"{blocking} is a file, not a directory"
    return f"the directory {parent} does not exist"


def _unwritable(path: Path) -> str | None:
    import os

    wanted = os.W_OK | (os.X_OK if path.is_dir() else 0)
    if os.access(path, wanted):
        return None
    return f"{path} is not writable" if path.is_dir() else "is not writable"


def enter_concurrency_group(
    graph: ExecutionGraph, state_directory: str | Path | None, run_id: str
) -> Gate | None:
    """Put run `run_id` in the queue of its workflow's concurrency group among the runs
    of the state dir `state_directory` (None: the usual one, also without a journal);
    None when the workflow has no `concurrency`. ConcurrencyBusyError (exit 75) with
    `mode: fail` when the group is taken; with `mode: cancel` the runs in it are stopped.
    The run waits for its turn when it starts (`RunOptions.concurrency`)."""
    concurrency = graph.workflow.concurrency
    if concurrency is None:
        return None
    from wfx.compiler import concurrency_group
    from wfx.runtime.concurrency import Gate
    from wfx.runtime.statedir import state_dir

    group = concurrency_group(graph.workflow, graph.inputs)
    if group is None:
        return None
    gate = Gate(
        state_dir(state_directory).path, group, concurrency.mode, _longest_kill_grace(graph)
    )
    gate.enter(run_id)
    return gate


def new_run_id(state: ResumeState | None) -> str:
    """The id of the run about to start: a resumed run keeps its own."""
    from wfx.runtime.engine import new_run_id as fresh_id

    return state.run_id if state is not None else fresh_id()


def prepare_run(
    journal: Journal | None,
    graph: ExecutionGraph,
    file: str | Path,
    state: ResumeState | None,
    workspace: str | None,
    part: Part | None = None,
    run_id: str | None = None,
) -> tuple[str, Path | None, Path | None]:
    """For `wfx run` and `wfx resume`, before any step starts: the run's id (`run_id` when
    given), its workspace and the directory of its `$WFX_OUTPUT` files. A new journaled
    run is recorded here (with what `part` keeps and skips: a redrive or a part of the
    workflow). None leaves the engine's default: a resumed run's own workspace, and
    temporary directories for a run without a journal. A run that keeps earlier results
    goes on in the workspace of the run they come from, where those steps left their
    files."""
    chosen = Path(workspace) if workspace else None
    run_id = run_id or new_run_id(state)
    if chosen is not None:
        _make_directory(chosen, "--workspace")
    elif part is not None and part.workspace is not None:
        chosen = Path(part.workspace)
        _make_directory(chosen, f"the workspace of run {part.workspace_of}")
    if journal is None:
        return run_id, chosen, None
    if state is None:
        chosen = record_new_run(journal, graph, file, run_id, chosen, part)
    return run_id, chosen, journal.scratch_for(run_id)


def _make_directory(path: Path, origin: str) -> None:
    """Make `path` (not its parents) unless it exists; DiagnosticsError when it cannot be."""
    from wfx.runtime.files import make_directory

    try:
        make_directory(path)
    except OSError as exc:
        problem = exc.strerror or str(exc)
        raise DiagnosticsError([_path_error(origin, path, problem)]) from None


def record_new_run(
    journal: Journal,
    graph: ExecutionGraph,
    file: str | Path,
    run_id: str,
    workspace: str | Path | None = None,
    part: Part | None = None,
) -> Path:
    """Create the journal record of a new run of `graph` (before any step starts); return
    its workspace: `workspace` when given, else a directory of its own beside the journal.
    The steps `part` keeps and skips are recorded with it."""
    from wfx.fingerprint import fingerprint

    chosen = Path(workspace).resolve() if workspace else journal.workspace_for(run_id)
    journal.create_run(
        run_id,
        workflow=graph.workflow.name or Path(file).name,
        file=str(Path(file).resolve()),
        fingerprint=fingerprint(graph.workflow, graph.inputs),
        definition=definition_of(graph.workflow),
        inputs=graph.inputs,
        workspace=str(chosen),
        redrives=None if part is None else part.selection.redrives,
        kept=[] if part is None else list(part.kept.values()),
        not_selected=[] if part is None else sorted(part.selection.not_selected),
    )
    return chosen


def lost_workspace(state: ResumeState) -> str | None:
    """A warning when a resumed run's workspace is gone (steps that finished before the
    crash left their files there; it is made again, empty), else None."""
    if state.workspace is None or Path(state.workspace).is_dir():
        return None
    return (
        f"the workspace of run `{state.run_id}`, {state.workspace}, is gone: it is made"
        " again, empty, and files the finished steps left there are missing"
    )


def check_plan_binding(plan_file: str | Path, graph: ExecutionGraph) -> None:
    """Refuse (DiagnosticsError) when `graph` no longer matches the reviewed plan's fingerprint."""
    import json

    from wfx.fingerprint import fingerprint

    try:
        reviewed = json.loads(Path(plan_file).read_text(encoding="utf-8"))
        expected = reviewed["fingerprint"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise DiagnosticsError(
            [error("plan.binding", f"cannot read the plan {plan_file}: {exc}", None)]
        ) from None
    actual = fingerprint(graph.workflow, graph.inputs)
    if actual == expected:
        return
    what = _what_changed(reviewed, graph)
    raise DiagnosticsError(
        [
            error(
                "plan.mismatch",
                f"the workflow or its inputs changed since {plan_file} was made: {what}",
                None,
                "review a new plan (`wfx plan --format json`) and run with it",
            )
        ]
    )


def _what_changed(reviewed: Mapping[str, Any], graph: ExecutionGraph) -> str:
    inputs_now = {k: v for k, v in graph.inputs.items()}
    if reviewed.get("inputs") != _json_roundtrip(inputs_now):
        return f"inputs were {reviewed.get('inputs')}, now {inputs_now}"
    return "the workflow file differs (or a file it calls)"


def _json_roundtrip(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


def resume_target(
    journal: Journal,
    run_id: str,
    force: bool,
    describe: DescribeChanges,
    *,
    root: str | Path | None = None,
) -> tuple[RunRecord, ExecutionGraph, str | None]:
    """For `wfx resume`: the run's record, its recompiled graph (sub-workflows confined to
    `root`), and what changed as `describe` words it (None when nothing did). Refuses a
    changed workflow unless `force`."""
    from wfx.compiler import compile_workflow
    from wfx.fingerprint import fingerprint

    record = journal.run(run_id)
    if record is None:
        raise DiagnosticsError([no_such_run(journal, run_id, "resume.unknown")])
    compilation = compile_file(record.file, record.inputs, root=root)
    graph = compilation.graph
    if fingerprint(graph.workflow, graph.inputs) == record.fingerprint:
        return record, graph, None
    changes = _definition_changes(record, graph, compile_workflow, describe)
    if not force:
        raise DiagnosticsError(
            [
                error(
                    "resume.changed",
                    f"{record.file} changed since run `{record.id}` started: {changes}",
                    None,
                    "resume with --force to run the new definition (finished steps are kept"
                    " by id), or start a new run",
                )
            ]
        )
    return record, graph, changes


def claim_run(
    journal: Journal,
    run_id: str,
    force: bool,
    describe: DescribeChanges,
    *,
    root: str | Path | None = None,
) -> tuple[ExecutionGraph, ResumeState, str | None, list[Leftover]]:
    """Take over run `run_id` for resuming: its recompiled graph, its ResumeState, what
    changed in the workflow (None when nothing did), and the processes the dead run left
    running, which are stopped here (TERM, the steps' longest kill grace, KILL), so that no
    step runs twice at the same time. Journal errors pass through."""
    from wfx.runtime.process import stop_leftovers

    record, graph, changes = resume_target(journal, run_id, force, describe, root=root)
    journal.claim(record.id)
    stopped = stop_leftovers(record.id, _longest_kill_grace(graph))
    return graph, journal.resume_state(record.id), changes, stopped


def _longest_kill_grace(graph: ExecutionGraph) -> float:
    graces = [float(n.settings.kill_grace.value) for n in graph.steps() if n.settings]
    return max(graces, default=0.0)


def leftovers_notice(stopped: Sequence[Leftover]) -> str | None:
    """What the CLI says about the processes a dead run left and the resume stopped."""
    if not stopped:
        return None
    shown = [f"{p.pid} ({_cut(p.command, 60)})" for p in stopped[:5]]
    more = f" and {len(stopped) - 5} more" if len(stopped) > 5 else ""
    count = f"{len(stopped)} process{'' if len(stopped) == 1 else 'es'}"
    return f"stopped {count} the dead run left running: {', '.join(shown)}{more}"


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _definition_changes(
    record: RunRecord,
    graph: ExecutionGraph,
    compile_workflow: Callable[..., Compilation],
    describe: DescribeChanges,
) -> str:
    if record.definition == definition_of(graph.workflow):
        return "a sub-workflow it calls changed"
    changes = _plan_changes(record, graph, compile_workflow)
    if changes is None:
        return "the earlier definition no longer compiles"
    return describe(changes) or "formatting or settings outside the plan"


def _plan_changes(
    record: RunRecord, graph: ExecutionGraph, compile_workflow: Callable[..., Compilation]
) -> list[Change] | None:
    """The plan changes from run `record`'s definition and inputs to `graph`; None when the
    earlier definition no longer compiles."""
    from wfx import model, source
    from wfx.plan import diff_plans, make_plan

    try:
        document = source.loads(record.definition, f"{record.file} (run {record.id})")
        before = make_plan(compile_workflow(model.build(document), record.inputs).graph)
    except DiagnosticsError:
        return None
    return diff_plans(before, make_plan(graph))


# -- redrives and parts of a workflow ---------------------------------------------------------


@dataclass(frozen=True)
class Part:
    """What a new run does with each main step (a redrive, or a part of the workflow): its
    Selection, the earlier results it keeps, the workspace those steps left their files in,
    and what changed in the workflow since the run it redrives (when `--force` let it)."""

    selection: Selection
    kept: Mapping[StepId, StepRecord]
    workspace: str | None = None
    workspace_of: str | None = None
    """The run whose workspace that is."""
    changes: str | None = None


def latest_run(journal: Journal, file: str | Path) -> str:
    """The id of the newest run of the workflow `file` (`wfx run FILE --retry-failed`);
    DiagnosticsError when there is none."""
    runs = journal.runs(str(Path(file).resolve()))
    if not runs:
        raise DiagnosticsError(
            [
                error(
                    "redrive.none",
                    f"no run of {file} in {journal.path} to retry",
                    None,
                    "run it first (`wfx run FILE`), or name the run: `wfx retry RUN_ID`",
                )
            ]
        )
    return runs[0].id


def redrive_target(
    journal: Journal,
    run_id: str,
    force: bool,
    describe: DescribeChanges,
    *,
    file: str | Path | None = None,
    inputs: InputValues | None = None,
    input_spans: Mapping[str, Span] | None = None,
    env_files: Sequence[str | Path] = (),
    root: str | Path | None = None,
) -> tuple[ExecutionGraph, Part]:
    """For `wfx retry RUN_ID` and `wfx plan --retry RUN_ID`: the graph of a redrive of run
    `run_id` (its file and inputs, unless `file` and `inputs` are given; `env_files` and
    `root` as for :func:`compile_file`) and what it does
    with each step: the steps that succeeded there are kept, every other one runs again,
    with the steps that need it. Refuses (DiagnosticsError) an unknown run, a run that
    succeeded, and a workflow changed since the run unless `force` (then the changed steps
    run again too); RunLockedError for a run a live process still runs."""
    from wfx.compiler import compile_workflow
    from wfx.fingerprint import fingerprint
    from wfx.runtime import redrive
    from wfx.selection import redrive as select_redrive

    record = _redrivable(journal, run_id)
    path = record.file if file is None else file
    given = record.inputs if inputs is None else inputs
    graph = compile_file(path, given, input_spans, env_files=env_files, root=root).graph
    changed: set[StepId] = set()
    words = None
    if fingerprint(graph.workflow, graph.inputs) != record.fingerprint:
        changes = _plan_changes(record, graph, compile_workflow)
        words = (
            "the earlier definition no longer compiles"
            if changes is None
            else describe(changes) or "formatting or settings outside the plan"
        )
        if not force:
            raise DiagnosticsError([_changed_error(record, words)])
        changed = {c.step for c in changes or [] if c.step is not None}
    again = redrive.why_again(journal, record.id)
    again.update({s: f"changed since run {record.id}" for s in changed})
    kept = {s: r for s, r in redrive.succeeded(journal, record.id).items() if s not in changed}
    chosen = select_redrive(
        graph, record.id, redrive.sources(kept), again, redrive.not_selected(journal, record.id)
    )
    kept = {s: kept[s] for s in chosen.kept}
    return graph, Part(chosen, kept, record.workspace, record.id, words)


def _unread_journal(problem: Diagnostic) -> Diagnostic:
    if problem.code != "select.missing":
        return problem
    message = problem.message.split(": no run in the journal", 1)[0]
    return replace(
        problem,
        message=f"{message}: --no-journal reads no journal",
        hint="drop --no-journal to take them from the journal, or start earlier with --from",
    )


def lost_kept_workspace(part: Part) -> str | None:
    """A warning when the workspace a run that keeps earlier results goes on in is gone
    (it is made again, empty), else None."""
    if part.workspace is None or not part.kept or Path(part.workspace).is_dir():
        return None
    return (
        f"the workspace of run `{part.workspace_of}`, {part.workspace}, is gone: it is made"
        " again, empty, and files the kept steps left there are missing"
    )


def stop_redriven_leftovers(journal: Journal, run_id: str, graph: ExecutionGraph) -> list[Leftover]:
    """Before a redrive of a run that never ended (its wfx was killed) starts: stop the step
    processes that run left running (TERM, the steps' longest kill grace, KILL), so the step
    it redoes never runs twice at the same time; what was stopped."""
    from wfx.runtime.process import stop_leftovers

    record = journal.run(run_id)
    if record is None or record.finished is not None:
        return []
    return stop_leftovers(record.id, _longest_kill_grace(graph))


def no_such_run(journal: Journal, run_id: str, code: str = "redrive.unknown") -> Diagnostic:
    """Why `run_id` names no run of `journal` (`Journal.run` found none): no run starts
    with it, or several do (listed). The one wording `retry`, `resume`, `show` and `logs`
    give."""
    wanted = run_id.lower()
    matches = [r.id for r in journal.runs() if wanted and r.id.lower().startswith(wanted)]
    if len(matches) < 2:
        hint = "`wfx runs` lists the runs"
        return error(code, f"no run `{run_id}` in {journal.path}", None, hint)
    listed = ", ".join(matches[:5]) + (f" and {len(matches) - 5} more" if len(matches) > 5 else "")
    return error(
        "redrive.ambiguous",
        f"run id `{run_id}` is ambiguous: it matches {len(matches)} runs ({listed})",
        None,
        "give more characters of the id",
    )


def _redrivable(journal: Journal, run_id: str) -> RunRecord:
    import os

    from wfx.runtime.journal import RunLockedError, owner_alive

    record = journal.run(run_id)
    if record is None:
        raise DiagnosticsError([no_such_run(journal, run_id)])
    if record.status == "success":
        raise DiagnosticsError(
            [
                error(
                    "redrive.succeeded",
                    f"run `{record.id}` succeeded: there is nothing to retry",
                    None,
                    "start a new run, or run part of it again with --only/--from",
                )
            ]
        )
    alive = owner_alive(record.owner_pid, record.owner_start)
    if record.finished is None and alive and record.owner_pid != os.getpid():
        raise RunLockedError(
            f"run `{record.id}` is still running (process {record.owner_pid}); wait for it,"
            " or stop it first"
        )
    return record


def _changed_error(record: RunRecord, words: str) -> Diagnostic:
    return error(
        "redrive.changed",
        f"{record.file} changed since run `{record.id}`: {words}",
        None,
        "retry with --force to run the new definition (the changed steps run again too),"
        " or start a new run",
    )


def choose_part(
    journal: Journal | None,
    graph: ExecutionGraph,
    file: str | Path,
    *,
    only: Sequence[str] = (),
    from_: str | None = None,
    skip: Sequence[str] = (),
    no_journal: bool = False,
) -> Part:
    """For `--only`, `--from` and `--skip` (on `wfx run` and `wfx plan`): what a run of
    that part of `graph` does with each step. Steps the chosen ones need but that do not
    run take their result from the newest run of `file` with the same inputs where they
    succeeded; DiagnosticsError for unknown ids and for earlier results that do not exist
    (`no_journal`: because `--no-journal` reads no journal, which the error says)."""
    from wfx.runtime import redrive
    from wfx.selection import part

    earlier: dict[StepId, StepRecord] = {}
    if from_ and journal is not None:
        earlier = dict(redrive.latest_results(journal, str(Path(file).resolve()), graph.inputs))
    try:
        chosen = part(graph, only=only, from_=from_, skip=skip, earlier=redrive.sources(earlier))
    except DiagnosticsError as exc:
        if not no_journal:
            raise
        raise DiagnosticsError([_unread_journal(d) for d in exc.diagnostics]) from None
    kept = {s: earlier[s] for s in chosen.kept}
    workspace, source = None, None
    if journal is not None and kept:
        newest = redrive.newest_run(journal, {r.kept_from or "" for r in kept.values()})
        if newest is not None:
            workspace, source = newest.workspace, newest.id
    return Part(chosen, kept, workspace, source)
