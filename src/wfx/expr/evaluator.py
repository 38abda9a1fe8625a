"""Evaluate an AST against contexts, with GitHub Actions semantics.

:class:`Evaluator` walks the tree with one small method per node class.
Property access reads only mapping keys and list items — never a Python
attribute — and every failure, expected or not, leaves as an
:class:`~wfx.expr.errors.ExpressionError`. Strings built by functions are
accounted for as GitHub's engine does (the results alive at a time may not
exceed 1 MiB), plus a cap on the total built in one evaluation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from wfx.diagnostics import Span
from wfx.expr import ast
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
    Reference,
)
from wfx.expr.errors import EVALUATION, EvaluationFailure, ExpressionError
from wfx.expr.functions import Status, lookup
from wfx.expr.values import (
    MISSING,
    PRIMITIVES,
    FilteredArray,
    Kind,
    equals,
    greater_than,
    is_truthy,
    kind_of,
    less_than,
    member,
    to_number,
    to_result,
    to_string,
)

MAX_LIVE_BYTES: Final = 1024 * 1024
"""GitHub's limit on the memory of the results alive at one time (2 bytes per character)."""

MAX_TOTAL_BYTES: Final = 64 * 1024 * 1024
"""wfx's own limit on all the text one evaluation may build, so evaluation stays fast."""

_MEMORY_EXCEEDED: Final = "The maximum allowed memory size was exceeded"


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed expression: its text, its AST and where it sits; evaluate it as often as needed."""

    text: str
    root: Node
    span: Span

    def evaluate(self, contexts: Mapping[str, Any], *, status: Status | None = None) -> Any:
        """The value of this expression given `contexts` (JSON-like; numbers come back float)."""
        try:
            return to_result(Evaluator(contexts, status or Status()).evaluate(self.root))
        except EvaluationFailure as exc:
            raise self._error(exc.message) from None
        except ExpressionError:
            raise
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a sandbox: nothing else may leave, SystemExit included
            raise self._error(f"Internal error while evaluating: {type(exc).__name__}") from exc

    def references(self) -> Iterator[Reference]:
        """Each named-value access and its literal path (``steps.build.outputs['x']``)."""
        return iter(_references_of(self.root))

    def functions(self) -> frozenset[str]:
        """The lower-cased names of the functions this expression calls."""
        return ast.function_names(self.root)

    def constant_errors(self) -> Iterator[ExpressionError]:
        """The errors evaluating it must raise whatever the contexts: each largest part that
        calls a function on literals only (`format('{0} {1}', 'a')`) and is always evaluated,
        evaluated now."""
        if "(" not in self.text:
            return  # it calls no function
        for node in _constant_calls(self.root):
            try:
                Evaluator({}, Status()).evaluate(node)
            except ExpressionError as exc:
                yield exc

    def uses_status_function(self) -> bool:
        """Whether it calls success(), failure(), always() or cancelled()."""
        return not self.functions().isdisjoint(ast.STATUS_FUNCTIONS)

    def _error(self, message: str) -> ExpressionError:
        return ExpressionError(
            message, stage=EVALUATION, start=0, end=len(self.text), span=self.span
        )


@dataclass(frozen=True, slots=True)
class _Key:
    """An index as GitHub applies it: a property name for objects, a position for arrays."""

    star: bool
    name: str | None = None
    position: int | None = None

    @classmethod
    def of(cls, value: Any) -> _Key:
        """The key an index value stands for (``foo[' 0x02 ']`` is position 2 of an array)."""
        name = to_string(value) if kind_of(value) in PRIMITIVES else None
        number = to_number(value)
        position = math.floor(number) if math.isfinite(number) and number >= 0 else None
        return cls(False, name, position)


_STAR: Final = _Key(True)


class _Memory:
    """The text built by functions, per evaluation depth: deeper results die with their parent."""

    __slots__ = ("levels", "live", "total")

    def __init__(self) -> None:
        self.levels: list[int] = [0]
        self.live = 0
        self.total = 0

    def allocate(self, depth: int, chars: int) -> None:
        """Account for `chars` new characters held at `depth`."""
        size = 2 * chars
        if self.live + size > MAX_LIVE_BYTES or self.total + size > MAX_TOTAL_BYTES:
            raise EvaluationFailure(_MEMORY_EXCEEDED)
        while len(self.levels) <= depth:
            self.levels.append(0)
        self.levels[depth] += size
        self.live += size
        self.total += size

    def release_below(self, depth: int) -> None:
        """Forget what was held deeper than `depth`: its owner has finished."""
        while len(self.levels) > depth + 1:
            self.live -= self.levels.pop()


class Evaluator:
    """Evaluates one AST against contexts: one small method per node class."""

    def __init__(self, contexts: Mapping[str, Any], status: Status) -> None:
        self._contexts = contexts
        self._status = status
        self._memory = _Memory()
        self._depth = 0

    @property
    def status(self) -> Status:
        """The status the status functions report."""
        return self._status

    def allocate(self, chars: int) -> None:
        """Account for `chars` characters a function is about to build."""
        self._memory.allocate(self._depth, chars)

    def evaluate(self, node: Node) -> Any:
        """The value of `node` (raw: numbers may be int, arrays may be filtered arrays)."""
        self._depth += 1
        try:
            return _VISITORS[type(node)](self, node)
        except EvaluationFailure as exc:
            raise ExpressionError(
                exc.message, stage=EVALUATION, start=node.start, end=node.end, span=node.span
            ) from None
        finally:
            self._depth -= 1
            self._memory.release_below(self._depth + 1)

    def literal(self, node: Literal) -> Any:
        """A constant."""
        return node.value

    def named_value(self, node: NamedValue) -> Any:
        """A context by name, ignoring case; an unknown one is null."""
        value = member(self._contexts, node.name)
        return None if value is MISSING else value

    def property(self, node: Property) -> Any:
        """``target.name``."""
        return _access(self.evaluate(node.target), _Key(False, node.name))

    def index(self, node: Index) -> Any:
        """``target[index]``: the index is evaluated first, as GitHub does."""
        key = _Key.of(self.evaluate(node.index))
        return _access(self.evaluate(node.target), key)

    def filter(self, node: Filter) -> Any:
        """``target.*``."""
        return _access(self.evaluate(node.target), _STAR)

    def not_(self, node: Not) -> bool:
        """``!operand``."""
        return not is_truthy(self.evaluate(node.operand))

    def binary(self, node: Binary) -> bool:
        """A comparison, after GitHub's loose type coercion."""
        return _COMPARISONS[node.op](self.evaluate(node.left), self.evaluate(node.right))

    def logical(self, node: Logical) -> Any:
        """``&&`` / ``||``: the first operand that decides (falsy / truthy), else the last."""
        stop_when = node.op == "||"
        result = None
        for position, operand in enumerate(node.operands):
            if position:
                self._memory.release_below(self._depth)  # the operand before is dropped
            result = self.evaluate(operand)
            if is_truthy(result) is stop_when:
                break
        return result

    def function_call(self, node: FunctionCall) -> Any:
        """A built-in function: every argument is evaluated first."""
        function = lookup(node.name)
        if function is None:  # parse() rejects these; a hand-built AST may not
            raise EvaluationFailure(f"Unrecognized function: '{node.name}'")
        args = [self.evaluate(arg) for arg in node.args]
        return function.implementation(args, self)


