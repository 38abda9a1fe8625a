"""A burst of ready steps starts together: every start record in one commit, then every
process. A crash anywhere in that burst must keep the write-ahead rule (no process of
it runs before its own start record is durable) and a resume runs each step once."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from crash_harness import Crashable

WIDTH = 8

BURST = "wfx: 1\nsteps:\n  - type: parallel\n    steps:\n" + "".join(
    f"      - {{id: p{i}, run: 'echo p{i} >> LEDGER'}}\n" for i in range(WIDTH)
)


def _crash_then_resume(crash: Crashable, point: str) -> set[str]:
    """Crash at `point`, check that no step ran, resume; the steps the journal said were
    running after the crash."""
    crash.write(BURST.replace("LEDGER", str(crash.ledger)))
    assert crash.run(env={"WFX_FAILPOINT": point}) == 137
    assert crash.entries() == []  # the crash came before any process of the burst
    with crash.journal() as db:
        running = {r[0] for r in db.execute("SELECT step_id FROM steps WHERE status='running'")}
    assert crash.run("--resume") == 0
    assert Counter(crash.entries()) == Counter(f"p{i}" for i in range(WIDTH))
    return running


@pytest.mark.parametrize("nth", [1, WIDTH])
def test_a_crash_after_a_bursts_records_finds_them_all_durable_and_no_process_started(
    tmp_path: Path, nth: int
) -> None:
    """The failpoint after each start record passes only once all of them are committed,
    and before any process starts: whichever pass crashes, all are on record."""
    running = _crash_then_resume(Crashable(tmp_path), f"journal.after-step-started:{nth}")
    assert running == {f"p{i}" for i in range(WIDTH)}


def test_a_crash_while_a_burst_is_recorded_commits_none_of_it(tmp_path: Path) -> None:
    """A crash in the middle of writing the burst's records leaves none of them: they
    were one transaction."""
    running = _crash_then_resume(Crashable(tmp_path), "journal.step-started:3")
    assert running == set()
