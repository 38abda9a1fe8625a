"""wfx expressions in another engine's terms: the AST rewritten context by context.

wfx's expression language is GitHub Actions' own, so for GitHub Actions only the
contexts differ (`steps.X.outputs.Y` of another step is `needs.X.outputs.Y` of another
job, `workflow.name` is `github.workflow`); the functions GitHub Actions lacks and the
contexts it has no equivalent for are Untranslatable. For Argo, only a bare reference
becomes an Argo `{{...}}` template (see wfx.export.argo).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from wfx.expr import ExpressionError, parse, unparse
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

#: the functions GitHub Actions' expressions have (lower case)
GITHUB_FUNCTIONS = frozenset(
    {
        "contains",
        "startswith",
        "endswith",
        "format",
        "join",
        "tojson",
        "fromjson",
        "success",
        "failure",
        "always",
        "cancelled",
    }
)

#: a context relabel: the literal path (as written) -> the new path prefix and how many
#: items of the path it replaces; raises Untranslatable
Relabel = Callable[[tuple[str, ...]], tuple[tuple[str, ...], int]]


class Untranslatable(Exception):  # noqa: N818 - a reason, carried to a Loss
    """An expression the target cannot express; the message says why."""


def parse_expression(text: str) -> Node:
    """The AST of one expression's text (the plan holds only valid ones)."""
    try:
        return parse(text).root
    except ExpressionError as exc:  # pragma: no cover - the plan was compiled
        raise Untranslatable(f"`{text}`: {exc.message}") from None


def translate(text: str, relabel: Relabel, functions: frozenset[str]) -> str:
    """`text` (an expression) with every context renamed; Untranslatable if it calls a
    function outside `functions` or reads a context `relabel` refuses."""
    return unparse(_rewrite(parse_expression(text), relabel, functions))


def _rewrite(node: Node, relabel: Relabel, functions: frozenset[str]) -> Node:
    if isinstance(node, NamedValue | Property | Index | Filter):
        return _rewrite_chain(node, relabel, functions)
    if isinstance(node, FunctionCall):
        if node.name.lower() not in functions:
            raise Untranslatable(f"the function `{node.name}()` has no equivalent")
        args = tuple(_rewrite(a, relabel, functions) for a in node.args)
        return dataclasses.replace(node, args=args)
    if isinstance(node, Not):
        return dataclasses.replace(node, operand=_rewrite(node.operand, relabel, functions))
    if isinstance(node, Binary):
        left = _rewrite(node.left, relabel, functions)
        return dataclasses.replace(node, left=left, right=_rewrite(node.right, relabel, functions))
    if isinstance(node, Logical):
        operands = tuple(_rewrite(o, relabel, functions) for o in node.operands)
        return dataclasses.replace(node, operands=operands)
    return node


def _rewrite_chain(node: Node, relabel: Relabel, functions: frozenset[str]) -> Node:
    """An access chain `base.a['b'][expr].*`: its named base renamed with the literal
    path after it; computed indexes rewritten on their own."""
    accessors: list[Node] = []
    base = node
    while isinstance(base, Property | Index | Filter):
        accessors.append(base)
        base = base.target
    accessors.reverse()
    if not isinstance(base, NamedValue):
        rebuilt = _rewrite(base, relabel, functions)
        return _reapply(rebuilt, accessors, relabel, functions)
    path = [base.name]
    for accessor in accessors:
        name = _literal_name(accessor)
        if name is None:
            break
        path.append(name)
    prefix, used = relabel(tuple(path))
    rebuilt_base: Node = NamedValue(prefix[0])
    for name in prefix[1:]:
        rebuilt_base = Property(rebuilt_base, name)
    return _reapply(rebuilt_base, accessors[used - 1 :], relabel, functions)


def _literal_name(accessor: Node) -> str | None:
    if isinstance(accessor, Property):
        return accessor.name
    if (
        isinstance(accessor, Index)
        and isinstance(accessor.index, Literal)
        and isinstance(accessor.index.value, str)
    ):
        return accessor.index.value
    return None


def _reapply(
    target: Node, accessors: list[Node], relabel: Relabel, functions: frozenset[str]
) -> Node:
    for accessor in accessors:
        if isinstance(accessor, Property):
            target = Property(target, accessor.name)
        elif isinstance(accessor, Index):
            target = Index(target, _rewrite(accessor.index, relabel, functions))
        else:
            target = Filter(target)
    return target


def uses_status_function(text: str) -> bool:
    """Whether an expression calls `success()`, `failure()`, `always()` or `cancelled()`."""
    root = parse_expression(text)
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, FunctionCall) and node.name.lower() in _STATUS:
            return True
        stack.extend(node.children())
    return False


def failure_functions(text: str) -> list[str]:
    """The status functions other than `always()`/`success()` an expression calls."""
    found: list[str] = []
    stack = [parse_expression(text)]
    while stack:
        node = stack.pop()
        if isinstance(node, FunctionCall) and node.name.lower() in ("failure", "cancelled"):
            found.append(node.name + "()")
        stack.extend(node.children())
    return sorted(set(found))


_STATUS = frozenset({"success", "failure", "always", "cancelled"})
