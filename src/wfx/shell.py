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
| arithmetic (`$(( ))`, `(( ))`)  | `${WFX_EXPR_1}`             |
| comment, quoted heredoc         | `${WFX_EXPR_1}` (inert)     |

Whatever the scanner concludes about the quoting, the worst a wrong guess can do
is leave the reference unexpanded or split; it can never execute the value.

A variable does not protect a value that the shell itself *evaluates*: bash runs
`a[$(cmd)]` found in an arithmetic expression, an array subscript, a substring
offset, `let`, `declare -i`, a variable name (`read NAME`, `printf -v NAME`,
`[[ -v NAME ]]`) or an operand of `[[ … -eq … ]]`. The scanner also finds these
*evaluating contexts* (:data:`EVALUATING_CONTEXTS`), so it follows everything that
moves bash between them (`$( )`, backquotes, `${ }`, heredocs and here-strings, `case`
patterns, `<<` shifts). The compiler refuses a `${{ }}` in one unless its value is
proven to be a number (:func:`check_scripts`), and :func:`prepare_script` passes
nothing but an integer literal there.
"""

from __future__ import annotations

import enum
import functools
import re
import shlex
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from wfx.diagnostics import Diagnostic, error
from wfx.expr import Expression, Template
from wfx.expr.ast import Literal, NamedValue, Property
from wfx.model import InputType, Step, Workflow
from wfx.walk import all_actions, all_steps

ENV_PREFIX = "WFX_EXPR_"

#: what each evaluating context is called in diagnostics
EVALUATING_CONTEXTS = {
    "arithmetic": "an arithmetic expression (`$(( ))`, `$[ ]`, `(( ))`, `for (( ))`)",
    "subscript": "an array subscript (`${a[…]}`, `a[…]=`)",
    "substring": "a substring offset or length (`${v:…:…}`)",
    "let": "a `let` argument",
    "declare": "a `declare`/`typeset`/`local` name, or its value with `-i` or `-n`",
    "integer-variable": "an assignment to a variable declared `-i` or `-n`",
    "name": "a variable name (`read NAME`, `printf -v NAME`, `unset NAME`, `-v NAME`)",
    "test-operand": "an operand of an arithmetic comparison (`[[ … -eq … ]]`)",
    "duplication": "the target of a `>&` redirection (`>&TARGET`)",
    "shell-variable": "an assignment to a variable bash expands as code (`PS4`, `BASH_ENV`,"
    " `OPTIND`, `RANDOM`…)",
    "compound": "a quoted `( … )` value of `declare`/`local`, which bash parses again as an"
    " array assignment",
}

#: where a value is code only when it starts with `(`: the value of `declare NAME=` (or
#: `local`, `typeset`, and `export`/`readonly -a`), which bash parses as an array
#: assignment when NAME is an array; any other value is admitted and stays data
ARRAY_VALUE = "array-value"

#: variables whose value bash expands as code: for each command traced by `set -x` (`PS4`),
#: in each bash a step starts (`BASH_ENV`), in an interactive shell (`PS0`-`PS2`,
#: `PROMPT_COMMAND`), or as arithmetic when assigned (`OPTIND`, `RANDOM`, `SRANDOM`,
#: `HISTCMD`)
#: of those, the ones a shell expands when it finds them in its environment
ENVIRONMENT_EVALUATED = frozenset({"PS0", "PS1", "PS2", "PS4", "PROMPT_COMMAND", "BASH_ENV"})

EVALUATED_VARIABLES = ENVIRONMENT_EVALUATED | {"OPTIND", "RANDOM", "SRANDOM", "HISTCMD"}

#: an integer literal: the only text wfx passes into an evaluating context
INTEGER_LITERAL = re.compile(r"-?[0-9]{1,18}")

#: shells whose quoting the scanner follows (by program name)
POSIX_SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash"})

#: shells whose `test`/`[` also evaluate the operands of `-eq`… as arithmetic
_ARITHMETIC_TEST_SHELLS = frozenset({"zsh", "ksh", "ksh93", "mksh"})

SCRIPT_PLACEHOLDER = "{0}"

#: the shell of a `run` step that names none (the plan shows it)
DEFAULT_SHELL = "bash -eo pipefail"

#: the shell used in its place where there is no bash
FALLBACK_SHELL = "sh -e"


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
_BARE = "${{{name}}}"

_WORD_START = " \t\n;|&()"
#: runs of characters that change nothing in each state (the scanner skips them at once)
_PLAIN = {
    _State.NORMAL: re.compile(r"[^$()\\'\"#<>\n\[\]{};|&` \t=]+"),
    _State.DOUBLE: re.compile(r"[^$\\\"\[\]{}\n`]+"),
    _State.SINGLE: re.compile(r"[^'\n]+"),
    _State.ANSI: re.compile(r"[^\\'\n]+"),
    _State.COMMENT: re.compile(r"[^\n`]+"),
    _State.HEREDOC: re.compile(r"[^$\\\]})\n`]+"),
    _State.QUOTED_HEREDOC: re.compile(r"[^\n)`]+"),
}
_COMMAND_BREAK = ";|&()\n"
_PARAMETER = re.compile(r"\$\{[#!]?([A-Za-z_][A-Za-z0-9_]*|[0-9]+|[@*#?$!-])")
_ASSIGNED_ELEMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)?\[(?![\s\[\]])")
_CASE_WORD = re.compile(r"(?:case|esac)(?=[\s;&|)]|$)")
#: a redirection operator, alone (its target is the next word) or with its target
_REDIRECTION = re.compile(r"[0-9]*(?:<<<|<<-?|<>|>>|>\||<&|>&|&>>|&>|<|>)(.*)", re.S)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASSIGNMENT = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\+?=")
#: an assignment word, an array element's (`a[…]=`) too
_ASSIGNMENT_WORD = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?:\[.*?\])?\+?=", re.DOTALL)
_DECLARATIONS = frozenset({"declare", "typeset", "local", "export", "readonly"})
#: the declarations that assign an array variable's value as `( … )` without `-a`/`-A`
_ARRAY_DECLARATIONS = frozenset({"declare", "typeset", "local"})
_PREFIXES = frozenset({"if", "then", "else", "elif", "do", "while", "until", "!", "{", "time"})
_PREFIX_COMMANDS = frozenset({"builtin", "command"})
_ARITHMETIC_OPERATORS = frozenset({"-eq", "-ne", "-lt", "-le", "-gt", "-ge"})
_READ_OPTION_ARGUMENTS = frozenset("adinNptu")
_HOLE = "\x00"


@dataclass
class _Heredoc:
    delimiter: str
    quoted: bool
    strip_tabs: bool


@dataclass
class _Frame:
    """An open construct: `$( )`, `$(( ))`, `(( ))`, `$[ ]`, `${ }` or a subscript `[ ]`."""

    closer: str
    outer: _State | None  # the quoting state to restore at its end (None: it keeps the state)
    evaluating: str | None = None  # the evaluating context its text is in
    assignment: bool = False  # `a[…]`: a subscript only if `=` follows
    compound: bool = False  # `a=( … )`: part of the assignment word, not a command
    depth: int = 0  # nested openers of its closer (`(` in `$( )`, `[` in `[ ]`)
    parens: int = 0  # `(` open inside a `${ }` or `[ ]`
    cases: int = 0  # `case` commands open inside a `$( )`: a `)` ends a pattern, not it
    in_word: bool = False  # `$( )`, `$(( ))`, `<( )`, `a=( )`: its `)` does not end the word
    holes: list[int] = field(default_factory=list)

    @property
    def is_command(self) -> bool:
        """Whether its text is a command of its own (`$( )`, backquotes)."""
        return self.closer in (")", "`") and self.evaluating is None and not self.compound


@dataclass
class _Word:
    text: str = ""
    holes: list[tuple[int, int]] = field(default_factory=list)  # (hole, offset in text)


@dataclass
class _Command:
    """The words of the simple command being read, to judge builtins that evaluate them."""

    level: int
    words: list[_Word] = field(default_factory=list)
    current: _Word = field(default_factory=_Word)

    def end_word(self) -> None:
        if self.current.text:
            self.words.append(self.current)
        self.current = _Word()


@dataclass
class _Scanner:
    """Follows the shell's quoting state through literal script text, and the constructs
    and commands in which bash evaluates text as code."""

    arithmetic_test: bool = False
    commands_matter: bool = True  # False: no builtin that evaluates words, skip tracking words
    state: _State = _State.NORMAL
    previous: str = "\n"
    before_previous: str = "\n"  # the character before `previous` (before a `\` that ends a line)
    pending: list[_Heredoc] = field(default_factory=list)
    active: _Heredoc | None = None
    line: str = ""
    skip: int = 0
    escaped: bool = False  # the character skipped next is a backslash's: part of its word
    heredoc_depth: int = 0  # the frames open when the active heredoc's body began
    kept: int = 0  # of the characters skipped next, how many are part of the word
    closed_in_word: bool = False  # the last `)` closed a construct inside a word (`$( )#`)
    frames: list[_Frame] = field(default_factory=list)
    commands: list[_Command] = field(default_factory=lambda: [_Command(0)])
    evaluating: dict[int, str] = field(default_factory=dict)
    declared: set[str] = field(default_factory=set)  # declared `-i` or `-n`
    associative: set[str] = field(default_factory=set)  # declared `-A`

    def feed(self, text: str) -> None:
        index = 0
        while index < len(text):
            plain = None if self.skip else self.plain_run(text, index)
            if plain is not None:
                self.take_plain(plain)
                index += len(plain)
                continue
            char = text[index]
            continuation = bool(self.skip) and char == "\n" and self.previous == "\\"
            literal = bool(self.skip) and self.escaped  # `a\ #x` is one word to bash
            if self.skip:
                self.skip -= 1
                if self.escaped:  # `l\et` is `let` to bash: the word keeps the character
                    self.escaped = False
                    if self.commands_matter and self.state not in _UNTRACKED:
                        self.escape(char)
                elif self.kept:  # `<<EOF` stays one word: a redirection with its target
                    self.kept -= 1
                    if self.commands_matter and self.state not in _UNTRACKED:
                        self.commands[-1].current.text += char
                if char == "\n" and self.active is not None:
                    self.line = self.line.removesuffix("\\")  # a line continuation
            else:
                before, frames, command = self.state, len(self.frames), self.commands[-1]
                if self.active is not None and self.ends_heredoc(char, text, index):
                    before = _State.HEREDOC  # its end is no part of a command
                else:
                    self.step(char, text, index)
                if before is _State.COMMENT and self.state is not _State.COMMENT:
                    before = _State.NORMAL  # the line break ending a comment ends its command
                if self.commands_matter and before not in _UNTRACKED:
                    if len(self.frames) > frames:
                        command.current.text += char  # `$`, `` ` ``: in the word around
                    elif len(self.frames) < frames:
                        self.commands[-1].current.text += char  # `)`, `` ` ``: in it too
                    else:
                        self.track(char, before)
            if self.active is not None and char != "\n":
                self.line += char  # the heredoc line so far, to find its delimiter
            if continuation:  # bash removes `\` and the line break: what came before goes on
                self.previous = self.before_previous
            elif literal:
                self.before_previous, self.previous = self.previous, "_"
            else:
                self.before_previous, self.previous = self.previous, char
            index += 1

    def escape(self, char: str) -> None:
        """Add the character a backslash escapes to its word; a backslash and a line break
        (a line continuation) are both left out, as bash removes them."""
        word = self.commands[-1].current
        if char != "\n":
            word.text += char
        elif word.text.endswith("\\"):
            word.text = word.text[:-1]

    def plain_run(self, text: str, index: int) -> str | None:
        """The characters from `index` on that change no state (None: `text[index]` may)."""
        if self.state is _State.NORMAL and self.previous in _WORD_START:
            return None  # a word starts: it may be `a[…]=`
        if self.active is not None and self.state not in _HEREDOCS:
            return None  # in a heredoc's `$( )`: each `)` and backquote may end the heredoc
        found = _PLAIN[self.state].match(text, index)
        return found.group() if found else None

    def take_plain(self, run: str) -> None:
        if self.commands_matter and self.state not in _UNTRACKED:
            self.commands[-1].current.text += run
        if self.active is not None:
            self.line += run
        self.previous = run[-1]

    def step(self, char: str, text: str, index: int) -> None:
        _HANDLERS[self.state](self, char, text, index)

    # -- holes ------------------------------------------------------------------------------

    def hole(self, number: int) -> str:
        """Record `${{ }}` number `number` here; return the reference template for it."""
        reference = _REFERENCE[self.state]
        for frame in self.frames:
            if frame.evaluating is not None and not frame.assignment:
                self.evaluating.setdefault(number, frame.evaluating)
            elif frame.assignment:
                frame.holes.append(number)
        top = self.frames[-1] if self.frames else None
        if (
            self.state is _State.NORMAL
            and top is not None
            and top.evaluating
            and not top.assignment
        ):
            reference = _BARE
        if self.commands_matter and self.state not in _UNTRACKED:
            for command in self.commands:
                command.current.holes.append((number, len(command.current.text)))
            self.commands[-1].current.text += _HOLE
        return reference

    def finish(self) -> dict[int, str]:
        """The holes in evaluating contexts (number -> context), once all text is fed."""
        while len(self.commands) > 1:
            self.end_command(self.commands.pop())
        self.end_command(self.commands[0])
        return self.evaluating

    # -- frames -----------------------------------------------------------------------------

    def open(self, frame: _Frame) -> None:
        self.frames.append(frame)
        if frame.is_command:
            self.commands.append(_Command(len(self.frames)))

    def close(self, text: str, index: int) -> None:
        frame = self.frames.pop()
        self.closed_in_word = frame.in_word
        if frame.outer is not None:
            self.state = frame.outer
        if frame.is_command:
            self.end_command(self.commands.pop())
        if frame.assignment and _assigns(text, index + 1):
            for number in frame.holes:
                self.evaluating.setdefault(number, "subscript")
        elif self.subscript_then_substring(frame, text, index + 1):  # `${a[1]:…}`
            self.frames[-1].evaluating = "substring"

    def subscript_then_substring(self, frame: _Frame, text: str, position: int) -> bool:
        parameter = self.frames[-1] if self.frames else None
        return (
            frame.closer == "]"
            and parameter is not None
            and parameter.closer == "}"
            and _is_substring(text, position)
        )

    def enter_substitution(self, text: str, index: int) -> None:
        """`$(` opens a command substitution (`$((` an arithmetic expansion): unquoted
        context until its `)`."""
        arithmetic = text[index + 2 : index + 3] == "("
        self.open(_Frame(")", self.state, "arithmetic" if arithmetic else None, in_word=True))
        self.state = _State.NORMAL
        self.skip = 1

    def expansion(self, char: str, text: str, index: int) -> bool:
        """Handle the `$…` openers and the closers of frames that keep the quoting state;
        True if `char` was one of them."""
        following = text[index + 1 : index + 2]
        top = self.frames[-1] if self.frames else None
        if char == "`" and top is not None and top.closer == "`" and self.state is _State.NORMAL:
            self.close(text, index)
        elif char == "`":
            self.open(_Frame("`", self.state))  # a command substitution, in any quoting
            self.state = _State.NORMAL
        elif char == "$" and following == "$":
            self.skip = self.kept = 1  # `$$`, the process id: `$${` is it and a `{`
        elif char == "$" and following == "(":
            self.enter_substitution(text, index)
        elif char == "$" and following == "[":
            self.open(_Frame("]", None, "arithmetic"))
            self.skip = 1
        elif char == "$" and following == "{":
            self.open_parameter(text, index)
        elif top is None or top.outer is not None:
            return False
        elif char == "[" and top.closer == "]":
            top.depth += 1
        elif char == "]" and top.closer == "]":
            if top.depth:
                top.depth -= 1
            else:
                self.close(text, index)
        elif char == "}" and top.closer == "}":
            self.close(text, index)
        else:
            return False
        return True

    def open_parameter(self, text: str, index: int) -> None:
        """`${`: a parameter expansion; its subscript or substring offset is arithmetic."""
        match = _PARAMETER.match(text, index)
        end = match.end() if match else index + 2
        frame = _Frame("}", None)
        self.open(frame)
        if match and text[end : end + 1] == "[":
            self.open(_Frame("]", None, self.subscript_context(match.group(1))))
            end += 1
        elif match and _is_substring(text, end):
            frame.evaluating = "substring"
            end += 1
        self.skip = self.kept = end - index - 1  # `{name`, kept in the word

    # -- states -----------------------------------------------------------------------------

    def in_normal(self, char: str, text: str, index: int) -> None:
        following = text[index + 1 : index + 2]
        top = self.frames[-1] if self.frames else None
        if self.expansion(char, text, index):
            return
        arithmetic_command = following == "(" and self.previous not in "<>="
        if char == "(" and arithmetic_command and (top is None or top.closer in ")`"):
            self.open(_Frame(")", self.state, "arithmetic"))
            return
        if char == "(" and self.previous == "=":
            self.open(_Frame(")", self.state, compound=True, in_word=True))  # `a=( … )`
            return
        if char == "(" and self.previous in "<>" and (top is None or top.outer is not None):
            self.open(_Frame(")", self.state, in_word=True))  # `<( … )`: commands, in a word
            return
        if char == ")":
            self.closed_in_word = False
        if char == "(" and top is not None and top.closer == ")":
            top.depth += 1
        elif char == "(" and top is not None and top.outer is None:
            top.parens += 1
        elif char == ")" and top is not None:
            self.close_parenthesis(text, index)
        elif char == "\\":
            self.skip, self.escaped = 1, True
        elif char == "'":
            self.state = _State.SINGLE
        elif char == '"':
            self.state = _State.DOUBLE
        elif char == "$" and following == "'":
            self.state = _State.ANSI
            self.skip, self.escaped = 1, True  # the quote, kept in the word
        elif char == "#" and self.starts_comment(top):
            self.state = _State.COMMENT
        elif char == "<" and following == "<" and text[index + 2 : index + 3] == "<":
            self.skip = 2  # a here-string
        elif char == "<" and following == "<" and not (top is not None and top.evaluating):
            self.read_heredoc_operator(text, index + 2)  # (in arithmetic, `<<` is a shift)
        elif char == "\n":
            self.end_of_line()
        elif self.at_word_start() and not self.case_word(text, index):
            self.open_assigned_element(text, index)

    def starts_comment(self, top: _Frame | None) -> bool:
        """Whether a `#` here starts a comment: at the start of a word, not just after the
        `)` of `$( )` and the like (`$(cmd)#x` is one word, `(cmd)#x` ends in a comment),
        and not inside `${ }`, a subscript or arithmetic, where it is text."""
        return self.at_word_start() and (top is None or top.is_command or top.compound)

    def at_word_start(self) -> bool:
        """Whether a word starts here: after a blank or an operator, not just after the `)`
        of `$( )` and the like (`$(cmd)let[…` goes on with the same word)."""
        return self.previous in _WORD_START and not (self.previous == ")" and self.closed_in_word)

    def case_word(self, text: str, index: int) -> bool:
        """Count `case` … `esac` inside a `$( )`, whose patterns end with a bare `)`."""
        top = self.frames[-1] if self.frames else None
        word = _CASE_WORD.match(text, index)
        if word is None or top is None or top.closer != ")" or top.evaluating:
            return False
        top.cases = top.cases + 1 if word.group() == "case" else max(0, top.cases - 1)
        return True

    def close_parenthesis(self, text: str, index: int) -> None:
        if self.frames and self.frames[-1].outer is None and self.frames[-1].parens:
            self.frames[-1].parens -= 1
            return
        while self.frames and self.frames[-1].outer is None:
            self.frames.pop()  # a `${` or `[` left open by a syntax error
        top = self.frames[-1] if self.frames else None
        if top is None or top.closer != ")":
            return
        if top.depth:
            top.depth -= 1
        elif not top.cases:
            self.close(text, index)

    def subscript_context(self, name: str | None) -> str | None:
        """An indexed array's subscript is arithmetic; an associative array's is a word."""
        return None if name in self.associative else "subscript"

    def open_assigned_element(self, text: str, index: int) -> None:
        """`a[…]=` (or `[…]=` inside `a=( )`): the subscript is arithmetic if `=` follows."""
        match = _ASSIGNED_ELEMENT.match(text, index)
        top = self.frames[-1] if self.frames else None
        if match is None or not ((top is not None and top.compound) or self.assignable(match)):
            return
        context = self.subscript_context(match.group(1))
        self.open(_Frame("]", None, context, assignment=context is not None))
        self.skip = self.kept = match.end() - index - 1  # the rest of `a[`, in its word

    def assignable(self, element: re.Match[str]) -> bool:
        """Whether `a[` starts an assignment word to bash, which then reads its subscript to
        the `]` whatever it holds: only before the command's name (`echo a[;let …` and
        `declare a[;let …` are two commands)."""
        if element.group(1) is None:
            return False  # a bare `[…]=` is an element only inside `a=( )`
        return all(
            _ASSIGNMENT_WORD.match(word.text) or _unquoted(word.text) in _PREFIXES
            for word in self.commands[-1].words
        )

    def read_heredoc_operator(self, text: str, start: int) -> None:
        strip_tabs = text[start : start + 1] == "-"
        position = start + (1 if strip_tabs else 0)
        while position < len(text) and text[position] in " \t":
            position += 1
        word_end = _word_end(text, position)
        word = text[position:word_end].replace("\\\n", "")  # (a line continuation)
        if not word:
            return
        quoted = any(q in word for q in "'\"\\")
        if self.active is None:  # (inside a heredoc's body, its lines are the body's)
            self.pending.append(_Heredoc(_unquoted(word), quoted, strip_tabs))
        self.skip = self.kept = word_end - start + 1  # the second "<" and the word

    def end_of_line(self) -> None:
        if self.pending and self.active is None:
            self.active = self.pending.pop(0)
            self.state = _State.QUOTED_HEREDOC if self.active.quoted else _State.HEREDOC
            self.line = ""
            self.heredoc_depth = len(self.frames)

    def in_single(self, char: str, text: str, index: int) -> None:
        if char == "'":
            self.state = _State.NORMAL

    def in_ansi(self, char: str, text: str, index: int) -> None:
        if char == "\\":
            self.skip, self.escaped = 1, True
        elif char == "'":
            self.state = _State.NORMAL

    def in_double(self, char: str, text: str, index: int) -> None:
        if self.expansion(char, text, index):
            return
        if char == "\\":
            self.skip, self.escaped = 1, True
        elif char == '"':
            self.state = _State.NORMAL

    def in_comment(self, char: str, text: str, index: int) -> None:
        if char == "\n":
            self.state = _State.NORMAL
            self.end_of_line()
        elif char == "`" and self.in_backquotes() and self.previous != "\\":
            self.state = _State.NORMAL  # inside backquotes bash finds their end first
            self.in_normal(char, text, index)

    def in_backquotes(self) -> bool:
        return bool(self.frames) and self.frames[-1].closer == "`"

    def in_heredoc(self, char: str, text: str, index: int) -> None:
        if self.state is _State.QUOTED_HEREDOC or char == "\n":
            return  # (where its lines end is the business of ends_heredoc)
        if char == "\\":
            self.skip = 1  # `\$`, `` \` ``, and a line continuation
        else:
            self.expansion(char, text, index)

    def heredoc_line(self) -> str:
        """The heredoc's line so far, its leading tabs left out for `<<-`."""
        assert self.active is not None
        return self.line.lstrip("\t") if self.active.strip_tabs else self.line

    def ends_heredoc(self, char: str, text: str, index: int) -> bool:
        """End the active heredoc where bash does, whatever its body opened: at a line of
        its delimiter; inside `$( )`, at a line of the delimiter then `)` (bash warns, and
        reads on after the `)`); inside backquotes, at an unescaped backquote (bash finds it
        first). True if `char` ended it."""
        assert self.active is not None
        line = self.heredoc_line()
        if char == "\n":
            self.line = ""
            if line != self.active.delimiter:
                return False
            self.close_heredoc()
            self.end_of_line()
            return True
        around = self.frames[: self.heredoc_depth]
        if char == "`":
            ends = bool(around) and around[-1].closer == "`" and self.previous != "\\"
        else:
            ends = (
                char == ")"
                and line.rstrip(" \t") == self.active.delimiter
                and any(frame.is_command and frame.closer == ")" for frame in around)
            )
        if ends:
            self.close_heredoc()
            self.in_normal(char, text, index)  # the `)` or backquote closes its frame
        return ends

    def close_heredoc(self) -> None:
        """Leave the active heredoc, and whatever its body left open."""
        while len(self.frames) > self.heredoc_depth:
            if self.frames.pop().is_command:
                self.end_command(self.commands.pop())
        command = self.commands[-1]  # what the body's open frames added to it ends here too
        self.end_command(command)
        self.commands[-1] = _Command(command.level)
        self.active, self.state, self.line = None, _State.NORMAL, ""

    in_quoted_heredoc = in_heredoc

    # -- commands ---------------------------------------------------------------------------

    def track(self, char: str, before: _State) -> None:
        """Add `char` to the words of the command being read; judge the command at its end."""
        command = self.commands[-1]
        at_level = len(self.frames) == command.level and before is _State.NORMAL
        if at_level and self.state is _State.NORMAL and char in " \t":
            command.end_word()
        elif at_level and self.breaks_command(char) and self.state is not _State.COMMENT:
            if not self.conditional_continues(command, char):
                self.end_command(command)
                self.commands[-1] = _Command(command.level)
            else:
                command.end_word()
        elif before is not _State.NORMAL or self.state is not _State.COMMENT:
            if at_level and char in "<>" and self.starts_redirection(command.current.text):
                command.end_word()  # `$2>&1` is `$2` and a redirection
            command.current.text += char

    def starts_redirection(self, word: str) -> bool:
        """Whether a `<` or `>` after `word` starts a redirection word of its own (not after
        a descriptor's number, `2>`, or another operator character, `>>`, `&>`)."""
        return bool(word) and not word.isdigit() and word[-1] not in "<>&|"

    def breaks_command(self, char: str) -> bool:
        """Whether `char` ends the command, as an operator (`>&`, `<&` and `>|` are
        redirections: `2>&1 let …` is one command)."""
        return char in _COMMAND_BREAK and not (char in "&|" and self.previous in "<>")

    def conditional_continues(self, command: _Command, char: str) -> bool:
        """Inside `[[ … ]]`, `&&`, `||`, `(`, `)` and newlines do not end the command."""
        if command.current.text != "[[" and all(w.text != "[[" for w in command.words):
            return False
        words = [w.text for w in (*command.words, command.current) if w.text]
        name = _command_name(words)
        closed = any(word[:2] == "]]" and word[2:3] in ("", "<", ">") for word in words)
        return name == "[[" and not closed  # (`]]>file`: `]]` then a redirection)

    def end_command(self, command: _Command) -> None:
        command.end_word()
        for target in _duplicated_targets(command.words):
            self.mark(target, "duplication")
        words = _without_redirections(command.words)
        start, options = 0, False
        while start < len(words):
            text = words[start].text
            assignment = _ASSIGNMENT_WORD.match(text)
            plain = _unquoted(text)
            if assignment is not None:
                if assignment.group(1) in self.declared:
                    self.mark(words[start], "integer-variable", after=assignment.end())
                if assignment.group(1) in EVALUATED_VARIABLES:
                    self.mark(words[start], "shell-variable", after=assignment.end())
                start += 1
            elif plain in _PREFIXES or plain in _PREFIX_COMMANDS:
                start, options = start + 1, True  # `command -p let`, `time -p let`
            elif not _SUBSTITUTED.sub("", text) and start + 1 < len(words):
                start += 1  # `$2 let …`: an expansion that may be empty, then the name
            elif options and plain.startswith("-"):
                start += 1
            else:
                break
        if start < len(words):
            raw = words[start].text
            self.judge_named(_unquoted(raw), words[start + 1 :])
            if _SUBSTITUTED.search(raw):  # `l$(:)et`, `l${x}et`, `l$x""et`: `let` when empty
                self.judge_named(_unquoted(_SUBSTITUTED.sub("", raw)), words[start + 1 :])
        command.words = []

    def judge_named(self, name: str, arguments: list[_Word]) -> None:
        """Judge a command by its name as bash reads it; a name that brace expansion
        makes into several words (`l{e,}t` is `let lt`) by each way it may start."""
        names = _brace_words(name) if "{" in name else [name]
        for expanded in names:
            if expanded in _PREFIXES or expanded in _PREFIX_COMMANDS or expanded[:1] == "-":
                continue  # `{command,let}` is `command let`
            self.judge(expanded, arguments)
            return

    def judge(self, name: str, arguments: list[_Word]) -> None:
        if name == "let":
            for word in arguments:
                self.mark(word, "let")
        elif name in _DECLARATIONS:
            self.judge_declaration(name, arguments)
        elif name == "unset":
            for word in arguments:
                if not _unquoted(word.text).startswith("-") or word.holes:
                    self.mark(word, "name")
        elif name == "env":
            self.judge_environment(arguments)
        elif name == "read":
            for word in _read_names(arguments):
                self.mark(word, "name")
        elif name == "printf":
            self.judge_printf(arguments)
        elif name in ("[[", "[", "test"):
            self.judge_test(arguments, arithmetic=name == "[[" or self.arithmetic_test)

    def judge_declaration(self, builtin: str, arguments: list[_Word]) -> None:
        options = ""
        for word in arguments:
            if _unquoted(word.text).startswith(("-", "+")) and not word.holes:
                options += _unquoted(word.text)
                continue
            equals = word.text.find("=")
            self.mark(word, "declare", before=len(word.text) if equals < 0 else equals)
            name = _IDENTIFIER.match(word.text)
            if "i" in options or "n" in options:
                self.mark(word, "declare", after=max(equals, 0))
                if name is not None:
                    self.declared.add(name.group())
            if "A" in options and name is not None:
                self.associative.add(name.group())
            if equals < 0:
                continue
            if _unquoted(word.text[:equals]).rstrip("+") in EVALUATED_VARIABLES:
                self.mark(word, "shell-variable", after=equals)
            if builtin in _ARRAY_DECLARATIONS or "a" in options or "A" in options:
                self.judge_array_value(word, equals)

    def judge_array_value(self, word: _Word, equals: int) -> None:
        """The value of `NAME=…` in a declaration that may assign an array: bash parses it
        again as `( … )` when it starts with `(` (after quote removal; an unquoted `(` is
        the parser's own compound assignment, whose words expand once)."""
        value = word.text[equals + 1 :]
        if value.startswith("(") and _ASSIGNMENT.match(word.text):
            return
        if _unquoted(value).startswith("("):
            self.mark(word, "compound", after=equals)
            return
        for number, offset in word.holes:
            if offset > equals and not _unquoted(word.text[equals + 1 : offset]).strip(_HOLE):
                self.evaluating.setdefault(number, ARRAY_VALUE)  # only holes before it

    def judge_environment(self, arguments: list[_Word]) -> None:
        """`env NAME=value … command`: the variables it sets for the command."""
        for word in arguments:
            assignment = _ASSIGNMENT.match(_unquoted(word.text))
            if assignment is not None and assignment.group(1) in EVALUATED_VARIABLES:
                self.mark(word, "shell-variable")

    def judge_printf(self, arguments: list[_Word]) -> None:
        for position, word in enumerate(arguments):
            option = _unquoted(word.text)
            if option == "-v" and position + 1 < len(arguments):
                self.mark(arguments[position + 1], "name")
            elif option.startswith("-v"):
                self.mark(word, "name")
            elif not option.startswith("-"):
                return

    def judge_test(self, arguments: list[_Word], *, arithmetic: bool) -> None:
        for position, word in enumerate(arguments):
            neighbours: list[_Word] = []
            operator = _unquoted(word.text)
            if operator == "-v":
                neighbours = arguments[position + 1 : position + 2]
                context = "name"
            elif arithmetic and operator in _ARITHMETIC_OPERATORS:
                neighbours = (
                    arguments[max(0, position - 1) : position]
                    + arguments[position + 1 : position + 2]
                )
                context = "test-operand"
            for neighbour in neighbours:
                self.mark(neighbour, context)

    def mark(self, word: _Word, context: str, *, after: int = 0, before: int | None = None) -> None:
        for number, offset in word.holes:
            if offset >= after and (before is None or offset < before):
                self.evaluating.setdefault(number, context)


