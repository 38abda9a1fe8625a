"""The console a run prints to: rich's for a terminal, plain writes for pipes and logs.

Importing rich costs about 20 ms, a tenth of a short `wfx run`. Off a terminal rich
prints no colour and no live view anyway, so the run view and summary go to a
:class:`PlainConsole` there, which writes the same characters without importing rich.
"""

from __future__ import annotations

import os
import sys
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

#: variables that make rich treat any stream as a terminal (or not): rich decides then
_RICH_TERMINAL_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE")


class PlainConsole:
    """The part of rich's Console a run uses off a terminal: `file`, `print` of text."""

    is_terminal = False
    is_dumb_terminal = False

    def __init__(self, stderr: bool = False) -> None:
        self.stderr = stderr

    @property
    def file(self) -> IO[str]:
        """The stream written to (looked up at each use, as rich does)."""
        return sys.stderr if self.stderr else sys.stdout

    def print(self, text: object, **_options: Any) -> None:
        """Write `text` (a str, or what `str()` makes of it) and a newline."""
        stream = self.file
        try:
            stream.write(f"{text}\n")
            stream.flush()
        except BrokenPipeError:
            reader_gone(stream)


def reader_gone(stream: IO[str]) -> None:
    """The pipe `stream` writes to has lost its reader (`wfx run deploy.yaml | head`): the
    run goes on to its end, as if nobody had looked (a deployment is not stopped halfway
    because a pager closed); what it would have shown goes to /dev/null from now on (the
    journal keeps it: `wfx logs`), and its exit status is the run's (docs/cli.md)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, stream.fileno())
    finally:
        os.close(devnull)


def run_console(stderr: bool = False) -> Console | PlainConsole:
    """rich's Console when the stream is a terminal (or the environment tells rich to treat
    it as one), else a PlainConsole."""
    stream = sys.stderr if stderr else sys.stdout
    told = any(os.environ.get(variable) is not None for variable in _RICH_TERMINAL_VARIABLES)
    if told or _is_a_terminal(stream):
        from rich.console import Console

        return Console(highlight=False, stderr=stderr)
    return PlainConsole(stderr)


def _is_a_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def plain_width(stream: IO[str] | None = None) -> int | None:
    """The width rich's Console lays text out at on `stream` (default stdout) when it
    would write no colour or style there; None when rich would see a terminal or could
    decide anything this function does not know (rich 15's rules, console.py)."""
    stream = sys.stdout if stream is None else stream
    stream = getattr(stream, "rich_proxied_file", stream)
    if stream is None or sys.platform == "win32" or _rich_may_see_a_terminal(stream):
        return None
    if not (getattr(stream, "encoding", "utf-8") or "utf-8").lower().startswith("utf"):
        return None  # rich would draw its boxes in ASCII
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        return int(columns) if columns.isascii() else None
    return _terminal_width() or 80


def _rich_may_see_a_terminal(stream: IO[str]) -> bool:
    """Whether rich's Console.is_terminal may be true, or rich may think it is in Jupyter
    or IDLE (their own rules)."""
    import builtins

    if hasattr(builtins, "get_ipython") or str(getattr(sys.stdin, "__module__", "")).startswith(
        "idlelib"
    ):
        return True
    compatible = os.environ.get("TTY_COMPATIBLE", "")
    if compatible in ("0", "1"):
        return compatible == "1"
    force_color = os.environ.get("FORCE_COLOR")
    if force_color is not None:
        return force_color != ""
    isatty = getattr(stream, "isatty", None)
    try:
        return isatty is not None and bool(isatty())
    except ValueError:  # a closed stream: rich would fail to write to it as well
        return True


def _terminal_width() -> int:
    """The columns of the first of stdin, stdout, stderr that is a terminal (0 if none),
    as rich asks them."""
    for name, default in (("__stdin__", 0), ("__stdout__", 1), ("__stderr__", 2)):
        try:
            descriptor = getattr(sys, name).fileno()
        except Exception:
            descriptor = default
        try:
            return os.get_terminal_size(descriptor).columns
        except (AttributeError, ValueError, OSError):
            continue
    return 0
