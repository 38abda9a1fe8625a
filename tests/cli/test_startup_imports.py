"""What a command imports is most of its start-up (issue #15): a `wfx run` or `wfx plan` of
a file the model cache holds reads no YAML and checks no schema, so it must not import
the modules that do, nor rich when nothing goes to a terminal. These tests hold that
line, so that a later top-level import cannot silently bring the cost back."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKFLOW = """\
wfx: 1
name: startup
inputs:
  who: {type: string, default: world}
steps:
  - id: greet
    run: echo "hello ${{ inputs.who }}"
  - id: after
    needs: [greet]
    run: "true"
"""

#: prints the modules loaded by a command-line invocation when the process exits
_PROBE = """
import atexit, json, sys
atexit.register(lambda: sys.__stderr__.write("MODULES " + json.dumps(sorted(sys.modules)) + "\\n"))
sys.argv = ["wfx", *sys.argv[1:]]
from wfx.cli import main
main()
"""

#: never needed when the model comes from the cache (or, for rich, off a terminal)
READING = ("yaml", "jsonschema", "lark", "wfx.source", "wfx.schema", "wfx.expr.table")


def _modules(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("WFX_STATE_DIR", "WFX_NO_CACHE")}
    env |= {"XDG_CACHE_HOME": str(tmp_path / "xdg"), "NO_COLOR": "1"}
    env.pop("FORCE_COLOR", None)
    env.pop("TTY_COMPATIBLE", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=env,
        timeout=120,
    )
    line = next(x for x in done.stderr.splitlines() if x.startswith("MODULES "))
    return done, set(json.loads(line.removeprefix("MODULES ")))


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


@pytest.fixture
def cached(tmp_path: Path) -> Path:
    """A workflow whose model a first `wfx run` put in the cache."""
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    first, modules = _modules(tmp_path, "run", "wf.yaml")
    assert first.returncode == 0, first.stderr
    assert "yaml" in modules  # the first run did read the file
    return tmp_path


def test_a_cached_run_to_a_pipe_imports_no_reader_schema_compiler_planner_or_rich(
    cached: Path,
) -> None:
    done, modules = _modules(cached, "run", "wf.yaml")
    assert done.returncode == 0, done.stderr
    assert "hello world" in done.stdout
    assert "✓ success" in done.stdout  # the summary, printed without rich
    compiling = ("wfx.compiler", "wfx.checks", "wfx.include")
    assert _loaded(modules, (*READING, *compiling, "rich", "wfx.plan")) == []


def _state(root: Path) -> dict[str, tuple[int, int]]:
    """Every file of the state directory: its size and modification time."""
    return {
        str(path.relative_to(root)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in sorted((root / ".wfx").rglob("*"))
        if path.is_file()
    }


def test_a_cached_run_without_the_journal_reads_the_cache_and_writes_nothing(
    cached: Path,
) -> None:
    """`--no-journal` keeps no state, but reads the cache as `wfx plan` does: a file it
    holds is neither read nor compiled again (without the cache, `--no-journal` was
    slower than a journaled run: nineteenth pass, docs/performance.md)."""
    before = _state(cached)
    done, modules = _modules(cached, "run", "--no-journal", "wf.yaml")
    assert done.returncode == 0, done.stderr
    assert "hello world" in done.stdout
    assert _loaded(modules, (*READING, "wfx.compiler")) == []
    assert _state(cached) == before


def test_a_run_with_other_inputs_compiles_again(cached: Path) -> None:
    done, modules = _modules(cached, "run", "wf.yaml", "-i", "who=you")
    assert done.returncode == 0, done.stderr
    assert "hello you" in done.stdout
    assert "wfx.compiler" in modules
    assert _loaded(modules, READING) == []  # the model still comes from the cache


def test_a_cached_plan_imports_no_reader_or_schema(cached: Path) -> None:
    done, modules = _modules(cached, "plan", "wf.yaml", "-i", "who=you")
    assert done.returncode == 0, done.stderr
    assert "hello you" in done.stdout  # inputs still reach the plan
    assert _loaded(modules, READING) == []


def test_a_changed_file_is_read_again(cached: Path) -> None:
    (cached / "wf.yaml").write_text(WORKFLOW.replace("world", "there"))
    done, modules = _modules(cached, "run", "wf.yaml")
    assert done.returncode == 0, done.stderr
    assert "hello there" in done.stdout
    assert "yaml" in modules
