"""`wfx lsp`: start the language server (an optional extra: `pip install 'wfx[lsp]'`)."""

from __future__ import annotations

import importlib.util
import sys

import click

from wfx.exitcodes import EXIT_INVALID


@click.command()
@click.option("--stdio", is_flag=True, help="Talk over stdin and stdout (the only transport).")
def lsp(stdio: bool) -> None:
    """Run the wfx language server over stdio, for editors: diagnostics, hover, completion,
    go to definition."""
    if importlib.util.find_spec("pygls") is None:
        click.echo(
            "error: `wfx lsp` needs pygls; install wfx[lsp]: pip install 'wfx[lsp]'", err=True
        )
        sys.exit(EXIT_INVALID)
    from wfx.lsp.server import serve  # noqa: PLC0415 - pygls is optional

    serve()
