"""The `wfx` command line: parse arguments, call the API, render, map outcomes to exit codes.

No workflow logic lives here. Heavy modules are imported inside each command so
that `wfx --version` and `wfx validate` start quickly.
"""

from __future__ import annotations

import atexit
import gc
import json
import math
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from wfx import __version__
from wfx.exitcodes import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_JOURNAL_CORRUPT,
    EXIT_OK,
    EXIT_RUN_LOCKED,
)
from wfx.render.characters import visible
from wfx.runtime import classcache

# before the first dataclass of wfx is made (this module's own): see wfx.runtime.classcache
classcache.install(warm=("wfx.render.plan_text", "wfx.render.plan_diff", "wfx.explain"))

F = TypeVar("F", bound=Callable[..., Any])

FORMATS = ("text", "json", "github", "sarif")
#: formats printed even when there is nothing to report (an empty list, an empty log)
ALWAYS_PRINTED = ("json", "sarif")


class _LazyGroup(click.Group):
    """A command group whose rarely used commands are imported only when invoked."""

    lazy: dict[str, str] = {  # noqa: RUF012 - a fixed table
        "runs": "wfx.cli_history:runs",
        "show": "wfx.cli_history:show",
        "logs": "wfx.cli_history:logs",
        "retry": "wfx.cli_redrive:retry",
        "export": "wfx.cli_export:export",
        "lsp": "wfx.cli_lsp:lsp",
        "server": "wfx.cli_server:server_group",
    }

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command name, the lazy ones included."""
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command, importing its module first when it is a lazy one."""
        if cmd_name in self.lazy:
            import importlib

            module_name, attribute = self.lazy[cmd_name].split(":")
            command: click.Command = getattr(importlib.import_module(module_name), attribute)
            return command
        return super().get_command(ctx, cmd_name)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="wfx")
def cli() -> None:
    """wfx: declarative workflows you can plan, review and run."""


def input_options(command: F) -> F:
    """The `-i name=value` and `--inputs FILE` options shared by validate, plan and run."""
    command = click.option(
        "--inputs",
        "inputs_file",
        type=click.Path(dir_okay=False),
        help="A JSON or YAML file mapping input names to values.",
    )(command)
    return click.option(
        "-i",
        "--input",
        "assignments",
        multiple=True,
        metavar="NAME=VALUE",
        help="Set an input (repeatable).",
    )(command)


def env_file_option(command: F) -> F:
    """`--env-file PATH` (repeatable), shared by plan and run."""
    return click.option(
        "--env-file",
        "env_files",
        multiple=True,
        type=click.Path(dir_okay=False),
        metavar="PATH",
        help="A dotenv file whose variables every step gets, below the workflow's envFile"
        " and env (repeatable, later files win); also read for `secrets`.",
    )(command)


def root_option(command: F) -> F:
    """`--root DIR`: the directory sub-workflows (`uses: ./x.yaml`) must stay inside."""
    return click.option(
        "--root",
        type=click.Path(file_okay=False, exists=True),
        help="Project root: sub-workflow files must be inside it (default: FILE's directory).",
    )(command)


def format_option(choices: tuple[str, ...], help_text: str) -> Callable[[F], F]:
    """The `--format` option, with the formats a command offers."""
    return click.option(
        "--format",
        "output_format",
        type=click.Choice(choices),
        default="text",
        show_default=True,
        help=help_text,
    )


DIAGNOSTIC_FORMATS_HELP = (
    "text for people, json for tools, github for CI annotations, sarif for code scanning."
)


