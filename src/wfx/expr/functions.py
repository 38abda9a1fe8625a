"""The built-in functions: what each accepts (checked when parsing) and what it does.

``contains``, ``startsWith``, ``endsWith``, ``format``, ``join``, ``toJSON``,
``fromJSON`` and ``case`` behave as in GitHub Actions; ``success``,
``failure``, ``always`` and ``cancelled`` read the :class:`Status` given to the
evaluation. Names ignore case. A function that builds text asks for the memory
first (:meth:`Call.allocate`), so no expression can build unbounded strings.
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from wfx.expr.errors import EvaluationFailure
from wfx.expr.values import (
    JS_SPACE,
    PRIMITIVES,
    Kind,
    as_float,
    equals,
    fold,
    kind_of,
    object_key,
    to_string,
)


@dataclass(frozen=True, slots=True)
class Status:
    """What the status functions see: whether a dependency failed, whether the run is cancelled."""

    failed: bool = False
    cancelled: bool = False


class Call(Protocol):
    """What a function sees besides its arguments."""

    @property
    def status(self) -> Status:
        """The status the expression is evaluated under."""
        ...

    def allocate(self, chars: int) -> None:
        """Account for `chars` characters about to be built; fails past the memory limit."""
        ...


Implementation = Callable[[Sequence[Any], Call], Any]
"""A function body: the evaluated arguments and the call context in, the value out."""


@dataclass(frozen=True, slots=True)
class Function:
    """A built-in function: its documented name, how many arguments it takes, what it does."""

    name: str
    min_args: int
    max_args: int
    implementation: Implementation
    odd_args: bool = False

    def arity_problem(self, count: int) -> str | None:
        """Why `count` arguments are wrong for this function (parse-time check), or None."""
        if count < self.min_args:
            return f"Too few parameters supplied: '{self.name}'"
        if count > self.max_args:
            return f"Too many parameters supplied: '{self.name}'"
        if self.odd_args and count % 2 == 0:
            return (
                "Even number of parameters supplied, requires an odd number of parameters: "
                f"'{self.name}'"
            )
        return None


def lookup(name: str) -> Function | None:
    """The built-in function called `name` (any case), or None."""
    return FUNCTIONS.get(name.lower())


def _primitive(value: Any) -> bool:
    return kind_of(value) in PRIMITIVES


def _contains(args: Sequence[Any], call: Call) -> bool:
    search, item = args
    kind = kind_of(search)
    if kind in PRIMITIVES:
        return _primitive(item) and to_string(item).lower() in to_string(search).lower()
    if kind is Kind.ARRAY:
        return any(equals(item, element) for element in search)
    return False


def _starts_with(args: Sequence[Any], call: Call) -> bool:
    text, prefix = args
    return (
        _primitive(text)
        and _primitive(prefix)
        and fold(to_string(text)).startswith(fold(to_string(prefix)))
    )


def _ends_with(args: Sequence[Any], call: Call) -> bool:
    text, suffix = args
    return (
        _primitive(text)
        and _primitive(suffix)
        and fold(to_string(text)).endswith(fold(to_string(suffix)))
    )


def _invalid_format(template: str) -> EvaluationFailure:
    shown = template if len(template) <= 200 else template[:200] + "…"
    return EvaluationFailure(f"The following format string is invalid: {shown}")


def _format(args: Sequence[Any], call: Call) -> str:
    template = to_string(args[0])
    values = [to_string(value) for value in args[1:]]
    pieces: list[str] = []
    position = 0
    while position < len(template):
        left, right = template.find("{", position), template.find("}", position)
        if left >= 0 and (right < 0 or left < right):
            position = _format_placeholder(template, position, left, values, pieces)
        elif right >= 0:
            if template[right + 1 : right + 2] != "}":
                raise _invalid_format(template)
            pieces.append(template[position : right + 1])
            position = right + 2
        else:
            pieces.append(template[position:])
            break
    call.allocate(sum(map(len, pieces)))
    return "".join(pieces)


_PLACEHOLDER: Final = re.compile(r"\{([0-9]+)\}")


def _format_placeholder(
    template: str, position: int, left: int, values: list[str], pieces: list[str]
) -> int:
    """Handle the ``{`` at `left`: ``{{`` or ``{N}``; returns where to continue."""
    if template[left + 1 : left + 2] == "{":
        pieces.append(template[position : left + 1])
        return left + 2
    placeholder = _PLACEHOLDER.match(template, left)
    if placeholder is None:
        raise _invalid_format(template)
    digits = placeholder.group(1).lstrip("0") or "0"
    index = int(digits) if len(digits) < 10 else len(values)
    if index >= len(values):
        shown = template if len(template) <= 200 else template[:200] + "…"
        raise EvaluationFailure(
            f"The following format string references more arguments than were supplied: {shown}"
        )
    pieces.append(template[position:left])
    pieces.append(values[index])
    return placeholder.end()


def _join(args: Sequence[Any], call: Call) -> str:
    items = args[0]
    kind = kind_of(items)
    if kind in PRIMITIVES:
        return to_string(items)
    if kind is not Kind.ARRAY:
        return ""
    separator = to_string(args[1]) if len(args) > 1 and _primitive(args[1]) else ","
    parts = [to_string(item) for item in items]
    call.allocate(sum(map(len, parts)) + len(separator) * max(0, len(parts) - 1))
    return separator.join(parts)


def _to_json(args: Sequence[Any], call: Call) -> str:
    return to_json(args[0], call.allocate)


def _from_json(args: Sequence[Any], call: Call) -> Any:
    text = to_string(args[0])
    if not text.strip(JS_SPACE):
        raise EvaluationFailure("Empty input when evaluating fromJSON")
    try:
        return json.loads(
            text, parse_int=_json_number, parse_float=_json_number, parse_constant=_json_constant
        )
    except ValueError as exc:
        reason = str(exc)
    except (RecursionError, MemoryError):
        reason = "nested too deeply"
    raise EvaluationFailure(f"Error parsing JSON when evaluating fromJSON: {reason}")


def _json_number(digits: str) -> float:
    number = float(digits)  # float() has no digit limit
    if math.isinf(number):  # JSON has no infinity: `1e400` is not a value we can hold
        shown = digits if len(digits) <= 40 else digits[:40] + "…"
        raise ValueError(f"the number {shown} is out of range")
    return number


def _json_constant(name: str) -> Any:
    raise ValueError(f"'{name}' is not JSON")


def _case(args: Sequence[Any], call: Call) -> Any:
    for predicate, result in zip(args[:-1:2], args[1::2], strict=True):
        if kind_of(predicate) is not Kind.BOOLEAN:
            raise EvaluationFailure("case predicate must evaluate to a boolean value")
        if predicate:
            return result
    return args[-1]


def _status_function(test: Callable[[Status], bool]) -> Implementation:
    return lambda args, call: test(call.status)


def to_json(value: Any, allocate: Callable[[int], None] | None = None) -> str:
    """A value as JSON, pretty-printed with two spaces as GitHub's ``toJSON`` does.

    Written without recursion (values may nest deeply); `allocate` is told each
    piece's size as it is produced, so a huge or self-containing value fails early.
    """
    out: list[str] = []
    work: list[tuple[int, Any, int]] = [(_VALUE, value, 0)]
    open_ids: set[int] = set()
    while work:
        tag, item, level = work.pop()
        if tag != _VALUE:
            _emit(out, item, allocate)
            if tag == _CLOSE:
                open_ids.discard(level)
            continue
        kind = kind_of(item)
        if kind not in (Kind.ARRAY, Kind.OBJECT):
            _emit(out, _json_scalar(item, kind), allocate)
        elif not item:
            _emit(out, "[]" if kind is Kind.ARRAY else "{}", allocate)
        elif id(item) in open_ids:
            raise EvaluationFailure("A value contains itself")
        else:
            open_ids.add(id(item))
            work.extend(reversed(_json_container(item, kind, level)))
    return "".join(out)


_VALUE: Final = 0
_TEXT: Final = 1
_CLOSE: Final = 2


def _json_container(container: Any, kind: Kind, level: int) -> list[tuple[int, Any, int]]:
    """The work items that print a non-empty array or object, in printing order."""
    inner = "\n" + "  " * (level + 1)
    is_array = kind is Kind.ARRAY
    items: list[tuple[int, Any, int]] = [(_TEXT, "[" if is_array else "{", 0)]
    entries = ((None, v) for v in container) if is_array else container.items()
    for position, (key, entry) in enumerate(entries):
        prefix = ("," if position else "") + inner
        if not is_array:
            prefix += _json_string(object_key(key)) + ": "
        items.append((_TEXT, prefix, 0))
        items.append((_VALUE, entry, level + 1))
    close = "\n" + "  " * level + ("]" if is_array else "}")
    items.append((_CLOSE, close, id(container)))
    return items


def _emit(out: list[str], text: str, allocate: Callable[[int], None] | None) -> None:
    if allocate is not None:
        allocate(len(text))
    out.append(text)


_SURROGATE: Final = re.compile("[\ud800-\udfff]")


def _json_string(text: str) -> str:
    dumped = json.dumps(text, ensure_ascii=False)
    return _SURROGATE.sub(lambda m: f"\\u{ord(m.group()):04x}", dumped)


def _json_scalar(value: Any, kind: Kind) -> str:
    if kind is Kind.NULL:
        return "null"
    if kind is Kind.BOOLEAN:
        return "true" if value else "false"
    if kind is Kind.NUMBER:
        return _js_number(as_float(value))
    return _json_string(value)


def _js_number(number: float) -> str:
    """A number the way JavaScript prints it (shortest round-trip digits); NaN and ±∞ are null."""
    if not math.isfinite(number):
        return "null"
    if number == 0:
        return "0"
    mantissa, _, exponent = repr(abs(number)).partition("e")
    whole, _, fraction = mantissa.partition(".")
    all_digits = whole + fraction
    digits = all_digits.lstrip("0")
    point = len(whole) + int(exponent or 0) - (len(all_digits) - len(digits))
    digits = digits.rstrip("0")
    sign = "-" if number < 0 else ""
    if len(digits) <= point <= 21:
        return sign + digits + "0" * (point - len(digits))
    if 0 < point <= 21:
        return sign + digits[:point] + "." + digits[point:]
    if -6 < point <= 0:
        return sign + "0." + "0" * -point + digits
    rest = "." + digits[1:] if len(digits) > 1 else ""
    return f"{sign}{digits[0]}{rest}e{'+' if point > 0 else '-'}{abs(point - 1)}"


FUNCTIONS: Final[Mapping[str, Function]] = {
    f.name.lower(): f
    for f in (
        Function("contains", 2, 2, _contains),
        Function("startsWith", 2, 2, _starts_with),
        Function("endsWith", 2, 2, _ends_with),
        Function("format", 1, 255, _format),
        Function("join", 1, 2, _join),
        Function("toJSON", 1, 1, _to_json),
        Function("fromJSON", 1, 1, _from_json),
        Function("case", 3, sys.maxsize, _case, odd_args=True),
        Function("success", 0, 0, _status_function(lambda s: not s.failed and not s.cancelled)),
        Function("failure", 0, 0, _status_function(lambda s: s.failed)),
        Function("always", 0, 0, _status_function(lambda s: True)),
        Function("cancelled", 0, 0, _status_function(lambda s: s.cancelled)),
    )
}
"""The built-in functions by lower-cased name."""
