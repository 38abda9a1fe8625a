"""A group with `groupRetries` killed (kill -9 at a journal failpoint) while it fails,
rolls back or runs again: the resumed run goes on with the group's attempt where the
journal left it, rolls back what the failed attempt did once, and ends in success."""

from __future__ import annotations

import sqlite3
from collections import Counter
from pathlib import Path

import pytest
from crash_harness import Crashable

GROUP = """wfx: 1
steps:
  - id: deploy
    groupRetries: {{max: 2, delay: 10ms}}
    steps:
      - id: push
        run: echo push >> {ledger}
        rollback: {{run: echo undo-push >> {ledger}}}
      - id: check
        run: |
          echo check >> {ledger}
          [ "$(grep -c '^check$' {ledger})" -ge 2 ]
  - {{id: after, run: echo after >> {ledger}}}
"""


@pytest.mark.parametrize(
    "point",
    [
        "journal.rollback-started:1",  # the failed attempt is being rolled back
        "journal.group-retrying:1",  # rolled back, the re-run not yet journaled
        "journal.after-group-retrying:1",  # the re-run is journaled, nothing runs yet
        "journal.after-step-started:4",  # attempt 2 of the group runs `check` again
    ],
)
def test_a_group_retry_killed_then_resumed_ends_in_success(tmp_path: Path, point: str) -> None:
    crash = Crashable(tmp_path)
    crash.write(GROUP.format(ledger=crash.ledger))
    assert crash.run(env={"WFX_FAILPOINT": point}) == 137
    assert crash.run("--resume") == 0
    entries = crash.entries()
    counts = Counter(entries)
    assert counts["check"] == 2
    assert counts["after"] == 1
    # what the failed attempt pushed is undone before the push of the attempt that holds
    assert entries[-3:] == ["push", "check", "after"]
    assert counts["undo-push"] == counts["push"] - 1 >= 1
    assert crash.run_statuses() == ["success"]
    with sqlite3.connect(crash.state / "state.db") as db:
        push = db.execute("SELECT status, attempts FROM steps WHERE step_id = 'push'").fetchone()
    assert push[0] == "success"
    assert push[1] >= 2  # the re-run's attempts have new numbers (a new idempotency key)
