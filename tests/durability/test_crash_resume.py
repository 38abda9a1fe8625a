"""T1 and friends: kill -9 wfx at random moments; `wfx run --resume` finishes the run
without repeating completed steps and without losing a compensation it owes."""

from __future__ import annotations

import os
import random
import signal
import time
from collections import Counter
from pathlib import Path

import pytest
from crash_harness import Crashable, alive, kill_wfx_only, wait_for_quiet


def linear_workflow(steps: int, ledger: Path) -> str:
    lines = ["wfx: 1", "steps:"]
    for index in range(steps):
        name = f"s{index:03d}"
        if index % 3 == 0:
            lines += [
                f"  - id: {name}",
                "    uses: python:crash_ledger:record",
                f"    with: {{step: {name}, attempt: '${{{{ attempt }}}}', ledger: '{ledger}'}}",
            ]
        else:
            lines += [
                f"  - id: {name}",
                f"    run: echo \"{name} shell $WFX_ATTEMPT $$\" >> '{ledger}';"
                f" sleep 0.0{index % 5}",
            ]
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_random_kill_nine_then_resume_repeats_no_completed_step(
    tmp_path: Path, warm_server: dict[str, str]
) -> None:
    """T1: 200 steps, kill -9 at random moments (up to 50), a resume after each. Through a
    warm server, as on a user's machine (the `wfx` command killed, its copy killed with
    it): each resume starts at once, so about 20 kills land among the steps before the
    run is done, where a `wfx` of its own process spent most of its 50 starting Python
    (22 s then, 9 now). A `wfx` of its own process is killed at chosen moments by the
    other tests here and at each failpoint's first pass (test_failpoints.py)."""
    crash = Crashable(tmp_path, server=warm_server)
    crash.write(linear_workflow(200, crash.ledger))
    rng = random.Random(20261126)
    crashes = 0
    finished = False
    for _ in range(50):
        process = crash.start("--resume")
        time.sleep(rng.uniform(0.05, 0.6))
        if process.poll() is not None:
            finished = True  # it ended before this kill: no resume needed
            break
        kill_wfx_only(process)
        crashes += 1
        wait_for_quiet(crash.ledger)
        if (crash.state / "state.db").exists() and crash.run_statuses() == ["success"]:
            finished = True  # the run had ended, its process not yet: a resume would rerun it
            break
    if not finished:
        assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    completed_before_each_crash = crash.journaled("success")
    assert set(counts) == {f"s{i:03d}" for i in range(200)}, "a step was skipped"
    assert completed_before_each_crash == set(counts)
    # a step ran more than once only if a crash hit it in flight: one repeat per crash,
    # and one more only where the crash came as the next step of the chain had just
    # started at once, the end of the step before it not yet committed
    # (docs/durability.md): then that step and the one before it both repeat
    duplicated = {step: n for step, n in counts.items() if n > 1}
    after_another = {s for s in duplicated if f"s{int(s[1:]) - 1:03d}" in duplicated}
    assert sum(n - 1 for n in duplicated.values()) <= crashes + len(after_another), duplicated
    assert len(duplicated) <= crashes + len(after_another)
    assert crash.run_statuses() == ["success"]
    assert crash.integrity() == "ok"


def test_a_finished_run_is_not_resumed_but_a_new_one_starts(tmp_path: Path) -> None:
    crash = Crashable(tmp_path)
    crash.write(linear_workflow(3, crash.ledger))
    assert crash.run() == 0
    assert crash.run("--resume") == 0
    assert Counter(crash.entries()) == {"s000": 2, "s001": 2, "s002": 2}
    assert crash.run_statuses() == ["success", "success"]


COMPENSATED = """wfx: 1
steps:
  - {{id: a, run: "echo a >> {ledger}", rollback: {{run: "echo undo-a >> {ledger}"}}}}
  - {{id: b, run: "echo b >> {ledger}", rollback: {{run: "echo undo-b >> {ledger}; sleep 0.8"}}}}
  - {{id: c, run: "echo c >> {ledger}; exit 1"}}
finally:
  - {{id: done, run: "echo finally >> {ledger}"}}
"""


