"""GitHub Actions value semantics: kinds, truthiness, coercion, comparison and formatting.

Values are JSON-like Python values: ``None``, ``bool``, numbers (``int`` or
``float``), ``str``, arrays (``list`` or ``tuple``) and objects (any
``Mapping``). Anything else is refused, so evaluation never calls into foreign
objects. Numbers convert to text the way .NET's "G15" format does, text
converts to a number the way JavaScript's ``Number()`` does, and strings
compare ordinally after upper-casing — all as GitHub's own engine does.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from wfx.expr.errors import EvaluationFailure


class Kind(enum.Enum):
    """The six kinds of value an expression handles."""

    NULL = "Null"
    BOOLEAN = "Boolean"
    NUMBER = "Number"
    STRING = "String"
    ARRAY = "Array"
    OBJECT = "Object"


PRIMITIVES: Final = frozenset({Kind.NULL, Kind.BOOLEAN, Kind.NUMBER, Kind.STRING})
"""The kinds that convert to text and numbers (arrays and objects do not)."""


class FilteredArray(list[Any]):
    """The result of ``.*`` or ``[*]``: an array whose further accesses apply to each item."""

    __slots__ = ()


class Missing(enum.Enum):
    """The marker for a key an object does not have (distinct from a ``null`` value)."""

    MISSING = "missing"


MISSING: Final = Missing.MISSING
"""What :func:`member` returns for a key the object does not have."""

JS_SPACE: Final = (
    "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
)
"""JavaScript's WhiteSpace and LineTerminator characters, which Number() and trim() strip."""

_JS_NUMBER: Final = re.compile(
    r"[+-]?(?:Infinity|(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)"
    r"|0[xX][0-9a-fA-F]+|0[oO][0-7]+|0[bB][01]+"
)
_RADIX: Final = {"x": 16, "o": 8, "b": 2}


def kind_of(value: Any) -> Kind:
    """The kind of `value`; anything that is not JSON-like is an evaluation failure."""
    if value is None:
        return Kind.NULL
    if isinstance(value, bool):
        return Kind.BOOLEAN
    if isinstance(value, (int, float)):
        return Kind.NUMBER
    if isinstance(value, str):
        return Kind.STRING
    if isinstance(value, (list, tuple)):
        return Kind.ARRAY
    if isinstance(value, Mapping):
        return Kind.OBJECT
    raise EvaluationFailure(f"Unsupported value of type '{type(value).__name__}'")


def is_truthy(value: Any) -> bool:
    """GitHub truthiness: null, false, 0, NaN and '' are false; everything else is true."""
    kind = kind_of(value)
    if kind is Kind.NULL:
        return False
    if kind is Kind.NUMBER:
        number = as_float(value)
        return number != 0 and not math.isnan(number)
    if kind in (Kind.BOOLEAN, Kind.STRING):
        return bool(value)
    return True


def as_float(number: int | float) -> float:
    """A number as a float; integers too large for one become infinite, as in JavaScript."""
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def parse_number(text: str) -> float:
    """Text to number with JavaScript ``Number()`` rules: blank is 0, junk is NaN."""
    stripped = text.strip(JS_SPACE)
    if not stripped:
        return 0.0
    if _JS_NUMBER.fullmatch(stripped) is None:
        return math.nan
    radix = _RADIX.get(stripped[1:2].lower()) if stripped[0] == "0" else None
    if radix is not None:
        return as_float(int(stripped[2:], radix))
    return float(stripped)


def to_number(value: Any) -> float:
    """GitHub number coercion: null 0, booleans 0/1, text via Number(), arrays and objects NaN."""
    kind = kind_of(value)
    if kind is Kind.NULL:
        return 0.0
    if kind in (Kind.BOOLEAN, Kind.NUMBER):
        return as_float(value)
    if kind is Kind.STRING:
        return parse_number(value)
    return math.nan


def format_number(number: float) -> str:
    """A number as text, .NET "G15"-style: 15 significant digits, ``-0`` is "0"."""
    if number == 0:
        return "0"
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return format(number, ".15G")


def to_string(value: Any) -> str:
    """GitHub string coercion, used when a value is interpolated into text."""
    kind = kind_of(value)
    if kind is Kind.STRING:
        return str(value)
    if kind is Kind.NULL:
        return ""
    if kind is Kind.BOOLEAN:
        return "true" if value else "false"
    if kind is Kind.NUMBER:
        return format_number(as_float(value))
    return str(kind.value)


def fold(text: str) -> str:
    """Upper-case text for case-insensitive comparison; the dotless i (U+0131) stays as it is."""
    if "ı" not in text:
        return text.upper()
    return "ı".join(part.upper() for part in text.split("ı"))


