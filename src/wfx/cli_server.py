"""`wfx server`: see, start and stop the warm server that runs `wfx` commands
(docs/server.md)."""

from __future__ import annotations

import sys
import time

import click

from wfx import server
from wfx.exitcodes import EXIT_FAILED


@click.group(name="server")
def server_group() -> None:
    """The warm server that runs `wfx` commands without Python's start-up (see
    docs/server.md). It starts by itself after `wfx run`; WFX_SERVER=0 turns it off."""


@server_group.command(name="status")
def status_command() -> None:
    """Say whether a server runs for this setup (exit 1 when none does)."""
    found = server.status()
    if found is None:
        click.echo(f"no wfx server runs for this setup (it would listen on {server.name()})")
        sys.exit(EXIT_FAILED)
    click.echo(_describe(found))


@server_group.command(name="start")
def start_command() -> None:
    """Start a server for this setup unless one runs, and wait until it answers."""
    found = server.start()
    if found is None:
        click.echo("wfx: error: the server did not start", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(_describe(found))


@server_group.command(name="stop")
def stop_command() -> None:
    """Stop the server for this setup (commands it runs finish first)."""
    running = server.stop()
    if running is None:
        click.echo("no wfx server runs for this setup")
        return
    suffix = f"; it ends when its {running} running command(s) end" if running else ""
    click.echo(f"wfx server stopping{suffix}")


def _describe(found: server.Status) -> str:
    up = time.time() - found.started
    spare = f", next copy {found.spare} ready" if found.spare else ""
    kept = f", {found.kept} workflow(s) kept in memory" if found.kept else ""
    code = "watched by inotify" if found.watching else "checked file by file for each command"
    if found.stale:
        ending = "its code changed since it started: it serves no more commands and exits" + (
            " once those running end" if found.running else ""
        )
    else:
        ending = f"its code {code}, exits after {found.idle_limit:.0f}s idle"
    return (
        f"wfx server {found.pid} on {server.name()}: up {up:.0f}s,"
        f" {found.served} command(s) served, {found.running} running{spare}{kept}, {ending}"
    )