def test_compensation_survives_a_crash_during_a_rollback(tmp_path: Path) -> None:
    """T11: C fails; kill -9 during B's compensation; resume compensates B (again, it was
    in flight) then A, never A twice, and runs finally."""
    crash = Crashable(tmp_path)
    crash.write(COMPENSATED.format(ledger=crash.ledger))
    process = crash.start()
    deadline = time.monotonic() + 20
    while "undo-b" not in crash.entries():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    kill_wfx_only(process)
    wait_for_quiet(crash.ledger, 1.0)
    assert crash.run("--resume") == 1
    entries = crash.entries()
    assert entries[:3] == ["a", "b", "c"]
    assert entries.count("undo-a") == 1
    assert entries.index("undo-b") < entries.index("undo-a")
    assert entries.count("c") == 1, "a failed step is not run again"
    assert entries[-1] == "finally"


RETRYING = """wfx: 1
steps:
  - id: flaky
    run: |
      echo "flaky $WFX_ATTEMPT $(date +%s.%N)" >> {ledger}
      [ "$WFX_ATTEMPT" -ge {succeeds} ]
    retries: {{max: 5, delay: {delay}, maxDelay: {delay}, backoff: constant}}
"""

# `date` and the journal read the same wall clock; the engine's wait runs on the monotonic
# one, which may drift from it by a hair over a second.
CLOCKS = 0.05


def _kill_in_backoff(crash: Crashable, attempts: int) -> float:
    """Start the workflow, kill wfx -9 once `flaky` waits to retry after `attempts`
    attempts; return the retry deadline the journal holds."""
    process = crash.start()
    deadline = time.monotonic() + 20
    while len(crash.entries()) < attempts:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    query = "SELECT retry_at FROM steps WHERE step_id = 'flaky' AND status = 'retrying'"
    query += " AND attempts = ?"
    while True:
        with crash.journal() as db:
            row = db.execute(query, (attempts,)).fetchone()
        if row is not None and row[0] is not None:
            break
        assert time.monotonic() < deadline
        time.sleep(0.02)
    kill_wfx_only(process)
    return float(row[0])


def test_retry_state_survives_a_crash_during_backoff(tmp_path: Path) -> None:
    """T12: the attempt counter continues after a crash in the backoff wait, the resume
    waits until the journaled deadline, and later retries wait their delay."""
    crash = Crashable(tmp_path)
    crash.write(RETRYING.format(ledger=crash.ledger, succeeds=4, delay="1s"))
    retry_at = _kill_in_backoff(crash, attempts=2)
    assert crash.run("--resume") == 0
    lines = [line.split() for line in crash.ledger.read_text().splitlines()]
    assert [int(attempt) for _, attempt, _ in lines] == [1, 2, 3, 4]
    third, fourth = float(lines[2][2]), float(lines[3][2])
    assert third >= retry_at - CLOCKS  # the deadline was kept, not skipped
    assert fourth - third >= 1.0 - CLOCKS  # the next wait is the full delay


def test_a_backoff_deadline_that_passed_while_wfx_was_down_is_not_waited_again(
    tmp_path: Path,
) -> None:
    """T12: the resume keeps the wait's deadline rather than starting a fresh delay: once
    it has passed (here the journal says so), the next attempt starts at once; a fresh
    wait of the hour would hang the resume."""
    crash = Crashable(tmp_path)
    crash.write(RETRYING.format(ledger=crash.ledger, succeeds=2, delay="1h"))
    retry_at = _kill_in_backoff(crash, attempts=1)
    assert retry_at > time.time() + 3000  # the hour's deadline is journaled
    with crash.journal() as db:
        db.execute("UPDATE steps SET retry_at = ? WHERE step_id = 'flaky'", (time.time() - 1,))
    assert crash.run("--resume", timeout=60) == 0
    assert [int(line.split()[1]) for line in crash.ledger.read_text().splitlines()] == [1, 2]


def test_a_changed_workflow_is_not_resumed_without_force(tmp_path: Path) -> None:
    """T18: definition drift is detected; --force runs the new definition."""
    crash = Crashable(tmp_path)
    text = (
        "wfx: 1\nsteps:\n  - {{id: a, run: 'echo a >> {l}'}}\n"
        "  - {{id: b, run: 'echo b >> {l}; sleep 30'}}\n"
    )
    crash.write(text.format(l=crash.ledger))
    process = crash.start()
    deadline = time.monotonic() + 20
    # `a`'s end is committed just after `b` starts (docs/durability.md: a crash before
    # that commit runs both again); the kill waits for it, as this test is about drift
    while "b" not in crash.entries() or "a" not in crash.journaled():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    kill_wfx_only(process)
    changed = text.replace("sleep 30", "true").format(l=crash.ledger)
    crash.write(changed + "  - {id: c, run: 'true'}\n")
    assert crash.run("--resume") == 2
    assert crash.run("--resume", "--force") == 0
    assert crash.entries().count("a") == 1


