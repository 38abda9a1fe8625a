"""`wfx runs`, `wfx show` and `wfx logs`: what the run journal remembers.

Options are parsed here, the journal opened and errors mapped to exit codes;
`wfx.render.history` draws. Heavy modules are imported inside each command so that
adding these commands to `wfx` does not slow its start.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import click

from wfx.durations import parse_duration
from wfx.exitcodes import EXIT_INVALID, EXIT_JOURNAL_CORRUPT
from wfx.render.characters import visible

if TYPE_CHECKING:
    from wfx.runtime.journal import Journal, RunRecord


_F = TypeVar("_F", bound=Callable[..., Any])


def parse_age(text: str) -> float:
    """Seconds in an age like `30d`, `12h`, `90m`, `3600s`, `1d12h`; ValueError otherwise."""
    try:
        return parse_duration(text, units=("s", "m", "h", "d", "w"))
    except ValueError:
        raise ValueError(
            f"`{text}` is not an age: use a number and a unit, e.g. 30d, 12h, 90m"
        ) from None


def _age_option(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    """`--older-than` in seconds, or a usage error (exit 2)."""
    if value is None:
        return None
    try:
        return parse_age(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


def state_dir_option(command: _F) -> _F:
    """The `--state-dir DIR` option of the history commands."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False),
        help="Where the journal lives (default: $WFX_STATE_DIR, or .wfx/ here).",
    )(command)


def journal_path(state_dir: str | None) -> Path:
    """The journal database, where every command looks (see `wfx.runtime.statedir.state_dir`)."""
    from wfx.runtime.statedir import state_dir as locate  # noqa: PLC0415

    return locate(state_dir).database


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"wfx: error: {visible(message)}", err=True)
    sys.exit(code)


def _usage(message: str, hint: str | None = None) -> NoReturn:
    """Say what is wrong with the request, as a diagnostic, and exit 2."""
    from wfx.diagnostics import error  # noqa: PLC0415
    from wfx.render.diagnostics import as_text  # noqa: PLC0415

    click.echo(as_text([error("cli.usage", message, None, hint)], {}), err=True)
    sys.exit(EXIT_INVALID)


@contextmanager
def _opened(path: Path, *, read_only: bool = True) -> Iterator[Journal]:
    """The journal at `path` (which exists), read-only when it cannot be written (unless
    `read_only` is False); damaged or newer journals end with exit 74, a journal that must
    be written but cannot be with exit 2."""
    import json  # noqa: PLC0415
    import sqlite3  # noqa: PLC0415

    from wfx.runtime.journal import Journal, JournalError  # noqa: PLC0415

    try:
        journal = Journal(path, read_only=read_only)
    except JournalError as exc:
        _fail(str(exc), _exit_code(exc))
    try:
        yield journal
    except JournalError as exc:
        _fail(str(exc), _exit_code(exc))
    except (sqlite3.DatabaseError, json.JSONDecodeError) as exc:
        _fail(f"the journal {path} is damaged: {exc}", EXIT_JOURNAL_CORRUPT)
    finally:
        journal.close()


def _exit_code(problem: Exception) -> int:
    from wfx.runtime.journal import JournalUnwritableError  # noqa: PLC0415

    return EXIT_INVALID if isinstance(problem, JournalUnwritableError) else EXIT_JOURNAL_CORRUPT


@contextmanager
def _journal_of_run(run_id: str, state_dir: str | None) -> Iterator[tuple[Journal, RunRecord]]:
    """The journal and the run `run_id` names in it; exit 2 when there is no such run."""
    path = journal_path(state_dir)
    if not path.exists():
        _usage(f"no run `{run_id}`: no runs yet (no journal at {path})")
    with _opened(path) as journal:
        yield journal, _find_run(journal, run_id)


def _alive(records: list[RunRecord]) -> set[str]:
    """The ids of unfinished runs whose owning process still lives."""
    from wfx.runtime.journal import owner_alive  # noqa: PLC0415

    return {r.id for r in records if r.finished is None and owner_alive(r.owner_pid, r.owner_start)}


def _find_run(journal: Journal, run_id: str) -> RunRecord:
    """The run `run_id` names (exactly or by a unique prefix); exit 2 when none or several."""
    record = journal.run(run_id) if run_id.strip() else None
    if record is not None:
        return record
    from wfx.api import no_such_run  # noqa: PLC0415 - only for an id that names no run

    problem = no_such_run(journal, run_id)
    _usage(problem.message, problem.hint)