def _names_steps(_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """Refuse a `--only`/`--from`/`--skip` value that names no step: `--only "$STEPS"` with
    STEPS empty must not run the whole workflow."""
    values = value if isinstance(value, tuple) else () if value is None else (value,)
    for given in values:
        if not any(part.strip() for part in given.split(",")):
            raise click.BadParameter(
                f"{given!r} names no step (it would mean every step); name at least one",
                param=param,
            )
    return value


def selection_options(command: F) -> F:
    """`--only`, `--from` and `--skip`: run (or plan) part of a workflow."""
    decorators = [
        click.option(
            "--only",
            multiple=True,
            metavar="STEP[,STEP...]",
            callback=_names_steps,
            help="Only these steps and every step they need (repeatable).",
        ),
        click.option(
            "--from",
            "from_",
            metavar="STEP",
            callback=_names_steps,
            help="This step and every step after it; earlier results come from the journal.",
        ),
        click.option(
            "--skip",
            multiple=True,
            metavar="STEP[,STEP...]",
            callback=_names_steps,
            help="Not these steps, nor the steps that need them (repeatable).",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


@cli.command()
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@input_options
@root_option
@format_option(FORMATS, DIAGNOSTIC_FORMATS_HELP)
def validate(
    files: tuple[str, ...],
    assignments: tuple[str, ...],
    inputs_file: str | None,
    output_format: str,
    root: str | None,
) -> None:
    """Check workflow FILES without running anything; exit 2 if any has an error."""
    from wfx import api
    from wfx.diagnostics import DiagnosticsError

    try:
        given, spans = _gather_inputs(assignments, inputs_file)
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, {}, output_format)
    report = api.check(list(files), given or None, spans, root=root)
    if report.diagnostics or output_format in ALWAYS_PRINTED:
        stream_is_err = output_format == "text"
        text = _diagnostics_text(output_format, report.diagnostics, report.sources)
        click.echo(text, err=stream_is_err)
    if not report.ok:
        sys.exit(EXIT_INVALID)
    if output_format == "text":
        for name in files:
            click.echo(f"ok: {name}")


def _gather_inputs(
    assignments: tuple[str, ...], inputs_file: str | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    from wfx import api

    given: dict[str, Any] = {}
    spans: dict[str, Any] = {}
    if inputs_file:
        given, spans = api.load_inputs_file(inputs_file)
    given.update(api.parse_input_assignments(assignments))
    return given, spans


def _diagnostics_text(output_format: str, diagnostics: Any, sources: dict[str, str]) -> str:
    """Diagnostics in the format asked for (a SARIF log names this wfx's version)."""
    if output_format == "sarif":
        from wfx.render.sarif import as_sarif

        return as_sarif(diagnostics, __version__)
    from wfx.render.diagnostics import FORMATTERS

    return FORMATTERS[output_format](diagnostics, sources)


def _fail_with(diagnostics: Any, sources: dict[str, str], output_format: str) -> NoReturn:
    text = _diagnostics_text(output_format, diagnostics, sources)
    click.echo(text, err=output_format == "text")
    sys.exit(EXIT_INVALID)


@cli.command(name="lint")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@format_option(FORMATS, DIAGNOSTIC_FORMATS_HELP)
def lint_command(files: tuple[str, ...], output_format: str) -> None:
    """Find unsafe uses of `${{ }}` in valid FILES; exit 1 when there are findings."""
    from wfx import api
    from wfx.diagnostics import DiagnosticsError

    try:
        findings, sources = api.lint_files(list(files))
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, api.check(list(files)).sources, output_format)
    if findings or output_format in ALWAYS_PRINTED:
        text = _diagnostics_text(output_format, findings, sources)
        click.echo(text, err=output_format == "text")
    sys.exit(EXIT_FAILED if findings else EXIT_OK)


PLAN_FORMATS = ("text", "markdown", "json", "mermaid", "dot")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False), required=False)
@input_options
@env_file_option
@root_option
@format_option(PLAN_FORMATS, "How to print the plan.")
@click.option(
    "--diff",
    "base",
    metavar="BASE_FILE|git:REV",
    help="Show what changed against another file, or this file at a git revision.",
)
@click.option(
    "-v", "--verbose", is_flag=True, help="Text: also each step's env, shell and provenance."
)
@click.option(
    "--retry",
    "retry_run",
    metavar="RUN_ID",
    help="Plan a redrive of RUN_ID: which steps are kept, which run again.",
)
@selection_options
@click.option(
    "--state-dir",
    type=click.Path(file_okay=False),
    help="With --retry or --from: where the journal lives (default: $WFX_STATE_DIR, or .wfx/).",
)
@click.option(
    "--fail",
    "fails",
    multiple=True,
    metavar="STEP[@N]",
    help="What if STEP fails (at attempt N; default every attempt)? Repeatable.",
)
@click.option(
    "--timeout",
    "timeouts",
    multiple=True,
    metavar="STEP[@N]",
    help="What if STEP times out (at attempt N; default every attempt)? Repeatable.",
)
def plan(
    file: str | None,
    assignments: tuple[str, ...],
    inputs_file: str | None,
    output_format: str,
    base: str | None,
    verbose: bool,
    env_files: tuple[str, ...],
    fails: tuple[str, ...],
    timeouts: tuple[str, ...],
    root: str | None,
    **chosen: Any,
) -> None:
    """Show what FILE would do, resolved as far as possible, without running anything.
    With --retry RUN_ID, FILE may be left out: the run's own file is planned."""
    sys.dont_write_bytecode = True
    from wfx import api
    from wfx.diagnostics import DiagnosticsError

    if file is None and not chosen["retry_run"]:
        raise click.UsageError("Missing argument 'FILE' (it may be left out only with --retry).")
    part = None
    try:
        _check_plan_options(output_format, base)
        given, spans = _gather_inputs(assignments, inputs_file)
        if chosen["retry_run"] or chosen["only"] or chosen["from_"] or chosen["skip"]:
            from wfx.cli_redrive import plan_part

            graph, the_plan, part = plan_part(
                file, given, spans, output_format, base, env_files=env_files, **chosen
            )
        else:
            assert file is not None  # checked above: only --retry may leave FILE out
            graph, the_plan = api.plan_file(
                file, given or None, spans, env_files=env_files, cache=_cache_dir(), root=root
            )
        base_plan = api.plan_base(base, file, given or None) if base and file else None
        if fails or timeouts:
            _check_whatif_options(output_format, base)
            result = api.what_if(graph, fails, timeouts)
    except DiagnosticsError as exc:
        sources = api.check([file], root=root).sources if file is not None else {}
        _fail_with(exc.diagnostics, sources, "text")
    if fails or timeouts:
        from wfx.render import whatif

        renderers = {"text": whatif.render_text, "markdown": whatif.render_markdown}
        click.echo(renderers.get(output_format, whatif.render_json)(result))
        return
    if base is not None:
        _print_diff(base_plan, the_plan, output_format)
        return
    _print_plan(graph, the_plan, output_format, verbose, part)