def _killed_run(crash: Crashable, sleep: str = "1") -> str:
    text = (
        "wfx: 1\nsteps:\n  - {{id: a, run: 'echo a >> {l}; sleep SLEEP'}}\n"
        "  - {{id: b, run: 'echo b >> {l}'}}\n"
    ).replace("SLEEP", sleep)
    crash.write(text.format(l=crash.ledger))
    process = crash.start()
    while "a" not in crash.entries():
        time.sleep(0.02)
    kill_wfx_only(process)
    with crash.journal() as db:
        return str(db.execute("SELECT id FROM runs").fetchone()[0])


@pytest.mark.parametrize("race", range(5))
def test_only_one_resume_proceeds_at_a_time(tmp_path: Path, race: int) -> None:
    """T4: racing `wfx resume`: exactly one proceeds; the others exit 75 (locked) or,
    when the winner already finished, 2 (the run ended)."""
    crash = Crashable(tmp_path)
    run_id = _killed_run(crash)
    racers = [crash.start_resume(run_id) for _ in range(3)]
    codes = sorted(p.wait(timeout=60) for p in racers)
    assert codes.count(0) == 1, codes
    assert set(codes) <= {0, 2, 75}
    assert crash.entries().count("b") == 1


def test_a_stopped_owner_keeps_its_lease_and_a_dead_one_loses_it(tmp_path: Path) -> None:
    """T4: an owner that is SIGSTOPped is alive: no one may take the run over."""
    crash = Crashable(tmp_path)
    crash.write(f"wfx: 1\nsteps:\n  - {{id: a, run: 'echo a >> {crash.ledger}; sleep 2'}}\n")
    owner = crash.start()
    while "a" not in crash.entries():
        time.sleep(0.02)
    os.kill(owner.pid, signal.SIGSTOP)
    try:
        with crash.journal() as db:
            run_id = str(db.execute("SELECT id FROM runs").fetchone()[0])
        assert crash.start_resume(run_id).wait(timeout=60) == 75
    finally:
        os.kill(owner.pid, signal.SIGKILL)
        owner.wait()
    # The dead owner's lease is reclaimed at once, on its death, whatever its heartbeat
    # says: fresh for another hour here, which a lease that expires with time would wait out.
    with crash.journal() as db:
        db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time() + 3600, run_id))
    assert crash.start_resume(run_id).wait(timeout=60) == 0
    assert crash.run_statuses() == ["success"]


