"""`wfx run deploy.yaml | head`: the reader of wfx's output goes away while the run goes
on. The run is not stopped halfway by a closed pager: it runs to its end, its output
goes nowhere from then on (the journal keeps it), and its exit status is the run's,
never a crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

FLOW = """\
wfx: 1
steps:
  - {id: first, run: echo first}
  - type: parallel
    needs: [first]
    steps:
      - {id: p1, run: 'sleep 0.3; echo p1'}
      - {id: p2, run: 'sleep 0.3; echo p2'}
  - {id: last, needs: [p1, p2], run: 'echo done > MARKER; echo last'}
"""


@pytest.mark.parametrize("output", ["text", "json"])
def test_a_run_whose_reader_went_away_runs_to_its_end(tmp_path: Path, output: str) -> None:
    marker = tmp_path / "marker"
    (tmp_path / "wf.yaml").write_text(FLOW.replace("MARKER", str(marker)))
    inherited = {k: v for k, v in os.environ.items() if k != "WFX_STATE_DIR"}
    process = subprocess.Popen(
        [sys.executable, "-m", "wfx", "run", "wf.yaml", "--output", output],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**inherited, "NO_COLOR": "1"},
    )
    assert process.stdout is not None and process.stderr is not None
    if output == "text":
        assert process.stdout.readline().startswith(b"run ")  # it started, then: gone
    process.stdout.close()
    try:
        errors = process.stderr.read().decode()
        assert process.wait(timeout=60) == 0, errors
    finally:
        process.kill()
        process.stderr.close()
    assert marker.read_text() == "done\n"  # the last step ran
    assert "internal error" not in errors and "Traceback" not in errors