_HANDLERS: dict[_State, Callable[[_Scanner, str, str, int], None]] = {
    state: getattr(_Scanner, f"in_{state.name.lower()}") for state in _State
}
_HEREDOCS = frozenset({_State.HEREDOC, _State.QUOTED_HEREDOC})
_UNTRACKED = _HEREDOCS | {_State.COMMENT}


def _assigns(text: str, position: int) -> bool:
    return text.startswith("=", position) or text.startswith("+=", position)


def _is_substring(text: str, position: int) -> bool:
    """`:` at `position` starts a substring offset (`${v:1}`, `${v: -1}`), not `:-` etc."""
    return text[position : position + 1] == ":" and text[position + 1 : position + 2] not in (
        "-",
        "=",
        "?",
        "+",
    )


def _unquoted(word: str) -> str:
    """`word` as bash reads it once it removes the quotes: `'…'`, `"…"`, `$"…"`, `$'…'`
    with its escapes decoded, and backslashes (`l\\et`, `'let'`, `$'l\\x65t'` all name
    `let`). Expansions are left as they are. Runs without quoting are copied whole (a
    script's whole text goes through here before it is scanned)."""
    out: list[str] = []
    index, size = 0, len(word)
    while index < size:
        found = _QUOTING.search(word, index)
        if found is None:
            out.append(word[index:])
            break
        out.append(word[index : found.start()])
        index = found.start()
        char, following = word[index], word[index + 1 : index + 2]
        if char == "\\":
            out.append(following.replace("\n", ""))
            index += 2
        elif char == "'":
            end = word.find("'", index + 1)
            end = size if end < 0 else end
            out.append(word[index + 1 : end])
            index = end + 1
        elif char == "$" and following == "'":
            decoded, index = _ansi_c(word, index + 2)
            out.append(decoded)
        elif char == "$":
            out.append("" if following == '"' else "$")  # `$"…"`: quoted as `"…"`
            index += 1
        else:  # `"…"`: a backslash escapes only `"`, `\\`, `$` and `` ` `` there
            index = _double_quoted(word, index + 1, out)
    return "".join(out)


