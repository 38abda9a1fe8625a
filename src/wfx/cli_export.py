"""`wfx export`: a workflow as another engine's workflow (wfx.export). No logic here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click

from wfx.cli import _fail_with, _gather_inputs, input_options
from wfx.exitcodes import EXIT_INVALID


def _image(value: str) -> str:
    """An image reference: not empty, no blanks (Argo would take either, and fail the pod)."""
    if not value.strip() or any(c.isspace() for c in value):
        raise click.BadParameter(f"`{value}` is not a container image, e.g. ubuntu:24.04")
    return value


@click.command(name="export")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option(
    "--to",
    "target",
    type=click.Choice(["github-actions", "argo"]),
    required=True,
    help="The engine to write a workflow for.",
)
@input_options
@click.option(
    "--allow-lossy",
    is_flag=True,
    help="Write it even where the target cannot do what wfx does: a warning per loss.",
)
@click.option(
    "--image",
    default="ubuntu:24.04",
    show_default=True,
    help="Argo: the container image every step runs in.",
    callback=lambda _context, _parameter, value: _image(value),
)
@click.option(
    "-o", "--output", "output", type=click.Path(dir_okay=False), help="Write here, not stdout."
)
def export(
    file: str,
    target: str,
    assignments: tuple[str, ...],
    inputs_file: str | None,
    allow_lossy: bool,
    image: str,
    output: str | None,
) -> None:
    """Write FILE as a TARGET workflow, read from its plan; exit 2 if anything would be
    lost (each loss with its step and line), unless --allow-lossy."""
    from wfx import api
    from wfx.diagnostics import DiagnosticsError, Severity
    from wfx.export import export_plan
    from wfx.render.diagnostics import FORMATTERS
    from wfx.render.plan_json import plan_to_dict

    try:
        given, spans = _gather_inputs(assignments, inputs_file)
        _, the_plan = api.plan_file(file, given or None, spans)
        options = {"image": image} if target == "argo" else {}
        exported = export_plan(plan_to_dict(the_plan), target, **options)
    except DiagnosticsError as exc:
        _fail_with(exc.diagnostics, api.check([file]).sources, "text")
    severity = Severity.WARNING if allow_lossy else Severity.ERROR
    found: list[Any] = [loss.diagnostic(the_plan.file, severity) for loss in exported.losses]
    if found:
        sources = api.check([file]).sources
        click.echo(FORMATTERS["text"](found, sources), err=True)
        if not allow_lossy:
            sys.exit(EXIT_INVALID)
    if output is None:
        click.echo(exported.text, nl=False)
        return
    try:
        Path(output).write_text(exported.text, encoding="utf-8")
    except OSError as exc:
        from wfx.diagnostics import error

        problem = exc.strerror or str(exc)
        _fail_with([error("cli.path", f"-o {output}: {problem}")], {}, "text")
