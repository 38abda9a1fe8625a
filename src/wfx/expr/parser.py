"""Text to AST: GitHub's token rules, lark's LALR parser for grammar/expressions.lark, checks.

``parse`` runs four stages, each failing with an ExpressionError of its own:

1. **scan** (stage "lexing"): the whole text becomes tokens first, with the
   terminals of the grammar and GitHub's context rules for ``.`` and keywords;
2. **pre-scan** (stage "parsing"): a cheap bound on the nesting, so no deep
   input ever reaches lark or a recursive function;
3. **parse**: the tokens are fed to lark's LALR parser (built once per process,
   on first use; lark itself is imported only then);
4. **build**: the tree is measured with GitHub's depth rule (max 50), then
   turned into the AST by :class:`_AstBuilder`, which also rejects unknown named
   values, unknown functions and wrong argument counts — even in branches that
   would never be evaluated.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from wfx import resources
from wfx.diagnostics import Span
from wfx.expr.ast import (
    Binary,
    Filter,
    FunctionCall,
    Index,
    Literal,
    Logical,
    NamedValue,
    Node,
    Not,
    Property,
)
from wfx.expr.errors import LEXING, PARSING, ExpressionError, Locator
from wfx.expr.evaluator import Expression
from wfx.expr.functions import Status, lookup
from wfx.expr.values import parse_number

if TYPE_CHECKING:
    from lark import Lark, Token, Tree

MAX_LENGTH: Final = 21_000
"""GitHub's limit on the length of one expression."""

MAX_DEPTH: Final = 50
"""GitHub's limit on nesting, counted as GitHub's parser counts it."""

MAX_TREE_HEIGHT: Final = 128
"""wfx's own bound on the syntax tree (reached only by absurd chains of comparisons)."""

_DEPTH_EXCEEDED: Final = f"Exceeded max expression depth {MAX_DEPTH}"
_NESTING_EXCEEDED: Final = f"Exceeded max expression nesting {MAX_TREE_HEIGHT}"

# Terminals of the grammar that the scanner's context rules refer to.
_DOT: Final = "_DOT"
_NAME: Final = "NAME"
_AFTER_ACCESSOR: Final = frozenset({_NAME, "_RSQB", "_RPAR", "_STAR"})
_OPENERS: Final = frozenset({"_LPAR", "_LSQB"})
_CLOSERS: Final = frozenset({"_RPAR", "_RSQB"})
_COMPARISONS: Final = frozenset({"EQ", "NE", "LT", "LE", "GT", "GE"})
_SEPARATORS: Final = frozenset({"AND", "OR", "_COMMA"})
_END: Final = "$END"

_WORD_END: Final = re.compile(r"[^\s()\[\],.!<>=&|]*")


@dataclass(frozen=True, slots=True)
class _Grammar:
    """The grammar, ready to use: lark's parser and the scanner built from its terminals."""

    lark: Lark
    scanner: re.Pattern[str]
    ignored: frozenset[str]
    keywords: Mapping[str, str]
    token: type[Token]
    syntax_error: type[Exception]


@functools.cache
def _grammar() -> _Grammar:
    """Build the parser once per process, on the first parse."""
    import lark  # noqa: PLC0415 - importing lark costs ~20 ms; pay it on first parse, not import

    from wfx.expr import table  # noqa: PLC0415 - imports lark too

    parser = table.load(resources.read_text("grammar", table.GRAMMAR))
    terminals = parser.terminals
    name = next(t for t in terminals if t.name == _NAME).pattern.to_regexp()
    keywords = {
        t.pattern.value: t.name
        for t in terminals
        if t.pattern.type == "str" and re.fullmatch(name, t.pattern.value)
    }
    scanned = [t for t in terminals if t.name not in keywords.values()]
    scanned.sort(key=lambda t: (-t.priority, -t.pattern.max_width, -len(t.pattern.value), t.name))
    scanner = re.compile("|".join(f"(?P<{t.name}>{t.pattern.to_regexp()})" for t in scanned))
    return _Grammar(
        lark=parser,
        scanner=scanner,
        ignored=frozenset(parser.lexer_conf.ignore),
        keywords=keywords,
        token=lark.Token,
        syntax_error=lark.exceptions.UnexpectedInput,
    )


