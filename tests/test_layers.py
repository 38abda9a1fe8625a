"""The layers of ARCHITECTURE.md, enforced: data flows source -> schema -> model ->
compiler -> graph -> (plan | runtime) -> render, and effects stay at the edges.

Every module's imports are read from its source (function-level imports and imports
for type checking included) and checked against the table below.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "wfx"

#: each layer and the modules in it (a name ending in `.` is a package prefix)
LAYERS: dict[str, tuple[str, ...]] = {
    # (wfx.codewatch: inotify's word on paths; the server's code, the runtime's PATH lookups;
    # wfx.confine: where the files a workflow names may be, for the include stage and env files)
    "base": (
        "wfx.diagnostics",
        "wfx.exitcodes",
        "wfx.resources",
        "wfx.durations",
        "wfx.codewatch",
        "wfx.confine",
    ),
    "source": ("wfx.source",),
    "expr": ("wfx.expr", "wfx.expr."),
    "schema": ("wfx.schema", "wfx.schemacheck"),
    "model": ("wfx.model", "wfx.walk", "wfx.shell", "wfx.inputs", "wfx.envfile", "wfx.fanout"),
    "graph": ("wfx.graph", "wfx.selection"),
    "include": ("wfx.include",),
    "compiler": ("wfx.compiler", "wfx.checks", "wfx.compilation"),
    "plan": ("wfx.plan", "wfx.explain", "wfx.lint", "wfx.fingerprint"),
    "events": ("wfx.runtime.events",),
    "runtime": ("wfx.runtime", "wfx.runtime."),
    "whatif": ("wfx.whatif",),
    "render": ("wfx.render", "wfx.render."),
    "export": ("wfx.export", "wfx.export."),
    "api": ("wfx.api",),
    "lsp": ("wfx.lsp", "wfx.lsp."),
    "cli": (
        "wfx.cli",
        "wfx.cli_history",
        "wfx.cli_redrive",
        "wfx.cli_export",
        "wfx.cli_lsp",
        "wfx.cli_server",
    ),
    # the entry points: `python -m wfx`, the `wfx` command, and the warm server that runs
    # the `wfx` command's commands in forks of itself (docs/server.md)
    "entry": ("wfx.__main__", "wfx.launch", "wfx.server"),
    "facade": ("wfx",),
    "ci": ("wfx.ci", "wfx.ci."),
}

#: the layers each layer may import (besides its own)
ALLOWED: dict[str, set[str]] = {
    "base": set(),
    "source": {"base"},
    "expr": {"base"},
    "schema": {"base", "source"},
    "model": {"base", "source", "expr"},
    "include": {"base", "source", "expr", "schema", "model"},
    "graph": {"base", "expr", "model"},
    "compiler": {"base", "expr", "model", "include", "graph"},
    "plan": {"base", "expr", "model", "graph", "compiler"},
    "events": {"base", "model"},
    "runtime": {"base", "expr", "model", "graph", "events"},
    "whatif": {"base", "expr", "model", "graph", "events", "runtime"},
    "render": {"base", "expr", "model", "graph", "compiler", "plan", "events", "whatif"},
    "export": {"base", "expr", "model", "graph", "plan", "render"},
    "api": {"base", "source", "expr", "schema", "model", "include", "graph", "compiler", "plan"}
    | {"events", "runtime", "whatif"},
    "lsp": {"base", "source", "expr", "schema", "model", "graph", "compiler", "plan", "render"}
    | {"api", "facade"},
    "cli": set(LAYERS) - {"entry"},
    "entry": set(LAYERS),
    "facade": {"base", "expr", "api"},
    # the pull-request comment: a tool on top, like the CLI (and not through it)
    "ci": set(LAYERS) - {"cli"},
}

#: single modules a layer may import beyond its layers, and why
EXTRA_EDGES: dict[tuple[str, str], str] = {
    ("render", "wfx.runtime.journal"): "`wfx runs/show/logs` draw the journal's records",
    ("cli", "wfx.server"): "`wfx server status|start|stop` talk to the warm server",
}

#: third-party and standard modules only some layers may import
RESTRICTED: dict[str, set[str]] = {
    "click": {"cli"},
    "rich": {"render", "cli"},
    "anyio": {"runtime", "api", "whatif"},
    "subprocess": {"runtime", "ci", "entry"},
    "tempfile": {"runtime"},
    "shutil": {"runtime"},
    "sqlite3": {"runtime", "cli"},
    "pygls": {"lsp"},
    "lsprotocol": {"lsp"},
}

#: calls that write to the file system, allowed only at the edges (runtime/, the CLI)
WRITING_CALLS = {"mkdir", "makedirs", "write_text", "write_bytes", "rmtree", "unlink", "rename"}
EDGE_LAYERS = {"runtime", "cli", "ci", "entry"}
#: a build tool (`python -m wfx.expr.table` writes the parser table next to the grammar)
BUILD_TOOLS = {"wfx.expr.table"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> Iterator[tuple[str, ast.Module]]:
    """Every module of the package with its syntax tree (parsed once, when a test here
    first asks: not as the test files are collected, by every test worker)."""
    yield from _parsed()


@functools.cache
def _parsed() -> tuple[tuple[str, ast.Module], ...]:
    return tuple(
        (module_name(path), ast.parse(path.read_text(encoding="utf-8")))
        for path in sorted(PACKAGE.rglob("*.py"))
    )


KNOWN = {module_name(path) for path in PACKAGE.rglob("*.py")}


def layer_of(module: str) -> str | None:
    for layer, members in LAYERS.items():
        for member in members:
            if module == member or (member.endswith(".") and module.startswith(member)):
                return layer
    return None


def imported(tree: ast.Module, here: str) -> Iterator[tuple[str, int]]:
    """Every module `tree` imports (anywhere in the file), with its line."""
    is_package = (PACKAGE.parent / here.replace(".", "/") / "__init__.py").exists()
    package = here if is_package else here.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                yield (candidate if candidate in KNOWN else base), node.lineno


def violations() -> Iterator[str]:
    for here, tree in modules():
        layer = layer_of(here)
        assert layer is not None, f"{here} is in no layer: add it to LAYERS"
        for target, line in imported(tree, here):
            problem = _problem(layer, target)
            if problem:
                yield f"{here}:{line} imports {target} ({problem})"


def _problem(layer: str, target: str) -> str | None:
    top = target.split(".", maxsplit=1)[0]
    if top in RESTRICTED:
        return None if layer in RESTRICTED[top] else f"{top} belongs to {sorted(RESTRICTED[top])}"
    if top != "wfx":
        return None
    other = layer_of(target)
    if other is None or other == layer or other in ALLOWED[layer]:
        return None
    if (layer, target) in EXTRA_EDGES:
        return None
    return f"{layer} may not import {other}"


def test_every_module_imports_only_along_the_layers() -> None:
    assert list(violations()) == []


def test_nothing_but_the_entry_point_imports_the_cli() -> None:
    importers = {
        here
        for here, tree in modules()
        for target, _ in imported(tree, here)
        if layer_of(target) == "cli" and layer_of(here) not in ("cli", "entry")
    }
    assert importers == set()


def test_the_layer_table_catches_an_import_against_the_layers() -> None:
    assert _problem("runtime", "wfx.render.run_view") == "runtime may not import render"
    assert _problem("api", "wfx.render.plan_diff") == "api may not import render"
    assert _problem("plan", "wfx.runtime.engine") == "plan may not import runtime"
    assert _problem("plan", "wfx.lint") is None
    assert _problem("runtime", "rich.console") == "rich belongs to ['cli', 'render']"
    assert _problem("render", "wfx.runtime.journal") is None
    assert _problem("render", "wfx.runtime.engine") == "render may not import runtime"


def test_files_are_written_only_at_the_edges() -> None:
    writers = []
    for here, tree in modules():
        if layer_of(here) in EDGE_LAYERS or here in BUILD_TOOLS:
            continue
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = node.func
            name = called.attr if isinstance(called, ast.Attribute) else getattr(called, "id", "")
            if name in WRITING_CALLS or (name == "open" and _writes(node)):
                writers.append(f"{here}:{node.lineno} {name}")
    assert writers == []


def _writes(call: ast.Call) -> bool:
    modes = [a for a in call.args[1:2]] + [k.value for k in call.keywords if k.arg == "mode"]
    return any(
        isinstance(m, ast.Constant) and isinstance(m.value, str) and set(m.value) & set("wax+")
        for m in modes
    )


def test_one_place_decides_where_the_journal_lives() -> None:
    readers = [
        here
        for here, tree in modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value == "WFX_STATE_DIR"
    ]
    assert readers == ["wfx.runtime.statedir"]