def _cache_dir(explicit: str | None = None) -> Path:
    """The state directory whose model cache spares reading an unchanged workflow again."""
    from wfx.runtime.statedir import state_dir

    return state_dir(explicit).path


def _check_plan_options(output_format: str, base: str | None) -> None:
    """Refuse option combinations `wfx plan` cannot honour (before anything is compiled)."""
    if base is None:
        return
    from wfx.diagnostics import DiagnosticsError, error
    from wfx.render.plan_diff import DIFF_FORMATS

    if output_format not in DIFF_FORMATS:
        raise DiagnosticsError(
            [
                error(
                    "cli.diff-format",
                    f"--diff cannot be shown as {output_format}",
                    None,
                    "use --format " + ", ".join(DIFF_FORMATS[:-1]) + f" or {DIFF_FORMATS[-1]}"
                    " with --diff, or drop --diff to draw the graph",
                )
            ]
        )


def _check_whatif_options(output_format: str, base: str | None) -> None:
    """A what-if is shown as text, markdown or json, and is no diff."""
    from wfx.diagnostics import DiagnosticsError, error

    if base is not None or output_format not in ("text", "markdown", "json"):
        shown = "--diff" if base is not None else f"--format {output_format}"
        raise DiagnosticsError(
            [
                error(
                    "cli.what-if",
                    f"--fail/--timeout cannot be combined with {shown}",
                    None,
                    "a what-if is shown as --format text, markdown or json",
                )
            ]
        )


def _print_plan(
    graph: Any, the_plan: Any, output_format: str, verbose: bool = False, part: Any = None
) -> None:
    if part is not None:
        from wfx.cli_redrive import print_plan_part

        print_plan_part(graph, the_plan, part, output_format, verbose)
        return
    if output_format == "text":
        print_plan_text(the_plan, verbose)
        return
    from wfx.render import plan_graph, plan_json, plan_markdown

    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: plan_json.render_json(the_plan),
        "markdown": lambda: plan_markdown.render_markdown(the_plan),
        "mermaid": lambda: plan_graph.render_mermaid(graph, the_plan),
        "dot": lambda: plan_graph.render_dot(graph, the_plan),
    }
    click.echo(renderers[output_format]().rstrip("\n"))


def print_plan_text(the_plan: Any, verbose: bool = False) -> None:
    """The text plan on stdout: off a terminal, laid out without importing rich when that
    gives the very characters rich would print (wfx.render.plan_plain), else by rich."""
    from wfx.render.console import plain_width
    from wfx.render.plan_document import plan_document

    blocks = plan_document(the_plan, verbose=verbose)
    width = plain_width()
    if width is not None:
        from wfx.render.plan_plain import render_plain

        shown = render_plain(blocks, max(width, 120))
        if shown is not None:
            sys.stdout.write(shown)
            sys.stdout.flush()
            return
    from rich.console import Console

    from wfx.render.plan_text import render_blocks

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    console.print(render_blocks(blocks))


