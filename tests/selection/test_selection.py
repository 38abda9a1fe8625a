"""Which steps a part of a workflow, or a redrive, runs, keeps and skips: pure, on the graph."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wfx import api
from wfx.diagnostics import DiagnosticsError
from wfx.graph import ExecutionGraph
from wfx.model import StepId
from wfx.selection import Disposition, part, redrive

Write = Callable[[str], Path]

# build -> (unit, lint) -> package -> deploy; docs stands alone; a group `checks`
DAG = """
wfx: 1
type: parallel
steps:
  - {id: build, run: "true"}
  - id: checks
    needs: [build]
    type: parallel
    steps:
      - {id: unit, run: "true"}
      - {id: lint, run: "true"}
  - {id: package, needs: [checks], run: "true"}
  - {id: deploy, needs: [package], run: "true"}
  - {id: docs, run: "true"}
finally:
  - {id: cleanup, run: "true"}
"""


@pytest.fixture
def graph(workflow_file: Write) -> ExecutionGraph:
    return api.compile_file(workflow_file(DAG)).graph


def _by(selection: object, disposition: Disposition) -> set[str]:
    return set(selection.with_(disposition))  # type: ignore[attr-defined]


def test_only_runs_the_steps_and_everything_they_need(graph: ExecutionGraph) -> None:
    chosen = part(graph, only=["package"])
    assert _by(chosen, Disposition.RUN) == {"build", "unit", "lint", "package"}
    assert _by(chosen, Disposition.SKIP) == {"deploy", "docs"}
    assert not _by(chosen, Disposition.KEEP)


def test_only_a_group_runs_its_steps(graph: ExecutionGraph) -> None:
    assert _by(part(graph, only=["checks"]), Disposition.RUN) == {"build", "unit", "lint"}


def test_from_runs_the_step_and_what_follows_keeping_what_it_needs(
    graph: ExecutionGraph,
) -> None:
    earlier = {StepId(s): "run-1" for s in ("build", "unit", "lint")}
    chosen = part(graph, from_="package", earlier=earlier)
    assert _by(chosen, Disposition.RUN) == {"package", "deploy"}
    assert chosen.kept == {"build": "run-1", "unit": "run-1", "lint": "run-1"}
    assert _by(chosen, Disposition.SKIP) == {"docs"}


def test_from_without_an_earlier_result_names_what_is_missing(graph: ExecutionGraph) -> None:
    with pytest.raises(DiagnosticsError) as refused:
        part(graph, from_="package", earlier={StepId("build"): "run-1"})
    (problem,) = refused.value.diagnostics
    assert problem.code == "select.missing"
    assert "`unit`, `lint`" in problem.message


def test_skip_skips_the_step_and_everything_that_needs_it(graph: ExecutionGraph) -> None:
    chosen = part(graph, skip=["lint"])
    assert _by(chosen, Disposition.SKIP) == {"lint", "package", "deploy"}
    assert _by(chosen, Disposition.RUN) == {"build", "unit", "docs"}


def test_only_and_skip_together(graph: ExecutionGraph) -> None:
    chosen = part(graph, only=["deploy", "docs"], skip=["docs"])
    assert _by(chosen, Disposition.SKIP) == {"docs"}


def test_unknown_ids_are_errors_with_a_suggestion(graph: ExecutionGraph) -> None:
    with pytest.raises(DiagnosticsError) as refused:
        part(graph, only=["pakage"], skip=["cleanup"])
    first, second = refused.value.diagnostics
    assert first.code == second.code == "select.unknown"
    assert first.message == "--only: no step `pakage` in the workflow"
    assert first.hint == "did you mean `package`?"
    assert "`finally` steps always run" in (second.hint or "")


def test_a_redrive_keeps_successes_and_reruns_the_rest_and_what_needs_it(
    graph: ExecutionGraph,
) -> None:
    succeeded = {StepId(s): "run-1" for s in ("build", "unit", "docs", "package")}
    chosen = redrive(graph, "run-1", succeeded, {StepId("lint"): "failed in run run-1"})
    assert chosen.redrives == "run-1"
    assert _by(chosen, Disposition.KEEP) == {"build", "unit", "docs"}
    assert _by(chosen, Disposition.RUN) == {"lint", "package", "deploy"}
    assert chosen.choices[StepId("lint")].reason == "failed in run run-1"
    assert chosen.choices[StepId("package")].reason == "needs a step that runs again"
    assert chosen.choices[StepId("deploy")].reason == "did not run in run run-1"


def test_a_redrive_of_a_part_leaves_out_what_that_run_left_out(graph: ExecutionGraph) -> None:
    succeeded = {StepId("build"): "run-1"}
    chosen = redrive(graph, "run-1", succeeded, {}, not_selected=[StepId("docs")])
    assert _by(chosen, Disposition.SKIP) == {"docs"}
    assert "docs" not in _by(chosen, Disposition.RUN)
