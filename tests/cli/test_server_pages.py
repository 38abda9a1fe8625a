"""The page ranges a spare copy of the warm server warms (docs/server.md, "The spare
copy"): the copies' reports merged, kept to what is still private memory, and read from a
real /proc/self/pagemap."""

from __future__ import annotations

import ctypes
import itertools
import marshal
import os

from hypothesis import given
from hypothesis import strategies as st

from wfx import server

_RANGE = st.tuples(st.integers(0, 60), st.integers(1, 20)).map(lambda r: (r[0], r[0] + r[1]))


def _points(ranges: list[tuple[int, int]]) -> set[int]:
    return {x for start, end in ranges for x in range(start, end)}


@given(st.lists(_RANGE, max_size=12))
def test_merged_ranges_cover_the_same_pages_sorted_apart_and_once(
    ranges: list[tuple[int, int]],
) -> None:
    merged = server._merged(ranges)
    assert _points(merged) == _points(ranges)
    assert all(a[1] < b[0] for a, b in itertools.pairwise(merged))
    assert all(start < end for start, end in merged)


@given(st.lists(_RANGE, max_size=12), st.lists(_RANGE, max_size=12))
def test_within_keeps_exactly_the_pages_that_are_in_both(
    ranges: list[tuple[int, int]], regions: list[tuple[int, int]]
) -> None:
    ranges, regions = server._merged(ranges), server._merged(regions)
    parts = server._within(ranges, regions)
    assert _points(parts) == _points(ranges) & _points(regions)
    assert all(start < end for start, end in parts)


def test_a_report_that_is_not_one_gives_no_pages() -> None:
    assert server._page_ranges("garbage") == []
    assert server._page_ranges({"a": 1}) == []
    assert server._page_ranges([(1, 2), ("x", 3), (4,)]) == [(1, 2)]


def test_what_a_copy_told_is_read_value_after_value_up_to_the_first_that_is_not_one() -> None:
    entries = (["/state/cache/abc"], "/home/u/.cache/wfx/cache.key")
    pages = [(4096, 8192)]
    assert server._told(marshal.dumps(entries) + marshal.dumps(pages)) == [entries, pages]
    assert server._told(marshal.dumps(entries)) == [entries]
    assert server._told(b"") == []
    assert server._told(marshal.dumps(entries) + b"\x00garbage") == [entries]
    assert server._told(marshal.dumps(entries)[:-3]) == []  # cut short


def test_the_pages_a_process_wrote_to_are_found_in_its_pagemap() -> None:
    """After a fork, a page the child writes to becomes its own; one it only shares
    with its parent is not reported."""
    size = 64 * server._PAGE
    buffer = bytearray(size)  # written here: present in the parent
    reading, writing = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(reading)
            start = _address(buffer)
            first = start + (-start % server._PAGE)  # a page wholly inside the buffer
            regions = [(first, first + 32 * server._PAGE)]
            buffer[first - start + 5 * server._PAGE] = 1  # one page written after the fork
            written = server._written_pages(regions)
            os.write(writing, marshal.dumps((first, written)))
        finally:
            os._exit(0)
    os.close(writing)
    first, written = marshal.loads(os.read(reading, 1 << 16))
    os.waitpid(pid, 0)
    page = first + 5 * server._PAGE
    assert (page, page + server._PAGE) in written or any(
        start <= page < end for start, end in written
    )
    assert sum(end - start for start, end in written) < 32 * server._PAGE  # not all of them


def _address(buffer: bytearray) -> int:
    return ctypes.addressof((ctypes.c_char * len(buffer)).from_buffer(buffer))
