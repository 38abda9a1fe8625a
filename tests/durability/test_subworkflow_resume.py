"""kill -9 while a sub-workflow's step runs, then `wfx run --resume`: the child's finished
steps do not run again, the killed one does, and the caller's outputs come out whole."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

from crash_harness import Crashable, kill_wfx_only

PARENT = """\
wfx: 1
steps:
  - id: before
    run: echo before >> '{ledger}'
  - id: deploy
    uses: ./deploy.yaml
    with: {{target: staging}}
  - id: after
    run: echo "after-${{{{ steps.deploy.outputs.tag }}}}" >> '{ledger}'
"""

CHILD = """\
wfx: 1
inputs:
  target: {{type: string, required: true}}
outputs:
  tag: ${{{{ steps.first.outputs.tag }}}}-${{{{ inputs.target }}}}
steps:
  - id: first
    run: |
      echo first >> '{ledger}'
      echo "tag=v7" >> "$WFX_OUTPUT"
  - id: slow
    run: |
      echo slow >> '{ledger}'
      if [ ! -e '{marker}' ]; then touch '{marker}'; exec sleep 30; fi
  - id: last
    run: echo last >> '{ledger}'
finally:
  - id: tidy
    run: echo tidy >> '{ledger}'
"""


def wait_for(path: Path, line: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and line in path.read_text().split():
            return
        time.sleep(0.02)
    raise AssertionError(f"{line} never appeared in {path}")


def test_kill_nine_inside_a_child_then_resume_repeats_no_finished_child_step(
    tmp_path: Path,
) -> None:
    crash = Crashable(tmp_path)
    crash.write(PARENT.format(ledger=crash.ledger))
    marker = tmp_path / "marker"
    (tmp_path / "deploy.yaml").write_text(CHILD.format(ledger=crash.ledger, marker=marker))
    process = crash.start()
    wait_for(crash.ledger, "slow")
    while not marker.exists():
        time.sleep(0.02)
    kill_wfx_only(process)
    assert crash.journaled("success") == {"before", "deploy/first"}
    assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    assert counts == {
        "before": 1,
        "first": 1,
        "slow": 2,
        "last": 1,
        "tidy": 1,
        "after-v7-staging": 1,
    }
    assert crash.journaled("success") == {
        "before",
        "deploy/first",
        "deploy/slow",
        "deploy/last",
        "deploy/tidy",
        "after",
    }
    assert crash.run_statuses() == ["success"]
