"""`wfx retry`, `wfx run --retry-failed|--only|--from|--skip` and `wfx plan --retry|--only|
--from|--skip`: options checked, the API asked (`wfx.api.redrive_target`,
`wfx.api.choose_part`), the selection drawn (`wfx.render.plan_selection`). No logic here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any, NoReturn

import click

from wfx.cli import (
    _changes_line,
    _check_paths,
    _execute,
    _fail_with,
    _journal_for,
    _Presentation,
    _presentation,
    _usage_error,
    env_file_option,
    presentation_options,
    print_plan_text,
)


def _refuse(message: str, hint: str | None = None) -> NoReturn:
    from wfx.diagnostics import error

    _fail_with([error("cli.usage", message, None, hint)], {}, "text")


def _ids(values: Iterable[str]) -> list[str]:
    """Step ids from repeated options, each maybe a comma-separated list."""
    return [s.strip() for value in values for s in value.split(",") if s.strip()]


@click.command(name="retry")
@click.argument("run_id")
@presentation_options
@click.option(
    "--force",
    is_flag=True,
    help="Accept a workflow that changed since the run (changed steps run again).",
)
@env_file_option
def retry(run_id: str, force: bool, env_files: tuple[str, ...], **shown: Any) -> None:
    """Redrive the run RUN_ID as a new run: keep every step that succeeded (its outputs from
    the journal), run the failed, timed-out, cancelled and skipped steps again."""
    how = _presentation(**shown)
    if not how.journal:
        _fail_with([_usage_error("`wfx retry` needs the journal")], {}, "text")
    _check_paths(how)
    with _journal_for(how) as journal:
        graph, part = _redrive(journal, run_id, force, how, env_files=env_files)
        _execute(graph, graph.workflow.file, how, journal, None, part)


def _redrive(journal: Any, run_id: str, force: bool, how: _Presentation, **given: Any) -> Any:
    from wfx import api
    from wfx.diagnostics import DiagnosticsError

    try:
        graph, part = api.redrive_target(journal, run_id, force, _changes_line, **given)
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, {}, "text")
    if part.changes:
        click.echo(f"wfx: warning: retrying a changed workflow (--force): {part.changes}", err=True)
    stopped = api.leftovers_notice(
        api.stop_redriven_leftovers(journal, part.selection.redrives or run_id, graph)
    )
    if stopped:
        click.echo(f"wfx: warning: {stopped}", err=True)
    lost = api.lost_kept_workspace(part) if how.workspace is None else None
    if lost:
        click.echo(f"wfx: warning: {lost}", err=True)
    _say(part, how)
    return graph, part


def _say(part: Any, how: _Presentation) -> None:
    from wfx.render.plan_selection import headline

    if not how.quiet:
        click.echo(f"wfx: {headline(part.selection)}", err=True)


def check_run_selection(
    how: _Presentation, *, resume: bool, plan_file: str | None, retry_failed: bool
) -> None:
    """Refuse option combinations a run of part of a workflow cannot honour (exit 2)."""
    del plan_file  # a reviewed plan binds the whole workflow; a part of it runs as reviewed
    if resume:
        _refuse(
            "--resume goes on with a run as it was started: it takes no --retry-failed,"
            " --only, --from or --skip",
            "resume first, or start a new run with those options",
        )
    if retry_failed and not how.journal:
        _refuse("--retry-failed needs the journal", "drop --no-journal")


def part_for_run(
    journal: Any,
    graph: Any,
    file: str,
    given: dict[str, Any],
    spans: dict[str, Any],
    force: bool,
    retry_failed: bool,
    only: tuple[str, ...],
    from_: str | None,
    skip: tuple[str, ...],
    how: _Presentation,
    env_files: tuple[str, ...] = (),
    root: str | None = None,
) -> tuple[Any, Any]:
    """The graph and the Part of a `wfx run` with --retry-failed, --only, --from or --skip."""
    from wfx import api
    from wfx.diagnostics import DiagnosticsError

    if retry_failed:
        if only or from_ or skip:
            _refuse(
                "--retry-failed reruns what failed: it takes no --only, --from or --skip",
                "choose one",
            )
        try:
            run_id = api.latest_run(journal, file)
        except DiagnosticsError as exc:
            _fail_with(exc.diagnostics, {}, "text")
        return _redrive(  # type: ignore[no-any-return]
            journal,
            run_id,
            force,
            how,
            file=file,
            inputs=given or None,
            input_spans=spans,
            env_files=env_files,
            root=root,
        )
    try:
        part = api.choose_part(
            journal,
            graph,
            file,
            only=_ids(only),
            from_=from_,
            skip=_ids(skip),
            no_journal=not how.journal,
        )
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, {}, "text")
    lost = api.lost_kept_workspace(part) if how.workspace is None else None
    if lost:
        click.echo(f"wfx: warning: {lost}", err=True)
    _say(part, how)
    return graph, part


def plan_part(
    file: str | None,
    given: dict[str, Any],
    spans: dict[str, Any],
    output_format: str,
    base: str | None,
    *,
    retry_run: str | None,
    only: tuple[str, ...],
    from_: str | None,
    skip: tuple[str, ...],
    state_dir: str | None,
    env_files: tuple[str, ...] = (),
) -> tuple[Any, Any, Any]:
    """The graph, plan and Part of `wfx plan --retry|--only|--from|--skip`."""
    from wfx import api
    from wfx.plan import make_plan
    from wfx.runtime.journal import Journal
    from wfx.runtime.statedir import state_dir as locate

    if base is not None:
        _refuse("--diff compares whole plans: it takes no --retry, --only, --from or --skip")
    if output_format not in ("text", "markdown", "json"):
        _refuse(f"a selection cannot be shown as {output_format}", "use text, markdown or json")
    if retry_run and (only or from_ or skip):
        _refuse("--retry plans a redrive: it takes no --only, --from or --skip", "choose one")
    path = locate(state_dir).database
    journal = Journal(path, read_only=True) if path.exists() else None
    try:
        if retry_run:
            if journal is None:
                _refuse(f"no run `{retry_run}`: no runs yet (no journal at {path})")
            graph, part = api.redrive_target(
                journal,
                retry_run,
                True,
                _changes_line,
                file=file,
                inputs=given or None,
                input_spans=spans,
                env_files=env_files,
            )
        else:
            assert file is not None  # only --retry takes its file from the run
            graph = api.compile_file(file, given or None, spans, env_files=env_files).graph
            part = api.choose_part(
                journal, graph, file, only=_ids(only), from_=from_, skip=_ids(skip)
            )
    finally:
        if journal is not None:
            journal.close()
    return graph, make_plan(graph), part


def print_plan_part(
    graph: Any, the_plan: Any, part: Any, output_format: str, verbose: bool
) -> None:
    """The plan, then which steps run, are kept and are skipped."""
    from wfx.render import plan_selection

    finally_steps = [s for stage in the_plan.finally_stages for s in stage]
    if output_format == "json":
        from wfx.render.plan_json import plan_to_dict

        data = plan_to_dict(the_plan)
        data["selection"] = plan_selection.selection_to_dict(part.selection, part.changes)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    if output_format == "markdown":
        from wfx.render.plan_markdown import render_markdown

        shown = plan_selection.selection_markdown(part.selection, finally_steps)
        click.echo(render_markdown(the_plan).rstrip("\n") + "\n\n" + shown + _changes(part))
        return
    print_plan_text(the_plan, verbose)
    click.echo(plan_selection.selection_text(part.selection, finally_steps) + _changes(part))


def _changes(part: Any) -> str:
    if not part.changes:
        return ""
    return (
        f"\nthe workflow changed since run {part.selection.redrives}: {part.changes}"
        "\n(`wfx retry` refuses it without --force; with it, the changed steps run again)"
    )
