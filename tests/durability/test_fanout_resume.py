"""kill -9 during a dynamic fan-out, then `wfx run --resume`: the journaled item list maps
to the same instances, no finished instance runs again, the rest run once."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from crash_harness import Crashable, kill_wfx_only, wait_for_quiet, wait_until

FAN_OUT = """\
wfx: 1
steps:
  - id: list
    run: |
      echo "list shell 1 $$" >> '{ledger}'
      echo 'items=["a","b","c","d","e","f"]' >> "$WFX_OUTPUT"
  - id: fetch
    forEach: ${{{{ fromJSON(steps.list.outputs.items) }}}}
    maxParallel: 2
    env:
      INDEX: ${{{{ index }}}}
    run: |
      echo "$WFX_STEP_ID shell $WFX_ATTEMPT $$" >> '{ledger}'
      if [ "$INDEX" -ge 2 ]; then
        while [ ! -f '{go}' ]; do sleep 0.02; done
      fi
  - id: after
    run: echo "after shell 1 $$" >> '{ledger}'
"""


def test_kill_nine_during_a_fan_out_then_resume_reruns_no_finished_instance(
    tmp_path: Path,
) -> None:
    crash = Crashable(tmp_path)
    go = tmp_path / "go"
    crash.write(FAN_OUT.format(ledger=crash.ledger, go=go))
    process = crash.start()
    wait_until(lambda: {"fetch[2]", "fetch[3]"} <= set(crash.entries()))
    assert {"fetch[0]", "fetch[1]"} <= crash.journaled("success")
    kill_wfx_only(process)
    go.touch()  # the orphaned instances end; their work counts as in flight
    wait_for_quiet(crash.ledger)
    with crash.journal() as db:
        [(items,)] = db.execute("SELECT items FROM fanouts WHERE step_id = 'fetch'").fetchall()
    assert json.loads(items) == ["a", "b", "c", "d", "e", "f"]

    assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    assert counts["list"] == 1
    assert counts["fetch[0]"] == counts["fetch[1]"] == 1  # finished: never again
    assert counts["fetch[4]"] == counts["fetch[5]"] == counts["after"] == 1
    assert counts["fetch[2]"] == counts["fetch[3]"] == 2  # in flight at the kill: once more
    assert crash.run_statuses() == ["success"]
    assert crash.journaled("success") >= {f"fetch[{i}]" for i in range(6)} | {"list", "after"}