@pytest.mark.parametrize("damage", ["truncate", "flip", "newer-schema", "not-a-database"])
def test_a_damaged_journal_is_refused_not_guessed(tmp_path: Path, damage: str) -> None:
    """T3: corrupt journals end with exit 74; completed steps never silently run again."""
    crash = Crashable(tmp_path)
    crash.write(linear_workflow(3, crash.ledger))
    assert crash.run() == 0
    database = crash.state / "state.db"
    raw = bytearray(database.read_bytes())
    if damage == "truncate":
        database.write_bytes(bytes(raw[: len(raw) // 3]))
    elif damage == "flip":
        rng = random.Random(3)
        for _ in range(200):
            position = rng.randrange(100, len(raw))
            raw[position] ^= 0xFF
        database.write_bytes(bytes(raw))
    elif damage == "newer-schema":
        with crash.journal() as db:
            db.execute("UPDATE meta SET value = '99' WHERE key = 'schema'")
    else:
        database.write_bytes(b"this is not sqlite" * 100)
    for extra in (crash.state / "state.db-wal", crash.state / "state.db-shm"):
        if damage != "newer-schema" and extra.exists():
            extra.unlink()
    before = len(crash.entries())
    code = crash.run("--resume")
    assert code in (0, 74)
    if code == 74:
        assert len(crash.entries()) == before


@pytest.mark.parametrize("damage", ["truncate-db", "flip-db", "truncate-wal"])
def test_damage_after_a_kill_during_heavy_writes(tmp_path: Path, damage: str) -> None:
    """T3: kill -9 while many steps are being journaled, damage the files, resume: either a
    clean refusal (74) or a run that finishes with every step present, never a fresh start."""
    crash = Crashable(tmp_path)
    crash.write(linear_workflow(60, crash.ledger))
    process = crash.start()
    while len(crash.entries()) < 25:
        time.sleep(0.01)
    kill_wfx_only(process)
    wait_for_quiet(crash.ledger)
    database, wal = crash.state / "state.db", crash.state / "state.db-wal"
    rng = random.Random(damage)
    if damage == "truncate-wal" and wal.exists():
        raw = wal.read_bytes()
        wal.write_bytes(raw[: rng.randrange(len(raw) // 2, len(raw))])
    elif damage == "truncate-db":
        with crash.journal() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = database.read_bytes()
        database.write_bytes(raw[: len(raw) // 2])
    else:
        with crash.journal() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        raw = bytearray(database.read_bytes())
        for _ in range(50):
            raw[rng.randrange(512, len(raw))] ^= 0xFF
        database.write_bytes(bytes(raw))
    before = Counter(crash.entries())
    code = crash.run("--resume")
    assert code in (0, 74), (crash.root / "wfx.log").read_text()[-500:]
    after = Counter(crash.entries())
    if code == 74:
        assert after == before  # refused: nothing ran
        return
    assert set(after) == {f"s{i:03d}" for i in range(60)}
    # not a fresh start: the steps journaled before the damage were not run again
    assert sum(after.values()) < len(after) + sum(before.values())


def failing_saga(steps: int, ledger: Path) -> str:
    """A linear workflow whose every 10th step has a compensation and whose last fails."""
    lines = ["wfx: 1", "steps:"]
    for index in range(steps):
        name = f"s{index:03d}"
        command = f"echo {name} >> '{ledger}'; sleep 0.0{index % 4}"
        if index == steps - 1:
            command += "; exit 1"
        lines += [f"  - id: {name}", f'    run: "{command}"']
        if index % 10 == 0:
            lines.append(f"    rollback: {{run: \"echo undo-{name} >> '{ledger}'; sleep 0.05\"}}")
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_random_kills_through_a_failure_and_its_compensation(
    tmp_path: Path, warm_server: dict[str, str]
) -> None:
    """T1 with a failure: kills land in the steps and in the compensation; after the
    resumes every compensation ran in reverse order of completion, each finished one
    exactly once. Through a warm server, as the test before."""
    crash = Crashable(tmp_path, server=warm_server)
    crash.write(failing_saga(200, crash.ledger))
    rng = random.Random(7)
    crashes = 0
    finished = False
    for _ in range(30):
        process = crash.start("--resume")
        time.sleep(rng.uniform(0.1, 0.8))
        if process.poll() is not None:
            finished = True
            break
        kill_wfx_only(process)
        crashes += 1
        wait_for_quiet(crash.ledger)
        if (crash.state / "state.db").exists() and crash.run_statuses() == ["failed"]:
            finished = True  # the run had ended, its process not yet: a resume would rerun it
            break
    if not finished:
        assert crash.run("--resume") == 1
    entries = crash.entries()
    undos = [e for e in entries if e.startswith("undo-")]
    expected = [f"undo-s{i:03d}" for i in range(190, -1, -10)]
    assert list(dict.fromkeys(undos)) == expected
    assert len(undos) - len(expected) <= crashes
    steps = [e for e in entries if not e.startswith("undo-")]
    assert set(steps) == {f"s{i:03d}" for i in range(200)}
    assert crash.run_statuses()[-1] == "failed"
    assert crash.integrity() == "ok"


LONG_STEP = """wfx: 1
steps:
  - id: slow
    run: |
      old=$(cat {root}/pid 2>/dev/null) && state=$(cut -d' ' -f3 /proc/$old/stat 2>/dev/null) &&
        [ "$state" != Z ] && echo old-alive >> {ledger}
      echo slow >> {ledger}
      [ -e {root}/pid ] && exit 0
      sh -c 'echo $$ > {root}/pid.new; mv {root}/pid.new {root}/pid; exec sleep 30'
"""


def test_a_resume_first_stops_the_dead_runs_step_processes(tmp_path: Path) -> None:
    """kill -9 of wfx while a step sleeps (in its own process group, so it survives): the
    resume stops the old sleep (TERM, then KILL) before the step starts again. The step
    itself checks /proc (a zombie waiting for init to reap it runs nothing)."""
    crash = Crashable(tmp_path)
    crash.write(LONG_STEP.format(root=tmp_path, ledger=crash.ledger))
    process = crash.start()
    deadline = time.monotonic() + 30
    while not (tmp_path / "pid").exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    old = int((tmp_path / "pid").read_text())
    kill_wfx_only(process)
    assert Path(f"/proc/{old}").exists(), "the step process outlives the killed wfx"
    assert crash.run("--resume") == 0
    assert crash.entries() == ["slow", "slow"], "the old sleep was alive when the step reran"
    assert not alive(old)
    log = (tmp_path / "wfx.log").read_text()
    assert f"stopped 1 process the dead run left running: {old} (sleep 30)" in log
