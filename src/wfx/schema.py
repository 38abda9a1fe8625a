"""Schema stage: check a loaded workflow against ``schema/workflow.schema.json``.

jsonschema finds the problems; this module turns each one into a :class:`Diagnostic`
a person can act on. It points at the offending key or value, says what was expected
in the language's own words (the schema's ``errorMessage`` texts, which editors show
too) and adds a hint: the key that was probably meant, the value that was probably
meant, or the hint the schema itself gives for the key (`x-wfx-hint` and friends,
next to the key's description).

jsonschema is imported on first use: it costs ~50 ms, which commands that never
validate should not pay.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from wfx.diagnostics import Diagnostic, Span, closest, error, sorted_diagnostics
from wfx.resources import read_text
from wfx.schemacheck import is_number
from wfx.source import Path_, PositionMap, SourceDocument

if TYPE_CHECKING:
    from jsonschema.exceptions import ValidationError
    from jsonschema.protocols import Validator

SCHEMA_FILE = "workflow.schema.json"

_Handler = Callable[["ValidationError", PositionMap], Iterator[Diagnostic]]

# Keys whose children are names chosen by the author, not keys of the language.
_NAME_MAPS = {"inputs": "input", "outputs": "output", "env": "environment variable", "with": ""}
_STEP_LISTS = {"steps", "finally"}
_KIND_PHRASES = {
    "steps": "`steps:` for a group",
    "run": "`run:` for a shell script",
    "cmd": "`cmd:` for a command without a shell",
    "uses": "`uses:` for a Python function or a sub-workflow",
}
_TYPE_NOUNS = {
    "string": "a string",
    "number": "a number",
    "integer": "an integer",
    "boolean": "a boolean",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}
_EMPTY = {"string": "an empty string", "array": "an empty list", "object": "an empty mapping"}
_JSON_TYPES: dict[type, str] = {
    float: "number",
    str: "string",
    list: "array",
    dict: "object",
    type(None): "null",
}
# The hints for each key live in the schema, next to its description (editors read them
# there too): `x-wfx-hint` when its value is wrong, and one for each way a key can be
# wrong that a value check cannot say.
VALUE_HINT = "x-wfx-hint"
MISSING_HINT = "x-wfx-hint-when-missing"
MISPLACED_HINT = "x-wfx-hint-when-misplaced"
CONFLICT_HINT = "x-wfx-hint-when-conflicting"
#: the names authors coming from other tools write for a key (`if` for `condition`), on the
#: key in the schema: an unknown key that is one of them is answered with the key
ALIASES = "x-wfx-aliases"


def validate(document: SourceDocument) -> list[Diagnostic]:
    """Check a loaded workflow against the schema; every problem found, sorted by position."""
    if not isinstance(document.data, dict):
        return [_not_a_mapping(document)]
    positions = document.positions
    fresh: dict[Path_, str] = {}
    root, steps = _root_and_steps(document.data, fresh)
    problems: list[tuple[ValidationError, Path_]] = [
        (problem, ()) for problem in _validator().iter_errors(root)
    ]
    for path, step in steps:
        problems += [(problem, path) for problem in _step_validator().iter_errors(step)]
    found: list[Diagnostic] = []
    failed: set[Path_] = set()
    for problem, prefix in problems:
        problem.relative_path.extendleft(reversed(prefix))
        failed.update(_prefixes(_path(problem)))
        found.extend(_translate(problem, positions))
    _remember_valid_steps(fresh, failed)
    return sorted_diagnostics(found)


# A step's verdict depends only on its own data (no rule of the schema relates two steps),
# so a step seen valid before (the editor re-checks a file at every keystroke) is not
# checked again: the schema checks only the steps that changed, each on its own.
_KNOWN_VALID: dict[str, None] = {}
_KNOWN_VALID_MAX = 50_000
_VALID_STEP = {"run": "true"}


def _root_and_steps(
    data: dict[str, Any], fresh: dict[Path_, str]
) -> tuple[dict[str, Any], list[tuple[Path_, Any]]]:
    """The workflow with each non-empty step list cut to one valid stand-in step, and the
    steps of those lists not known to be valid, by path, to check one by one (their own
    steps known to be valid replaced by the stand-in)."""
    root = dict(data)
    steps: list[tuple[Path_, Any]] = []
    for key in _STEP_LISTS:
        items = data.get(key)
        if not isinstance(items, list) or not items:
            continue
        root[key] = [_VALID_STEP]
        for index, step in enumerate(items):
            path = (key, index)
            checked = _known_or_checked(step, path, fresh)
            if checked is not _VALID_STEP:
                steps.append((path, checked))
    return root, steps


def _without_known_valid_steps(data: Any, path: Path_, fresh: dict[Path_, str]) -> Any:
    """`data` with each step already known to be valid replaced by a stand-in; the other
    steps' fingerprints are added to `fresh` by path."""
    if not isinstance(data, dict):
        return data
    copied: dict[str, Any] | None = None
    for key in _STEP_LISTS:
        steps = data.get(key)
        if not isinstance(steps, list):
            continue
        replaced = [_known_or_checked(step, (*path, key, i), fresh) for i, step in enumerate(steps)]
        if any(new is not old for new, old in zip(replaced, steps, strict=True)):
            copied = copied if copied is not None else dict(data)
            copied[key] = replaced
    return data if copied is None else copied


