"""The hints of `wfx validate` live in the schema, on the keys they are about (so editors
that read only the schema have them too); the schema stage reads them from there."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wfx import schema
from wfx.source import loads

HINT_KEYWORDS = (
    schema.VALUE_HINT,
    schema.MISSING_HINT,
    schema.MISPLACED_HINT,
    schema.CONFLICT_HINT,
)


def properties(node: Any, where: str = "#") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every property of the schema: where, its name, its schema."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from properties(item, f"{where}/{index}")
    elif isinstance(node, dict):
        for name, child in node.get("properties", {}).items():
            yield where, name, child
        for key, child in node.items():
            yield from properties(child, f"{where}/{key}")


def hint_sites(node: Any, where: str = "#") -> Iterator[str]:
    """Where any hint keyword is written."""
    if isinstance(node, list):
        for index, item in enumerate(node):
            yield from hint_sites(item, f"{where}/{index}")
    elif isinstance(node, dict):
        for key, child in node.items():
            if key in HINT_KEYWORDS:
                yield where
            yield from hint_sites(child, f"{where}/{key}")


def test_hints_sit_on_properties_and_a_key_has_one_hint_of_each_kind() -> None:
    document = schema.schema()
    on_properties = {
        f"{where}/properties/{name}"
        for where, name, child in properties(document)
        if any(k in child for k in HINT_KEYWORDS)
    }
    assert set(hint_sites(document)) == on_properties
    for keyword in HINT_KEYWORDS:
        texts: dict[str, set[str]] = {}
        for _, name, child in properties(document):
            if keyword in child:
                texts.setdefault(name, set()).add(child[keyword])
        assert {name: len(found) for name, found in texts.items() if len(found) > 1} == {}


def test_a_keys_value_hint_is_also_in_the_description_editors_show() -> None:
    step = schema.schema()["$defs"]["step"]["properties"]
    for key in ("id", "needs", "condition"):
        example = step[key][schema.VALUE_HINT].split("`")[1].removeprefix(f"{key}: ")
        assert example in step[key]["markdownDescription"]
        assert example in step[key]["description"]


def test_validate_gives_the_hints_written_in_the_schema() -> None:
    step = schema.schema()["$defs"]["step"]["properties"]
    text = (
        "steps:\n"
        "  - id: a\n    run: echo\n    timeout: 5 minutes\n"
        "  - id: b\n    cmd: [echo]\n    shell: sh\n"
        "  - id: c\n    run: echo\n    type: parallel\n"
    )
    found = {d.code: d.hint for d in schema.validate(loads(text, "wf.yaml"))}
    assert found == {
        "schema.missing-key": schema.schema()["properties"]["wfx"][schema.MISSING_HINT],
        "schema.invalid-value": step["timeout"][schema.VALUE_HINT],
        "schema.conflicting-keys": step["shell"][schema.CONFLICT_HINT],
        "schema.misplaced-key": step["type"][schema.MISPLACED_HINT],
    }