def _console() -> Any:
    from rich.console import Console  # noqa: PLC0415

    console = Console(highlight=False, soft_wrap=False)
    if not console.is_terminal:
        console.width = max(console.width, 120)
    return console


@click.command(name="runs")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of runs.")
@click.option(
    "--file",
    type=click.Path(dir_okay=False),
    help="Only the runs of this workflow file.",
)
@click.option("--prune", is_flag=True, help="Delete finished runs older than --older-than.")
@click.option(
    "--older-than",
    metavar="AGE",
    callback=_age_option,
    help="With --prune: an age such as 30d, 12h, 90m or 3600s.",
)
@state_dir_option
def runs(
    as_json: bool,
    file: str | None,
    prune: bool,
    older_than: float | None,
    state_dir: str | None,
) -> None:
    """List the recorded runs, newest first; with --prune, delete old finished runs."""
    if prune and older_than is None:
        raise click.UsageError("--prune needs --older-than AGE (e.g. 30d)")
    if older_than is not None and not prune:
        raise click.UsageError("--older-than only goes with --prune")
    if prune and file is not None:
        raise click.UsageError("--prune applies to every workflow in the journal; drop --file")
    path = journal_path(state_dir)
    if prune and older_than is not None:
        _prune(path, older_than, as_json)
        return
    if not path.exists():
        click.echo("[]" if as_json else f"no runs yet (no journal at {path})")
        return
    with _opened(path) as journal:
        records = journal.runs(None if file is None else str(Path(file).resolve()))
    from wfx.render import history  # noqa: PLC0415

    if as_json:
        click.echo(history.runs_json(records))
    elif not records:
        click.echo("no runs yet" + ("" if file is None else f" of {file}"))
    else:
        _console().print(history.runs_table(records, _alive(records)))


def _prune(path: Path, older_than: float, as_json: bool) -> None:
    removed = 0
    if path.exists():
        with _opened(path, read_only=False) as journal:
            removed = journal.prune(older_than)
    if as_json:
        click.echo(f'{{"removed": {removed}}}')
    else:
        click.echo(f"removed {removed} finished run{'' if removed == 1 else 's'}")


@click.command(name="show")
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run as JSON, outputs in full.")
@state_dir_option
def show(run_id: str, as_json: bool, state_dir: str | None) -> None:
    """Show the run RUN_ID (an id or a unique prefix): its steps, outputs and rollbacks."""
    with _journal_of_run(run_id, state_dir) as (journal, record):
        steps = journal.steps(record.id)
        rollbacks = journal.rollbacks(record.id)
    from wfx.render import history  # noqa: PLC0415

    if as_json:
        click.echo(history.run_json(record, steps, rollbacks))
    else:
        _console().print(history.run_view(record, steps, rollbacks, _alive([record])))


@click.command(name="logs")
@click.argument("run_id")
@click.argument("step", required=False)
@state_dir_option
def logs(run_id: str, step: str | None, state_dir: str | None) -> None:
    """Print the output the run RUN_ID recorded: every step's, `[step]`-prefixed, or STEP's."""
    with _journal_of_run(run_id, state_dir) as (journal, record):
        steps = journal.steps(record.id)
        instances = {s for s in steps if step and step not in steps and s.startswith(step + "[")}
        if instances:  # a fan-out: every instance's lines, `[build[api]]`-prefixed
            lines = [line for line in journal.logs(record.id) if line[0] in instances]
        else:
            lines = journal.logs(record.id, step)
    from wfx.render import history  # noqa: PLC0415

    if step is None or instances:
        shown = history.prefixed_log(lines)
        if not shown:
            click.echo(f"run {record.id} recorded no output", err=True)
        else:
            click.echo("\n".join(shown))
        return
    if not lines and step not in steps:
        _unknown_step(step, record.id, list(steps))
    if lines:
        click.echo("\n".join(history.raw_log(lines)))
    if not lines:
        click.echo(f"step `{step}` of run {record.id} recorded no output", err=True)
    elif history.log_truncated(lines):
        click.echo(history.TRUNCATED_NOTE, err=True)


def _unknown_step(step: str, run_id: str, known: list[str]) -> NoReturn:
    from wfx.diagnostics import closest  # noqa: PLC0415

    close = closest(step, known)
    hint = f"did you mean `{close}`?" if close else f"`wfx show {run_id}` lists its steps"
    _usage(f"no step `{step}` in run {run_id}", hint)