def _known_or_checked(step: Any, path: Path_, fresh: dict[Path_, str]) -> Any:
    """The stand-in for a step known to be valid; else the step (its own known-valid
    steps replaced), its fingerprint added to `fresh`."""
    if not isinstance(step, dict):
        return step
    fingerprint = repr(step)
    if fingerprint in _KNOWN_VALID:
        return _VALID_STEP
    fresh[path] = fingerprint
    return _without_known_valid_steps(step, path, fresh)


def _remember_valid_steps(fresh: dict[Path_, str], failed: set[Path_]) -> None:
    for path, fingerprint in fresh.items():
        if path not in failed:
            _KNOWN_VALID[fingerprint] = None
    while len(_KNOWN_VALID) > _KNOWN_VALID_MAX:
        del _KNOWN_VALID[next(iter(_KNOWN_VALID))]


def _prefixes(path: Path_) -> Iterator[Path_]:
    for length in range(len(path) + 1):
        yield path[:length]


@cache
def schema() -> Mapping[str, Any]:
    """The workflow JSON Schema, read and parsed once per process."""
    parsed: dict[str, Any] = json.loads(read_text("schema", SCHEMA_FILE))
    return parsed


@cache
def _step_validator() -> Validator:
    """The validator of one step (`#/$defs/step`), with the same rules as the workflow's."""
    inlined = _inlined(schema())
    whole = _validator()
    return type(whole)({"$defs": inlined["$defs"], "$ref": "#/$defs/step"})


@cache
def hints(keyword: str) -> Mapping[str, str]:
    """The schema's hints of one kind (e.g. `x-wfx-hint`) by the name of the key they are
    written on; a key name has one meaning, and so one hint, wherever it appears."""
    found: dict[str, str] = {}
    for name, definition in _key_definitions(schema()):
        if keyword in definition:
            found.setdefault(name, str(definition[keyword]))
    return found


@cache
def aliases() -> Mapping[str, str]:
    """The key each name from another tool stands for (`if` → `condition`), from the
    schema's `x-wfx-aliases`."""
    found: dict[str, str] = {}
    for name, definition in _key_definitions(schema()):
        for alias in definition.get(ALIASES, ()):
            found.setdefault(str(alias), name)
    return found