def _print_diff(base_plan: Any, the_plan: Any, output_format: str) -> None:
    from wfx.plan import Plan, diff_plans
    from wfx.render import plan_diff

    empty = Plan(1, "", None, "", {}, {}, [], [], {}, [], [], 0.0, None, None, ())
    changes = diff_plans(base_plan or empty, the_plan)
    renderers: dict[str, Callable[[], str]] = {
        "json": lambda: plan_diff.diff_json(changes),
        "markdown": lambda: plan_diff.diff_markdown(changes),
        "text": lambda: plan_diff.diff_text(changes),
    }
    click.echo(renderers[output_format]().rstrip("\n"))


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False))
@click.argument("step")
@input_options
@root_option
def explain(
    file: str, step: str, assignments: tuple[str, ...], inputs_file: str | None, root: str | None
) -> None:
    """Say why STEP stands where it does, where its settings come from, what failing does."""
    sys.dont_write_bytecode = True
    from wfx import api
    from wfx.diagnostics import DiagnosticsError, closest, error
    from wfx.explain import explain as explain_step
    from wfx.explain import explain_group
    from wfx.render.explain_text import render_explanation, render_group_explanation

    try:
        given, spans = _gather_inputs(assignments, inputs_file)
        graph, the_plan = api.plan_file(file, given or None, spans, root=root)
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, api.check([file], root=root).sources, "text")
    if step in graph.ids and step not in the_plan.steps:
        click.echo(render_group_explanation(explain_group(graph, the_plan, step)).rstrip("\n"))
        return
    if step not in the_plan.steps:
        close = closest(step, graph.ids)
        hint = f"did you mean `{close}`?" if close else "`wfx plan FILE` lists the step ids"
        _fail_with([error("cli.step", f"no step `{step}` in {file}", None, hint)], {}, "text")
    click.echo(render_explanation(explain_step(graph, the_plan, step)).rstrip("\n"))


@dataclass(frozen=True)
class _Presentation:
    """How a run is shown and recorded: the CLI options shared by `run` and `resume`."""

    events_file: str | None
    summary_file: str | None
    workspace: str | None
    quiet: bool
    verbose: bool
    journal: bool
    state_dir: str | None
    executor: str | None = None
    output_format: str = "text"
    """`text`: the run view and summary on stdout; `json`: those on stderr and one JSON
    object (status, outputs) on stdout."""


