"""The workflow schema read as a map of the language: which keys a mapping at a path
may hold, what each key means, and the values it takes. Paths are those of
:mod:`wfx.lsp.context` (None for a list item)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from wfx import schema
from wfx.lsp.context import PathPart

_Node = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class KeyDoc:
    """What the schema says of one key: its description (Markdown when the schema has
    it), the hint wfx gives when its value is wrong, and its fixed values."""

    name: str
    summary: str
    markdown: str
    hint: str | None
    values: tuple[Any, ...]


def keys_at(path: tuple[PathPart, ...]) -> dict[str, KeyDoc]:
    """The keys the mapping at `path` may hold, by name (empty when it is not a mapping of
    the language's keys)."""
    found: dict[str, KeyDoc] = {}
    for node in _nodes_at(path):
        for name, child in node.get("properties", {}).items():
            found.setdefault(name, _doc(name, child))
    return found


def key_doc(path: tuple[PathPart, ...], name: str) -> KeyDoc | None:
    """What the schema says of key `name` in the mapping at `path` (None: no such key)."""
    return keys_at(path).get(name)


def kinds_at(path: tuple[PathPart, ...]) -> set[str]:
    """The keys of which the mapping at `path` holds exactly one (a step's `run`, `cmd`,
    `uses` or `steps`)."""
    return {
        branch["required"][0]
        for node in _nodes_at(path)
        for branch in node.get("oneOf", [])
        if isinstance(branch, Mapping) and set(branch) == {"required"}
    }


def requirements_at(path: tuple[PathPart, ...]) -> dict[str, list[str]]:
    """The keys of the mapping at `path` that are allowed only together with others."""
    found: dict[str, list[str]] = {}
    for node in _nodes_at(path):
        for key, needed in node.get("dependentRequired", {}).items():
            found.setdefault(key, []).extend(needed)
    return found


def values_at(path: tuple[PathPart, ...]) -> tuple[Any, ...]:
    """The fixed values (`enum`, `const`, booleans) the value at `path` may take."""
    found: list[Any] = []
    for node in _nodes_at(path):
        found += [v for v in _values(node) if v not in found]
    return tuple(found)


def _values(node: _Node) -> list[Any]:
    if "enum" in node:
        return list(node["enum"])
    if "const" in node:
        return [node["const"]]
    types = node.get("type")
    return [True, False] if types == "boolean" else []


def _nodes_at(path: tuple[PathPart, ...]) -> list[_Node]:
    nodes: list[_Node] = list(_expand(schema.schema()))
    for part in path:
        nodes = [
            found for node in nodes for child in _children(node, part) for found in _expand(child)
        ]
    return nodes


def _children(node: _Node, part: PathPart) -> Iterator[_Node]:
    if part is None:
        items = node.get("items")
        if isinstance(items, Mapping):
            yield items
        return
    properties = node.get("properties", {})
    if part in properties:
        yield properties[part]
    elif isinstance(node.get("additionalProperties"), Mapping):
        yield node["additionalProperties"]


def _expand(node: _Node) -> Iterator[_Node]:
    """`node` with its `$ref` followed, and each alternative of its `anyOf`/`oneOf`."""
    node = _deref(node)
    yield node
    for keyword in ("anyOf", "oneOf"):
        for branch in node.get(keyword, []):
            if isinstance(branch, Mapping) and set(branch) != {"required"}:
                yield from _expand(branch)


def _deref(node: _Node) -> _Node:
    reference = node.get("$ref")
    while isinstance(reference, str) and reference.startswith("#/$defs/"):
        node = schema.schema()["$defs"][reference.removeprefix("#/$defs/")]
        reference = node.get("$ref")
    return node


def _doc(name: str, node: _Node) -> KeyDoc:
    target = _deref(node)
    summary = str(node.get("description") or target.get("description") or "")
    markdown = str(node.get("markdownDescription") or target.get("markdownDescription") or summary)
    hint = node.get("x-wfx-hint") or target.get("x-wfx-hint")
    values = tuple(v for n in _expand(node) for v in _values(n))
    return KeyDoc(name, summary, markdown, None if hint is None else str(hint), values)
