"""The example workflows: valid, runnable without inputs, and their Python tools work."""

from __future__ import annotations

import importlib.util
import inspect
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

from wfx.schema import validate
from wfx.source import load

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
EXAMPLE_FILES = sorted(EXAMPLES.glob("*.yaml"))
MODELINE = "# yaml-language-server: $schema=../schema/workflow.schema.json"
EXPECTED = {
    "production-deployment.yaml",
    "etl-pipeline.yaml",
    "microservice-release.yaml",
    "blue-green.yaml",
    "dependency-pipeline.yaml",
}
CONTEXTS = {"inputs", "env", "secrets", "steps", "workflow", "attempt", "matrix", "item", "index"}
FUNCTIONS = {
    "contains",
    "startsWith",
    "endsWith",
    "format",
    "join",
    "toJSON",
    "fromJSON",
    "case",
    "success",
    "failure",
    "always",
    "cancelled",
}


def steps_of(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every step, depth first, groups included."""
    found: list[dict[str, Any]] = []
    for step in items:
        found.append(step)
        found.extend(steps_of(step.get("steps", [])))
    return found


def all_steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    return steps_of(data["steps"]) + steps_of(data.get("finally", []))


def example_tools() -> ModuleType:
    spec = importlib.util.spec_from_file_location("example_tools", EXAMPLES / "example_tools.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_five_scenarios_are_there() -> None:
    assert {path.name for path in EXAMPLE_FILES} >= EXPECTED


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_validates_without_diagnostics(path: Path) -> None:
    assert validate(load(path)) == []


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_is_short_and_starts_with_the_modeline(path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == MODELINE
    assert lines[1] == "wfx: 1"
    assert len(lines) <= 60


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_runs_without_any_input_given(path: Path) -> None:
    inputs = load(path).data.get("inputs", {})
    needing_a_value = [
        name for name, spec in inputs.items() if spec.get("required") and "default" not in spec
    ]
    assert needing_a_value == []


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda path: path.name)
def test_example_expressions_use_only_known_contexts_and_functions(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    data = load(path).data
    expressions = re.findall(r"\$\{\{(.*?)\}\}", text)
    expressions += [s["condition"] for s in all_steps(data) if isinstance(s.get("condition"), str)]
    ids = {step["id"] for step in all_steps(data) if "id" in step}
    for expression in expressions:
        bare = re.sub(r"'[^']*'", "''", expression)
        for name in re.findall(r"(?<![.\w])([A-Za-z_]\w*)\s*\(", bare):
            assert name in FUNCTIONS, (name, expression)
        bare = re.sub(r"(?<![.\w])[A-Za-z_]\w*\s*\(", "(", bare)
        for root, rest in re.findall(r"(?<![.\w])([A-Za-z_]\w*)((?:\.[\w-]+)*)", bare):
            if root in {"true", "false", "null"}:
                continue
            assert root in CONTEXTS, (root, expression)
            if root == "steps":
                assert rest.split(".")[1] in ids, expression


def test_examples_use_run_cmd_and_python_steps() -> None:
    steps = [step for path in EXAMPLE_FILES for step in all_steps(load(path).data)]
    uses = [step["uses"] for step in steps if "uses" in step]
    callables = [target for target in uses if not target.startswith("./")]
    assert len(callables) >= 2
    assert all(target.startswith("python:example_tools:") for target in callables)
    assert "./workflows/deploy.yaml" in uses  # a sub-workflow
    assert any("cmd" in step for step in steps)
    assert any("run" in step for step in steps)


def test_every_python_step_names_a_function_of_example_tools() -> None:
    tools = example_tools()
    for path in EXAMPLE_FILES:
        for step in all_steps(load(path).data):
            if step.get("uses", "").startswith("python:"):
                function = getattr(tools, step["uses"].rsplit(":", 1)[1])
                accepted = inspect.signature(function).parameters
                assert set(step.get("with", {})) <= set(accepted), step["id"]


def test_example_tools_are_sync_and_async_and_write_only_to_the_workspace(tmp_path: Path) -> None:
    tools = example_tools()
    source = tmp_path / "raw" / "orders.csv"
    source.parent.mkdir()
    source.write_text("id,customer,amount\n1,ada,12.50\n2,grace,7\n", encoding="utf-8")
    (tmp_path / "green.version").write_text("v2\n", encoding="utf-8")
    before = set(tmp_path.rglob("*"))

    outputs = tools.transform_orders(workspace=str(tmp_path), source=str(source))
    assert outputs["rows"] == 2 and outputs["total"] == "19.50"
    assert Path(outputs["file"]).is_relative_to(tmp_path)

    assert inspect.iscoroutinefunction(tools.health_check)
    checked = anyio.run(lambda: tools.health_check(workspace=str(tmp_path), target="green"))
    assert checked["healthy"] == "true"
    assert all(path.is_relative_to(tmp_path) for path in set(tmp_path.rglob("*")) - before)
