"""The expression AST: frozen node dataclasses, what they refer to, and back to text.

Every node carries its position (``start``/``end`` offsets into the expression
text and an absolute ``span``); positions never take part in equality, so two
parses of the same text at different places give equal trees. Parentheses leave
no node: ``unparse`` puts back the ones the tree needs.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeAlias

from wfx.diagnostics import Span

NOWHERE: Final = Span("<expression>", 1, 1, 1, 1)
"""The span of a node built by hand rather than parsed."""

STATUS_FUNCTIONS: Final = frozenset({"success", "failure", "always", "cancelled"})
"""The functions that read the status of the run (lower-cased)."""

_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")


@dataclass(frozen=True, slots=True)
class Node:
    """Base of every AST node: where it is (never compared)."""

    start: int = field(default=0, kw_only=True, compare=False, repr=False)
    end: int = field(default=0, kw_only=True, compare=False, repr=False)
    span: Span = field(default=NOWHERE, kw_only=True, compare=False, repr=False)

    def children(self) -> tuple[Node, ...]:
        """The sub-expressions, in source order."""
        return ()


Scalar: TypeAlias = bool | float | str | None
"""What a Literal holds."""


@dataclass(frozen=True, slots=True, eq=False)
class Literal(Node):
    """``null``, ``true``, ``1.5``, ``'text'``: a constant (numbers are floats)."""

    value: Scalar

    def __post_init__(self) -> None:
        if isinstance(self.value, int) and not isinstance(self.value, bool):
            object.__setattr__(self, "value", float(self.value))

    def _key(self) -> tuple[str, Any]:
        value = self.value
        if isinstance(value, float) and math.isnan(value):
            return ("float", "NaN")
        return (type(value).__name__, value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Literal) and self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())


@dataclass(frozen=True, slots=True)
class NamedValue(Node):
    """``github``: a top-level named value (a context), as written."""

    name: str


@dataclass(frozen=True, slots=True)
class FunctionCall(Node):
    """``contains(a, b)``: a call of a built-in function, its name as written."""

    name: str
    args: tuple[Node, ...] = ()

    def children(self) -> tuple[Node, ...]:
        """The arguments."""
        return self.args


@dataclass(frozen=True, slots=True)
class Property(Node):
    """``target.name``: a property access."""

    target: Node
    name: str

    def children(self) -> tuple[Node, ...]:
        """The target."""
        return (self.target,)


@dataclass(frozen=True, slots=True)
class Index(Node):
    """``target[index]``: a computed property or array access."""

    target: Node
    index: Node

    def children(self) -> tuple[Node, ...]:
        """The target, then the index."""
        return (self.target, self.index)


@dataclass(frozen=True, slots=True)
class Filter(Node):
    """``target.*`` or ``target[*]``: every item or property value of the target."""

    target: Node

    def children(self) -> tuple[Node, ...]:
        """The target."""
        return (self.target,)


@dataclass(frozen=True, slots=True)
class Not(Node):
    """``!operand``: true when the operand is falsy."""

    operand: Node

    def children(self) -> tuple[Node, ...]:
        """The operand."""
        return (self.operand,)


@dataclass(frozen=True, slots=True)
class Binary(Node):
    """``left op right`` for ``== != < <= > >=``."""

    op: str
    left: Node
    right: Node

    def children(self) -> tuple[Node, ...]:
        """The left, then the right operand."""
        return (self.left, self.right)


@dataclass(frozen=True, slots=True)
class Logical(Node):
    """``a && b && c`` or ``a || b || c``: evaluates to the operand that decided."""

    op: str
    operands: tuple[Node, ...]

    def children(self) -> tuple[Node, ...]:
        """The operands."""
        return self.operands


@dataclass(frozen=True, slots=True)
class Reference:
    """A named-value access path: the name, then each literal property after it, as written."""

    path: tuple[str, ...]
    span: Span


def walk(root: Node) -> Iterator[Node]:
    """Every node under `root` (itself included), in source order."""
    stack = [root]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def references(root: Node) -> Iterator[Reference]:
    """Each named-value access in `root`, in source order, with its literal path."""
    stack = [root]
    while stack:
        node = stack.pop()
        chain = _chain(node)
        if chain is None:
            stack.extend(reversed(node.children()))
            continue
        base, accessors = chain
        pending = list(base.children())
        if isinstance(base, NamedValue):
            yield _reference(base, accessors)
        elif not isinstance(base, (FunctionCall, Literal)):
            pending = [base]  # a parenthesised expression: look inside it
        pending += [a.index for a in accessors if isinstance(a, Index)]
        stack.extend(reversed(pending))


def _chain(node: Node) -> tuple[Node, list[Node]] | None:
    """A node's accessor chain: its base and the accessors applied to it, innermost first."""
    if not isinstance(node, (NamedValue, Property, Index, Filter)):
        return None
    accessors: list[Node] = []
    while isinstance(node, (Property, Index, Filter)):
        accessors.append(node)
        node = node.target
    accessors.reverse()
    return node, accessors


