"""Source stage: YAML text -> plain data plus the position of every key and value.

The loader is built on PyYAML's event stream (libyaml's C parser when present) so
that wfx, not PyYAML, builds the data. That gives us, in one pass:

* a :class:`PositionMap` from each path (``("steps", 0, "run")``) to its span;
* YAML 1.2 core-schema scalars: ``on``/``no``/``yes`` stay strings, only
  ``true``/``false`` are booleans (the YAML 1.1 "Norway problem" cannot happen);
* duplicate keys as errors, not silent overwrites;
* no custom tags at all (``!!python/object`` and friends are refused);
* hard limits on size, nesting depth and alias expansion, so a billion-laughs
  file is refused after reading a few hundred bytes of events.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wfx.diagnostics import Diagnostic, DiagnosticsError, Span, error

try:  # the C loader is an order of magnitude faster; fall back when libyaml is absent
    from yaml import CSafeLoader as _Loader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _Loader  # type: ignore[assignment]

MAX_BYTES = 8 * 1024 * 1024
MAX_DEPTH = 100
MAX_NODES = 1_000_000

PathKey = str | int
Path_ = tuple[PathKey, ...]
#: where a node was written, 1-based: line, column, end line, end column (a Span to be)
Mark = tuple[int, int, int, int]

_NULL = re.compile(r"^(?:~|null|Null|NULL|)$")
_BOOL = {"true": True, "True": True, "TRUE": True, "false": False, "False": False, "FALSE": False}
_INT = re.compile(r"^[-+]?[0-9]+$")
_OCT = re.compile(r"^0o[0-7]+$")
_HEX = re.compile(r"^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?$")
_INF = re.compile(r"^[-+]?\.(?:inf|Inf|INF)$")
_NAN = re.compile(r"^\.(?:nan|NaN|NAN)$")
#: how every null, boolean and number of the core schema begins ('' is null too)
_NON_STRING_STARTS = frozenset(
    ["", "~", "n", "N", "t", "T", "f", "F", ".", "+", "-", *"0123456789"]
)

_CORE_TAG = "tag:yaml.org,2002:"
_ALLOWED_TAGS = {f"{_CORE_TAG}{name}" for name in ("str", "int", "float", "bool", "null")}
_ALLOWED_COLLECTION_TAGS = {f"{_CORE_TAG}map", f"{_CORE_TAG}seq"}


@dataclass(frozen=True)
class PositionMap:
    """Where each value (and each mapping key) of a document was written."""

    file: str
    values: dict[Path_, Span | Mark] = field(default_factory=dict)
    keys: dict[Path_, Span | Mark] = field(default_factory=dict)
    """Both hold a Mark until the Span is asked for: a large file has tens of thousands
    of nodes, and most spans are never read (an editor rechecks it at every keystroke)."""

    def value(self, path: Path_) -> Span:
        """The span of the value at `path`, or of its nearest recorded ancestor."""
        for prefix in _prefixes(path):
            found = self.values.get(prefix)
            if found is not None:
                return self._span(self.values, prefix, found)
        return Span(self.file, 1, 1, 1, 1)

    def key(self, path: Path_) -> Span:
        """The span of the mapping key that introduces `path`, else of its value."""
        found = self.keys.get(path)
        return self._span(self.keys, path, found) if found is not None else self.value(path)

    def _span(self, table: dict[Path_, Span | Mark], path: Path_, found: Span | Mark) -> Span:
        if isinstance(found, Span):
            return found
        span = table[path] = Span(self.file, *found)
        return span


def _prefixes(path: Path_) -> Iterator[Path_]:
    for length in range(len(path), -1, -1):
        yield path[:length]


@dataclass(frozen=True)
class SourceDocument:
    """A loaded workflow file: its text, plain data and positions."""

    name: str
    text: str
    data: Any
    positions: PositionMap

    def line(self, number: int) -> str:
        """The text of 1-based line `number` ('' when out of range)."""
        lines = self.lines
        return lines[number - 1] if 0 < number <= len(lines) else ""

    @functools.cached_property
    def lines(self) -> list[str]:
        """The text split into lines, once."""
        return self.text.splitlines()


def load(path: str | Path) -> SourceDocument:
    """Read and parse the workflow file at `path`; raise DiagnosticsError on any problem."""
    name = str(path)
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise DiagnosticsError(
            [error("io", f"cannot read {name}: {exc.strerror or exc}")]
        ) from None
    return loads(raw, name)


def loads(content: str | bytes, name: str = "<string>") -> SourceDocument:
    """Parse YAML `content` (text or bytes) named `name` into a SourceDocument."""
    if isinstance(content, bytes):
        if len(content) > MAX_BYTES:
            raise DiagnosticsError([_too_large(name)])
        text = _decode(content, name)
    else:
        text = content
        if len(text) > MAX_BYTES:
            raise DiagnosticsError([_too_large(name)])
    builder = _Builder(name)
    try:
        data = builder.build(text)
    except yaml.YAMLError as exc:
        raise DiagnosticsError([_yaml_diagnostic(exc, name, text)]) from None
    except _LoadError as exc:
        raise DiagnosticsError([exc.diagnostic]) from None
    if builder.problems:
        raise DiagnosticsError(builder.problems)
    return SourceDocument(name, text, data, builder.positions)


def _too_large(name: str) -> Diagnostic:
    return error(
        "yaml.too-large",
        f"file is larger than {MAX_BYTES // (1024 * 1024)} MiB",
        Span(name, 1, 1, 1, 1),
        "a workflow file is configuration, not data; keep large content in separate files",
    )


def _decode(raw: bytes, name: str) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise DiagnosticsError(
            [
                error(
                    "yaml.encoding",
                    f"the file is not valid UTF-8 (byte 0x{raw[exc.start]:02x})",
                    Span(name, line, column, line, column + 1),
                    "save the workflow as UTF-8 text",
                )
            ]
        ) from None


def _yaml_diagnostic(exc: yaml.YAMLError, name: str, text: str) -> Diagnostic:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc)
    context = getattr(exc, "context", None)
    if isinstance(exc, yaml.reader.ReaderError):
        return _unacceptable_character(exc, name, text)
    message = f"invalid YAML: {problem}"
    context_mark = getattr(exc, "context_mark", None)
    hint = None
    if context and context_mark is not None:
        where = f"line {context_mark.line + 1}, column {context_mark.column + 1}"
        hint = f"{context.removeprefix('while ')} that began at {where}"
    if mark is None:
        return error("yaml.syntax", message, Span(name, 1, 1, 1, 1), hint)
    span = Span(name, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2)
    return error("yaml.syntax", message, span, hint)


def _unacceptable_character(exc: yaml.reader.ReaderError, name: str, text: str) -> Diagnostic:
    """A character YAML refuses (NUL, other control characters), at its own line:column:
    the reader reports only an offset, which we turn into a position in the text."""
    character = chr(exc.character) if isinstance(exc.character, int) else str(exc.character)
    offset = exc.position if text[exc.position : exc.position + 1] == character else -1
    if offset < 0:
        offset = max(text.find(character), 0)
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return error(
        "yaml.syntax",
        f"invalid YAML: unacceptable character #x{ord(character):04x}: {exc.reason}",
        Span(name, line, column, line, column + 1),
        "remove the character (write it as an escape such as `\\x00` in a double-quoted string)",
    )


class _LoadError(Exception):
    """Internal: a problem that stops loading at once (limits, tags)."""

    def __init__(self, diagnostic: Diagnostic) -> None:
        super().__init__(diagnostic.message)
        self.diagnostic = diagnostic


@dataclass
class _Anchor:
    value: Any
    size: int


class _Builder:
    """Builds plain data from a YAML event stream, recording positions and problems."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.positions = PositionMap(name)
        self.problems: list[Diagnostic] = []
        self.anchors: dict[str, _Anchor] = {}
        self.nodes = 0

    def build(self, text: str) -> Any:
        loader = _Loader(text)
        try:
            events = _EventStream(loader)
            events.expect(yaml.StreamStartEvent)
            if events.peek_is(yaml.StreamEndEvent):
                return None
            events.expect(yaml.DocumentStartEvent)
            data, _ = self._node(events, (), 0)
            events.expect(yaml.DocumentEndEvent)
            if not events.peek_is(yaml.StreamEndEvent):
                start = events.next().start_mark
                raise _LoadError(
                    error(
                        "yaml.multiple-documents",
                        "a workflow file holds exactly one YAML document",
                        self._span(start, start),
                        "remove the second `---` document or move it to its own file",
                    )
                )
            return data
        finally:
            loader.dispose()

    def _span(self, start: Any, end: Any) -> Span:
        return Span(self.name, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def _mark(self, start: Any, end: Any) -> Mark:
        return (start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def _count(self, size: int, mark: Any) -> None:
        self.nodes += size
        if self.nodes > MAX_NODES:
            raise _LoadError(
                error(
                    "yaml.too-many-nodes",
                    f"the document expands to more than {MAX_NODES:,} values"
                    " (an alias bomb or a generated file?)",
                    self._span(mark, mark),
                    "use fewer aliases; wfx refuses documents that expand this much",
                )
            )

    def _node(self, events: _EventStream, path: Path_, depth: int) -> tuple[Any, int]:
        """Build one node; return its value and its expanded size in nodes."""
        event = events.next()
        if depth > MAX_DEPTH:
            raise _LoadError(
                error(
                    "yaml.too-deep",
                    f"nesting deeper than {MAX_DEPTH} levels",
                    self._span(event.start_mark, event.start_mark),
                    "flatten the structure",
                )
            )
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, path)
        if isinstance(event, yaml.ScalarEvent):
            value, size = self._scalar(event), 1
            self._count(1, event.start_mark)
            self.positions.values[path] = self._mark(event.start_mark, event.end_mark)
        elif isinstance(event, yaml.SequenceStartEvent):
            self._check_collection_tag(event, "seq")
            value, size = self._sequence(events, path, depth)
            self.positions.values[path] = self._mark(event.start_mark, events.last.end_mark)
        elif isinstance(event, yaml.MappingStartEvent):
            self._check_collection_tag(event, "map")
            value, size = self._mapping(events, path, depth)
            self.positions.values[path] = self._mark(event.start_mark, events.last.end_mark)
        else:  # pragma: no cover - the parser never yields anything else here
            raise _LoadError(error("yaml.syntax", f"unexpected {event}", None))
        if event.anchor is not None:
            self.anchors[event.anchor] = _Anchor(value, size)
        return value, size

    def _alias(self, event: yaml.AliasEvent, path: Path_) -> tuple[Any, int]:
        span = self._span(event.start_mark, event.end_mark)
        anchor = self.anchors.get(event.anchor or "")
        if anchor is None:
            raise _LoadError(error("yaml.alias", f"unknown alias *{event.anchor}", span))
        self._count(anchor.size, event.start_mark)
        self.positions.values[path] = span
        return anchor.value, anchor.size

    def _sequence(self, events: _EventStream, path: Path_, depth: int) -> tuple[list[Any], int]:
        items: list[Any] = []
        size = 1
        while not events.peek_is(yaml.SequenceEndEvent):
            value, item_size = self._node(events, (*path, len(items)), depth + 1)
            items.append(value)
            size += item_size
        events.next()
        self._count(1, events.last.start_mark)
        return items, size

    def _mapping(self, events: _EventStream, path: Path_, depth: int) -> tuple[dict[str, Any], int]:
        mapping: dict[str, Any] = {}
        merged: set[str] = set()
        size = 1
        while not events.peek_is(yaml.MappingEndEvent):
            key_event = events.next()
            key, key_span = self._key(key_event)
            value, value_size = self._node(events, (*path, key), depth + 1)
            size += value_size + 1
            if key == "<<" and isinstance(key_event, yaml.ScalarEvent) and not key_event.style:
                self._merge(mapping, merged, value, key_span)
                continue
            if key in mapping and key not in merged:
                self._duplicate(key, (*path, key), key_span)
                continue
            merged.discard(key)
            mapping[key] = value
            self.positions.keys[(*path, key)] = key_span
        events.next()
        self._count(1, events.last.start_mark)
        return mapping, size

    def _key(self, event: Any) -> tuple[str, Mark]:
        if isinstance(event, yaml.ScalarEvent):
            return event.value, self._mark(event.start_mark, event.end_mark)
        raise _LoadError(
            error(
                "yaml.complex-key",
                "mapping keys must be plain scalars, not lists, mappings or aliases",
                self._span(event.start_mark, event.end_mark),
            )
        )

    def _merge(self, mapping: dict[str, Any], merged: set[str], value: Any, mark: Mark) -> None:
        span = Span(self.name, *mark)
        sources = value if isinstance(value, list) else [value]
        for source in sources:
            if not isinstance(source, dict):
                self.problems.append(
                    error("yaml.merge", "`<<` merges only mappings (or a list of them)", span)
                )
                return
            for key, item in source.items():
                if key not in mapping:
                    mapping[key] = item
                    merged.add(key)

    def _duplicate(self, key: str, path: Path_, mark: Mark) -> None:
        span = Span(self.name, *mark)
        first = self.positions.keys.get(path)
        where = (
            f"line {first[0] if isinstance(first, tuple) else first.line}" if first else "earlier"
        )
        self.problems.append(
            error(
                "yaml.duplicate-key",
                f"duplicate key `{key}` (first defined at {where})",
                span,
                "each key may appear once in a mapping; remove or rename one",
            )
        )

    def _check_collection_tag(self, event: Any, kind: str) -> None:
        tag = event.tag
        if tag is None or tag in ("!", f"{_CORE_TAG}{kind}"):
            return
        raise _LoadError(self._tag_error(tag, event))

    def _tag_error(self, tag: str, event: Any) -> Diagnostic:
        return error(
            "yaml.tag",
            f"YAML tag `{_short_tag(tag)}` is not allowed",
            self._span(event.start_mark, event.end_mark),
            "wfx reads plain data only: strings, numbers, booleans, null, lists and mappings",
        )

    def _scalar(self, event: yaml.ScalarEvent) -> Any:
        tag = event.tag
        if tag is None or tag == "!":
            plain = not event.style and event.implicit[0]
            return resolve_plain_scalar(event.value) if plain else event.value
        if tag not in _ALLOWED_TAGS:
            raise _LoadError(self._tag_error(tag, event))
        return _explicit_scalar(tag.removeprefix(_CORE_TAG), event.value, self, event)


def _fits_tag(kind: str, value: Any) -> bool:
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "null":
        return value is None
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if kind == "int" else isinstance(value, int | float)


def _explicit_scalar(kind: str, text: str, builder: _Builder, event: Any) -> Any:
    if kind == "str":
        return text
    value = resolve_plain_scalar(text)
    if _fits_tag(kind, value):
        return float(value) if kind == "float" else value
    builder.problems.append(
        error(
            "yaml.tag",
            f"`{text}` is not a valid !!{kind}",
            builder._span(event.start_mark, event.end_mark),
        )
    )
    return text


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_CORE_TAG) if tag.startswith(_CORE_TAG) else tag


