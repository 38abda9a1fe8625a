"""Workflow inputs: coerce given values to their declared type and check them.

Used by the compiler twice: on each input's own `default` (a default that breaks its
own declaration is a bug in the file), and on the values a user passes with
``-i name=value`` or ``--inputs file``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from wfx.diagnostics import Diagnostic, DiagnosticsError, Span, closest, error
from wfx.model import Input, InputType, Workflow

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


class InputValueError(ValueError):
    """A value does not fit its input's declaration; the message says why."""


def coerce(declaration: Input, value: Any) -> Any:
    """`value` converted to the input's type and checked against enum and pattern."""
    converted = _convert(declaration, value)
    if declaration.enum is not None and converted not in declaration.enum:
        allowed = ", ".join(_show(v) for v in declaration.enum)
        raise InputValueError(f"{_show(converted)} is not one of {allowed}")
    pattern = declaration.pattern
    if pattern is not None and isinstance(converted, str) and not _matches(pattern, converted):
        raise InputValueError(f"{_show(converted)} does not match the pattern `{pattern}`")
    return converted


def _matches(pattern: str, text: str) -> bool:
    try:
        return re.search(pattern, text) is not None
    except re.error as exc:
        raise InputValueError(f"the pattern `{pattern}` is invalid: {exc}") from None


def _convert(declaration: Input, value: Any) -> Any:
    kind = declaration.type
    if kind is InputType.BOOLEAN:
        return _to_boolean(value)
    if kind is InputType.NUMBER:
        return _to_number(value)
    if kind is InputType.CHOICE and declaration.enum is not None:
        return _to_choice(declaration.enum, value)
    if isinstance(value, bool | int | float) and kind is InputType.STRING:
        raise InputValueError(f"expected a string, got {_show(value)}")
    if not isinstance(value, str):
        raise InputValueError(f"expected a string, got {_type_name(value)}")
    return value


def _to_boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InputValueError(f"expected a boolean (true or false), got {_show(value)}")


def _to_number(value: Any) -> float | int:
    if isinstance(value, bool):
        raise InputValueError(f"expected a number, got {_show(value)}")
    if isinstance(value, int | float):
        number: float | int = value
    else:
        try:
            number = float(str(value).strip()) if str(value).strip() else math.nan
        except ValueError:
            raise InputValueError(f"expected a number, got {_show(value)}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise InputValueError(f"expected a finite number, got {_show(value)}")
    return int(number) if isinstance(number, float) and number.is_integer() else number


def _to_choice(options: tuple[Any, ...], value: Any) -> Any:
    if value in options:
        return value
    text = str(value)
    for option in options:
        if str(option) == text:
            return option
    return value


def _show(value: Any) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _type_name(value: Any) -> str:
    return {list: "a list", dict: "a mapping", type(None): "null"}.get(type(value), _show(value))


def check_defaults(workflow: Workflow) -> list[Diagnostic]:
    """Errors for input declarations whose pattern or default breaks the declaration."""
    problems: list[Diagnostic] = []
    for declaration in workflow.inputs:
        if declaration.pattern is not None:
            try:
                re.compile(declaration.pattern)
            except re.error as exc:
                problems.append(
                    error(
                        "inputs.pattern",
                        f"input `{declaration.name}` has an invalid pattern: {exc}",
                        declaration.span,
                    )
                )
                continue
        if declaration.has_default and declaration.default is not None:
            try:
                coerce(declaration, declaration.default)
            except InputValueError as exc:
                problems.append(
                    error(
                        "inputs.default",
                        f"the default of input `{declaration.name}` is invalid: {exc}",
                        declaration.span,
                        "make the default fit the input's type, enum and pattern",
                    )
                )
    return problems


def resolve(
    workflow: Workflow,
    given: Mapping[str, Any],
    spans: Mapping[str, Span] | None = None,
    require: bool = True,
) -> dict[str, Any]:
    """The run's input values: given ones coerced, defaults filled in; all errors at once.

    With `require` false, a missing required input is not an error (it gets an empty value).
    """
    declared = {d.name: d for d in workflow.inputs}
    spans = spans or {}
    problems = [
        _unknown_input(name, declared, spans.get(name)) for name in given if name not in declared
    ]
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        if name in given:
            try:
                values[name] = coerce(declaration, given[name])
            except InputValueError as exc:
                problems.append(error("inputs.value", f"input `{name}`: {exc}", spans.get(name)))
        elif declaration.has_default and declaration.default is not None:
            values[name] = coerce_default(declaration)
        elif declaration.required and require:
            problems.append(
                error(
                    "inputs.missing",
                    f"input `{name}` is required",
                    spans.get(name),
                    f"pass it with `-i {name}=VALUE`",
                )
            )
        else:
            values[name] = _empty(declaration)
    if problems:
        raise DiagnosticsError(problems)
    return values


def coerce_default(declaration: Input) -> Any:
    """The declared default, converted (left raw when it does not fit: reported elsewhere)."""
    try:
        return coerce(declaration, declaration.default)
    except InputValueError:
        return declaration.default


def _empty(declaration: Input) -> Any:
    return {InputType.BOOLEAN: False, InputType.NUMBER: 0}.get(declaration.type, "")


def _unknown_input(name: str, declared: Mapping[str, Input], span: Span | None) -> Diagnostic:
    close = closest(name, declared)
    hint = (
        f"did you mean `{close}`?"
        if close
        else f"declared inputs: {', '.join(declared) or '(none)'}"
    )
    return error("inputs.unknown", f"unknown input `{name}`", span, hint)
