"""The workflow root is a group: `type: sequential|parallel` at the top means what it means
on a group, and the root `maxParallel` bounds it like a group's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from wfx import api
from wfx.api import compile_file
from wfx.diagnostics import DiagnosticsError
from wfx.runtime.engine import RunOptions, run

Write = Callable[[str], Path]

#: two steps that each write when they started and ended, then a step that needs both
TIMED = """
    wfx: 1
    {head}
    steps:
      - {{id: a, run: 'date +%s.%N > a.start; sleep 0.3; date +%s.%N > a.end'}}
      - {{id: b, run: 'date +%s.%N > b.start; sleep 0.3; date +%s.%N > b.end'}}
      - {{id: c, run: 'date +%s.%N > c.start', needs: [a, b]}}
"""


def run_timed(write: Write, head: str) -> dict[str, float]:
    path = write(TIMED.format(head=head))
    graph = compile_file(path).graph
    workspace = path.parent / "ws"
    options = RunOptions(workspace=workspace)

    async def main() -> None:
        result = await run(graph, options=options)
        assert result.status.value == "success"

    anyio.run(main)
    return {f.name: float(f.read_text()) for f in path.parent.glob("[abc].*")}


def test_parallel_root_starts_top_level_steps_together(workflow_file: Write) -> None:
    times = run_timed(workflow_file, "type: parallel")
    assert times["b.start"] < times["a.end"] and times["a.start"] < times["b.end"]
    assert times["c.start"] >= max(times["a.end"], times["b.end"])


@pytest.mark.parametrize("head", ["type: sequential", "", "type: parallel\n    maxParallel: 1"])
def test_sequential_root_or_a_root_cap_of_one_never_overlaps(
    workflow_file: Write, head: str
) -> None:
    times = run_timed(workflow_file, head)
    first, second = sorted(["a", "b"], key=lambda s: times[f"{s}.start"])
    assert times[f"{second}.start"] >= times[f"{first}.end"]


def test_parallel_root_plans_its_steps_in_one_stage(workflow_file: Write) -> None:
    text = """
    wfx: 1
    type: parallel
    steps:
      - {id: a, run: echo a}
      - {id: b, run: echo b}
      - {id: c, run: echo c, needs: [a]}
    finally:
      - {id: f1, run: echo f1}
      - {id: f2, run: echo f2}
    """
    graph = compile_file(workflow_file(text)).graph
    assert graph.stages() == [["a", "b"], ["c"]]
    # `finally` steps stay one after another
    assert [graph.nodes[d].id for d in graph.node("f2").deps] == ["f1"]


def test_root_type_must_be_sequential_or_parallel(workflow_file: Write) -> None:
    report = api.check([workflow_file("wfx: 1\ntype: dag\nsteps:\n  - run: echo\n")])
    [problem] = report.diagnostics
    assert (problem.span.line, problem.span.column) == (2, 7)
    assert "must be `sequential` or `parallel`" in problem.message


def test_parallel_root_cycle_is_still_reported(workflow_file: Write) -> None:
    text = """
    wfx: 1
    type: parallel
    steps:
      - {id: a, run: echo a, needs: [b]}
      - {id: b, run: echo b, needs: [a]}
    """
    with pytest.raises(DiagnosticsError) as caught:
        compile_file(workflow_file(text))
    assert [d.code for d in caught.value.diagnostics] == ["compile.cycle"]