def resolve_plain_scalar(text: str) -> Any:
    """Resolve an unquoted scalar with the YAML 1.2 core schema."""
    if text[:1] not in _NON_STRING_STARTS:
        return text  # most scalars are words: no null, boolean or number starts this way
    if _NULL.match(text):
        return None
    if text in _BOOL:
        return _BOOL[text]
    if _INT.match(text):
        return int(text)
    if _OCT.match(text):
        return int(text[2:], 8)
    if _HEX.match(text):
        return int(text[2:], 16)
    if _FLOAT.match(text):
        return float(text)
    if _INF.match(text):
        return float("-inf") if text.startswith("-") else float("inf")
    if _NAN.match(text):
        return float("nan")
    return text


class _EventStream:
    """A one-event look-ahead over a PyYAML loader's events."""

    def __init__(self, loader: Any) -> None:
        self.loader = loader
        self.last: Any = None

    def next(self) -> Any:
        self.last = self.loader.get_event()
        return self.last

    def peek_is(self, kind: type) -> bool:
        return bool(self.loader.check_event(kind))

    def expect(self, kind: type) -> Any:
        event = self.next()
        if not isinstance(event, kind):  # pragma: no cover - guaranteed by the parser
            raise _LoadError(error("yaml.syntax", f"expected {kind.__name__}", None))
        return event