def presentation_options(command: F) -> F:
    """Options shared by `wfx run` and `wfx resume`."""
    decorators = [
        click.option(
            "--events",
            "events_file",
            type=click.Path(dir_okay=False),
            help="Write every event as CloudEvents JSON lines to this file.",
        ),
        click.option(
            "--summary-md",
            "summary_file",
            type=click.Path(dir_okay=False),
            help="Append a Markdown summary (e.g. $GITHUB_STEP_SUMMARY).",
        ),
        click.option(
            "--workspace",
            type=click.Path(file_okay=False),
            help="The run's shared directory ($WFX_WORKSPACE); default: .wfx/workspaces/RUN_ID"
            " (resumed runs keep theirs), or a temporary one with --no-journal.",
        ),
        click.option("-q", "--quiet", is_flag=True, help="Only failures and the result."),
        click.option("-v", "--verbose", is_flag=True, help="Also inputs and every detail."),
        click.option(
            "--no-journal", "no_journal", is_flag=True, help="Keep no state: cannot be resumed."
        ),
        click.option(
            "--state-dir",
            type=click.Path(file_okay=False),
            help="Where the journal lives (default: $WFX_STATE_DIR, or .wfx/ here).",
        ),
        click.option(
            "--executor",
            envvar="WFX_EXECUTOR",
            metavar="NAME",
            help="Where steps run unless they name an executor: local (default),"
            " dask://HOST:PORT or dask:local (default: $WFX_EXECUTOR).",
        ),
        click.option(
            "--format",
            "--output",
            "output_format",
            type=click.Choice(("text", "json")),
            default="text",
            show_default=True,
            help="text: the workflow outputs after the summary; json: one JSON object with"
            " the status and outputs on stdout (the run view goes to stderr).",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


def _presentation(**values: Any) -> _Presentation:
    return _Presentation(
        events_file=values["events_file"],
        summary_file=values["summary_file"],
        workspace=values["workspace"],
        quiet=values["quiet"],
        verbose=values["verbose"],
        journal=not values["no_journal"],
        state_dir=values["state_dir"],
        executor=values["executor"],
        output_format=values["output_format"],
    )


@cli.command(name="run")
@click.argument("file", type=click.Path(dir_okay=False))
@input_options
@root_option
@presentation_options
@click.option(
    "--resume",
    is_flag=True,
    help="Resume the latest unfinished run of FILE, or start a new one if there is none.",
)
@click.option(
    "--plan",
    "plan_file",
    type=click.Path(dir_okay=False),
    help="Run only if FILE and the inputs still match this reviewed `wfx plan --format json`.",
)
@click.option(
    "--retry-failed",
    is_flag=True,
    help="Redrive the latest run of FILE: keep what succeeded, run the rest again.",
)
@selection_options
@click.option(
    "--force", is_flag=True, help="With --resume or --retry-failed: accept a changed workflow."
)
@env_file_option
def run_command(
    file: str,
    assignments: tuple[str, ...],
    inputs_file: str | None,
    resume: bool,
    plan_file: str | None,
    force: bool,
    retry_failed: bool,
    only: tuple[str, ...],
    from_: str | None,
    skip: tuple[str, ...],
    env_files: tuple[str, ...],
    root: str | None,
    **shown: Any,
) -> None:
    """Run the workflow FILE. Exit 0 success, 1 failed, 2 invalid, 3 completed with failures,
    130 interrupted (see docs/cli.md for the rest)."""
    from wfx import api
    from wfx.diagnostics import DiagnosticsError

    how = _presentation(**shown)
    try:
        given, spans = _gather_inputs(assignments, inputs_file)
        # read with or without the journal (as `wfx plan` reads it); written only with it
        cache = _cache_dir(how.state_dir)
        fresh: list[Any] = []
        compiled: list[Any] = []
        graph = api.compile_file(
            file,
            given or None,
            spans,
            env_files=env_files,
            cache=cache,
            on_fresh_model=lambda model, files: fresh.append((model, files)),
            root=root,
            on_fresh_compilation=compiled.append,
        ).graph
        if plan_file:
            api.check_plan_binding(plan_file, graph)
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, api.check([file], root=root).sources, "text")
    selecting = retry_failed or bool(only or from_ or skip)
    if selecting:
        from wfx.cli_redrive import check_run_selection

        check_run_selection(how, resume=resume, plan_file=plan_file, retry_failed=retry_failed)
    _check_paths(how)
    with _journal_for(how) as journal:
        if cache is not None and journal is not None and fresh:
            model, files = fresh[0]
            api.remember_model(file, cache, model, files, root=root)
        if cache is not None and journal is not None and compiled:
            api.remember_compilation(file, cache, compiled[0], given or None, spans, root)
        state = part = None
        if resume and journal is not None:
            unfinished = journal.latest_unfinished(str(Path(file).resolve()))
            if unfinished is not None:
                graph, state = _claim(journal, unfinished.id, force, root)
        if selecting:
            from wfx.cli_redrive import part_for_run

            graph, part = part_for_run(
                journal,
                graph,
                file,
                given,
                spans,
                force,
                retry_failed,
                only,
                from_,
                skip,
                how,
                env_files=env_files,
                root=root,
            )
        _execute(graph, file, how, journal, state, part)


@cli.command()
@click.argument("run_id")
@presentation_options
@click.option("--force", is_flag=True, help="Accept a workflow that changed since the run began.")
def resume(run_id: str, force: bool, **shown: Any) -> None:
    """Resume the run RUN_ID after a crash or an interrupt: finished steps are not run again."""
    how = _presentation(**shown)
    if not how.journal:
        _fail_with([_usage_error("`wfx resume` needs the journal")], {}, "text")
    _check_paths(how)
    with _journal_for(how) as journal:
        assert journal is not None
        graph, state = _claim(journal, run_id, force)
        _execute(graph, graph.workflow.file, how, journal, state)


def _usage_error(message: str) -> Any:
    from wfx.diagnostics import error

    return error("cli.usage", message)


def _check_paths(how: _Presentation) -> None:
    """Exit 2 when a path an option names cannot be used, or `WFX_FAILPOINT` holds an item
    that arms nothing: before any run is recorded."""
    from wfx import api
    from wfx.runtime.statedir import state_dir

    directories: dict[str, str | Path | None] = {"--workspace": how.workspace}
    if how.journal:
        located = state_dir(how.state_dir)
        origin = located.chosen_by if located.chosen_by != "the default" else "the journal at"
        directories[origin] = located.path
    files = {"--events": how.events_file, "--summary-md": how.summary_file}
    problems = [*api.check_run_paths(files, directories), *api.failpoint_problems()]
    if problems:
        _fail_with(problems, {}, "text")


@contextmanager
def _journal_for(how: _Presentation) -> Iterator[Any]:
    """The journal (or None with --no-journal); journal errors end in `main` (74/75/2)."""
    if not how.journal:
        yield None
        return
    from wfx.runtime.journal import Journal
    from wfx.runtime.statedir import state_dir

    journal = Journal.for_command(state_dir(how.state_dir).database)
    try:
        yield journal
    finally:
        journal.close()


def _changes_line(changes: list[Any]) -> str:
    """The plan changes between two definitions of a workflow, on one line."""
    from wfx.render.plan_diff import diff_text

    return "; ".join(diff_text(changes).splitlines())


def _claim(journal: Any, run_id: str, force: bool, root: str | None = None) -> tuple[Any, Any]:
    from wfx import api
    from wfx.diagnostics import DiagnosticsError

    try:
        graph, state, changes, stopped = api.claim_run(
            journal, run_id, force, _changes_line, root=root
        )
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, {}, "text")
    if changes:
        click.echo(f"wfx: warning: resuming with a changed workflow (--force): {changes}", err=True)
    leftovers = api.leftovers_notice(stopped)
    if leftovers:
        click.echo(f"wfx: warning: {visible(leftovers)}", err=True)
    lost = api.lost_workspace(state)
    if lost:
        click.echo(f"wfx: warning: {lost}", err=True)
    return graph, state


