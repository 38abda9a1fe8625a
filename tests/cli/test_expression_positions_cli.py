"""`wfx run`, the journal and `wfx show` name where a failing expression is."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from cli_process import wfx

FLOW = """\
wfx: 1
inputs:
  n: {type: string, default: "not json"}
steps:
  - id: script
    onError: continue
    run: echo ${{ fromJSON(inputs.n) }}
  - id: environment
    env: {X: "${{ fromJSON(inputs.n) }}"}
    run: echo "$X"
"""


def test_the_cli_and_the_journal_show_the_position(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(FLOW)
    result = wfx("run", "wf.yaml", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "wf.yaml:7:19: cannot render `run`: " in result.stdout + result.stderr
    assert "wf.yaml:9:19: cannot render the step: " in result.stdout + result.stderr
    with sqlite3.connect(tmp_path / ".wfx" / "state.db") as db:
        reasons = dict(db.execute("SELECT step_id, reason FROM steps"))
        [(run_id, run_reason)] = db.execute("SELECT id, reason FROM runs").fetchall()
    assert reasons["script"].startswith("wf.yaml:7:19: cannot render `run`: ")
    assert reasons["environment"].startswith("wf.yaml:9:19: cannot render the step: ")
    assert "wf.yaml:9:19" in run_reason
    shown = wfx("show", run_id, cwd=tmp_path)
    assert "wf.yaml:7:19" in shown.stdout
