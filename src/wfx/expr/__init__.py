"""The wfx expression language: GitHub Actions expressions (``${{ ... }}``), in full.

Parse once (:func:`parse`, :func:`parse_template`) into an :class:`Expression`
whose AST is plain frozen dataclasses; evaluate it as often as needed against
JSON-like contexts. Every failure is an :class:`ExpressionError`.
"""

from wfx.expr.ast import Node, Reference, unparse
from wfx.expr.errors import ExpressionError
from wfx.expr.evaluator import Expression
from wfx.expr.functions import Status
from wfx.expr.parser import evaluate, parse
from wfx.expr.template import Template, parse_template
from wfx.expr.values import is_truthy, to_string

__all__ = [
    "Expression",
    "ExpressionError",
    "Node",
    "Reference",
    "Status",
    "Template",
    "evaluate",
    "is_truthy",
    "parse",
    "parse_template",
    "to_string",
    "unparse",
]