#: where quoting may start: what `_unquoted` must look at character by character
_QUOTING = re.compile(r"[\\'\"$]")

#: inside double quotes, what ends a run copied whole
_DOUBLE_STOP = re.compile(r'[\\"]')


def _double_quoted(word: str, index: int, out: list[str]) -> int:
    """Append the text of the `"…"` whose body starts at `index`; where it ends."""
    size = len(word)
    while index < size:
        found = _DOUBLE_STOP.search(word, index)
        if found is None:
            out.append(word[index:])
            return size
        out.append(word[index : found.start()])
        index = found.start()
        if word[index] == '"':
            return index + 1
        following = word[index + 1 : index + 2]
        out.append(following if following in ('"', "\\", "$", "`") else "\\" + following)
        index += 2
    return index


#: bash's `$'…'` escapes of one character
_ANSI_ESCAPES = {
    **dict(zip("abefnrtv", "\a\b\x1b\f\n\r\t\v", strict=True)),
    **{"E": "\x1b", "\\": "\\", "'": "'", '"': '"', "?": "?"},
}

#: a `$'…'` escape bash decodes: octal, hex, unicode, control, or one character
_ANSI_ESCAPE = re.compile(
    r"\\(?:([0-7]{1,3})|x([0-9A-Fa-f]{1,2})|u([0-9A-Fa-f]{1,4})|U([0-9A-Fa-f]{1,8})|c(.)|(.))",
    re.DOTALL,
)