def _execute(
    graph: Any, file: str, how: _Presentation, journal: Any, state: Any, part: Any = None
) -> NoReturn:
    """Run (or resume) `graph`, showing and recording it as asked (`part`: a redrive or a
    part of the workflow); exit with its code."""
    from contextlib import ExitStack

    from wfx import api
    from wfx.diagnostics import DiagnosticsError
    from wfx.render.console import PlainConsole, run_console
    from wfx.render.run_view import choose_view
    from wfx.render.summary import (
        summary_from_events,
        summary_markdown,
        summary_plain,
        summary_table,
    )
    from wfx.runtime.engine import RunOptions
    from wfx.runtime.events import Sinks

    console = run_console(stderr=how.output_format == "json")
    collected: list[Any] = []
    with ExitStack() as files:
        # opened before the run is recorded: a path that cannot be written is exit 2,
        # never a run left `running (owner died)` in the journal
        events_handle = _open_to_append(files, how.events_file, "--events")
        summary_handle = _open_to_append(files, how.summary_file, "--summary-md")
        try:
            executors = api.open_executors(graph, how.executor)
        except DiagnosticsError as exc:
            _fail_with(exc.diagnostics, {}, "text")
        with ExitStack() as stack:

            def start_run() -> Any:
                """Called once the executors are up: record the run, show it, run it."""
                run_id = api.new_run_id(state)
                gate = api.enter_concurrency_group(graph, how.state_dir, run_id)
                if gate is not None:
                    stack.callback(gate.leave)
                run_id, workspace, scratch = api.prepare_run(
                    journal, graph, file, state, how.workspace, part, run_id
                )
                view = choose_view(
                    console,
                    quiet=how.quiet,
                    verbose=how.verbose,
                    groups=_groups_of(graph),
                    attempts=_attempts_of(graph),
                )
                stack.enter_context(view)
                sinks: list[Callable[[Any], None]] = []
                if journal is not None:
                    sinks.append(journal)
                sinks += [view, _keep_summary_events(collected)]
                if events_handle is not None:
                    from wfx.render.cloudevents import CloudEventsWriter

                    sinks.append(CloudEventsWriter(events_handle, source=file))

                return RunOptions(
                    events=Sinks(sinks),
                    handle_signals=True,
                    workspace=workspace,
                    scratch=scratch,
                    run_id=run_id,
                    resume=state,
                    selection=None if part is None else part.selection,
                    kept={} if part is None else part.kept,
                    concurrency=gate,
                )

            try:
                result = api.run_graph(graph, start_run, executors)
            except DiagnosticsError as exc:
                _fail_with(exc.diagnostics, {}, "text")
        run_line, step_lines = summary_from_events(collected)
        if not how.quiet and isinstance(console, PlainConsole):
            console.print(summary_plain(step_lines))
        elif not how.quiet:
            console.print(summary_table(step_lines), soft_wrap=True)
        if summary_handle is not None:
            summary_handle.write(summary_markdown(run_line, step_lines))
    _print_result(graph, file, result, how.output_format, console)
    sys.exit(result.exit_code)