def _key_definitions(node: Any) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every key the schema defines anywhere (under `properties`), with its definition,
    in document order."""
    if isinstance(node, list):
        for item in node:
            yield from _key_definitions(item)
    elif isinstance(node, Mapping):
        for name, child in node.get("properties", {}).items():
            if isinstance(child, Mapping):
                yield name, child
        for child in node.values():
            yield from _key_definitions(child)


@cache
def _validator() -> Validator:
    # Imported here, not at the top: see the module docstring.
    from jsonschema import ValidationError  # noqa: PLC0415
    from jsonschema.validators import Draft202012Validator, extend  # noqa: PLC0415

    general = Draft202012Validator.VALIDATORS["oneOf"]

    def one_of(validator: Any, branches: Any, instance: Any, where: Any) -> Iterator[Any]:
        """`oneOf`, with "exactly one of these keys" (every step) decided by counting the
        keys instead of validating four sub-schemas and building three errors."""
        if not _is_exactly_one_key(branches):
            yield from general(validator, branches, instance, where)
            return
        # `required` holds for anything but a mapping, so a non-mapping matches every branch.
        matching = (
            sum(branch["required"][0] in instance for branch in branches)
            if isinstance(instance, dict)
            else len(branches)
        )
        if matching != 1:
            yield ValidationError(f"{instance!r} matches {matching} of {branches!r}")

    def number(_checker: Any, instance: Any) -> bool:
        return is_number(instance)

    types = Draft202012Validator.TYPE_CHECKER.redefine("number", number)
    # No format checker and no check_schema: the schema is tested, not re-checked per run.
    checker: type[Validator] = extend(  # type: ignore[no-untyped-call]
        Draft202012Validator, {"oneOf": one_of}, type_checker=types
    )
    return checker(_inlined(schema()))


_ANNOTATIONS = frozenset(
    {"description", "markdownDescription", "examples", "title", "default"}
    | {VALUE_HINT, MISSING_HINT, MISPLACED_HINT, CONFLICT_HINT, ALIASES}
)
# The definitions that refer to themselves; every other `$ref` is replaced by its target.
_RECURSIVE = frozenset({"#/$defs/step", "#/$defs/stepList"})
# Keywords whose keys are names (a property called `default` is not an annotation).
_NAMED_SCHEMAS = frozenset({"properties", "patternProperties", "$defs", "dependentSchemas"})
# Keywords whose values are data, not schemas: kept exactly as written.
_VERBATIM = frozenset({"enum", "const", "required", "dependentRequired", "errorMessage"})


def _inlined(document: Mapping[str, Any]) -> dict[str, Any]:
    """The schema as the validator runs it: non-recursive `$ref`s replaced by what they
    point at and annotations dropped. Same verdicts, errors and `errorMessage`s; a third
    of the time per step, since jsonschema resolves every `$ref` anew at every use."""
    definitions = document["$defs"]

    def expand(node: Any) -> Any:
        if isinstance(node, list):
            return [expand(item) for item in node]
        if not isinstance(node, Mapping):
            return node
        reference = node.get("$ref")
        if isinstance(reference, str) and reference not in _RECURSIVE:
            return expand(definitions[reference.removeprefix("#/$defs/")])
        return {
            key: _expand_keyword(key, value, expand)
            for key, value in node.items()
            if key not in _ANNOTATIONS
        }

    inlined: dict[str, Any] = expand(document)
    return inlined


def _expand_keyword(keyword: str, value: Any, expand: Callable[[Any], Any]) -> Any:
    if keyword in _VERBATIM:
        return value
    if keyword in _NAMED_SCHEMAS and isinstance(value, Mapping):
        return {name: expand(schema_) for name, schema_ in value.items()}
    return expand(value)


def _not_a_mapping(document: SourceDocument) -> Diagnostic:
    data = document.data
    got = "the file is empty" if data is None else f"got {_noun(data)}"
    return error(
        "schema.not-a-mapping",
        f"a workflow file {schema()['errorMessage']}",
        Span(document.name, 1, 1, 1, 1),
        f"{got}; start with `wfx: 1` and a `steps:` list, as in the examples/ folder",
    )


# --- dispatch --------------------------------------------------------------------------


def _translate(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    """Turn one jsonschema error into zero or more diagnostics."""
    if "propertyNames" in problem.absolute_schema_path:
        return _bad_name(problem, positions)
    handler = _HANDLERS.get(str(problem.validator), _wrong_value)
    return handler(problem, positions)


def _path(problem: ValidationError) -> Path_:
    return tuple(problem.absolute_path)


def _value(problem: ValidationError) -> Any:
    """The value a problem is about (jsonschema's stubs allow it to be unset)."""
    found: Any = problem.instance
    return found


def _rule(problem: ValidationError) -> Any:
    """The value of the schema keyword that failed, e.g. the list of a `required`."""
    found: Any = problem.validator_value
    return found


def _schema_of(problem: ValidationError) -> Mapping[str, Any]:
    found = problem.schema
    return found if isinstance(found, Mapping) else {}


# --- unknown and missing keys ----------------------------------------------------------


def _unknown_keys(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    path = _path(problem)
    allowed = sorted(_schema_of(problem).get("properties", {}))
    for key in _value(problem):
        if key not in allowed:
            yield error(
                "schema.unknown-key",
                f"unknown key `{key}` in {_context(path)}",
                positions.key((*path, key)),
                _key_suggestion(key, allowed),
            )


def _key_suggestion(key: str, allowed: Sequence[str]) -> str:
    closest = _closest_key(key, allowed)
    if closest is not None:
        return f"did you mean `{closest}`?"
    return "allowed here: " + ", ".join(f"`{name}`" for name in allowed)


def _closest_key(key: str, allowed: Sequence[str]) -> str | None:
    """The allowed key an unknown `key` most likely meant, if any."""
    squashed = {_squash(name): name for name in allowed}
    if _squash(key) in squashed:
        return squashed[_squash(key)]
    if aliases().get(key) in allowed:
        return aliases()[key]
    return closest(key, allowed, cutoff=0.7)


def _squash(key: str) -> str:
    return key.lower().replace("_", "").replace("-", "")


def _missing_keys(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    path = _path(problem)
    where = f" in {_context(path)}" if path else ""
    span = positions.value(path) if path else Span(positions.file, 1, 1, 1, 1)
    for key in _rule(problem):
        if key not in _value(problem):
            yield error(
                "schema.missing-key",
                f"missing required key `{key}`{where}",
                span,
                hints(MISSING_HINT).get(key),
            )


def _context(path: Path_) -> str:
    """What the mapping at `path` is, in the words of the language."""
    if not path:
        return "workflow"
    last, parent = path[-1], (path[-2] if len(path) > 1 else None)
    if isinstance(last, int) and parent in _STEP_LISTS:
        return "step"
    if parent == "inputs":
        return f"input `{last}`"
    if last in {"rollback", "retries", "defaults"}:
        return str(last)
    return f"`{last}`"


def _bad_name(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    path, name = _path(problem), str(_value(problem))
    what = _NAME_MAPS.get(str(path[-1]) if path else "", "") or "key"
    expected, _ = _expectation(problem)
    yield error(
        "schema.invalid-name",
        f"{what} name `{name}` {expected}",
        positions.key((*path, name)),
    )


# --- step kinds, dependencies, conflicts -------------------------------------------------


def _alternatives(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    branches: list[Mapping[str, Any]] = _rule(problem)
    schema_path = list(problem.absolute_schema_path)
    if (
        len(schema_path) >= 3
        and schema_path[-3] == "dependentSchemas"
        and _is_exactly_one_key(branches)
    ):
        yield _needs_one_of(str(schema_path[-2]), branches, problem, positions)
        return
    if _is_exactly_one_key(branches):
        yield from _kind(problem, positions)
        return
    chosen = _branch_for(_value(problem), branches)
    if chosen is None:
        yield from _wrong_value(problem, positions)
        return
    for inner in problem.context:
        if inner.relative_schema_path[0] == chosen:
            yield from _translate(inner, positions)


def _needs_one_of(
    key: str,
    branches: Sequence[Mapping[str, Any]],
    problem: ValidationError,
    positions: PositionMap,
) -> Diagnostic:
    """A `dependentSchemas: {key: {anyOf: [{required: [a]}, ...]}}` failure: `key` is
    written without any of the keys it belongs with."""
    others = [f"`{b['required'][0]}`" for b in branches]
    return error(
        "schema.misplaced-key",
        f"`{key}` is only allowed together with {_or(others)}",
        positions.key((*_path(problem), key)),
        hints(MISPLACED_HINT).get(key),
    )


def _is_exactly_one_key(branches: Sequence[Any]) -> bool:
    """True for `oneOf: [{required: [a]}, {required: [b]}, ...]`: "exactly one of these keys"."""
    return all(
        isinstance(branch, Mapping) and set(branch) == {"required"} and len(branch["required"]) == 1
        for branch in branches
    )


def _branch_for(value: Any, branches: Sequence[Mapping[str, Any]]) -> int | None:
    """The first alternative that accepts the type of `value` (its errors are the relevant ones)."""
    for index, branch in enumerate(branches):
        if _accepts_type(branch, value):
            return index
    return None


def _kind(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    step = _value(problem)
    if not isinstance(step, dict):
        return  # the type error says it all
    path = _path(problem)
    kinds = [branch["required"][0] for branch in _rule(problem)]
    what = _context(path).strip("`")
    present = sorted((k for k in kinds if k in step), key=lambda k: positions.key((*path, k)))
    if len(present) > 1:
        yield _too_many_kinds(what, present, positions.key((*path, present[1])))
    elif not _misspelt_kind(step, kinds, _schema_of(problem)):
        yield error(
            "schema.step-kind",
            f"a {what} needs exactly one of " + ", ".join(f"`{kind}`" for kind in kinds),
            positions.value(path),
            "add " + _or([_KIND_PHRASES[kind] for kind in kinds]),
        )


def _too_many_kinds(what: str, present: list[str], span: Span) -> Diagnostic:
    listed = f"both {_code_list(present)}" if len(present) == 2 else _code_list(present)
    return error(
        "schema.step-kind",
        f"a {what} has exactly one kind; this one has {listed}",
        span,
        "keep only one of them",
    )


def _misspelt_kind(step: Mapping[str, Any], kinds: list[str], where: Mapping[str, Any]) -> bool:
    """True when an unknown key already reported looks like a misspelt kind key."""
    allowed = list(where.get("properties", {}))
    return any(_closest_key(key, allowed) in kinds for key in step if key not in allowed)


def _dependency(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    path, instance = _path(problem), _value(problem)
    for key, needed in _rule(problem).items():
        for other in needed:
            if key in instance and other not in instance:
                yield error(
                    "schema.misplaced-key",
                    f"`{key}` is only allowed together with `{other}`",
                    positions.key((*path, key)),
                    hints(MISPLACED_HINT).get(key),
                )


def _conflict(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    """A `dependentSchemas: {key: {not: {anyOf: [{required: [other]}, ...]}}}` failure."""
    schema_path = list(problem.absolute_schema_path)
    if len(schema_path) < 3 or schema_path[-3] != "dependentSchemas":
        yield from _wrong_value(problem, positions)
        return
    key, path = str(schema_path[-2]), _path(problem)
    rivals = [b["required"][0] for b in _rule(problem).get("anyOf", [])]
    present = [rival for rival in rivals if rival in _value(problem)]
    yield error(
        "schema.conflicting-keys",
        f"`{key}` cannot be used together with {_code_list(present)}",
        positions.key((*path, key)),
        hints(CONFLICT_HINT).get(key),
    )


def _duplicates(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    path, items = _path(problem), _value(problem)
    for index, item in enumerate(items):
        if any(_same(item, earlier) for earlier in items[:index]):
            yield error(
                "schema.duplicate-item",
                f"{_subject(path)} lists `{_show(item)}` more than once",
                positions.value((*path, index)),
                "remove the repeated item",
            )
            return


def _same(left: Any, right: Any) -> bool:
    return type(left) is type(right) and bool(left == right)


# --- wrong values ----------------------------------------------------------------------


def _wrong_value(problem: ValidationError, positions: PositionMap) -> Iterator[Diagnostic]:
    path, value = _path(problem), _value(problem)
    expected, holder = _expectation(problem)
    accepted = _accepted_types(holder)
    yield error(
        "schema.invalid-value",
        f"{_subject(path)} {expected}, got {_describe(value, accepted)}",
        positions.value(path),
        _value_hint(path, value, holder, accepted),
    )


def _expectation(problem: ValidationError) -> tuple[str, Mapping[str, Any]]:
    """What the value should have been: the nearest `errorMessage`, else one derived here."""
    for schema_here in _schemas_at_same_place(problem):
        if "errorMessage" in schema_here:
            return str(schema_here["errorMessage"]), schema_here
    return _derived_expectation(problem), _schema_of(problem)


def _schemas_at_same_place(problem: ValidationError) -> Iterator[Mapping[str, Any]]:
    """The schemas of `problem` and of the alternatives enclosing it at the same value."""
    path = _path(problem)
    current: Any = problem
    while current is not None and tuple(current.absolute_path) == path:
        yield _schema_of(current)
        current = current.parent


def _derived_expectation(problem: ValidationError) -> str:
    keyword, limit = str(problem.validator), _rule(problem)
    derive = _DERIVED.get(keyword)
    return derive(limit) if derive is not None else f"is invalid ({problem.message})"


_DERIVED: dict[str, Callable[[Any], str]] = {
    "type": lambda types: "must be " + _or([_TYPE_NOUNS[t] for t in _as_list(types)]),
    "enum": lambda values: "must be one of " + ", ".join(_show(v) for v in values),
    "const": lambda value: f"must be `{_show(value)}`",
    "minimum": lambda limit: f"must be at least {_show(limit)}",
    "maximum": lambda limit: f"must be at most {_show(limit)}",
    "minLength": lambda _: "must not be empty",
    "minItems": lambda count: f"must have at least {count} item{'s' if count != 1 else ''}",
    "pattern": lambda regex: f"must match the pattern `{regex}`",
}


def _value_hint(
    path: Path_, value: Any, holder: Mapping[str, Any], accepted: set[str] | None
) -> str | None:
    return (
        _enum_suggestion(value, holder)
        or _quoting_hint(value, accepted)
        or hints(VALUE_HINT).get(_property(path) or "")
    )


def _enum_suggestion(value: Any, holder: Mapping[str, Any]) -> str | None:
    choices = [str(choice) for choice in holder.get("enum", [])]
    if not isinstance(value, str) or not choices:
        return None
    close = closest(value, choices)
    return f"did you mean `{close}`?" if close else None


def _quoting_hint(value: Any, accepted: set[str] | None) -> str | None:
    if accepted is None or _type_matches(value, accepted):
        return None
    if isinstance(value, str) and {"number", "integer"} & accepted and _is_number(value):
        return "remove the quotes to make it a number"
    if isinstance(value, int | float) and not isinstance(value, bool) and "string" in accepted:
        return f"quote it to make it a string: `'{_show(value)}'`"
    return None


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def _property(path: Path_) -> str | None:
    """The language key a path ends at (an item counts as its list's key); None for author names."""
    trimmed = path[:-1] if path and isinstance(path[-1], int) else path
    if not trimmed or not isinstance(trimmed[-1], str):
        return None
    if len(trimmed) > 1 and trimmed[-2] in _NAME_MAPS:
        return None
    return trimmed[-1]


def _subject(path: Path_) -> str:
    """How a message names the value at `path`."""
    if not path:
        return "the workflow"
    last = path[-1]
    if isinstance(last, int):
        parent = path[-2] if len(path) > 1 else "list"
        return f"item {last + 1} of `{parent}`"
    return f"`{last}`"


# --- types and values --------------------------------------------------------------------


def _accepted_types(where: Mapping[str, Any]) -> set[str] | None:
    """The JSON types a schema can accept at all (None: any)."""
    if "$ref" in where:
        return _accepted_types(_resolve(str(where["$ref"])))
    if "type" in where:
        return set(_as_list(where["type"]))
    if "enum" in where or "const" in where:
        values = where.get("enum", [where.get("const")])
        return {_json_type(value) for value in values}
    branches = where.get("anyOf") or where.get("oneOf")
    if not branches:
        return None
    found: set[str] = set()
    for branch in branches:
        types = _accepted_types(branch)
        if types is None:
            return None
        found |= types
    return found


def _accepts_type(where: Mapping[str, Any], value: Any) -> bool:
    accepted = _accepted_types(where)
    return accepted is None or _type_matches(value, accepted)


def _type_matches(value: Any, accepted: set[str]) -> bool:
    """True when `value` is of an accepted type; integers and numbers count as one family."""
    kind = _json_type(value)
    if kind in ("integer", "number"):
        return bool({"integer", "number"} & accepted)
    return kind in accepted


def _resolve(reference: str) -> Mapping[str, Any]:
    """A local `#/$defs/...` reference of the workflow schema."""
    node: Any = schema()
    for part in reference.removeprefix("#/").split("/"):
        node = node[part]
    return node  # type: ignore[no-any-return]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    return _JSON_TYPES.get(type(value), "unknown")


def _describe(value: Any, accepted: set[str] | None) -> str:
    """`value` itself when it is a scalar of an acceptable type, else what kind of thing it is."""
    scalar = isinstance(value, str | int | float) and value != ""
    if scalar and (accepted is None or _type_matches(value, accepted)):
        return f"`{_show(value)}`"
    return _noun(value)


def _noun(value: Any) -> str:
    """What kind of thing `value` is: "a string", "an empty list", "a mapping"…"""
    kind = _json_type(value)
    if value is None:
        return "nothing (an empty value)"
    if isinstance(value, str | list | dict) and not value:
        return _EMPTY[kind]
    return "a number" if kind == "integer" else _TYPE_NOUNS.get(kind, type(value).__name__)


def _show(value: Any) -> str:
    """A short, YAML-like rendering of a scalar for a message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 40 else text[:39] + "…"


def _as_list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list) else [value]


def _code_list(items: Sequence[str]) -> str:
    """`a`, `b` and `c`."""
    shown = [f"`{item}`" for item in items]
    if len(shown) <= 2:
        return " and ".join(shown)
    return ", ".join(shown[:-1]) + " and " + shown[-1]


def _or(items: Sequence[str]) -> str:
    if len(items) <= 2:
        return " or ".join(items)
    return ", ".join(items[:-1]) + " or " + items[-1]


_HANDLERS: dict[str, _Handler] = {
    "additionalProperties": _unknown_keys,
    "required": _missing_keys,
    "oneOf": _alternatives,
    "anyOf": _alternatives,
    "dependentRequired": _dependency,
    "not": _conflict,
    "uniqueItems": _duplicates,
}
