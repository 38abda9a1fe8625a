"""kill -9 during a dynamic fan-out of a group, then `wfx run --resume`: the journaled list
maps to the same instances, each instance's finished steps are restored (never run
again), the ones in flight run once more, the rest once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from crash_harness import Crashable, kill_wfx_only, wait_for_quiet, wait_until

GROUP = """\
wfx: 1
steps:
  - id: list
    run: |
      echo list >> '{ledger}'
      echo 'items=["a","b","c","d"]' >> "$WFX_OUTPUT"
  - id: svc
    forEach: ${{{{ fromJSON(steps.list.outputs.items) }}}}
    maxParallel: 2
    steps:
      - id: prepare
        run: echo "$WFX_STEP_ID" >> '{ledger}'
      - id: work
        env:
          INDEX: ${{{{ index }}}}
        run: |
          echo "$WFX_STEP_ID" >> '{ledger}'
          if [ "$INDEX" -ge 2 ]; then
            while [ ! -f '{go}' ]; do sleep 0.02; done
          fi
  - id: after
    run: echo after >> '{ledger}'
"""


def test_kill_nine_in_a_dynamic_group_then_resume_reruns_no_finished_step(
    tmp_path: Path,
) -> None:
    crash = Crashable(tmp_path)
    go = tmp_path / "go"
    crash.write(GROUP.format(ledger=crash.ledger, go=go))
    process = crash.start()
    wait_until(lambda: {"work[2]", "work[3]"} <= set(crash.entries()))
    finished = {f"prepare[{i}]" for i in range(4)} | {"work[0]", "work[1]"}
    assert finished <= crash.journaled("success")
    kill_wfx_only(process)
    go.touch()  # the orphaned instances end; their work counts as in flight
    wait_for_quiet(crash.ledger)
    with crash.journal() as db:
        [(items,)] = db.execute("SELECT items FROM fanouts WHERE step_id = 'svc'").fetchall()
    assert json.loads(items) == ["a", "b", "c", "d"]

    assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    assert counts["list"] == counts["after"] == 1
    assert all(counts[f"prepare[{i}]"] == 1 for i in range(4))  # never again
    assert counts["work[0]"] == counts["work[1]"] == 1
    assert counts["work[2]"] == counts["work[3]"] == 2  # in flight at the kill: once more
    assert crash.run_statuses() == ["success"]