def _ansi_c(word: str, index: int) -> tuple[str, int]:
    """The text of the `$'…'` whose body starts at `index`, decoded, and where it ends."""
    out: list[str] = []
    size = len(word)
    while index < size and word[index] != "'":
        escape = _ANSI_ESCAPE.match(word, index)
        if escape is None:
            out.append(word[index])
            index += 1
            continue
        octal, hexa, short, long, control, other = escape.groups()
        number = next(
            (int(v, b) for v, b in ((octal, 8), (hexa, 16), (short, 16), (long, 16)) if v), None
        )
        if number is not None:
            out.append(chr(number) if number < 0x110000 else "")
        elif control is not None:
            out.append(chr(ord(control) & 0x1F))
        else:
            out.append(_ANSI_ESCAPES.get(other, "\\" + other))
        index = escape.end()
    return "".join(out), index + 1


#: an innermost `{…}` of brace expansion
_BRACE = re.compile(r"\{([^{}]*)\}")

#: a `{x..y}` sequence of numbers or letters (with an optional step)
_SEQUENCE = re.compile(r"(-?\d+|[A-Za-z])\.\.(-?\d+|[A-Za-z])(?:\.\.-?\d+)?")

#: the most words a brace expansion is followed into (a longer one is cut short)
_MOST_BRACE_WORDS = 64