# The compiler's checks, the plan and lint each ask an expression for its references; an
# expression's tree is immutable (and shared by every parse of the same text), so they are
# found once per tree. The tree is kept with them: its id cannot be reused while cached.
_REFERENCES: dict[int, tuple[Node, tuple[Reference, ...]]] = {}
_REFERENCES_MAX = 65_536


def _references_of(root: Node) -> tuple[Reference, ...]:
    found = _REFERENCES.get(id(root))
    if found is None or found[0] is not root:
        found = (root, tuple(ast.references(root)))
        _REFERENCES[id(root)] = found
        while len(_REFERENCES) > _REFERENCES_MAX:
            del _REFERENCES[next(iter(_REFERENCES))]
    return found[1]


def _constant_calls(root: Node) -> Iterator[Node]:
    """The largest parts of `root` that call a function, depend on literals only and are
    evaluated whenever `root` is (not an operand of `&&`/`||` after the first)."""
    constant: dict[int, bool] = {}
    calls: dict[int, bool] = {}
    for node in reversed(list(ast.walk(root))):  # children before their parents
        children = node.children()
        is_call = isinstance(node, FunctionCall)
        status_call = isinstance(node, FunctionCall) and node.name.lower() in ast.STATUS_FUNCTIONS
        constant[id(node)] = (
            not isinstance(node, NamedValue)
            and not status_call
            and all(constant[id(c)] for c in children)
        )
        calls[id(node)] = is_call or any(calls[id(c)] for c in children)
    stack = [root]
    while stack:
        node = stack.pop()
        if constant[id(node)] and calls[id(node)]:
            yield node
        elif isinstance(node, Logical):
            stack.append(node.operands[0])  # the others may be short-circuited away
        else:
            stack.extend(reversed(node.children()))


_COMPARISONS: Final[dict[str, Callable[[Any, Any], bool]]] = {
    "==": equals,
    "!=": lambda left, right: not equals(left, right),
    "<": less_than,
    "<=": lambda left, right: equals(left, right) or less_than(left, right),
    ">": greater_than,
    ">=": lambda left, right: equals(left, right) or greater_than(left, right),
}

_VISITORS: Final[dict[type[Node], Callable[[Evaluator, Any], Any]]] = {
    Literal: Evaluator.literal,
    NamedValue: Evaluator.named_value,
    Property: Evaluator.property,
    Index: Evaluator.index,
    Filter: Evaluator.filter,
    Not: Evaluator.not_,
    Binary: Evaluator.binary,
    Logical: Evaluator.logical,
    FunctionCall: Evaluator.function_call,
}


def _access(target: Any, key: _Key) -> Any:
    """GitHub index semantics: wrong kinds and missing items give null (``*`` gives [])."""
    if isinstance(target, FilteredArray):
        return _filtered_access(target, key)
    kind = kind_of(target)
    if kind is Kind.ARRAY:
        if key.star:
            return FilteredArray(target)
        if key.position is not None and key.position < len(target):
            return target[key.position]
    elif kind is Kind.OBJECT:
        if key.star:
            return FilteredArray(target.values())
        if key.name is not None:
            value = member(target, key.name)
            return None if value is MISSING else value
    elif key.star:
        return FilteredArray()
    return None


def _filtered_access(items: FilteredArray, key: _Key) -> FilteredArray:
    """The key applied to each item of a filtered array; misses are left out."""
    result = FilteredArray()
    for item in items:
        kind = kind_of(item)
        if kind is Kind.OBJECT:
            if key.star:
                result.extend(item.values())
            elif key.name is not None and (value := member(item, key.name)) is not MISSING:
                result.append(value)
        elif kind is Kind.ARRAY:
            if key.star:
                result.extend(item)
            elif key.position is not None and key.position < len(item):
                result.append(item[key.position])
    return result
