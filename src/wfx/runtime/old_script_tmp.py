"""Injection-safe interpolation of `${{ }}` into shell scripts.

A value never becomes script text. Each `${{ expr }}` in a `run` script is
replaced by a reference to a generated environment variable (`WFX_EXPR_1`, ...)
that holds the value; the reference is quoted to fit the shell quoting context it
sits in, so the value also arrives as exactly one word:

| context                         | replaced by                 |
|---------------------------------|-----------------------------|
| unquoted                        | `"${WFX_EXPR_1}"`           |
| inside `"..."`, unquoted heredoc| `${WFX_EXPR_1}`             |
| inside `'...'`                  | `'"${WFX_EXPR_1}"'`         |
| inside `$'...'`                 | `'"${WFX_EXPR_1}"$'`        |
| comment, quoted heredoc         | `${WFX_EXPR_1}` (inert)     |

Whatever the scanner concludes about the context, the worst a wrong guess can do
is leave the reference unexpanded or split; it can never execute the value.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from wfx.expr import Template

ENV_PREFIX = "WFX_EXPR_"


class _State(enum.Enum):
    NORMAL = "normal"
    SINGLE = "single"
    DOUBLE = "double"
    ANSI = "ansi"
    COMMENT = "comment"
    HEREDOC = "heredoc"
    QUOTED_HEREDOC = "quoted-heredoc"


_REFERENCE = {
    _State.NORMAL: '"${{{name}}}"',
    _State.DOUBLE: "${{{name}}}",
    _State.SINGLE: "'\"${{{name}}}\"'",
    _State.ANSI: "'\"${{{name}}}\"$'",
    _State.COMMENT: "${{{name}}}",
    _State.HEREDOC: "${{{name}}}",
    _State.QUOTED_HEREDOC: "${{{name}}}",
}

_WORD_START = " \t\n;|&()"


@dataclass
class _Heredoc:
    delimiter: str
    quoted: bool
    strip_tabs: bool


@dataclass
class _Scanner:
    """Follows the shell's quoting state through literal script text."""

    state: _State = _State.NORMAL
    previous: str = "\n"
    pending: list[_Heredoc] = field(default_factory=list)
    active: _Heredoc | None = None
    line: str = ""
    skip: int = 0
    outer: list[_State] = field(default_factory=list)
    depth: list[int] = field(default_factory=list)

    def feed(self, text: str) -> None:
        for index, char in enumerate(text):
            if self.skip:
                self.skip -= 1
            else:
                self.step(char, text, index)
            self.previous = char

    def step(self, char: str, text: str, index: int) -> None:
        handler: Callable[[str, str, int], None] = getattr(self, f"in_{self.state.name.lower()}")
        handler(char, text, index)

    def enter_substitution(self) -> None:
        """`$(` opens a command substitution: unquoted context until its `)`."""
        self.outer.append(self.state)
        self.depth.append(0)
        self.state = _State.NORMAL
        self.skip = 1

    def in_normal(self, char: str, text: str, index: int) -> None:
        following = text[index + 1 : index + 2]
        if char == "$" and following == "(":
            self.enter_substitution()
        elif char == "(" and self.depth:
            self.depth[-1] += 1
        elif char == ")" and self.depth:
            if self.depth[-1]:
                self.depth[-1] -= 1
            else:
                self.depth.pop()
                self.state = self.outer.pop()
        elif char == "\\":
            self.skip = 1
        elif char == "'":
            self.state = _State.SINGLE
        elif char == '"':
            self.state = _State.DOUBLE
        elif char == "$" and following == "'":
            self.state = _State.ANSI
            self.skip = 1
        elif char == "#" and self.previous in _WORD_START:
            self.state = _State.COMMENT
        elif char == "<" and following == "<" and text[index + 2 : index + 3] != "<":
            self.read_heredoc_operator(text, index + 2)
        elif char == "\n":
            self.end_of_line()

    def read_heredoc_operator(self, text: str, start: int) -> None:
        strip_tabs = text[start : start + 1] == "-"
        position = start + (1 if strip_tabs else 0)
        while position < len(text) and text[position] in " \t":
            position += 1
        word_end = position
        while word_end < len(text) and text[word_end] not in " \t\n;|&<>()":
            word_end += 1
        word = text[position:word_end]
        if not word:
            return
        quoted = any(q in word for q in "'\"\\")
        delimiter = word.replace("'", "").replace('"', "").replace("\\", "")
        self.pending.append(_Heredoc(delimiter, quoted, strip_tabs))
        self.skip = word_end - start + 1  # the second "<" and the word

    def end_of_line(self) -> None:
        if self.pending:
            self.active = self.pending.pop(0)
            self.state = _State.QUOTED_HEREDOC if self.active.quoted else _State.HEREDOC
            self.line = ""

    def in_single(self, char: str, text: str, index: int) -> None:
        if char == "'":
            self.state = _State.NORMAL

    def in_ansi(self, char: str, text: str, index: int) -> None:
        if char == "\\":
            self.skip = 1
        elif char == "'":
            self.state = _State.NORMAL

    def in_double(self, char: str, text: str, index: int) -> None:
        if char == "$" and text[index + 1 : index + 2] == "(":
            self.enter_substitution()
        elif char == "\\":
            self.skip = 1
        elif char == '"':
            self.state = _State.NORMAL

    def in_comment(self, char: str, text: str, index: int) -> None:
        if char == "\n":
            self.state = _State.NORMAL
            self.end_of_line()

    def in_heredoc(self, char: str, text: str, index: int) -> None:
        if char != "\n":
            self.line += char
            return
        assert self.active is not None
        line = self.line.lstrip("\t") if self.active.strip_tabs else self.line
        self.line = ""
        if line == self.active.delimiter:
            self.active = None
            self.state = _State.NORMAL
            self.end_of_line()

    in_quoted_heredoc = in_heredoc


@dataclass(frozen=True, slots=True)
class PreparedScript:
    """The script text to run and the variables that carry its interpolated values."""

    text: str
    env: dict[str, str]


def prepare_script(template: Template, render: Callable[[Any], str]) -> PreparedScript:
    """Replace each `${{ }}` of `template` by a quoted variable reference; `render` turns
    each expression into the text its variable holds."""
    scanner = _Scanner()
    pieces: list[str] = []
    env: dict[str, str] = {}
    for part in template.parts:
        if isinstance(part, str):
            scanner.feed(part)
            pieces.append(part)
            continue
        name = f"{ENV_PREFIX}{len(env) + 1}"
        env[name] = render(part)
        reference = _REFERENCE[scanner.state].format(name=name)
        if scanner.state in (_State.HEREDOC, _State.QUOTED_HEREDOC):
            scanner.line += reference
        pieces.append(reference)
    return PreparedScript("".join(pieces), env)


def scan_contexts(template: Template) -> list[tuple[Any, str, str]]:
    """For each `${{ }}` of a script: the expression, the quoting context it stands in
    (`normal`, `double`, `single`, `ansi`, `comment`, `heredoc`, `quoted-heredoc`), and
    the text of its line up to it (for linting)."""
    scanner = _Scanner()
    found: list[tuple[Any, str, str]] = []
    text = ""
    for part in template.parts:
        if isinstance(part, str):
            scanner.feed(part)
            text += part
            continue
        line = text[text.rfind("\n") + 1 :]
        found.append((part, scanner.state.value, line))
        text += "${{}}"
        if scanner.state in (_State.HEREDOC, _State.QUOTED_HEREDOC):
            scanner.line += "${}"
    return found