def parse(
    text: str, *, names: Collection[str] | None = None, origin: Span | None = None
) -> Expression:
    """Parse an expression (the text inside ``${{ }}``), checking names, functions and arity.

    `names` are the allowed top-level named values (any case; None allows any
    name); `origin` is where ``text[0]`` sits in its file, for spans.
    """
    allowed = None if names is None else frozenset(n.lower() for n in names if isinstance(n, str))
    return _parse(text, allowed, origin)


def evaluate(expression: str, contexts: Mapping[str, Any], *, status: Status | None = None) -> Any:
    """Parse `expression` with the context names as the allowed names, then evaluate it."""
    return parse(expression, names=contexts.keys()).evaluate(contexts, status=status)


@functools.lru_cache(maxsize=16384)
def _parse(text: str, names: frozenset[str] | None, origin: Span | None) -> Expression:
    locator = Locator.of(text, origin)
    with _failures_become_errors(locator, len(text)):
        if len(text) > MAX_LENGTH:
            raise ExpressionError(
                f"Exceeded max expression length {MAX_LENGTH}",
                stage=LEXING,
                end=len(text),
                span=locator.span(0, len(text)),
            )
        grammar = _grammar()
        lexemes = _scan(text, grammar, locator)
        _prescan(lexemes, locator)
        tree = _lalr(lexemes, len(text), grammar, locator)
        _check_depth(tree, locator)
        root = _AstBuilder(locator, names, len(text)).build(tree)
    return Expression(text, root, locator.span(0, len(text)))


@contextmanager
def _failures_become_errors(locator: Locator, length: int) -> Iterator[None]:
    """Whatever goes wrong while parsing leaves as an ExpressionError."""
    try:
        yield
    except ExpressionError:
        raise
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a sandbox: nothing else may leave, RecursionError included
        raise ExpressionError(
            f"Internal error while parsing: {type(exc).__name__}",
            stage=PARSING,
            end=length,
            span=locator.span(0, length),
        ) from exc


def _fail(stage: str, message: str, start: int, end: int, locator: Locator) -> ExpressionError:
    return ExpressionError(
        message, stage=stage, start=start, end=end, span=locator.span(start, end)
    )


def _token_fail(stage: str, message: str, token: Token, locator: Locator) -> ExpressionError:
    start, end = token.start_pos or 0, token.end_pos or 0
    return _fail(stage, message, start, end, locator)


_Lexeme = tuple[str, str, int, int]
"""A token before lark sees it: terminal name, text, start and end offsets."""


def _scan(text: str, grammar: _Grammar, locator: Locator) -> list[_Lexeme]:
    """The whole text as lexemes, with GitHub's rules for ``.`` and for keywords after ``.``."""
    lexemes: list[_Lexeme] = []
    match_at, ignored, keywords = grammar.scanner.match, grammar.ignored, grammar.keywords
    previous = ""
    position = 0
    while position < len(text):
        if text[position] == "." and previous in _AFTER_ACCESSOR:
            kind, end = _DOT, position + 1
        else:
            match = match_at(text, position)
            if match is None or match.lastgroup in (None, _DOT):
                end = _word_end(text, position)
                message = f"Unexpected symbol: '{text[position:end]}'"
                raise _fail(LEXING, message, position, end, locator)
            kind, end = match.lastgroup, match.end()
        if kind not in ignored:
            value = text[position:end]
            if kind == _NAME and previous != _DOT:
                kind = keywords.get(value, kind)
            lexemes.append((kind, value, position, end))
            previous = kind
        position = end
    return lexemes


def _word_end(text: str, position: int) -> int:
    """Where the "word" starting at `position` ends, for messages."""
    word = _WORD_END.match(text, position + 1)
    return word.end() if word else position + 1


@dataclass(slots=True)
class _Level:
    """What the pre-scan knows inside one pair of brackets."""

    base: int  # GitHub's depth inside these brackets, at least
    bangs: int = 0  # the `!`s in front of the current operand
    chain: int = 0  # the `.x` / `[i]` applied to the current operand so far
    comparisons: int = 0  # the comparisons in the current run (`a == b < c ...`)


