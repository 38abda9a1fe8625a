"""`wfx run` on a Python step that raises SystemExit or KeyboardInterrupt: exit 1, a failed
step in the journal, no traceback."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from cli_process import wfx

FLOW = """\
wfx: 1
steps:
  - id: prep
    run: echo prepared
    rollback: {run: echo undone}
  - id: boom
    uses: python:exits:boom
finally:
  - id: report
    run: echo "ended ${{ workflow.status }}"
"""


@pytest.mark.parametrize(
    "raised", ["SystemExit(0)", "SystemExit(3)", "KeyboardInterrupt()", "GeneratorExit()"]
)
def test_a_python_step_that_exits_fails_without_a_traceback(tmp_path: Path, raised: str) -> None:
    (tmp_path / "exits.py").write_text(f"def boom():\n    raise {raised}\n")
    (tmp_path / "wf.yaml").write_text(FLOW)
    result = wfx("run", "wf.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    with sqlite3.connect(tmp_path / ".wfx" / "state.db") as db:
        [(status, finished)] = db.execute("SELECT status, finished FROM runs").fetchall()
        steps = dict(db.execute("SELECT step_id, status FROM steps"))
    assert status == "failed"
    assert finished is not None
    assert steps == {"prep": "rolledBack", "boom": "failed", "report": "success"}
