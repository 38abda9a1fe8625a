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
        stream.write(f"{text}\n")
        stream.flush()


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