def _prescan(lexemes: list[_Lexeme], locator: Locator) -> None:
    """Reject deep nesting cheaply, before the parser: a lower bound of GitHub's depth.

    Brackets, runs of ``!`` and chains of ``.x`` / ``[i]`` each add to the depth
    as GitHub counts it; a long run of comparisons would make a tall tree.
    """
    level = _Level(base=1)  # the whole text is one expression
    enclosing: list[_Level] = []
    previous = ""
    for kind, _, start, end in lexemes:
        if kind in _OPENERS:
            enclosing.append(level)
            level = _Level(base=level.base + level.bangs + level.chain + 1)
        elif kind in _CLOSERS and enclosing:
            level = enclosing.pop()
            level.chain = level.chain + 1 if kind == "_RSQB" else 0
        elif kind == _DOT:
            level.chain += 1
        elif kind == "_BANG":
            level.bangs, level.chain = level.bangs + 1, 0
        elif kind in _COMPARISONS:
            level.bangs, level.chain, level.comparisons = 0, 0, level.comparisons + 1
        elif kind in _SEPARATORS:
            level.bangs, level.chain, level.comparisons = 0, 0, 0
        elif previous != _DOT:
            level.chain = 0
        previous = kind
        if level.base + level.bangs + level.chain > MAX_DEPTH:
            raise _fail(PARSING, _DEPTH_EXCEEDED, start, end, locator)
        if level.comparisons >= MAX_TREE_HEIGHT:
            raise _fail(PARSING, _NESTING_EXCEEDED, start, end, locator)


def _lalr(lexemes: list[_Lexeme], length: int, grammar: _Grammar, locator: Locator) -> Tree[Token]:
    """Feed the lexemes to lark's LALR parser, as tokens."""
    parser = grammar.lark.parse_interactive()
    token = None
    try:
        for kind, value, start, end in lexemes:
            token = grammar.token(kind, value, start_pos=start, end_pos=end)
            parser.feed_token(token)
        token = grammar.token(_END, "", start_pos=length, end_pos=length)
        tree: Tree[Token] = parser.feed_token(token)
    except grammar.syntax_error:
        assert token is not None
        if token.type == _END:
            message = "Unexpected end of expression"
        else:
            message = f"Unexpected symbol: '{token.value}'"
        raise _token_fail(PARSING, message, token, locator) from None
    return tree


def _check_depth(tree: Tree[Token], locator: Locator) -> None:
    """GitHub's depth rule, measured bottom-up without recursion; also bounds the tree's height."""
    measures: dict[int, _Measure] = {}
    stack: list[tuple[Tree[Token], bool]] = [(tree, False)]
    while stack:
        node, children_done = stack.pop()
        subtrees = [c for c in node.children if not isinstance(c, str)]
        if not children_done:
            stack.append((node, True))
            stack.extend((c, False) for c in subtrees)
            continue
        measure = _MEASURES[str(node.data)]([measures.pop(id(c)) for c in subtrees])
        if measure.depth > MAX_DEPTH or measure.height > MAX_TREE_HEIGHT:
            start, end = getattr(node.meta, "start_pos", 0), getattr(node.meta, "end_pos", 0)
            message = _DEPTH_EXCEEDED if measure.depth > MAX_DEPTH else _NESTING_EXCEEDED
            raise _fail(PARSING, message, start, end, locator)
        measures[id(node)] = measure


@dataclass(frozen=True, slots=True)
class _Measure:
    """How deep GitHub's parser goes inside a construct, its tree height, its place in a chain."""

    depth: int
    height: int
    chain: int = 0


def _leaf(children: list[_Measure]) -> _Measure:
    return _Measure(0, 1)


def _height(children: list[_Measure]) -> int:
    return 1 + max((c.height for c in children), default=0)


def _start(children: list[_Measure]) -> _Measure:
    # the whole text is parsed as one expression: one level
    return _Measure(1 + children[0].depth if children else 0, _height(children))


def _group(children: list[_Measure]) -> _Measure:
    return _Measure(1 + children[0].depth, _height(children))


def _function_call(children: list[_Measure]) -> _Measure:
    # each argument is parsed as an expression: one level
    return _Measure(max((1 + c.depth for c in children), default=0), _height(children))


def _accessor(children: list[_Measure]) -> _Measure:
    # each `.x`, `.*`, `[*]` or `[i]` adds a level until the chain ends; `i` is an expression
    target, *index = children
    chain = target.chain + 1
    depth = max(target.depth, chain, *(chain + i.depth for i in index))
    return _Measure(depth, _height(children), chain)


def _not(children: list[_Measure]) -> _Measure:
    return _Measure(1 + children[0].depth, _height(children))


