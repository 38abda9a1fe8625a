"""kill -9 during a fan-out inside a called sub-workflow, then `wfx run --resume`: the
journaled list maps to the same instances (`deploy/fetch[0]`...), no finished instance of
the child's static or dynamic fan-out runs again, the ones in flight run once more."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from crash_harness import Crashable, kill_wfx_only, wait_for_quiet, wait_until

PARENT = """\
wfx: 1
steps:
  - id: deploy
    uses: ./deploy.yaml
    with: {{target: eu}}
  - id: after
    run: echo "after-${{{{ steps.deploy.outputs.state }}}}" >> '{ledger}'
"""

CHILD = """\
wfx: 1
inputs:
  target: {{type: string, required: true}}
outputs:
  state: ${{{{ steps.fetch.status }}}}-${{{{ steps.build.status }}}}
steps:
  - id: build
    matrix: {{svc: [api, web]}}
    run: echo "$WFX_STEP_ID" >> '{ledger}'
  - id: list
    run: |
      echo list >> '{ledger}'
      echo 'items=["a","b","c","d"]' >> "$WFX_OUTPUT"
  - id: fetch
    forEach: ${{{{ fromJSON(steps.list.outputs.items) }}}}
    maxParallel: 2
    env:
      INDEX: ${{{{ index }}}}
    run: |
      echo "$WFX_STEP_ID" >> '{ledger}'
      if [ "$INDEX" -ge 2 ]; then
        while [ ! -f '{go}' ]; do sleep 0.02; done
      fi
"""


def test_kill_nine_in_a_childs_fan_out_then_resume_reruns_no_finished_instance(
    tmp_path: Path,
) -> None:
    crash = Crashable(tmp_path)
    go = tmp_path / "go"
    crash.write(PARENT.format(ledger=crash.ledger))
    (tmp_path / "deploy.yaml").write_text(CHILD.format(ledger=crash.ledger, go=go))
    process = crash.start()
    wait_until(lambda: {"deploy/fetch[2]", "deploy/fetch[3]"} <= set(crash.entries()))
    finished = {"deploy/build[api]", "deploy/build[web]", "deploy/fetch[0]", "deploy/fetch[1]"}
    assert finished <= crash.journaled("success")
    kill_wfx_only(process)
    go.touch()  # the orphaned instances end; their work counts as in flight
    wait_for_quiet(crash.ledger)
    with crash.journal() as db:
        rows = db.execute("SELECT step_id, items FROM fanouts").fetchall()
    assert [(step, json.loads(items)) for step, items in rows] == [
        ("deploy/fetch", ["a", "b", "c", "d"])
    ]

    assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    assert counts["list"] == 1
    assert counts["deploy/build[api]"] == counts["deploy/build[web]"] == 1
    assert counts["deploy/fetch[0]"] == counts["deploy/fetch[1]"] == 1  # never again
    assert counts["deploy/fetch[2]"] == counts["deploy/fetch[3]"] == 2  # in flight: again
    assert counts["after-success-success"] == 1  # the child's output reads its fan-out's aggregate
    assert crash.run_statuses() == ["success"]