def _brace_words(text: str) -> list[str]:
    """The words bash's brace expansion makes of `text`, empty ones left out (`{let,}` is
    `let`), as many as _MOST_BRACE_WORDS; `text` itself when it has none to expand."""
    match = _BRACE.search(text)
    if match is None:
        return [text]
    body = match.group(1)
    sequence = _SEQUENCE.fullmatch(body)
    if "," in body:
        parts = body.split(",")
    elif sequence is not None:
        parts = _sequence(sequence.group(1), sequence.group(2))
    else:  # `{x}`: no expansion here, and none can start inside it
        return [text]
    found: list[str] = []
    for part in parts:
        found += filter(None, _brace_words(text[: match.start()] + part + text[match.end() :]))
        if len(found) >= _MOST_BRACE_WORDS:  # enough: `{a,b}` thirty times is 2**30 words
            return found[:_MOST_BRACE_WORDS]
    return found or [text]


def _sequence(first: str, last: str) -> list[str]:
    """The values of `{first..last}`, as many as _MOST_BRACE_WORDS."""
    numbers = first.lstrip("-").isdigit() and last.lstrip("-").isdigit()
    if not numbers and not (first.isalpha() and last.isalpha()):
        return [f"{first}..{last}"]
    low, high = (int(first), int(last)) if numbers else (ord(first), ord(last))
    step = 1 if high >= low else -1
    values = range(low, high + step, step)[:_MOST_BRACE_WORDS]
    return [str(n) if numbers else chr(n) for n in values]


