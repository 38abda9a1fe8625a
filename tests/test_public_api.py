"""The public Python API: `wfx.validate`, `wfx.compile`, `wfx.plan`, `wfx.run`, typed."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
import typing
from collections.abc import Callable
from pathlib import Path

import wfx
import wfx.api

Write = Callable[[str], Path]

EXPORTED = {
    "validate",
    "compile",
    "plan",
    "run",
    "evaluate",
    "load",
    "check",
    "compile_file",
    "Report",
    "JSONValue",
    "InputValues",
    "Diagnostic",
    "DiagnosticsError",
    "ExpressionError",
    "WfxError",
    "__version__",
}

WORKFLOW = """
wfx: 1
inputs:
  who: {type: string, default: world}
steps:
  - id: greet
    run: echo "hello $WHO" > "$WFX_WORKSPACE/greeting.txt"
    env: {WHO: "${{ inputs.who }}"}
  - id: deploy
    needs: [greet]
    condition: ${{ inputs.who == 'prd' }}
    run: echo deploy
"""

_IN_A_FRESH_INTERPRETER = """
import json, sys
import wfx
lazy = "wfx.api" not in sys.modules
import wfx.plan  # the submodule must not take the function's name
print(json.dumps({
    "all": sorted(wfx.__all__),
    "lazy": lazy,
    "callable": [n for n in ("validate", "compile", "plan", "run") if callable(getattr(wfx, n))],
    "plan_is_function": not isinstance(wfx.plan, type(sys)),
}))
"""


def test_import_wfx_exports_the_api_lazily_in_a_fresh_interpreter() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _IN_A_FRESH_INTERPRETER], capture_output=True, text=True, check=True
    )
    found = json.loads(done.stdout)
    assert set(found["all"]) == EXPORTED
    assert found["lazy"] is True
    assert found["callable"] == ["validate", "compile", "plan", "run"]
    assert found["plan_is_function"] is True


def test_plan_works_out_the_run_without_running_it(workflow_file: Write) -> None:
    path = workflow_file(WORKFLOW)
    the_plan = wfx.plan(path, {"who": "staging"})
    assert the_plan.stages == [["greet"], ["deploy"]]
    assert the_plan.steps["deploy"].condition.verdict.value == "never"
    assert not (path.parent / "greeting.txt").exists()


def test_run_runs_the_steps_for_real(workflow_file: Write, tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    result = wfx.run(workflow_file(WORKFLOW), {"who": "team"}, workspace=workspace)
    assert result.exit_code == 0
    assert (workspace / "greeting.txt").read_text() == "hello team\n"
    assert result.steps["greet"].status.value == "success"
    assert result.steps["deploy"].status.value == "skipped"


def test_validate_and_compile_report_problems(workflow_file: Write) -> None:
    assert wfx.validate(workflow_file(WORKFLOW)).ok
    broken = workflow_file("wfx: 1\nsteps:\n  - {id: a, needs: [nope], run: echo}\n")
    report = wfx.validate(broken)
    assert not report.ok
    assert [d.code for d in report.diagnostics] == ["compile.unknown-need"]
    graph = wfx.compile(workflow_file(WORKFLOW)).graph
    assert [n.id for n in graph.steps()] == ["greet", "deploy"]


def _public_functions() -> dict[str, Callable[..., object]]:
    found: dict[str, Callable[..., object]] = {}
    for name in wfx.__all__:
        item = getattr(wfx, name)
        if inspect.isfunction(item):
            found[f"wfx.{name}"] = item
    for name, item in vars(wfx.api).items():
        if inspect.isfunction(item) and not name.startswith("_") and item.__module__ == "wfx.api":
            found[f"wfx.api.{name}"] = item
    return found


def _names_for_annotations() -> dict[str, object]:
    """Every name the annotations of wfx.api may use (it imports them only for type checks)."""
    modules = [
        importlib.import_module(name)
        for name in (
            "wfx.compiler",
            "wfx.graph",
            "wfx.model",
            "wfx.plan",  # the module: `wfx.plan` is the function
            "wfx.runtime.engine",
            "wfx.runtime.events",
            "wfx.runtime.executor",
            "wfx.runtime.journal",
            "wfx.runtime.process",
            "wfx.source",
            "wfx.whatif",
        )
    ]
    names: dict[str, object] = {}
    for module in modules:
        names.update(vars(module))
    return names


def _mentions_any(hint: object) -> bool:
    if hint is typing.Any:
        return True
    return any(_mentions_any(arg) for arg in typing.get_args(hint))


def test_no_public_signature_mentions_any() -> None:
    functions = _public_functions()
    assert {"wfx.plan", "wfx.run", "wfx.validate", "wfx.compile"} <= functions.keys()
    names = _names_for_annotations()
    offenders = []
    for name, function in functions.items():
        hints = typing.get_type_hints(function, localns=names)
        written = [str(p.annotation) for p in inspect.signature(function).parameters.values()]
        written.append(str(inspect.signature(function).return_annotation))
        if any(_mentions_any(h) for h in hints.values()) or any(
            re.search(r"\bAny\b", text) for text in written
        ):
            offenders.append(name)
    assert offenders == []
