"""`wfx lsp`: start the language server (an optional extra: `pip install 'wfx[lsp]'`)."""

from __future__ import annotations

import sys

import click

from wfx.exitcodes import EXIT_INVALID

#: what `pip install 'wfx[lsp]'` brings
_OPTIONAL = ("pygls", "lsprotocol")


@click.command()
@click.option("--stdio", is_flag=True, help="Talk over stdin and stdout (the only transport).")
def lsp(stdio: bool) -> None:
    """Run the wfx language server over stdio, for editors: diagnostics, hover, completion,
    go to definition."""
    try:
        from wfx.lsp.server import serve  # noqa: PLC0415 - pygls is optional
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _OPTIONAL:
            raise
        click.echo(
            "error: `wfx lsp` needs pygls, which is not installed;"
            " install wfx[lsp]: pip install 'wfx[lsp]'",
            err=True,
        )
        sys.exit(EXIT_INVALID)
    serve()
