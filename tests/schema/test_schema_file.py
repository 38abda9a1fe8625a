"""The workflow JSON Schema itself: a valid 2020-12 schema that documents every key."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from wfx import schema as wfx_schema
from wfx.resources import read_text

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schema" / "workflow.schema.json"


def load_schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


def walk(node: Any, where: str = "#") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema object in the document, with a JSON-pointer-like location."""
    if isinstance(node, dict):
        yield where, node
        for key, value in node.items():
            yield from walk(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, f"{where}/{index}")


def test_schema_is_a_valid_2020_12_schema() -> None:
    document = load_schema()
    Draft202012Validator.check_schema(document)
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"]
    assert document["title"]


def test_every_property_everywhere_has_a_description() -> None:
    missing = [
        f"{where}/properties/{name}"
        for where, node in walk(load_schema())
        if isinstance(node.get("properties"), dict)
        for name, prop in node["properties"].items()
        if not (isinstance(prop, dict) and prop.get("description"))
    ]
    assert missing == []


def test_every_mapping_with_known_keys_rejects_unknown_ones() -> None:
    open_objects = [
        where
        for where, node in walk(load_schema())
        if "properties" in node
        and "additionalProperties" not in node
        and "/if" not in where
        and "/then" not in where
    ]
    assert open_objects == []


def test_every_reference_points_at_a_definition() -> None:
    document = load_schema()
    references = {node["$ref"] for _, node in walk(document) if "$ref" in node}
    assert references
    for reference in references:
        assert reference.startswith("#/$defs/")
        assert reference.removeprefix("#/$defs/") in document["$defs"], reference


def test_every_definition_is_used() -> None:
    document = load_schema()
    text = json.dumps(document)
    unused = [name for name in document["$defs"] if f'"#/$defs/{name}"' not in text]
    assert unused == []


def test_language_version_and_required_top_level_keys() -> None:
    document = load_schema()
    assert document["properties"]["wfx"]["const"] == 1
    assert set(document["required"]) == {"wfx", "steps"}


@pytest.mark.parametrize(
    ("duration", "valid"),
    [
        ("500ms", True),
        ("10s", True),
        ("5m", True),
        ("1h30m", True),
        ("1.5s", True),
        (0, True),
        (2.5, True),
        ("5 minutes", False),
        ("10", False),
        ("1.s", False),
        ("-1s", False),
        (-1, False),
        ("", False),
        ("1d", False),
    ],
)
def test_duration_definition(duration: Any, valid: bool) -> None:
    document = load_schema()
    validator = Draft202012Validator({"$defs": document["$defs"], "$ref": "#/$defs/duration"})
    assert validator.is_valid(duration) is valid


def test_the_package_reads_the_same_schema_once() -> None:
    assert wfx_schema.schema() is wfx_schema.schema()
    assert wfx_schema.schema() == json.loads(read_text("schema", wfx_schema.SCHEMA_FILE))
    assert wfx_schema.schema() == load_schema()
