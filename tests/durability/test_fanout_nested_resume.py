"""kill -9 during a dynamic fan-out nested in a matrix group's instances, then `wfx run
--resume`: each inner list is journaled under its nested id (`fetch[api]`), the same items
map to the same instances (`fetch[api][0]`...), and no finished one runs again."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from crash_harness import Crashable, kill_wfx_only, wait_for_quiet, wait_until

NESTED = """\
wfx: 1
steps:
  - id: svc
    matrix: {{service: [api, web]}}
    steps:
      - id: list
        run: |
          echo "$WFX_STEP_ID" >> '{ledger}'
          echo 'items=["a","b","c"]' >> "$WFX_OUTPUT"
      - id: fetch
        forEach: ${{{{ fromJSON(steps.list.outputs.items) }}}}
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


def test_kill_nine_in_a_nested_fan_out_then_resume_reruns_no_finished_instance(
    tmp_path: Path,
) -> None:
    crash = Crashable(tmp_path)
    go = tmp_path / "go"
    crash.write(NESTED.format(ledger=crash.ledger, go=go))
    process = crash.start()
    wait_until(lambda: {"fetch[api][2]", "fetch[web][2]"} <= set(crash.entries()))
    done = {f"fetch[{s}][{i}]" for s in ("api", "web") for i in (0, 1)}
    wait_until(lambda: done <= crash.journaled("success"))
    kill_wfx_only(process)
    go.touch()  # the orphaned instances end; their work counts as in flight
    wait_for_quiet(crash.ledger)
    with crash.journal() as db:
        rows = db.execute("SELECT step_id, items FROM fanouts ORDER BY step_id").fetchall()
    assert [(s, json.loads(i)) for s, i in rows] == [
        ("fetch[api]", ["a", "b", "c"]),
        ("fetch[web]", ["a", "b", "c"]),
    ]

    assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    assert counts["list[api]"] == counts["list[web]"] == counts["after"] == 1
    assert all(counts[step] == 1 for step in done)  # finished: never again
    assert counts["fetch[api][2]"] == counts["fetch[web][2]"] == 2  # in flight: again
    assert crash.run_statuses() == ["success"]
