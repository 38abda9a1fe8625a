"""A yes/no answer to "does this workflow satisfy the JSON Schema?", without jsonschema.

Importing jsonschema costs 60-100 ms, more than reading and checking a short workflow
in every other way. Most files a command reads are valid, and a valid file needs no
error report: :func:`is_valid` compiles the schema once into plain predicates (the
keywords the schema uses, with jsonschema's meaning of each: its types, its equality,
`re.search` for patterns) and only a file it does not accept goes to :mod:`wfx.schema`,
whose jsonschema validator finds every problem and explains each one. A property test
holds the verdicts to plain jsonschema's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

Check = Callable[[Any], bool]

#: keywords that say nothing about validity
_ANNOTATIONS = frozenset(
    {"$schema", "$id", "$comment", "title", "description", "markdownDescription", "examples"}
    | {"default", "errorMessage"}
)


class UnsupportedSchemaError(Exception):
    """The schema uses a keyword this checker does not know: jsonschema decides."""


def is_valid(data: Any) -> bool:
    """True when `data` satisfies the workflow schema; False when it may not (then
    :func:`wfx.schema.validate` finds out, and says why)."""
    check = _workflow_check()
    return check is not None and check(data)


@cache
def _workflow_check() -> Check | None:
    from wfx.schema import schema  # noqa: PLC0415 - wfx.schema stays out of this module's import

    try:
        return compile_schema(schema())
    except UnsupportedSchemaError:
        return None


def compile_schema(document: Mapping[str, Any]) -> Check:
    """The predicate of a whole schema document (its `$defs` referred to by `$ref`)."""
    definitions: dict[str, Check] = {}
    compiler = _Compiler(document.get("$defs", {}), definitions)
    root = compiler.compile(document)
    for name in document.get("$defs", {}):
        definitions[name] = compiler.compile(document["$defs"][name])
    return root


class _Compiler:
    def __init__(self, defs: Mapping[str, Any], compiled: dict[str, Check]) -> None:
        self._defs = defs
        self._compiled = compiled

    def compile(self, node: Any) -> Check:
        if node is True:
            return _always
        if node is False:
            return _never
        if not isinstance(node, Mapping):
            raise UnsupportedSchemaError(repr(node))
        checks = [
            self._keyword(key, value, node)
            for key, value in node.items()
            if key not in _ANNOTATIONS and not key.startswith("x-")
        ]
        found = [check for check in checks if check is not None]
        if not found:
            return _always
        if len(found) == 1:
            return found[0]
        return lambda value: all(check(value) for check in found)

    def _keyword(self, key: str, rule: Any, node: Mapping[str, Any]) -> Check | None:
        name = _KEYWORDS.get(key)
        if name is None:
            raise UnsupportedSchemaError(key)
        check: Check | None = getattr(self, name)(rule, node)
        return check

    # -- references and combinations --------------------------------------------------------

    def kw_ref(self, rule: str, _node: Mapping[str, Any]) -> Check:
        if not rule.startswith("#/$defs/") or rule[8:] not in self._defs:
            raise UnsupportedSchemaError(rule)
        name, compiled = rule[8:], self._compiled
        return lambda value: compiled[name](value)  # noqa: PLW0108 - compiled later

    def all_of(self, rule: list[Any], _node: Mapping[str, Any]) -> Check:
        branches = [self.compile(branch) for branch in rule]
        return lambda value: all(branch(value) for branch in branches)

    def any_of(self, rule: list[Any], _node: Mapping[str, Any]) -> Check:
        branches = [self.compile(branch) for branch in rule]
        return lambda value: any(branch(value) for branch in branches)

    def one_of(self, rule: list[Any], _node: Mapping[str, Any]) -> Check:
        branches = [self.compile(branch) for branch in rule]
        return lambda value: sum(1 for branch in branches if branch(value)) == 1

    def kw_not(self, rule: Any, _node: Mapping[str, Any]) -> Check:
        inner = self.compile(rule)
        return lambda value: not inner(value)

    def kw_if(self, rule: Any, node: Mapping[str, Any]) -> Check:
        condition = self.compile(rule)
        then = self.compile(node.get("then", True))
        otherwise = self.compile(node.get("else", True))
        return lambda value: then(value) if condition(value) else otherwise(value)

    def kw_then(self, _rule: Any, _node: Mapping[str, Any]) -> None:
        return None  # with `if`

    def kw_else(self, _rule: Any, _node: Mapping[str, Any]) -> None:
        return None  # with `if`

    # -- any value ---------------------------------------------------------------------------

    def kw_type(self, rule: str | list[str], _node: Mapping[str, Any]) -> Check:
        names = [rule] if isinstance(rule, str) else list(rule)
        tests = [_TYPES[name] for name in names]
        return lambda value: any(test(value) for test in tests)

    def kw_enum(self, rule: list[Any], _node: Mapping[str, Any]) -> Check:
        return lambda value: any(_equal(value, allowed) for allowed in rule)

    def kw_const(self, rule: Any, _node: Mapping[str, Any]) -> Check:
        return lambda value: _equal(value, rule)

    # -- strings and numbers -----------------------------------------------------------------

    def kw_pattern(self, rule: str, _node: Mapping[str, Any]) -> Check:
        search = re.compile(rule).search
        return lambda value: not isinstance(value, str) or search(value) is not None

    def min_length(self, rule: int, _node: Mapping[str, Any]) -> Check:
        return lambda value: not isinstance(value, str) or len(value) >= rule

    def max_length(self, rule: int, _node: Mapping[str, Any]) -> Check:
        return lambda value: not isinstance(value, str) or len(value) <= rule

    def kw_minimum(self, rule: float, _node: Mapping[str, Any]) -> Check:
        return lambda value: not is_number(value) or not value < rule

    def kw_maximum(self, rule: float, _node: Mapping[str, Any]) -> Check:
        return lambda value: not is_number(value) or not value > rule

    def exclusive_minimum(self, rule: float, _node: Mapping[str, Any]) -> Check:
        return lambda value: not is_number(value) or not value <= rule

    # -- lists -------------------------------------------------------------------------------

    def kw_items(self, rule: Any, _node: Mapping[str, Any]) -> Check:
        item = self.compile(rule)
        return lambda value: not isinstance(value, list) or all(item(x) for x in value)

    def min_items(self, rule: int, _node: Mapping[str, Any]) -> Check:
        return lambda value: not isinstance(value, list) or len(value) >= rule

    def unique_items(self, rule: bool, _node: Mapping[str, Any]) -> Check | None:
        return _unique if rule else None

    # -- mappings ----------------------------------------------------------------------------

    def kw_required(self, rule: list[str], _node: Mapping[str, Any]) -> Check:
        return lambda value: not isinstance(value, dict) or all(key in value for key in rule)

    def min_properties(self, rule: int, _node: Mapping[str, Any]) -> Check:
        return lambda value: not isinstance(value, dict) or len(value) >= rule

    def kw_properties(self, rule: Mapping[str, Any], _node: Mapping[str, Any]) -> Check:
        known = {name: self.compile(schema) for name, schema in rule.items()}

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(known[key](item) for key, item in value.items() if key in known)

        return check

    def pattern_properties(self, rule: Mapping[str, Any], _node: Mapping[str, Any]) -> Check:
        patterns = [(re.compile(p).search, self.compile(schema)) for p, schema in rule.items()]

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(
                inner(item)
                for key, item in value.items()
                for search, inner in patterns
                if search(key) is not None
            )

        return check

    def additional_properties(self, rule: Any, node: Mapping[str, Any]) -> Check:
        inner = self.compile(rule)
        named = frozenset(node.get("properties", {}))
        searches = [re.compile(p).search for p in node.get("patternProperties", {})]

        def additional(key: str) -> bool:
            return key not in named and not any(search(key) for search in searches)

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(inner(item) for key, item in value.items() if additional(key))

        return check

    def property_names(self, rule: Any, _node: Mapping[str, Any]) -> Check:
        inner = self.compile(rule)
        return lambda value: not isinstance(value, dict) or all(inner(key) for key in value)

    def dependent_required(self, rule: Mapping[str, list[str]], _node: Mapping[str, Any]) -> Check:
        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(
                all(other in value for other in others)
                for key, others in rule.items()
                if key in value
            )

        return check

    def dependent_schemas(self, rule: Mapping[str, Any], _node: Mapping[str, Any]) -> Check:
        inner = {key: self.compile(schema) for key, schema in rule.items()}

        def check(value: Any) -> bool:
            if not isinstance(value, dict):
                return True
            return all(schema(value) for key, schema in inner.items() if key in value)

        return check

    def kw_defs(self, _rule: Any, _node: Mapping[str, Any]) -> None:
        return None  # compiled by compile_schema, reached through `$ref`


#: each keyword the checker knows, and the method that compiles it
_KEYWORDS: Mapping[str, str] = {
    "$ref": "kw_ref",
    "allOf": "all_of",
    "anyOf": "any_of",
    "oneOf": "one_of",
    "not": "kw_not",
    "if": "kw_if",
    "then": "kw_then",
    "else": "kw_else",
    "type": "kw_type",
    "enum": "kw_enum",
    "const": "kw_const",
    "pattern": "kw_pattern",
    "minLength": "min_length",
    "maxLength": "max_length",
    "minimum": "kw_minimum",
    "maximum": "kw_maximum",
    "exclusiveMinimum": "exclusive_minimum",
    "items": "kw_items",
    "minItems": "min_items",
    "uniqueItems": "unique_items",
    "required": "kw_required",
    "minProperties": "min_properties",
    "properties": "kw_properties",
    "patternProperties": "pattern_properties",
    "additionalProperties": "additional_properties",
    "propertyNames": "property_names",
    "dependentRequired": "dependent_required",
    "dependentSchemas": "dependent_schemas",
    "$defs": "kw_defs",
}


def _always(_value: Any) -> bool:
    return True


def _never(_value: Any) -> bool:
    return False


def is_number(value: Any) -> bool:
    """JSON Schema's `number`, as wfx has it: no bool, and no NaN (JSON has none; `.nan`
    in YAML is a float that every comparison, `minimum` included, would let through)."""
    if isinstance(value, float):
        return not math.isnan(value)
    return isinstance(value, int) and not isinstance(value, bool)


def _is_integer(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    return isinstance(value, int) and not isinstance(value, bool)


#: JSON Schema's types as jsonschema decides them (a bool is no number, 1.0 is an integer),
#: and NaN no number (wfx.schema's validator is told so too)
_TYPES: Mapping[str, Check] = {
    "array": lambda value: isinstance(value, list),
    "boolean": lambda value: isinstance(value, bool),
    "integer": _is_integer,
    "null": lambda value: value is None,
    "number": is_number,
    "object": lambda value: isinstance(value, dict),
    "string": lambda value: isinstance(value, str),
}


def _equal(one: Any, two: Any) -> bool:
    """JSON equality as jsonschema has it: `true` is not `1`, `1.0` is `1`, containers by
    their contents."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return bool(one == two)
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two, strict=True))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[key], two[key]) for key in one)
    if isinstance(one, bool) or isinstance(two, bool):
        return isinstance(one, bool) and isinstance(two, bool) and one == two
    return bool(one == two)


def _unique(value: Any) -> bool:
    """`uniqueItems` with :func:`_equal`'s meaning. A list of scalars (every `needs`)
    goes by a set of keys, in linear time: comparing every pair of a 3,000-name list
    that YAML aliases let a 100 KB file repeat 200 times took minutes."""
    if not isinstance(value, list):
        return True
    keys = [_scalar_key(item) for item in value]
    if None not in keys:
        return len(set(keys)) == len(keys)
    return not any(_equal(a, b) for i, a in enumerate(value) for b in value[i + 1 :])


def _scalar_key(item: Any) -> tuple[str, Any] | None:
    """A key equal for two scalars exactly when :func:`_equal` says they are equal (a bool
    is no number, `1.0` is `1`); None for a container or a NaN, compared pair by pair."""
    if isinstance(item, str):
        return ("string", item)
    if isinstance(item, bool):
        return ("bool", item)
    if isinstance(item, int) or (isinstance(item, float) and not math.isnan(item)):
        return ("number", item)
    if item is None:
        return ("null", None)
    return None
