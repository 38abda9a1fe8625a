"""A crash just after the next step of a chain was started at once, before its start was
committed (only its intent was): the resume takes it for a step that was running, stops
the process the dead wfx left of it, and runs it again with the same attempt number; the
step before it, whose end was not committed either, runs again too (docs/durability.md)."""

from __future__ import annotations

import time
from pathlib import Path

from crash_harness import Crashable, alive

CHAIN = """wfx: 1
steps:
  - {{id: first, run: 'echo first $WFX_ATTEMPT >> {ledger}'}}
  - id: slow
    run: |
      echo slow $WFX_ATTEMPT >> {ledger}
      [ -e {root}/pid ] && exit 0
      sh -c 'echo $$ > {root}/pid.new; mv {root}/pid.new {root}/pid; exec sleep 30'
  - {{id: last, run: 'echo last $WFX_ATTEMPT >> {ledger}'}}
"""


def _orphan(root: Path) -> int:
    """The process the step started at once left behind when wfx was killed."""
    deadline = time.monotonic() + 30
    while not (root / "pid").exists():
        assert time.monotonic() < deadline, "the step had not started at the crash"
        time.sleep(0.02)
    return int((root / "pid").read_text())


def test_a_step_started_at_once_and_caught_by_a_crash_is_stopped_and_run_again(
    tmp_path: Path,
) -> None:
    crash = Crashable(tmp_path)
    crash.write(CHAIN.format(root=tmp_path, ledger=crash.ledger))
    # the second start record: `slow`'s, reported once its process has started
    assert crash.run(env={"WFX_FAILPOINT": "journal.step-started:2"}) == 137
    old = _orphan(tmp_path)
    assert alive(old), "the step process outlives the killed wfx"
    with crash.journal() as db:
        rows = {r[0]: r[1:] for r in db.execute("SELECT step_id, status, intent FROM steps")}
    assert rows == {"first": ("running", None), "slow": ("pending", 1)}
    assert crash.run("--resume") == 0
    assert not alive(old)
    assert crash.ledger.read_text().splitlines() == [
        "first 1",
        "slow 1",
        "first 1",  # its end was not committed: it runs again, the same attempt
        "slow 1",  # in flight at the crash: stopped, then run again, the same attempt
        "last 1",
    ]
    assert "stopped 1 process the dead run left running" in (tmp_path / "wfx.log").read_text()


FAN_IN = """wfx: 1
steps:
  - id: g
    type: parallel
    steps:
      - {{id: quick, run: 'echo quick $WFX_ATTEMPT >> {ledger}'}}
      - {{id: slow, run: 'sleep 0.3; echo slow $WFX_ATTEMPT >> {ledger}'}}
      - id: after
        needs: [quick, slow]
        run: |
          echo after $WFX_ATTEMPT >> {ledger}
          [ -e {root}/pid ] && exit 0
          sh -c 'echo $$ > {root}/pid.new; mv {root}/pid.new {root}/pid; exec sleep 30'
"""


def test_the_step_after_a_fan_in_caught_by_a_crash_repeats_with_the_last_need_only(
    tmp_path: Path,
) -> None:
    """`after` was started at once as `slow` (the last of its needs) succeeded: `quick`
    ended before and its end was committed with the intent, so only `slow` and `after`
    run again."""
    crash = Crashable(tmp_path)
    crash.write(FAN_IN.format(root=tmp_path, ledger=crash.ledger))
    # the third start record: `after`'s (`quick` and `slow` started as one burst)
    assert crash.run(env={"WFX_FAILPOINT": "journal.step-started:3"}) == 137
    old = _orphan(tmp_path)
    with crash.journal() as db:
        rows = {r[0]: r[1:] for r in db.execute("SELECT step_id, status, intent FROM steps")}
    assert rows["quick"] == ("success", None)
    assert rows["slow"] == ("running", None)
    assert rows["after"] == ("pending", 1)
    assert crash.run("--resume") == 0
    assert not alive(old)
    assert crash.ledger.read_text().splitlines() == [
        "quick 1",
        "slow 1",
        "after 1",
        "slow 1",  # its end was not committed: it runs again, the same attempt
        "after 1",  # in flight at the crash: stopped, then run again, the same attempt
    ]