#: a parameter expansion (`${…}`, `$name`, `$@`), which may be empty
_EXPANDED_PARAMETER = re.compile(r"\$\{[^{}]*\}|\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?!$-])")

#: what an expansion that may be empty leaves of itself in the word around it: `$)` of a
#: `$( )` (its text is a command of its own), two backquotes, or a parameter expansion
_SUBSTITUTED = re.compile(r"\$\)|``|" + _EXPANDED_PARAMETER.pattern)


def _word_end(text: str, index: int) -> int:
    """Where the shell word starting at `index` ends: at a blank or an operator character
    outside quotes and expansions (`"E O F"`, `E\\ O\\ F`, `$(echo a b)` and `>(cat)` are
    one word each)."""
    size = len(text)
    if text[index : index + 2] in ("<(", ">("):
        index = _closing(text, index + 1, "(", ")")
    while index < size and text[index] not in " \t\n;|&<>()":
        char, following = text[index], text[index + 1 : index + 2]
        if char == "\\":
            index += 2
        elif char == "'" or (char == "$" and following == "'"):
            quoted = _ANSI_QUOTED.match(text, index) if char == "$" else _SINGLE.match(text, index)
            index = quoted.end() if quoted else size
        elif char == '"':
            quoted = _DOUBLE.match(text, index)
            index = quoted.end() if quoted else size
        elif char == "$" and following == "(":
            index = _closing(text, index + 1, "(", ")")
        elif char == "$" and following == "{":  # only `${` nests in `${ }`
            index = _closing(text.replace("${", "$\x01"), index + 1, "\x01", "}")
        elif char == "`":
            closing = text.find("`", index + 1)
            index = size if closing < 0 else closing + 1
        else:
            index += 1
    return min(index, size)


def _closing(text: str, index: int, opener: str, closer: str) -> int:
    """Just after the `closer` matching the `opener` at `index` (the end if none)."""
    depth = 0
    for position in range(index, len(text)):
        if text[position] == opener:
            depth += 1
        elif text[position] == closer:
            depth -= 1
            if depth == 0:
                return position + 1
    return len(text)


#: a `'…'` string
_SINGLE = re.compile(r"'[^']*'")

#: a `"…"` string (a backslash escapes the character after it)
_DOUBLE = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)


def _command_name(words: list[str]) -> str | None:
    for word in words:
        plain = _unquoted(word)
        if (
            plain not in _PREFIXES
            and plain not in _PREFIX_COMMANDS
            and not _ASSIGNMENT_WORD.match(word)
        ):
            return plain
    return None


def _duplicated_targets(words: list[_Word]) -> Iterable[_Word]:
    """The targets of `>&` redirections of the standard output (`>&`, `1>&`): bash
    evaluates a target that is not a number as arithmetic (`>&a[$(cmd)]` runs `cmd`)."""
    for position, word in enumerate(words):
        redirection = _REDIRECTION.fullmatch(word.text)
        if redirection is None or not word.text.startswith((">&", "1>&")):
            continue
        if redirection.group(1):
            yield word
        elif position + 1 < len(words):
            yield words[position + 1]


def _without_redirections(words: list[_Word]) -> list[_Word]:
    """The words of a command with its redirections (`< FILE`, `2>/dev/null`…) left out."""
    kept: list[_Word] = []
    target = False
    for word in words:
        redirection = _REDIRECTION.fullmatch(word.text)
        if target:
            target = False
        elif redirection is not None:
            target = not redirection.group(1)
        else:
            kept.append(word)
    return kept


def _read_names(arguments: list[_Word]) -> Iterable[_Word]:
    """The words of a `read` command that name variables (not options or their values)."""
    takes_value = False
    for word in arguments:
        if takes_value:
            takes_value = False
        elif (
            (option := _unquoted(word.text)).startswith("-") and len(option) > 1 and not word.holes
        ):
            takes_value = option[-1] in _READ_OPTION_ARGUMENTS
        else:
            yield word


#: text without which no builtin can evaluate a word (`[` for `[[`, `[` and subscripts)
_COMMAND_TRIGGERS = re.compile(
    r"\[|\b(?:let|declare|typeset|local|export|readonly|read|printf|test|unset)\b"
    rf"|\b(?:{'|'.join(sorted(EVALUATED_VARIABLES))})\+?=|>&"
    r"|\{[^{}]*(?:,|\.\.)[^{}]*\}"  # a brace expansion may spell any of them: `l{e,}t`
)
#: text without which a script has no evaluating context at all
_EVALUATING_TRIGGERS = re.compile(r"\(\(|\$\[|\$\{|" + _COMMAND_TRIGGERS.pattern)


def _literal_text(template: Template) -> str:
    """The script's own text with every quote and backslash left out and every `$'…'`
    decoded, wherever it stands: a builtin's name spelled through them (`l\\et`, `'let'`,
    `l""et`, `$'l\\x65t'`) is still its name to bash, and to the checks that decide
    whether to scan at all. Quotes are not followed (a `$( )` inside double quotes starts
    its own quoting), so this finds every name bash could read, and more."""
    text = "".join(part for part in template.parts if isinstance(part, str))
    text = _ANSI_QUOTED.sub(lambda quoted: _ansi_c(quoted.group(), 2)[0], text)
    text = text.replace("\\\n", "").replace('$"', '"')
    if "$" in text or "`" in text:  # `l$(:)et`, `l$x""et` may be `let`: the text without them
        versions = [text, _EXPANDED_PARAMETER.sub("", text)]  # `$(l${x}et)` holds `let`
        while (inner := _INNERMOST_SUBSTITUTION.sub("", versions[-1])) != versions[-1]:
            versions.append(inner)  # each level of nesting left out in turn: `$(l$(:)et)`
        text = "\n".join(versions)
    return text.translate(_QUOTE_CHARACTERS)


