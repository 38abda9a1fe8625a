"""A run that runs wfx out of file descriptors (a wide parallel group under a low
`ulimit -n`): the steps that cannot start fail saying so, and the run fails like any run
with a failed step; never a crash with a step's process left unwatched."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

WIDE = "wfx: 1\nsteps:\n  - type: parallel\n    steps:\n" + "".join(
    f"      - {{id: s{i}, run: 'true'}}\n" for i in range(150)
)


def test_steps_that_find_no_descriptor_fail_and_the_run_ends_cleanly(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WIDE)
    inherited = {k: v for k, v in os.environ.items() if k != "WFX_STATE_DIR"}
    result = subprocess.run(
        ["sh", "-c", f'ulimit -n 120 && exec "{sys.executable}" -m wfx run -q wf.yaml'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
        env={**inherited, "NO_COLOR": "1"},
        timeout=120,
    )
    said = result.stdout + result.stderr
    assert result.returncode == 1, said
    assert "Too many open files" in said
    assert "internal error" not in said and "Traceback" not in said
