"""The public Python API: load, validate, compile, plan, run and evaluate. The CLI calls
only this (and picks the renderers itself).

Every function either returns a result or raises :class:`DiagnosticsError` with
every problem found; any other exception escaping from here is a bug in wfx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
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
    from wfx.compiler import Compilation
    from wfx.graph import ExecutionGraph
    from wfx.model import Workflow
    from wfx.plan import Change, Plan
    from wfx.runtime.engine import RunOptions, RunResult
    from wfx.runtime.events import EventSink
    from wfx.runtime.executor import Executor
    from wfx.runtime.journal import Journal, ResumeState, RunRecord
    from wfx.runtime.process import Leftover
    from wfx.source import SourceDocument

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
    from wfx import schema, source

    document = source.load(path)
    problems = schema.validate(document)
    if problems:
        raise DiagnosticsError(sorted_diagnostics(problems))
    return document


def load(path: str | Path, *, root: str | Path | None = None) -> Workflow:
    """Read, schema-check and type a workflow file and the sub-workflows it calls (confined
    to `root`, by default the file's directory); return the model's Workflow."""
    from wfx import model

    workflow, problems = _included(model.build(load_document(path)), root)
    if problems:
        raise DiagnosticsError(sorted_diagnostics(problems))
    return workflow


def _included(workflow: Workflow, root: str | Path | None) -> tuple[Workflow, list[Diagnostic]]:
    """`workflow` with its sub-workflows loaded (wfx.include), and the problems found."""
    from wfx.include import has_calls, include

    if not has_calls(workflow):
        return workflow, []
    inclusion = include(workflow, root)
    return inclusion.workflow, inclusion.problems


def compile_file(
    path: str | Path,
    inputs: InputValues | None = None,
    input_spans: Mapping[str, Span] | None = None,
    *,
    require_inputs: bool = True,
    root: str | Path | None = None,
) -> Compilation:
    """Load and compile a workflow with inputs; return a Compilation (graph + warnings).

    Model problems (bad expressions), problems of the sub-workflows it calls (confined to
    `root`, by default the file's directory) and compiler problems are reported together.
    """
    from wfx import model
    from wfx.compiler import compile_workflow

    workflow, problems = model.build_with_problems(load_document(path))
    workflow, included = _included(workflow, root)
    problems += included
    try:
        compilation = compile_workflow(workflow, inputs, input_spans, require_inputs=require_inputs)
    except DiagnosticsError as exc:
        raise DiagnosticsError(sorted_diagnostics([*problems, *exc.diagnostics])) from None
    if problems:
        raise DiagnosticsError(sorted_diagnostics(problems))
    return compilation


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
        if named and named not in report.sources:
            report.sources[named] = _source_text(named)  # a file the include stage read
    report.diagnostics[:] = sorted_diagnostics(report.diagnostics)
    return report


def _source_text(path: str | Path) -> str:
    from wfx.source import MAX_BYTES

    try:
        with open(path, "rb") as handle:
            return handle.read(MAX_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def lint_files(paths: Sequence[str | Path]) -> tuple[list[Diagnostic], dict[str, str]]:
    """Lint findings of valid workflow files (DiagnosticsError if one is invalid)."""
    from wfx.lint import lint

    findings: list[Diagnostic] = []
    sources: dict[str, str] = {}
    for path in paths:
        findings.extend(lint(compile_file(path, require_inputs=False).graph.workflow))
        sources[str(path)] = _source_text(path)
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
    root: str | Path | None = None,
) -> tuple[ExecutionGraph, Plan]:
    """Compile and plan a workflow without side effects; return (graph, plan)."""
    from wfx.plan import make_plan

    compilation = compile_file(path, inputs, input_spans, root=root)
    return compilation.graph, make_plan(compilation.graph, compilation.warnings)


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
        workflow, included = _included(workflow, None)
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


def prepare_run(
    journal: Journal | None,
    graph: ExecutionGraph,
    file: str | Path,
    state: ResumeState | None,
    workspace: str | None,
) -> tuple[str, Path | None, Path | None]:
    """For `wfx run` and `wfx resume`, before any step starts: the run's id, its workspace
    and the directory of its `$WFX_OUTPUT` files. A new journaled run is recorded here.
    None leaves the engine's default: a resumed run's own workspace, and temporary
    directories for a run without a journal."""
    from wfx.runtime.engine import new_run_id

    chosen = Path(workspace) if workspace else None
    run_id = state.run_id if state is not None else new_run_id()
    if chosen is not None:
        _make_directory(chosen, "--workspace")
    if journal is None:
        return run_id, chosen, None
    if state is None:
        chosen = record_new_run(journal, graph, file, run_id, chosen)
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
) -> Path:
    """Create the journal record of a new run of `graph` (before any step starts); return
    its workspace: `workspace` when given, else a directory of its own beside the journal."""
    from wfx.plan import fingerprint

    chosen = Path(workspace).resolve() if workspace else journal.workspace_for(run_id)
    journal.create_run(
        run_id,
        workflow=graph.workflow.name or Path(file).name,
        file=str(Path(file).resolve()),
        fingerprint=fingerprint(graph.workflow, graph.inputs),
        definition=definition_of(graph.workflow),
        inputs=graph.inputs,
        workspace=str(chosen),
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

    from wfx.plan import fingerprint

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
    from wfx.plan import fingerprint

    record = journal.run(run_id)
    if record is None:
        raise DiagnosticsError(
            [error("resume.unknown", f"no run `{run_id}` in {journal.path}", None)]
        )
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
    from wfx import model, source
    from wfx.plan import diff_plans, make_plan

    if record.definition == definition_of(graph.workflow):
        return "a sub-workflow it calls changed"
    try:
        document = source.loads(record.definition, f"{record.file} (run {record.id})")
        before = make_plan(compile_workflow(model.build(document), record.inputs).graph)
    except DiagnosticsError:
        return "the earlier definition no longer compiles"
    changes = diff_plans(before, make_plan(graph))
    return describe(changes) or "formatting or settings outside the plan"