def _reference(base: NamedValue, accessors: list[Node]) -> Reference:
    path = [base.name]
    last: Node = base
    for accessor in accessors:
        if isinstance(accessor, Property):
            path.append(accessor.name)
        elif isinstance(accessor, Index) and isinstance(accessor.index, Literal):
            if not isinstance(accessor.index.value, str):
                break
            path.append(accessor.index.value)
        else:
            break
        last = accessor
    span = Span(
        base.span.file, base.span.line, base.span.column, last.span.end_line, last.span.end_column
    )
    return Reference(tuple(path), span)


def function_names(root: Node) -> frozenset[str]:
    """The lower-cased names of the functions called anywhere in `root`."""
    return frozenset(n.name.lower() for n in walk(root) if isinstance(n, FunctionCall))


class _HasRoot(Protocol):
    @property
    def root(self) -> Node: ...


def unparse(item: Node | _HasRoot) -> str:
    """An AST (or an Expression) as expression text; parsing it gives back an equal AST."""
    return _text(item if isinstance(item, Node) else item.root)


def _text(node: Node) -> str:
    return _PRINTERS[type(node)](node)


def _precedence(node: Node) -> int:
    if isinstance(node, Logical):
        return 1 if node.op == "||" else 2
    if isinstance(node, Binary):
        return 3 if node.op in ("==", "!=") else 4
    return 5 if isinstance(node, Not) else 6


def _operand(node: Node, minimum: int) -> str:
    text = _text(node)
    return f"({text})" if _precedence(node) < minimum else text


def _target(node: Node) -> str:
    text = _text(node)
    postfix = (NamedValue, FunctionCall, Property, Index, Filter)
    return text if isinstance(node, postfix) else f"({text})"


def _literal_text(node: Literal) -> str:
    value = node.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return _number_text(value)


def _number_text(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    if number == 0:
        return "-0" if math.copysign(1.0, number) < 0 else "0"
    if number.is_integer() and abs(number) < 1e16:
        return str(int(number))
    return repr(number)


def _property_text(node: Property) -> str:
    if _NAME.fullmatch(node.name):
        return f"{_target(node.target)}.{node.name}"
    return f"{_target(node.target)}[{_literal_text(Literal(node.name))}]"


def _binary_text(node: Binary) -> str:
    level = _precedence(node)
    return f"{_operand(node.left, level)} {node.op} {_operand(node.right, level + 1)}"


def _logical_text(node: Logical) -> str:
    level = _precedence(node)
    return f" {node.op} ".join(_operand(operand, level + 1) for operand in node.operands)


_PRINTERS: Final[dict[type[Node], Callable[[Any], str]]] = {
    Literal: _literal_text,
    NamedValue: lambda node: node.name,
    FunctionCall: lambda node: f"{node.name}({', '.join(_text(a) for a in node.args)})",
    Property: _property_text,
    Index: lambda node: f"{_target(node.target)}[{_text(node.index)}]",
    Filter: lambda node: f"{_target(node.target)}.*",
    Not: lambda node: "!" + _operand(node.operand, 5),
    Binary: _binary_text,
    Logical: _logical_text,
}