#: a `$'…'` string, its escapes undecoded
_ANSI_QUOTED = re.compile(r"\$'(?:[^'\\]|\\.)*'", re.DOTALL)

#: a `$( )` or `` ` ` `` with no other inside it (its text may print nothing)
_INNERMOST_SUBSTITUTION = re.compile(r"\$\([^()`]*\)|`[^`]*`")

#: what `_literal_text` leaves out
_QUOTE_CHARACTERS = str.maketrans("", "", "\\'\"")


def _scanner_for(template: Template, shell: str | None) -> _Scanner:
    return _Scanner(
        arithmetic_test=shell_program(shell) in _ARITHMETIC_TEST_SHELLS,
        commands_matter=_COMMAND_TRIGGERS.search(_literal_text(template)) is not None,
    )


@dataclass(frozen=True, slots=True)
class PreparedScript:
    """The script text to run and the variables that carry its interpolated values."""

    text: str
    env: dict[str, str]


class EvaluatedValueError(ValueError):
    """A value bound for a context the shell evaluates is not an integer literal."""


def prepare_script(
    template: Template, render: Callable[[Any], str], shell: str | None = None
) -> PreparedScript:
    """Replace each `${{ }}` of `template` by a quoted variable reference; `render` turns
    each expression into the text its variable holds.

    A value bound for an evaluating context must render as an integer literal, else
    :class:`EvaluatedValueError` (the compiler admits only expressions proven numeric there).
    """
    if template.is_literal():  # nothing to replace, so nothing for the scanner to find
        return PreparedScript("".join(p for p in template.parts if isinstance(p, str)), {})
    text, contexts = _layout(template, shell)
    values = [(part, render(part)) for part in template.expressions()]
    for number, context in contexts:
        expression, value = values[number]
        if context == ARRAY_VALUE and value.startswith("("):
            raise EvaluatedValueError(
                f"`${{{{ {expression.text.strip()} }}}}` starts the value of a declaration"
                " (`declare`, `local`, `typeset`, `-a`), which bash parses as an array"
                f" assignment `( … )` evaluating its words as code; its value {value[:40]!r}"
                " starts with `(`"
            )
        if context != ARRAY_VALUE and not INTEGER_LITERAL.fullmatch(value):
            raise EvaluatedValueError(
                f"`${{{{ {expression.text.strip()} }}}}` stands in {EVALUATING_CONTEXTS[context]},"
                f" which bash evaluates as code; its value {value[:40]!r} is not an integer"
            )
    env = {f"{ENV_PREFIX}{i + 1}": value for i, (_, value) in enumerate(values)}
    return PreparedScript(text, env)


@functools.lru_cache(maxsize=512)  # a step's every attempt, and every instance of a fan-out
def _layout(template: Template, shell: str | None) -> tuple[str, tuple[tuple[int, str], ...]]:
    """The script text with each `${{ }}` replaced by its variable reference, and the
    evaluating context of each `${{ }}` that stands in one: what the scan finds depends on
    the text alone, never on the values."""
    scanner = _scanner_for(template, shell)
    pieces: list[str] = []
    number = 0
    for part in template.parts:
        if isinstance(part, str):
            scanner.feed(part)
            pieces.append(part)
            continue
        reference = scanner.hole(number).format(name=f"{ENV_PREFIX}{number + 1}")
        number += 1
        if scanner.active is not None:
            scanner.line += reference
        pieces.append(reference)
    return "".join(pieces), tuple(scanner.finish().items())


@dataclass(frozen=True, slots=True)
class ScriptSite:
    """One `${{ }}` of a script: its quoting context, the text of its line up to it, and
    the evaluating context it stands in (None: the shell only expands it)."""

    expression: Expression
    context: str
    line: str
    evaluating: str | None


def scan_sites(template: Template, shell: str | None = None) -> list[ScriptSite]:
    """Every `${{ }}` of a script, with where it stands (for the compiler and the linter)."""
    scanner = _scanner_for(template, shell)
    found: list[tuple[Expression, str, str]] = []
    text = ""
    for part in template.parts:
        if isinstance(part, str):
            scanner.feed(part)
            text += part
            continue
        line = text[text.rfind("\n") + 1 :]
        state = scanner.state
        scanner.hole(len(found))
        found.append((part, state.value, line))
        text += "${{}}"
        if scanner.active is not None:
            scanner.line += "${}"
    evaluating = scanner.finish()
    return [
        ScriptSite(expression, context, line, evaluating.get(number))
        for number, (expression, context, line) in enumerate(found)
    ]


def scan_contexts(template: Template) -> list[tuple[Any, str, str]]:
    """For each `${{ }}` of a script: the expression, the quoting context it stands in
    (`normal`, `double`, `single`, `ansi`, `comment`, `heredoc`, `quoted-heredoc`), and
    the text of its line up to it (for linting)."""
    return [(site.expression, site.context, site.line) for site in scan_sites(template)]


@functools.lru_cache(maxsize=256)  # every step asks, most with the same few shells
def shell_program(shell: str | None) -> str:
    """The program name of a `shell:` setting (`bash` for the default), e.g. `python3`."""
    if shell is None:
        return "bash"
    try:
        words = shlex.split(shell)
    except ValueError:
        words = shell.split()
    while words and (PurePath(words[0]).name == "env" or "=" in words[0]):
        words = words[1:]
        while words and words[0].startswith("-"):
            words = words[1:]
    return PurePath(words[0]).name if words else ""


def quotes_for(shell: str | None) -> bool:
    """Whether wfx can quote `${{ }}` values for this shell (a POSIX-like shell)."""
    return shell_program(shell) in POSIX_SHELLS


# -- the compile-time check -------------------------------------------------------------------


def check_scripts(steps: Iterable[tuple[Step, str | None]], workflow: Workflow) -> list[Diagnostic]:
    """Errors for `${{ }}` that no quoting can make safe: in a context the shell evaluates as
    code (unless proven numeric), or in a script for a shell wfx cannot quote for.

    `steps` pairs each leaf step with its effective `shell` (None: the default).
    """
    numbers = _number_inputs(workflow)
    problems: list[Diagnostic] = []
    for step, shell in steps:
        for action in (step.action, step.rollback):
            if action is None or action.run is None or action.run.is_literal():
                continue
            own = action.shell.value if action is step.rollback and action.shell else shell
            problems.extend(_check_script(action.run, own, numbers))
    return problems


def check_environments(workflow: Workflow) -> list[Diagnostic]:
    """Errors for `${{ }}` in the `env:` value of a variable a shell expands as code when it
    finds it in its environment (`BASH_ENV`, `PS4`…): a value such as `$(cmd)` would run
    `cmd` in every bash the step starts, before its script. Numbers are admitted."""
    numbers = _number_inputs(workflow)
    maps = [workflow.env, workflow.defaults.env]
    maps += [step.env for step in all_steps(workflow)]
    maps += [action.env for action, _, _ in all_actions(workflow)]
    return [
        _evaluated_environment(name, expression)
        for env in maps
        for name, template in env.items()
        if name in ENVIRONMENT_EVALUATED
        for expression in template.expressions()
        if not proven_integer(expression, numbers)
    ]


