"""The next step of a chain starts as soon as the step before it succeeds, before the end
of that step is reported: its start was recorded ahead as an intent (durable while the
step before it ran), so nothing needs to be committed between the two processes; the
records held back are committed while it runs (docs/durability.md, docs/performance.md,
sixteenth pass). Whatever else could decide whether it starts keeps it to the usual way."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import Recorded, run_text

from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime.journal import Journal


def _processes_of(run_id: str, step: str) -> list[int]:
    """The processes whose environment names this run's step (what wfx gives each), among
    this process's children (another test process may run a step of that name too)."""
    wanted = {f"WFX_RUN_ID={run_id}".encode(), f"WFX_STEP_ID={step}".encode()}
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                parent = int(f.read().rsplit(b")", 1)[1].split()[1])
            with open(f"/proc/{entry}/environ", "rb") as f:
                variables = set(f.read().split(b"\0"))
        except (OSError, ValueError, IndexError):
            continue
        if parent == os.getpid() and wanted <= variables:
            found.append(int(entry))
    return found


class Watcher:
    """A sink noting, as each step's end is reported, whether the step after it already
    has a process."""

    def __init__(self, after: dict[str, str]) -> None:
        self.after = after
        self.started_before_end: dict[str, bool] = {}

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.StepFinished) and event.step in self.after:
            following = self.after[event.step]
            self.started_before_end[following] = bool(_processes_of(event.run_id, following))


def test_the_next_step_starts_before_the_end_of_the_one_before_is_reported(
    tmp_path: Path,
) -> None:
    watcher = Watcher({"a": "b", "b": "c"})
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - {id: a, run: 'true'}
          - {id: b, run: sleep 0.3}
          - {id: c, run: sleep 0.2; echo done}
        """,
        sink=watcher,
    )
    assert run.result.exit_code == 0
    assert watcher.started_before_end == {"b": True, "c": True}
    assert run.output("c") == ["done"]
    # the events still tell it in order: each end before the start of the step after it
    assert _reported_in_order(run, "a", "b")
    assert _reported_in_order(run, "b", "c")


def _reported_in_order(run: Recorded, before: str, after: str) -> bool:
    """Whether the success of `before` was reported ahead of the start of `after`."""
    order = [
        (type(e).__name__, e.step)
        for e in run.events
        if isinstance(e, (ev.StepStarted, ev.StepFinished))
    ]
    return order.index(("StepSucceeded", before)) < order.index(("StepStarted", after))


def test_the_step_after_a_fan_in_starts_when_the_last_of_its_needs_succeeds(
    tmp_path: Path,
) -> None:
    """Once `quick` has ended, `after` waits for `slow` alone: it is readied then, and
    starts as soon as `slow` succeeds, as the next step of a chain does."""
    watcher = Watcher({"slow": "after"})
    run = run_text(
        tmp_path,
        """
wfx: 1
steps:
  - id: g
    type: parallel
    steps:
      - {id: quick, run: 'sleep 0.05'}
      - {id: slow, run: 'sleep 0.4'}
      - {id: after, run: 'sleep 0.2; echo done', needs: [quick, slow]}
""",
        sink=watcher,
    )
    assert run.result.exit_code == 0, run.of(ev.StepFailed)
    assert watcher.started_before_end == {"after": True}
    assert run.output("after") == ["done"]
    assert _reported_in_order(run, "slow", "after")


@pytest.mark.parametrize(
    "quick",
    [
        "{id: quick, run: 'true'}",
        "{id: quick, run: 'true', condition: '${{ false }}'}",  # skipped: `after` still runs
        "{id: quick, run: 'exit 3', onError: continue}",  # tolerated: `after` still runs
    ],
)
def test_the_step_after_a_fan_in_runs_once_whatever_its_first_need_did(
    tmp_path: Path, quick: str
) -> None:
    """Readied on the need still running, `after` runs once, as it did before it could be
    started at once: never twice (its task and the start at once), never not at all."""
    ledger = tmp_path / "ledger"
    run = run_text(
        tmp_path,
        f"""
wfx: 1
steps:
  - id: g
    type: parallel
    steps:
      - {quick}
      - {{id: slow, run: 'sleep 0.3'}}
      - {{id: after, run: 'echo ran >> {ledger}', needs: [quick, slow]}}
""",
    )
    assert run.result.exit_code in (0, 3), run.of(ev.StepFailed)
    assert ledger.read_text().splitlines() == ["ran"]
    started = [e for e in run.events if isinstance(e, ev.StepStarted) and e.step == "after"]
    assert len(started) == 1


def test_the_step_after_a_fan_in_with_a_failed_need_never_starts(tmp_path: Path) -> None:
    """A need that failed keeps the step after the fan-in from being readied on the one
    still running: it is skipped, as it always was."""
    marker = tmp_path / "after-ran"
    run, path = _journaled(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - id: g
            type: parallel
            steps:
              - {{id: quick, run: 'sleep 0.05; exit 3'}}
              - {{id: slow, run: 'sleep 0.3'}}
              - {{id: after, run: 'touch {marker}', needs: [quick, slow]}}
        """,
    )
    assert run.result.exit_code != 0
    assert not marker.exists()
    steps = Journal(path).steps("r")
    assert steps["after"].status is ev.StepStatus.SKIPPED
    assert steps["quick"].status is ev.StepStatus.FAILED