def _print_result(graph: Any, file: str, result: Any, output_format: str, console: Any) -> None:
    """The workflow outputs after the summary, or the run's end as JSON on stdout."""
    from wfx.render.run_result import outputs_text, result_json

    if output_format == "json":
        from wfx.render.console import PlainConsole

        shown = result_json(
            run_id=result.run_id,
            workflow=graph.workflow.name or Path(file).name,
            status=result.status,
            exit_code=result.exit_code,
            outputs=result.outputs,
            reason=result.reason,
        )
        PlainConsole().print(shown)  # a reader gone: the exit status is still the run's
        return
    text = outputs_text(result.outputs)
    if text:
        console.print(text, markup=False, soft_wrap=True)


def _open_to_append(stack: Any, path: str | None, option: str) -> Any:
    """`path` opened to append (None without one); exit 2 saying why when it cannot be."""
    if path is None:
        return None
    try:
        return stack.enter_context(open(path, "a", encoding="utf-8"))
    except OSError as exc:
        from wfx.diagnostics import error

        problem = exc.strerror or str(exc)
        _fail_with([error("cli.path", f"{option} {path}: {problem}")], {}, "text")


def _keep_summary_events(kept: list[Any]) -> Callable[[Any], None]:
    """A sink keeping what the summary needs: never output lines (a step may print GBs)."""
    from wfx.runtime.events import StepOutput

    def keep(event: Any) -> None:
        if not isinstance(event, StepOutput):
            kept.append(event)

    return keep


def _groups_of(graph: Any) -> dict[str, tuple[str, ...]]:
    return {node.id: tuple(node.groups) for node in graph.steps()}


def _attempts_of(graph: Any) -> dict[str, int]:
    return {node.id: node.settings.retry.value.attempts for node in graph.steps()}


@cli.command(name="eval")
@click.argument("expression")
@click.option(
    "-c",
    "--context",
    "contexts",
    multiple=True,
    metavar="NAME=JSON",
    help="A named value the expression may use, as JSON (repeatable).",
)
def eval_command(expression: str, contexts: tuple[str, ...]) -> None:
    """Evaluate a `${{ }}`-style EXPRESSION and print its value as JSON."""
    from wfx.diagnostics import DiagnosticsError, error
    from wfx.expr import ExpressionError, evaluate

    source = "<expression>"
    try:
        named = _parse_contexts(contexts)
        value = evaluate(_strip_braces(expression), named)
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, {}, "text")
    except ExpressionError as exc:
        span = exc.span
        diagnostic = error(f"expr.{exc.stage}", exc.message, span)
        _fail_with([diagnostic], {span.file if span else source: expression}, "text")
    click.echo(json.dumps(_jsonable(value), ensure_ascii=False))


def _strip_braces(expression: str) -> str:
    text = expression.strip()
    if text.startswith("${{") and text.endswith("}}"):
        return text[3:-2]
    return expression


def _parse_contexts(contexts: tuple[str, ...]) -> dict[str, Any]:
    from wfx.diagnostics import DiagnosticsError, error

    named: dict[str, Any] = {}
    problems = []
    for item in contexts:
        name, sep, text = item.partition("=")
        if not sep or not name:
            problems.append(error("cli.context", f"`{item}` is not NAME=JSON"))
            continue
        try:
            named[name] = json.loads(text)
        except ValueError as exc:
            problems.append(error("cli.context", f"context `{name}` is not valid JSON: {exc}"))
    if problems:
        raise DiagnosticsError(problems)
    return named


