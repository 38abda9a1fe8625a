"""Resuming a changed workflow: the API refuses, in the words of the renderer it is given
(the CLI passes the plan diff), so the API itself draws nothing."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from wfx import api
from wfx.diagnostics import DiagnosticsError
from wfx.plan import Change
from wfx.runtime.journal import Journal

Write = Callable[[str], Path]

BEFORE = "wfx: 1\nsteps:\n  - {id: a, run: echo a, timeout: 10s}\n"
AFTER = "wfx: 1\nsteps:\n  - {id: a, run: echo a, timeout: 20s}\n"


def _described(changes: list[Change]) -> str:
    return ", ".join(f"{c.step} {c.field}" for c in changes)


def test_a_changed_workflow_is_refused_in_the_callers_words(
    workflow_file: Write, tmp_path: Path
) -> None:
    path = workflow_file(BEFORE)
    journal = Journal(tmp_path / "state" / "journal.db")
    try:
        graph = api.compile_file(path).graph
        api.record_new_run(journal, graph, path, "run-1", tmp_path / "ws")
        path.write_text(AFTER, encoding="utf-8")
        with pytest.raises(DiagnosticsError) as refused:
            api.resume_target(journal, "run-1", False, _described)
        (problem,) = refused.value.diagnostics
        assert problem.code == "resume.changed"
        assert problem.message.endswith(
            "changed since run `run-1` started: a timeout, None worstCaseSeconds"
        )
        _, _, changes = api.resume_target(journal, "run-1", True, _described)
        assert changes == "a timeout, None worstCaseSeconds"
    finally:
        journal.close()
