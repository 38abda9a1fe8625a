"""Retry schedules: the waits of any policy the schema admits, without overflow or a
list as long as a hostile number (a fuzzer found both crashing `wfx validate`)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from wfx.api import check_text
from wfx.compiler import schedule

finite_or_not = st.floats(min_value=0, allow_nan=False)


def _power_of(delay: float, factor: float, exponent: int) -> float:
    """`delay * factor ** exponent` where Python's `**` would overflow on the way."""
    if delay == 0:
        return 0.0
    try:
        return delay * factor**exponent
    except OverflowError:
        logarithm = math.log(delay) + exponent * math.log(factor)
        return math.inf if logarithm > 709 else math.exp(logarithm)


@given(
    retries=st.integers(min_value=0, max_value=300),
    delay=finite_or_not,
    factor=st.floats(min_value=1, allow_nan=False),
    cap=finite_or_not,
)
def test_exponential_waits_are_the_formula_capped_and_never_overflow(
    retries: int, delay: float, factor: float, cap: float
) -> None:
    waits = schedule(retries, delay, None, factor, cap, None).delays
    assert len(waits) == retries
    for attempt, wait in enumerate(waits, start=1):
        assert not math.isnan(wait)
        assert wait <= cap
        expected = min(_power_of(delay, factor, attempt - 1), cap)
        assert math.isclose(wait, expected, rel_tol=1e-9), (attempt, wait, expected)
    assert list(waits) == sorted(waits)


@given(retries=st.integers(min_value=0, max_value=300), delay=finite_or_not, cap=finite_or_not)
def test_linear_and_constant_waits_are_capped(retries: int, delay: float, cap: float) -> None:
    linear = schedule(retries, delay, "linear", None, cap, None).delays
    constant = schedule(retries, delay, "constant", None, cap, None).delays
    assert linear == tuple(min(delay * n, cap) for n in range(1, retries + 1))
    assert constant == (min(delay, cap),) * retries


def test_steps_that_share_a_policy_share_its_waits() -> None:
    first = schedule(10_000, 1.0, None, 2.0, 30.0, None)
    assert schedule(10_000, 1.0, None, 2.0, 30.0, None).delays is first.delays
    assert first.delays[-1] == 30.0


def _retries_of(text: str) -> dict[str, tuple[int, tuple[float, ...]]]:
    checked = check_text(text, "w.yaml")
    assert checked.compilation is not None, checked.diagnostics
    graph = checked.compilation.graph
    return {
        str(node.id): (node.settings.retry.value.attempts, node.settings.retry.value.delays)
        for node in graph.nodes
        if node.settings is not None
    }


def test_a_whole_number_written_as_a_float_is_that_integer() -> None:
    """JSON Schema counts `3.0` as an integer, and so it is 3 retries (it crashed)."""
    found = _retries_of(
        "wfx: 1\nsteps:\n  - {id: a, run: x, retries: 3.0}\n"
        "  - {id: b, run: x, retries: {max: 2.0}}\n"
    )
    assert found["a"] == (4, (1.0, 2.0, 4.0))
    assert found["b"] == (3, (1.0, 2.0))


def test_the_largest_retry_count_is_admitted_and_one_more_is_refused() -> None:
    found = _retries_of("wfx: 1\nsteps:\n  - {id: a, run: x, retries: 10000}\n")
    assert found["a"][0] == 10_001
    refused = check_text("wfx: 1\nsteps:\n  - {id: a, run: x, retries: 10001}\n", "w.yaml")
    assert [d.message for d in refused.diagnostics] == [
        "`retries` must be an integer from 0 to 10000 (for retries that go on until a time,"
        " set `deadline`), got `10001`"
    ]
    assert refused.compilation is None
