"""Where the cursor is in a YAML text, read from the indentation alone, so that it works
while the file is half typed and does not parse: the chain of keys and list items above
the cursor, whether a key or a value is being typed, and what is typed so far.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: one step of a path: a mapping key, or None for "an item of a list"
PathPart = str | None

# Greedy and unambiguous (a key holds no `:` or `#`), so a hostile line costs linear time.
_KEY = re.compile(r"""("[^"]*"|'[^']*'|[^\s#'"{\[\]},:][^#:]*):(?:\s|$)""")
_BLOCK_SCALAR = re.compile(r"[|>][-+0-9]*\s*(?:#.*)?$")


@dataclass(frozen=True, slots=True)
class Frame:
    """A list item dash or a mapping key on one line, at its column."""

    column: int
    key: str | None = None
    """The key (None: a list item `- `)."""
    value: str = ""
    """For a key: what follows its colon on the line."""


@dataclass(frozen=True, slots=True)
class Context:
    """What the cursor is in: `path` leads to the mapping (or list) that holds it; in a
    value, `key` is the key whose value it is; `typed` is what is typed before the cursor."""

    path: tuple[PathPart, ...]
    in_value: bool
    key: str | None
    typed: str
    column: int
    """The column where the key (or list item) being typed starts."""

    @property
    def value_path(self) -> tuple[PathPart, ...]:
        """The path of the value being typed (the mapping's path plus the key)."""
        return (*self.path, self.key) if self.in_value else self.path


def frames(line: str) -> list[Frame]:
    """The dashes and the key that open `line` (none for a blank line or a comment)."""
    found: list[Frame] = []
    at = len(line) - len(line.lstrip(" "))
    while line[at : at + 2] == "- " or line[at:].rstrip() == "-":
        found.append(Frame(at))
        at += 1
        while at < len(line) and line[at] == " ":
            at += 1
    if at >= len(line) or line[at] == "#":
        return found
    match = _KEY.match(line, at)
    if match is not None:
        key = match.group(1).rstrip().strip("'\"")
        found.append(Frame(at, key, line[match.end() :].strip()))
    return found


def context_at(lines: list[str], line: int, character: int) -> Context:
    """The context of the cursor at 0-based `line` and `character` in `lines`."""
    current = lines[line] if 0 <= line < len(lines) else ""
    before = current[:character]
    own = frames(before)
    items = [f for f in own if f.key is None]
    keyed = own[-1] if own and own[-1].key is not None else None
    column = keyed.column if keyed is not None else _typing_column(before, items)
    limit = items[0].column if items else column
    ancestors = _ancestors(lines, line, limit, item=bool(items))
    if ancestors is None:  # inside a block scalar (`run: |`): a value, never a key
        return Context((), True, None, before.strip(), column)
    path = (*ancestors, *(None for _ in items))
    if keyed is not None:
        return Context(path, True, keyed.key, keyed.value, keyed.column)
    typed = before[column:].strip() if column <= len(before) else ""
    return Context(path, False, None, typed, column)


def _typing_column(before: str, items: list[Frame]) -> int:
    start = items[-1].column + 1 if items else 0
    rest = before[start:]
    return start + len(rest) - len(rest.lstrip(" "))


def _ancestors(
    lines: list[str], line: int, limit: int, *, item: bool = False
) -> tuple[PathPart, ...] | None:
    """The keys and items above `line` that enclose column `limit`, outermost first;
    None when the cursor is inside a block scalar's text. With `item` (what is at
    `limit` is a list item), a key without a value at that very column holds the list
    (`needs:` then `- a` below it, not indented)."""
    found: list[PathPart] = []
    for number in range(min(line, len(lines)) - 1, -1, -1):
        if limit <= 0 and not item:
            break
        for frame in reversed(frames(lines[number])):
            bare = frame.key is not None and (not frame.value or frame.value.startswith("#"))
            if frame.column >= limit and not (item and bare and frame.column == limit):
                continue
            if frame.key is not None and frame.value:
                if _BLOCK_SCALAR.match(frame.value):
                    return None
                if not frame.value.startswith("#"):
                    continue  # `key: value` above us ends before our line: not an ancestor
            found.append(frame.key)
            limit = frame.column
            item = frame.key is None
    return tuple(reversed(found))


def sibling_keys(lines: list[str], line: int, column: int) -> set[str]:
    """The keys already written in the mapping whose keys start at `column` around `line`."""
    found: set[str] = set()
    for step in (-1, 1):
        number = line + step
        while 0 <= number < len(lines):
            line_frames = frames(lines[number])
            if line_frames:
                found |= {f.key for f in line_frames if f.key is not None and f.column == column}
                if line_frames[0].column < column or (
                    line_frames[0].column == column and line_frames[0].key is None
                ):
                    break
            number += step
    if 0 <= line < len(lines):
        found |= {
            f.key
            for f in frames(lines[line])
            if f.key is not None and f.column == column and f.value
        }
    return found
