"""Step outputs written to `$WFX_OUTPUT`: `name=value` lines and `name<<DELIM` heredocs.

The format is GitHub Actions' `$GITHUB_OUTPUT` format, so scripts written for it
work unchanged. Parsing is pure; :func:`read_outputs` is the one place that reads
the file, wherever the attempt ran.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]*$")

#: the most output text one attempt may write to $WFX_OUTPUT
MAX_OUTPUT_BYTES = 1024 * 1024


class OutputFormatError(ValueError):
    """The output file is not in the `name=value` / `name<<DELIM` format."""


@dataclass(frozen=True, slots=True)
class _Heredoc:
    name: str
    delimiter: str
    start_line: int


def parse_outputs(text: str) -> dict[str, str]:
    """The outputs in `text`; a later value for the same name wins (as on GitHub)."""
    outputs: dict[str, str] = {}
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    index = 0
    while index < len(lines):
        line = lines[index].removesuffix("\r")
        index += 1
        if not line.strip():
            continue
        heredoc = _heredoc_start(line, index)
        if heredoc is not None:
            value, index = _heredoc_body(lines, index, heredoc)
            outputs[heredoc.name] = value
            continue
        name, value = _assignment(line, index)
        outputs[name] = value
    return outputs


def _heredoc_start(line: str, number: int) -> _Heredoc | None:
    if "<<" not in line or ("=" in line and line.index("=") < line.index("<<")):
        return None
    name, _, delimiter = line.partition("<<")
    _check_name(name, number)
    if not delimiter:
        raise OutputFormatError(f"line {number}: `{name}<<` needs a delimiter")
    return _Heredoc(name, delimiter, number)


def _heredoc_body(lines: list[str], index: int, heredoc: _Heredoc) -> tuple[str, int]:
    body: list[str] = []
    while index < len(lines):
        line = lines[index].removesuffix("\r")
        index += 1
        if line == heredoc.delimiter:
            return "\n".join(body), index
        body.append(line)
    raise OutputFormatError(
        f"line {heredoc.start_line}: `{heredoc.name}<<{heredoc.delimiter}` is never closed"
        f" by a line `{heredoc.delimiter}`"
    )


def _assignment(line: str, number: int) -> tuple[str, str]:
    name, sep, value = line.partition("=")
    if not sep:
        raise OutputFormatError(f"line {number}: expected `name=value` or `name<<DELIMITER`")
    _check_name(name, number)
    return name, value


def _check_name(name: str, number: int) -> None:
    if not _NAME.match(name):
        raise OutputFormatError(f"line {number}: `{name}` is not a valid output name")


def read_outputs(path: str | Path, limit: int = MAX_OUTPUT_BYTES) -> dict[str, str]:
    """The outputs an attempt wrote to its `$WFX_OUTPUT` file (at most `limit` bytes)."""
    if not os.access(path, os.F_OK):  # the usual case, told without raising an exception
        return {}
    try:
        with open(path, "rb") as handle:
            raw = handle.read(limit + 1)
    except FileNotFoundError:
        return {}
    if len(raw) > limit:
        raise OutputFormatError(f"more than {limit} bytes of outputs")
    return parse_outputs(raw.decode("utf-8", errors="replace"))
