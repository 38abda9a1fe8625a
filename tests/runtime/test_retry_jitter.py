"""Retry waits with jitter stay within what docs/language.md promises: each wait is
lengthened at random by up to `jitter` times the planned wait, never shortened."""

from __future__ import annotations

import random
from pathlib import Path

from harness import run_text
from hypothesis import given
from hypothesis import strategies as st

from wfx.compiler import schedule
from wfx.runtime import events as ev
from wfx.runtime.retry import wait_before


@given(
    seed=st.integers(min_value=0, max_value=2**32),
    delay=st.floats(min_value=0.0, max_value=60.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
    retries=st.integers(min_value=1, max_value=6),
)
def test_jittered_waits_stay_within_the_documented_range(
    seed: int, delay: float, jitter: float, retries: int
) -> None:
    planned = schedule(retries, delay, "exponential", 2.0, 30.0, jitter)
    rng = random.Random(seed)
    for attempt, base in enumerate(planned.delays, start=1):
        wait = wait_before(planned, attempt, rng)
        assert base <= wait <= base * (1 + jitter)


def test_jitter_spreads_the_waits_over_the_whole_range() -> None:
    planned = schedule(1, 1.0, "constant", None, None, 0.5)
    rng = random.Random(7)
    waits = [wait_before(planned, 1, rng) for _ in range(2_000)]
    assert min(waits) < 1.05
    assert max(waits) > 1.45


def test_without_jitter_the_wait_is_the_planned_one() -> None:
    planned = schedule(3, 0.1, "exponential", 2.0, 0.3, None)
    rng = random.Random(1)
    assert [wait_before(planned, n, rng) for n in (1, 2, 3)] == [0.1, 0.2, 0.3]


def test_a_run_waits_at_least_the_planned_delay(tmp_path: Path) -> None:
    run = run_text(
        tmp_path,
        """
        wfx: 1
        steps:
          - id: flaky
            run: exit 1
            onError: continue
            retries: {max: 3, delay: 10ms, backoff: constant, jitter: 1}
        """,
    )
    delays = [e.delay for e in run.of(ev.StepRetrying)]
    assert len(delays) == 3
    assert all(0.01 <= d <= 0.02 for d in delays)