def _jsonable(value: Any) -> Any:
    """Numbers as GitHub prints them: integral floats without `.0`; NaN and ±Infinity, which
    JSON cannot hold, as null (what `toJSON` gives them)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _journal_error_in(exc: BaseException) -> Exception | None:
    """The journal error behind `exc` (also inside an exception group), if any."""
    from wfx.runtime.journal import JournalError

    if isinstance(exc, JournalError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = _journal_error_in(inner)
            if found is not None:
                return found
    return None


def _journal_exit_code(problem: Exception) -> int:
    from wfx.runtime.journal import JournalUnwritableError, RunLockedError, RunNotResumableError

    if isinstance(problem, RunLockedError):
        return EXIT_RUN_LOCKED
    if isinstance(problem, RunNotResumableError | JournalUnwritableError):
        return EXIT_INVALID
    return EXIT_JOURNAL_CORRUPT


#: what to do about a journal that cannot be written, after saying why
UNWRITABLE_HINT = (
    "runs are recorded there: choose a writable place with --state-dir DIR (or"
    " $WFX_STATE_DIR), or run without a journal (--no-journal); `wfx runs`, `wfx show`"
    " and `wfx logs` still read it"
)


# wfx builds large structures of long-lived, mostly acyclic objects (documents, models,
# graphs, plans); at Python's default of a collection every 700 allocations, the cyclic
# collector spends 15-25 % of a 20,000-step plan re-scanning them. Reference counting
# still frees everything acyclic at once; cycles are collected, just in larger batches.
_GC_THRESHOLDS = (50_000, 10, 10)


def entry(last_word: Callable[[int, bool], None] | None = None) -> NoReturn:
    """The `wfx` command (and `python -m wfx`): `main`, then the end of the process without
    Python's own teardown.

    Freeing every module, class and object one at a time as the interpreter shuts down
    took 35-45 ms of a 200 ms `wfx run` (docs/performance.md). By the time `main`
    returns, all wfx must finish is finished: the journal is closed and every file wfx
    wrote is closed. What the process still owes is done here, in Python's order: the
    `atexit` handlers (wfx's class cache is written there), then the output flushed.
    When a thread that is not a daemon still runs, Python would wait for it, and so the
    normal exit is kept. `last_word` is told the exit status, and whether nothing but
    the end of the process follows (the warm server's copy of wfx tells the `wfx` process
    waiting for it: docs/server.md)."""
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = _exit_status(exc.code)
    _end_process(code, last_word)


def _exit_status(code: object) -> int:
    """The status `sys.exit(code)` gives the process (a message is printed, as Python does)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _end_process(code: int, last_word: Callable[[int, bool], None] | None = None) -> NoReturn:
    threading = sys.modules.get("threading")
    if threading is not None and any(
        thread.is_alive() and not thread.daemon and thread is not threading.main_thread()
        for thread in threading.enumerate()
    ):
        if last_word is not None:
            last_word(code, False)
        sys.exit(code)
    try:  # whatever happens now (a second Ctrl-C included), the process ends with `code`
        lookups = sys.modules.get("wfx.runtime.direct")
        if lookups is not None:
            lookups.leave_watch_to_teardown()
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                if stream is not None:
                    stream.flush()
            except (OSError, ValueError):  # a reader that went away: nothing more to say
                pass
        if last_word is not None:
            last_word(code, True)
    finally:
        os._exit(code)


def steady_valid_signals() -> None:
    """Make `signal.valid_signals()` a constant of this process, which it is: asyncio asks
    it each time a signal handler is added or removed, and each call builds a set of 64
    enum members anew, 0.4 ms of every run (docs/performance.md, ninth pass). Callers
    still get a set of their own. Done once: the warm server does it before it forks
    its copies."""
    import signal

    if getattr(signal.valid_signals, "steady", False):
        return
    valid = frozenset(signal.valid_signals())

    def valid_signals() -> set[signal.Signals]:
        return set(valid)

    valid_signals.steady = True  # type: ignore[attr-defined]
    signal.valid_signals = valid_signals


def main() -> None:
    """Run the CLI, turning any unexpected crash into exit 70 (a program embedding wfx's
    command line calls this; the `wfx` command is `entry`)."""
    gc.set_threshold(*_GC_THRESHOLDS)
    steady_valid_signals()
    try:
        cli.main(standalone_mode=False, prog_name="wfx")
    except click.exceptions.Abort:
        click.echo("interrupted", err=True)
        sys.exit(EXIT_INTERRUPTED)
    except click.ClickException as exc:
        exc.show()
        sys.exit(EXIT_INVALID)
    except KeyboardInterrupt:
        sys.exit(EXIT_INTERRUPTED)
    except SystemExit:
        raise
    except Exception as exc:  # a bug in wfx: say so plainly instead of a traceback
        journal_problem = _journal_error_in(exc)
        if journal_problem is not None:
            click.echo(f"wfx: error: {visible(str(journal_problem))}", err=True)
            code = _journal_exit_code(journal_problem)
            if code == EXIT_INVALID and "cannot be written" in str(journal_problem):
                click.echo(f"  = hint: {UNWRITABLE_HINT}", err=True)
            sys.exit(code)
        if os.environ.get("WFX_DEBUG"):
            import traceback

            traceback.print_exc()
        click.echo(f"wfx: internal error: {type(exc).__name__}: {visible(str(exc))}", err=True)
        click.echo("This is a bug in wfx; please report it with the input file.", err=True)
        sys.exit(EXIT_INTERNAL)