@pytest.mark.parametrize(
    "b",
    [
        "{id: b, run: sleep 0.3, needs: [a], condition: '${{ success() }}'}",  # it decides
        "{id: b, run: sleep 0.3, needs: [a, x]}",  # it waits for `x` too, still running
        "{id: b, run: 'sleep 0.3 # ${{ steps.a.outputs.v }}', needs: [a]}",  # reads `a`
    ],
)
def test_a_step_that_something_else_may_stop_starts_the_usual_way(tmp_path: Path, b: str) -> None:
    watcher = Watcher({"a": "b"})
    run = run_text(
        tmp_path,
        f"""
wfx: 1
steps:
  - id: g
    type: parallel
    steps:
      - {{id: x, run: 'sleep 0.5'}}
      - {{id: a, run: 'sleep 0.1'}}
      - {b}
""",
        sink=watcher,
    )
    assert run.result.exit_code == 0, run.of(ev.StepFailed)
    assert watcher.started_before_end == {"b": False}


@pytest.mark.parametrize(
    ("first", "why"),
    [
        ("sleep 0.1; exit 3", "exit code 3"),
        # exits 0, but its outputs cannot be read: it failed, though it would have been
        # known to succeed, and `b` started then, but for that check
        ('echo "x<<" >> "$WFX_OUTPUT"', "bad $WFX_OUTPUT"),
    ],
)
def test_a_step_after_one_that_fails_never_starts(tmp_path: Path, first: str, why: str) -> None:
    marker = tmp_path / "b-ran"
    run, path = _journaled(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - {{id: a, run: '{first.replace("'", "''")}'}}
          - {{id: b, run: 'touch {marker}'}}
        """,
    )
    assert run.result.exit_code != 0
    assert not marker.exists()
    steps = Journal(path).steps("r")
    assert steps["b"].status is ev.StepStatus.SKIPPED  # the intent did not make it run
    assert steps["a"].status is ev.StepStatus.FAILED
    assert why in (run.result.steps["a"].reason or "")


def test_the_outputs_of_a_step_followed_at_once_are_read_once_and_kept(tmp_path: Path) -> None:
    """`b` starts as soon as `a` is known to succeed, which reads `a`'s outputs then:
    they are the ones reported, even though `a`'s file changes after that."""
    out = tmp_path / "a-output"
    run = run_text(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - {{id: a, run: 'echo x=1 >> "$WFX_OUTPUT"; echo "$WFX_OUTPUT" > {out}'}}
          - {{id: b, run: 'echo x=2 >> "$(cat {out})"', needs: [a]}}
          - {{id: c, run: 'echo "${{{{ steps.a.outputs.x }}}}"', needs: [b]}}
        """,
    )
    assert run.result.exit_code == 0
    assert run.result.steps["a"].outputs == {"x": "1"}
    assert run.output("c") == ["1"]


def test_the_intent_is_durable_before_the_step_starts(tmp_path: Path) -> None:
    """What `b` finds in the journal as it runs: a record that it may have started."""
    seen = tmp_path / "seen"
    script = tmp_path / "look.py"
    script.write_text(
        "import sqlite3\n"
        f"db = sqlite3.connect({str(tmp_path / 'state.db')!r})\n"
        "print(db.execute(\"SELECT status, intent FROM steps WHERE step_id = 'b'\").fetchall())\n"
    )
    run, path = _journaled(
        tmp_path,
        f"""
        wfx: 1
        steps:
          - {{id: a, run: 'true'}}
          - {{id: b, run: python3 {script} > {seen}}}
        """,
    )
    assert run.result.exit_code == 0, run.of(ev.StepFailed)
    assert seen.read_text().strip() in ("[('pending', 1)]", "[('running', None)]")
    record = Journal(path).steps("r")["b"]
    assert (record.status, record.attempts) == (ev.StepStatus.SUCCESS, 1)


def _new_journal(path: Path) -> Journal:
    """A journal at `path` with the run `r` (the id `run_text` gives a run with a sink)."""
    journal = Journal(path)
    journal.create_run("r", workflow="w", file="f", fingerprint="x", definition="", inputs={})
    return journal


def _journaled(tmp_path: Path, text: str) -> tuple[Recorded, Path]:
    """Run `text` with a real journal beside it; what happened, and the journal's path."""
    path = tmp_path / "state.db"
    journal = _new_journal(path)
    try:
        return run_text(tmp_path, text, sink=journal), path
    finally:
        journal.close()


def test_a_step_started_at_once_is_stopped_when_the_run_breaks_before_its_task_runs(
    tmp_path: Path,
) -> None:
    """The end of `a` cannot be reported (a sink fails): `b`, started as `a` succeeded,
    is stopped, not left running."""

    class BrokenError(Exception):
        pass

    def sink(event: ev.Event) -> None:
        if isinstance(event, ev.StepFinished) and event.step == "a":
            raise BrokenError

    with pytest.raises(BaseException) as raised:
        run_text(
            tmp_path,
            """
            wfx: 1
            steps:
              - {id: a, run: 'true'}
              - {id: b, run: sleep 30}
            """,
            sink=sink,
        )
    assert (
        raised.group_contains(BrokenError)
        if isinstance(raised.value, BaseExceptionGroup)
        else (isinstance(raised.value, BrokenError))
    )
    assert _processes_of("r", "b") == []


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    opened = _new_journal(tmp_path / "state.db")
    yield opened
    opened.close()


def _row(journal: Journal, step: str) -> tuple[object, ...] | None:
    with sqlite3.connect(journal.path) as other:  # another connection: what is committed
        return other.execute(
            "SELECT status, attempts, intent FROM steps WHERE run_id = 'r' AND step_id = ?",
            (step,),
        ).fetchone()


def test_an_intended_start_is_held_back_and_committed_later(journal: Journal) -> None:
    journal(ev.StepStarted("r", 1.0, StepId("a"), 1))
    journal(ev.StepSucceeded("r", 2.0, StepId("a"), ev.StepStatus.SUCCESS, 1))
    journal.intend("r", "b", 1)
    assert _row(journal, "a") == ("success", 1, None)  # the held end rode with the intent
    assert _row(journal, "b") == ("pending", 0, 1)
    journal(ev.StepStarted("r", 3.0, StepId("b"), 1))
    assert _row(journal, "b") == ("pending", 0, 1)  # held back: the intent covers it
    journal.commit_pending()
    assert _row(journal, "b") == ("running", 1, None)
    journal(ev.StepStarted("r", 4.0, StepId("c"), 1))  # not intended: committed at once
    assert _row(journal, "c") == ("running", 1, None)


def test_an_intent_reads_as_an_attempt_in_flight_until_the_step_records_more(
    journal: Journal,
) -> None:
    journal.intend("r", "b", 1)
    record = journal.resume_state("r").steps["b"]
    assert (record.status, record.attempts) == (ev.StepStatus.RUNNING, 1)  # may have run
    record = journal.steps("r")["b"]
    assert (record.status, record.attempts) == (ev.StepStatus.PENDING, 0)  # as it is shown
    journal(ev.StepSkipped("r", 2.0, StepId("b"), ev.StepStatus.SKIPPED, 0, reason="no"))
    journal.commit_pending()
    record = journal.resume_state("r").steps["b"]
    assert (record.status, record.attempts) == (ev.StepStatus.SKIPPED, 0)  # final: as is


def test_a_started_attempt_other_than_the_intended_one_is_committed_at_once(
    journal: Journal,
) -> None:
    journal.intend("r", "b", 1)
    journal(ev.StepStarted("r", 1.0, StepId("b"), 2))
    assert _row(journal, "b") == ("running", 2, None)


def _most_at_once(ledger: Path) -> int:
    """The most steps whose processes ran at the same time, from their `+ ns` and `- ns`
    lines."""
    marks = sorted(
        (int(stamp), 1 if sign == "+" else -1)
        for sign, stamp in (line.split() for line in ledger.read_text().splitlines())
    )
    running = most = 0
    for _, change in marks:
        running += change
        most = max(most, running)
    return most


def test_a_step_started_at_once_counts_against_max_parallel(tmp_path: Path) -> None:
    """`f` starts as `n` succeeds, when `k` (which also waited for `x`) becomes ready at
    the same moment and `y` holds the other place: `f` keeps `n`'s place, `k` waits for
    one, and never do three run at once."""
    ledger = tmp_path / "ledger"

    def step(name: str, seconds: float, needs: str) -> str:
        stamp = f"echo $(date +%s%N) >> {ledger}"
        run = (
            f"{stamp.replace('echo', 'echo +')}; sleep {seconds}; {stamp.replace('echo', 'echo -')}"
        )
        return f"      - {{id: {name}, run: '{run}'{needs}}}\n"

    text = (
        "wfx: 1\nmaxParallel: 2\nsteps:\n  - id: g\n    type: parallel\n    steps:\n"
        + step("x", 0.05, "")
        + step("n", 0.4, "")
        + step("y", 1.0, ", needs: [x]")
        + step("k", 0.3, ", needs: [n, x]")
        + step("f", 0.3, ", needs: [n]")
    )
    watcher = Watcher({"n": "f"})
    run = run_text(tmp_path, text, sink=watcher)
    assert run.result.exit_code == 0, run.of(ev.StepFailed)
    assert watcher.started_before_end == {"f": True}
    assert _most_at_once(ledger) == 2
