"""T2: crash at every named failpoint (and at several passes through each), then resume:
no step whose completion was journaled runs twice; only the steps a crash caught between
their side effect and their journaled completion repeat, once each: in a chain, the step
in flight, and the one before it when the crash came before its end was committed (the
next step of a chain starts as soon as the one before it succeeds, and the end of that
one is committed while the next runs: docs/durability.md)."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest
from crash_harness import Crashable

from wfx.runtime.failpoints import names

STEPS = 20

LINEAR = "wfx: 1\nsteps:\n" + "".join(
    f"  - {{id: s{i:02d}, run: 'echo s{i:02d} >> LEDGER'}}\n" for i in range(STEPS)
)

ONCE_PER_RUN = ("journal.create-run", "journal.run-finished")
STEP_POINTS = [
    n
    for n in names()
    if "rollback" not in n
    and "group" not in n
    and n != "journal.retry-scheduled"
    and n not in ONCE_PER_RUN
]
#: which pass through a step's point crashes: the 20 steps are alike but for where they
#: stand, so each kind of place is crashed at once (all 20 took 70 s of the suite's
#: time, of the five minutes it has on two cores): the first step (no step before it),
#: the second (the first step's end record rides with its start record), the third, one
#: in the middle, the last but one, and the last (the run's end follows it)
PASSES = (1, 2, 3, STEPS // 2, STEPS - 1, STEPS)
CASES = [(p, nth) for p in STEP_POINTS for nth in PASSES] + [(p, 1) for p in ONCE_PER_RUN]


def crashable(root: Path, nth: int, warm_server: dict[str, str]) -> Crashable:
    """The harness of a case: a crash at the first pass through a point in a `wfx` of its
    own process (as under CI), at any later pass in a warm server's copy (as on a user's
    machine, and a fork instead of a cold start of Python and wfx: the matrix took 24 s
    of two workers' time, 16 s so)."""
    return Crashable(root, server=None if nth == 1 else warm_server)


@pytest.mark.parametrize(("point", "nth"), CASES)
def test_crash_at_a_step_failpoint_then_resume(
    tmp_path: Path, point: str, nth: int, warm_server: dict[str, str]
) -> None:
    crash = crashable(tmp_path, nth, warm_server)
    crash.write(LINEAR.replace("LEDGER", str(crash.ledger)))
    first = crash.run(env={"WFX_FAILPOINT": f"{point}:{nth}"})
    if point == "journal.create-run":
        assert first == 137 if nth == 1 else first == 0
        if nth == 1:
            assert crash.entries() == []
            assert crash.run("--resume") == 0
    else:
        assert first in (0, 137)  # a point passed fewer than `nth` times never fires
        if first == 137:
            assert crash.run("--resume") == 0
    counts = Counter(crash.entries())
    assert set(counts) == {f"s{i:02d}" for i in range(STEPS)}
    duplicates = {step: n for step, n in counts.items() if n > 1}
    assert all(n == 2 for n in duplicates.values()), duplicates  # each at most once more
    if first == 137:
        allowed, required = may_repeat(point, nth)
        assert required <= set(duplicates) <= allowed, (duplicates, allowed)
    else:
        assert duplicates == {}
    assert "success" in crash.run_statuses()
    assert crash.integrity() == "ok"


def _step(index: int) -> set[str]:
    return {f"s{index:02d}"} if 0 <= index < STEPS else set()


def may_repeat(point: str, nth: int) -> tuple[set[str], set[str]]:
    """The steps of LINEAR a crash at the `nth` pass through `point` may run again on
    resume, and those it must. Every step but the first starts as soon as the one before
    it succeeds, before that one's end is reported; the end, this start and the intent of
    the step after it are then committed together while it runs (the first step's start
    is committed before it starts, as any step's that nothing started at once)."""
    k = nth - 1  # the step of this pass: the nth to start, end or be intended
    if point in ONCE_PER_RUN:
        return set(), set()  # before any step started; after every end was committed
    if point == "journal.step-finished":
        # s(k) ended, not recorded: it runs again; s(k+1) had started already
        return _step(k) | _step(k + 1), _step(k)
    if point == "journal.after-step-finished":
        # s(k)'s end committed with the start of s(k+1), which was running
        return _step(k + 1), set()
    if point == "journal.step-started":
        # s(k) started at once (not s00), the end of s(k-1) not yet committed
        return (_step(k - 1) | _step(k) if k > 0 else set()), set()
    if point == "journal.after-step-started":
        return _step(k), set()  # s(k) running, its start (and the end before) committed
    if point == "journal.step-intended":
        # s(k+1) about to be intended while s(k) runs: s(k)'s start, the end of s(k-1)
        # not yet committed (s00's start was, before it started)
        return (_step(k - 1) | _step(k) if k > 0 else _step(k)), set()
    if point == "journal.after-step-intended":
        return _step(k), set()  # all of it committed; s(k) running
    raise AssertionError(f"no expectation for {point}")