def _ordinal_less(left: str, right: str) -> bool:
    """Ordinal order of UTF-16 code units, as .NET and JavaScript compare strings."""
    if max(left, default="\0") < "\U00010000" and max(right, default="\0") < "\U00010000":
        return left < right
    return left.encode("utf-16-be", "surrogatepass") < right.encode("utf-16-be", "surrogatepass")


def _coerce(left: Any, right: Any) -> tuple[Kind, Any, Kind, Any]:
    """Loose-equality coercion: null and booleans become numbers; text meets numbers as numbers."""
    left_kind, right_kind = kind_of(left), kind_of(right)
    while left_kind is not right_kind:
        if left_kind is Kind.NUMBER and right_kind is Kind.STRING:
            right, right_kind = parse_number(right), Kind.NUMBER
        elif left_kind is Kind.STRING and right_kind is Kind.NUMBER:
            left, left_kind = parse_number(left), Kind.NUMBER
        elif left_kind in (Kind.NULL, Kind.BOOLEAN):
            left, left_kind = to_number(left), Kind.NUMBER
        elif right_kind in (Kind.NULL, Kind.BOOLEAN):
            right, right_kind = to_number(right), Kind.NUMBER
        else:
            break
    if left_kind is Kind.NUMBER:
        left = as_float(left)
    if right_kind is Kind.NUMBER:
        right = as_float(right)
    return left_kind, left, right_kind, right


def equals(left: Any, right: Any) -> bool:
    """``==``: loose equality; text ignores case; arrays and objects equal only themselves."""
    left_kind, left, right_kind, right = _coerce(left, right)
    if left_kind is not right_kind:
        return False
    if left_kind is Kind.STRING:
        return fold(left) == fold(right)
    if left_kind in (Kind.ARRAY, Kind.OBJECT):
        return left is right
    return bool(left == right)  # NULL, BOOLEAN, NUMBER (NaN equals nothing)


def less_than(left: Any, right: Any) -> bool:
    """``<`` after coercion; values of different kinds are never ordered."""
    left_kind, left, right_kind, right = _coerce(left, right)
    if left_kind is not right_kind:
        return False
    if left_kind is Kind.NUMBER:
        return bool(left < right)
    if left_kind is Kind.STRING:
        return _ordinal_less(fold(left), fold(right))
    if left_kind is Kind.BOOLEAN:
        return not left and bool(right)
    return False


def greater_than(left: Any, right: Any) -> bool:
    """``>`` after coercion; values of different kinds are never ordered."""
    left_kind, left, right_kind, right = _coerce(left, right)
    if left_kind is not right_kind:
        return False
    if left_kind is Kind.NUMBER:
        return bool(left > right)
    if left_kind is Kind.STRING:
        return _ordinal_less(fold(right), fold(left))
    if left_kind is Kind.BOOLEAN:
        return bool(left) and not right
    return False


def member(obj: Mapping[Any, Any], name: str) -> Any:
    """The value of property `name`, ignoring case (an exact match wins), or MISSING."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return MISSING


def object_key(key: Any) -> str:
    """An object key as text (YAML may give numbers or booleans as keys)."""
    if isinstance(key, str):
        return key
    if kind_of(key) in PRIMITIVES:
        return to_string(key)
    raise EvaluationFailure(f"Unsupported object key of type '{type(key).__name__}'")


def to_result(value: Any) -> Any:
    """A value as plain JSON-like data: float numbers, lists and dicts, copied without recursion."""
    kind = kind_of(value)
    if kind not in (Kind.ARRAY, Kind.OBJECT):
        return as_float(value) if kind is Kind.NUMBER else value
    root: list[Any] = []
    open_ids: set[int] = set()
    work: list[tuple[Any, Any, Any]] = [(value, root, None)]
    while work:
        source, target, key = work.pop()
        if source is _CLOSE:
            open_ids.discard(target)
            continue
        kind = kind_of(source)
        if kind not in (Kind.ARRAY, Kind.OBJECT):
            _put(target, key, as_float(source) if kind is Kind.NUMBER else source)
            continue
        if id(source) in open_ids:
            raise EvaluationFailure("A value contains itself")
        open_ids.add(id(source))
        work.append((_CLOSE, id(source), None))
        copy: Any = [] if kind is Kind.ARRAY else {}
        _put(target, key, copy)
        items: Iterable[tuple[Any, Any]] = (
            ((None, item) for item in source)
            if kind is Kind.ARRAY
            else ((object_key(k), v) for k, v in source.items())
        )
        work.extend((item, copy, k) for k, item in reversed(list(items)))
    return root[0]


_CLOSE: Final = object()


def _put(target: Any, key: Any, value: Any) -> None:
    if isinstance(target, list):
        target.append(value)
    else:
        target[key] = value