def _evaluated_environment(name: str, expression: Expression) -> Diagnostic:
    when = {
        "BASH_ENV": "each non-interactive bash expands it when it starts, then runs the file",
        "PS4": "bash expands it before each command it traces (`set -x`)",
    }.get(name, "an interactive shell expands it for each prompt")
    return error(
        "compile.evaluated-value",
        f"`${{{{ {expression.text.strip()} }}}}` is in the value of `{name}`: {when}, so a"
        " value such as `$(cmd)` would run `cmd`",
        expression.span,
        f"give `{name}` a literal value, or pass the value under another name and check it"
        " before the script uses it",
    )


def _check_script(template: Template, shell: str | None, numbers: set[str]) -> list[Diagnostic]:
    if not quotes_for(shell):
        return [
            _unquotable(expression, shell_program(shell)) for expression in template.expressions()
        ]
    if not _EVALUATING_TRIGGERS.search(_literal_text(template)):
        return []  # the common case, decided without scanning
    return [
        _evaluated(site)
        for site in scan_sites(template, shell)
        if site.evaluating not in (None, ARRAY_VALUE)
        and not proven_integer(site.expression, numbers)
    ]


def _number_inputs(workflow: Workflow) -> set[str]:
    """The (lowercased) names of the inputs declared `type: number`."""
    return {i.name.lower() for i in workflow.inputs if i.type is InputType.NUMBER}


def proven_integer(expression: Expression, numbers: set[str]) -> bool:
    """Whether the expression can only be a number: a number literal, `attempt`, or an input
    declared `type: number` (the runtime still refuses a value that is not an integer)."""
    root = expression.root
    if isinstance(root, Literal):
        return isinstance(root.value, float) and root.value.is_integer()
    if isinstance(root, NamedValue):
        return root.name.lower() == "attempt"
    return (
        isinstance(root, Property)
        and isinstance(root.target, NamedValue)
        and root.target.name.lower() == "inputs"
        and root.name.lower() in numbers
    )


def _evaluated(site: ScriptSite) -> Diagnostic:
    assert site.evaluating is not None
    example = _EXAMPLE_VALUES.get(site.evaluating, "`a[$(cmd)]`")
    return error(
        "compile.evaluated-value",
        f"`${{{{ {site.expression.text.strip()} }}}}` stands in"
        f" {EVALUATING_CONTEXTS[site.evaluating]}: bash evaluates text there as code, so a"
        f" value such as {example} would run `cmd`",
        site.expression.span,
        _HINTS.get(
            site.evaluating,
            "pass the value in `env:` and check it is an integer before using it"
            " (`[[ $N =~ ^-?[0-9]+$ ]]`), or use an input of `type: number`",
        ),
    )


#: a value that runs `cmd` in a context, where `a[$(cmd)]` (arithmetic) is not the simplest
_EXAMPLE_VALUES = {"shell-variable": "`$(cmd)` or `a[$(cmd)]`", "compound": "`$(cmd)`"}

#: how to write what the script means where the general hint (check it is a number) is not it
_HINTS = {
    "shell-variable": "give the variable a literal value, or pass the value in `env:` under"
    " another name and check it before assigning it",
    "compound": 'write the array unquoted, `NAME=("${{ … }}")`: bash expands the words of'
    " its own `( … )` once",
}


def _unquotable(expression: Expression, program: str) -> Diagnostic:
    return error(
        "compile.unquotable-shell",
        f"`${{{{ {expression.text.strip()} }}}}` in a script for `{program}`: wfx can pass"
        " values safely only to POSIX shells (bash, sh, dash, zsh, ksh)",
        expression.span,
        "set the value in the step's `env:` and read it from the environment"
        ' (in Python `os.environ["NAME"]`, in Node `process.env.NAME`)',
    )


# -- one simple command: what bash would only exec --------------------------------------------

#: bash's builtins and reserved words: a command naming one runs inside bash, not as a program
_BASH_WORDS = frozenset(
    [
        ".",
        ":",
        "[",
        "alias",
        "bg",
        "bind",
        "break",
        "builtin",
        "caller",
        "cd",
        "command",
        "compgen",
        "complete",
        "compopt",
        "continue",
        "declare",
        "dirs",
        "disown",
        "echo",
        "enable",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "fc",
        "fg",
        "getopts",
        "hash",
        "help",
        "history",
        "jobs",
        "kill",
        "let",
        "local",
        "logout",
        "mapfile",
        "popd",
        "printf",
        "pushd",
        "pwd",
        "read",
        "readarray",
        "readonly",
        "return",
        "set",
        "shift",
        "shopt",
        "source",
        "suspend",
        "test",
        "times",
        "trap",
        "true",
        "type",
        "typeset",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "wait",
        "if",
        "then",
        "else",
        "elif",
        "fi",
        "case",
        "esac",
        "for",
        "select",
        "while",
        "until",
        "do",
        "done",
        "in",
        "function",
        "time",
        "{",
        "}",
        "!",
        "[[",
        "]]",
        "coproc",
    ]
)

#: builtins whose program of the same name does exactly the same when given no argument
#: (with one, coreutils' programs answer `--help` and `--version`; the builtins ignore it).
#: bash runs the builtin whatever PATH holds: the program is the system's own
#: (wfx.runtime.direct looks it up on SYSTEM_PATH, never on the step's PATH)
SAME_AS_PROGRAM = frozenset({"true", "false"})

#: where the programs of SAME_AS_PROGRAM are looked up (coreutils' place)
SYSTEM_PATH = "/usr/bin:/bin"

#: a script of plain words separated by blanks: characters to which bash gives no meaning
#: (no quoting, expansion, glob, redirection, operator, comment or line break)
_PLAIN_WORDS = re.compile(r"[ \t]*[A-Za-z0-9_@%+,./:=-]+(?:[ \t]+[A-Za-z0-9_@%+,./:=-]+)*[ \t]*")

#: default-shell settings under which one simple command is all bash does (the flags
#: change nothing for a single command that bash executes in place of itself)
DIRECT_SHELLS = frozenset({None, DEFAULT_SHELL, "bash", "bash -e", "bash -o pipefail"})


def simple_command(script: str) -> tuple[str, ...] | None:
    """The words of `script` when it is one simple command that bash would only look up
    on PATH and exec in place of itself, so running those words directly is the same;
    None otherwise.

    The rule: one line of plain words (letters, digits and `_@%+,./:=-`, nothing bash
    expands, quotes, globs or parses as an operator), whose first word is not an
    assignment, does not begin with `%` (a job, to bash) and names no builtin or
    reserved word, except `true` and `false` alone,
    whose programs then behave identically (given `--help`, the programs print their help,
    the builtins nothing). The runtime adds what depends on the environment
    (wfx.runtime.direct)."""
    text = script.strip(" \t\n")
    if not _PLAIN_WORDS.fullmatch(text):
        return None
    words = tuple(text.split())
    first = words[0]
    if "=" in first or (first in _BASH_WORDS and first not in SAME_AS_PROGRAM):
        return None
    if first.startswith("%"):  # a job: bash runs `fg` with it ("no job control"), no program
        return None
    if first in SAME_AS_PROGRAM and len(words) > 1:
        return None
    return words