@pytest.mark.parametrize("nth", [1, 2])
def test_later_passes_crash_a_warm_servers_copy_and_the_first_a_wfx_of_its_own(
    tmp_path: Path, nth: int, warm_server: dict[str, str]
) -> None:
    """Both ways wfx runs are crashed: the step's parent (what runs the steps, and what a
    failpoint crashes) is a copy of the warm server for a later pass, `wfx` itself for
    the first."""
    crash = crashable(tmp_path, nth, warm_server)
    parent = tmp_path / "parent"
    crash.write(f"wfx: 1\nsteps:\n  - {{id: who, run: 'cat /proc/$PPID/cmdline > {parent}'}}\n")
    assert crash.run() == 0
    assert (b"wfx.server" in parent.read_bytes().split(b"\0")) == (nth > 1)


SAGA = """wfx: 1
steps:
  - {{id: a, run: "echo a >> {ledger}", rollback: {{run: "echo undo-a >> {ledger}"}}}}
  - {{id: b, run: "echo b >> {ledger}", rollback: {{run: "echo undo-b >> {ledger}"}}}}
  - {{id: c, run: "echo c >> {ledger}", rollback: {{run: "echo undo-c >> {ledger}"}}}}
  - {{id: d, run: "echo d >> {ledger}; exit 1"}}
"""

ROLLBACK_POINTS = [n for n in names() if "rollback" in n]


@pytest.mark.parametrize("point", ROLLBACK_POINTS)
@pytest.mark.parametrize("nth", [1, 2, 3])
def test_crash_at_a_compensation_failpoint_then_resume(
    tmp_path: Path, point: str, nth: int, warm_server: dict[str, str]
) -> None:
    """T11: compensations run c, b, a; a finished one never repeats; an in-flight one
    runs at least once."""
    crash = crashable(tmp_path, nth, warm_server)
    crash.write(SAGA.format(ledger=crash.ledger))
    assert crash.run(env={"WFX_FAILPOINT": f"{point}:{nth}"}) == 137
    assert crash.run("--resume") == 1
    entries = crash.entries()
    undos = [e for e in entries if e.startswith("undo-")]
    assert [e for e in entries if not e.startswith("undo-")] == ["a", "b", "c", "d"]
    order = list(dict.fromkeys(undos))
    assert order == ["undo-c", "undo-b", "undo-a"]
    counts = Counter(undos)
    # only the compensation in flight at the crash may run twice
    assert sum(n - 1 for n in counts.values()) <= 1, counts
    if point == "journal.after-rollback-finished":
        assert all(n == 1 for n in counts.values())
    assert crash.integrity() == "ok"


RETRYING = """wfx: 1
steps:
  - id: flaky
    run: |
      echo "flaky $WFX_ATTEMPT" >> LEDGER
      [ "$WFX_ATTEMPT" -ge 3 ]
    retries: {max: 3, delay: 300ms, backoff: constant}
"""


@pytest.mark.parametrize("nth", [1, 2])
def test_crash_at_the_backoff_failpoint_keeps_the_attempt_count(
    tmp_path: Path, nth: int, warm_server: dict[str, str]
) -> None:
    """The retry-scheduled failpoint (a crash as the backoff wait begins)."""
    crash = crashable(tmp_path, nth, warm_server)
    crash.write(RETRYING.replace("LEDGER", str(crash.ledger)))
    assert crash.run(env={"WFX_FAILPOINT": f"journal.retry-scheduled:{nth}"}) == 137
    assert crash.run("--resume") == 0
    attempts = [int(line.split()[1]) for line in crash.ledger.read_text().splitlines()]
    assert attempts == [1, 2, 3]


SOURCE = Path(__file__).resolve().parents[2] / "src" / "wfx"


def failpoints_in_the_source() -> Counter[str]:
    """The name of every `failpoint("...")` call in src/wfx, read from the code itself."""
    found: Counter[str] = Counter()
    for path in sorted(SOURCE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and _called_name(node.func) == "failpoint"):
                continue
            [argument] = node.args
            assert isinstance(argument, ast.Constant) and isinstance(argument.value, str), (
                f"{path.name}:{node.lineno}: a failpoint's name must be a literal string"
            )
            found[argument.value] += 1
    return found


def _called_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else None


def test_the_documented_failpoints_are_exactly_those_in_the_code() -> None:
    in_code = failpoints_in_the_source()
    assert len(in_code) >= 10  # the scan found the journal's points at all
    assert sorted(in_code) == sorted(names())
    assert [name for name, uses in in_code.items() if uses > 1] == []  # one spot each


def test_every_failpoint_in_the_code_is_exercised() -> None:
    """Every point the code has is crashed at by some test here."""
    covered = {p for p, _ in CASES} | set(ROLLBACK_POINTS) | {"journal.retry-scheduled"}
    covered |= {"journal.group-retrying", "journal.after-group-retrying"}  # by
    # test_group_retry_resume.py, which crashes a group with `groupRetries` at both
    assert covered == set(failpoints_in_the_source())
