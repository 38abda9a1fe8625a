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


#: what authors coming from other tools write, and the wfx key they mean (the table
#: schema.py held before the names moved into the schema, as `x-wfx-aliases`)
FROM_OTHER_TOOLS = {
    "if": "condition",
    "when": "condition",
    "depends_on": "needs",
    "dependsOn": "needs",
    "after": "needs",
    "timeout-minutes": "timeout",
    "continue-on-error": "onError",
    "cwd": "workingDirectory",
    "script": "run",
    "command": "run",
    "args": "with",
    "params": "with",
    "parameters": "inputs",
    "parallel": "type",
    "parallelism": "maxParallel",
    "concurrency": "maxParallel",
    "compensate": "rollback",
    "undo": "rollback",
    "always": "finally",
    "cleanup": "finally",
    "version": "wfx",
    "environment": "env",
}


def test_the_names_other_tools_use_are_in_the_schema_on_their_keys() -> None:
    assert dict(schema.aliases()) == FROM_OTHER_TOOLS
    for where, name, child in properties(schema.schema()):
        for alias in child.get(schema.ALIASES, ()):
            assert schema.aliases()[alias] == name, where
            assert alias != name


def test_validate_answers_an_alias_with_its_key_where_the_key_is_allowed() -> None:
    step_keys = [
        a for a, key in FROM_OTHER_TOOLS.items() if key not in ("inputs", "finally", "wfx")
    ]
    text = "wfx: 1\nsteps:\n  - id: s\n    run: echo\n" + "".join(
        f"    {alias}: x\n" for alias in step_keys if FROM_OTHER_TOOLS[alias] != "run"
    )
    text += "  - id: t\n    script: echo\n    cwd: sub\n"
    hints = {
        d.message.split("`")[1]: d.hint
        for d in schema.validate(loads(text, "wf.yaml"))
        if d.code == "schema.unknown-key"
    }
    for alias in step_keys:
        if FROM_OTHER_TOOLS[alias] != "run":
            assert hints[alias] == f"did you mean `{FROM_OTHER_TOOLS[alias]}`?", alias
    assert hints["script"] == "did you mean `run`?"
    top = "version: 1\nparameters: {}\nsteps:\n  - run: echo\nalways: []\n"
    found = {
        d.message.split("`")[1]: d.hint
        for d in schema.validate(loads(top, "wf.yaml"))
        if d.code == "schema.unknown-key"
    }
    assert found == {
        "version": "did you mean `wfx`?",
        "parameters": "did you mean `inputs`?",
        "always": "did you mean `finally`?",
    }