def _binary(children: list[_Measure]) -> _Measure:
    return _Measure(max(c.depth for c in children), _height(children))


def _logical(children: list[_Measure]) -> _Measure:
    # the first operand is parsed before `&&`/`||` is seen, the others one level deeper
    first, *others = children
    return _Measure(max(first.depth, *(1 + c.depth for c in others)), _height(children))


_MEASURES: Final[dict[str, Callable[[list[_Measure]], _Measure]]] = {
    "start": _start,
    "literal": _leaf,
    "named_value": _leaf,
    "group": _group,
    "function_call": _function_call,
    "property": _accessor,
    "filter": _accessor,
    "index": _accessor,
    "not_": _not,
    "binary": _binary,
    "logical": _logical,
}


class _AstBuilder:
    """Tree to AST: one small method per grammar alias; rejects unknown names and functions."""

    def __init__(self, locator: Locator, names: frozenset[str] | None, length: int) -> None:
        self._locator = locator
        self._names = names
        self._length = length

    def build(self, tree: Tree[Token]) -> Node:
        """The AST of a tree the depth check has bounded (so recursion is safe)."""
        children = [c if isinstance(c, str) else self.build(c) for c in tree.children]
        method: Callable[[Any, list[Any]], Node] = getattr(self, str(tree.data))
        return method(tree.meta, children)

    def _where(self, meta: Any) -> dict[str, Any]:
        start, end = meta.start_pos, meta.end_pos
        return {"start": start, "end": end, "span": self._locator.span(start, end)}

    def _fail(self, message: str, token: Token) -> ExpressionError:
        return _token_fail(PARSING, message, token, self._locator)

    def start(self, meta: Any, children: list[Node]) -> Node:
        """The whole expression; an empty one is ``null``."""
        if children:
            return children[0]
        return Literal(None, start=0, end=self._length, span=self._locator.span(0, self._length))

    def literal(self, meta: Any, children: list[Token]) -> Node:
        """``null``, ``true``, ``0xff``, ``'it''s'``..."""
        return Literal(_LITERALS[children[0].type](children[0].value), **self._where(meta))

    def named_value(self, meta: Any, children: list[Token]) -> Node:
        """A context name, which must be one of the allowed names."""
        name = children[0]
        if self._names is not None and name.value.lower() not in self._names:
            raise self._fail(f"Unrecognized named-value: '{name.value}'", name)
        return NamedValue(name.value, **self._where(meta))

    def function_call(self, meta: Any, children: list[Any]) -> Node:
        """A call of a known function with an allowed number of arguments."""
        name, *args = children
        function = lookup(name.value)
        if function is None:
            raise self._fail(f"Unrecognized function: '{name.value}'", name)
        problem = function.arity_problem(len(args))
        if problem is not None:
            raise self._fail(problem, name)
        return FunctionCall(name.value, tuple(args), **self._where(meta))

    def group(self, meta: Any, children: list[Node]) -> Node:
        """Parentheses leave no node."""
        return children[0]

    def property(self, meta: Any, children: list[Any]) -> Node:
        """``target.name``."""
        target, name = children
        return Property(target, name.value, **self._where(meta))

    def filter(self, meta: Any, children: list[Node]) -> Node:
        """``target.*`` or ``target[*]``."""
        return Filter(children[0], **self._where(meta))

    def index(self, meta: Any, children: list[Node]) -> Node:
        """``target[index]``."""
        target, index = children
        return Index(target, index, **self._where(meta))

    def not_(self, meta: Any, children: list[Node]) -> Node:
        """``!operand``."""
        return Not(children[0], **self._where(meta))

    def binary(self, meta: Any, children: list[Any]) -> Node:
        """A comparison."""
        left, op, right = children
        return Binary(op.value, left, right, **self._where(meta))

    def logical(self, meta: Any, children: list[Any]) -> Node:
        """A run of ``&&`` or of ``||``."""
        return Logical(children[1].value, tuple(children[::2]), **self._where(meta))


_LITERALS: Final[dict[str, Callable[[str], Any]]] = {
    "NUMBER": parse_number,
    "STRING": lambda text: text[1:-1].replace("''", "'"),
    "TRUE": lambda text: True,
    "FALSE": lambda text: False,
    "NULL": lambda text: None,
    "NAN": lambda text: float("nan"),
    "INFINITY": lambda text: float("inf"),
}
