"""docs/editor.md: each editor's set-up snippet is valid in its own language and starts
the server the way the end-to-end tests do (`wfx lsp`), for the files docs/ci.md and the
pre-commit hooks call workflow files; the schema snippets point at the schema."""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
TEXT = (ROOT / "docs" / "editor.md").read_text(encoding="utf-8")


def snippets(language: str) -> list[str]:
    return re.findall(rf"^ *```{language}\n(.*?)^ *```", TEXT, flags=re.DOTALL | re.MULTILINE)


def test_vs_code_starts_wfx_lsp_and_maps_the_schema() -> None:
    server, schema = (json.loads(s) for s in snippets("json"))
    assert [server["glspc.server.command"], *server["glspc.server.commandArguments"]] == [
        "wfx",
        "lsp",
    ]
    (path,) = schema["yaml.schemas"]
    assert (ROOT / path).is_file()
    assert schema["yaml.schemas"][path] == ["*.wfx.yaml", ".wfx/*.yaml"]


def test_helix_declares_the_server_and_the_schema() -> None:
    server, schema = (tomllib.loads(s) for s in snippets("toml"))
    assert server["language-server"]["wfx"] == {"command": "wfx", "args": ["lsp"]}
    (language,) = server["language"]
    assert language["language-servers"][0] == "wfx"
    assert language["file-types"] == [{"glob": "*.wfx.yaml"}, {"glob": ".wfx/*.yaml"}]
    mapping = schema["language-server"]["yaml-language-server"]["config"]["yaml"]["schemas"]
    assert (ROOT / next(iter(mapping))).is_file()


def test_neovim_starts_wfx_lsp_for_workflow_files() -> None:
    server = snippets("lua")[0]
    assert 'cmd = { "wfx", "lsp" }' in server
    assert 'pattern = { "*.wfx.yaml", "*/.wfx/*.yaml" }' in server


def test_the_modeline_example_is_a_valid_workflow_next_to_the_schema() -> None:
    (example,) = snippets("yaml")
    modeline = example.splitlines()[0]
    assert modeline == "# yaml-language-server: $schema=../schema/workflow.schema.json"
    # the path is relative to a file in examples/, as every example there starts
    assert (ROOT / "examples" / "../schema/workflow.schema.json").resolve().is_file()
    assert yaml.safe_load(example) == {"wfx": 1, "steps": [{"run": "echo hello"}]}
