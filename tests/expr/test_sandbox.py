"""T14 (RELIABILITY-TESTS.md): escape and denial-of-service attempts end in ExpressionError.

Each input must fail with ExpressionError — never another exception class,
BaseException included — within 50 MB. How fast the slowest is refused:
`python bench/run.py sandbox_worst`.
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from wfx.expr import ExpressionError, evaluate


def _generator() -> Iterator[int]:
    yield 1


class _Exiting(Mapping[str, Any]):
    """A context that raises SystemExit however it is touched."""

    def __getitem__(self, key: str) -> Any:
        raise SystemExit(3)

    def __contains__(self, key: object) -> bool:
        raise SystemExit(3)

    def __iter__(self) -> Iterator[str]:
        raise SystemExit(3)

    def __len__(self) -> int:
        raise SystemExit(3)


CONTEXTS: dict[str, Any] = {
    "x": _generator(),
    "f": _generator,
    "s": _Exiting(),
    "big": "x" * 400_000,
    "brackets": {"open": "[" * 100_000, "close": "]" * 100_000},
}

CORPUS = {
    "subclasses": "().__class__.__bases__[0].__subclasses__()",
    "globals": "f.__globals__",
    "gi_frame": "x.gi_frame",
    "format-attribute": "format('{0.__class__}', x)",
    "format-attribute-on-text": "format('{0.__class__}', 'text')",
    "python-format": "'{0.__class__}'.format(x)",
    "import": "__import__('os')",
    "power": "9**9**9",
    "repeat": "'a'*10**9",
    "parentheses-1e5": "(" * 100_000 + "1" + ")" * 100_000,
    "parentheses-1e4": "(" * 10_000 + "1" + ")" * 10_000,
    "negations": "!" * 20_000 + "true",
    "property-chain": "big" + ".a" * 10_000,
    "index-chain": "big" + "[0]" * 5_000,
    "comparison-chain": "1" + " == 1" * 4_000,
    "one-megabyte": "'" + "a" * 1_000_000 + "'",
    "unknown-name": "os.environ",
    "system-exit": "s.anything",
    "system-exit-filter": "s.*",
    "deep-json": "fromJSON(format('{0}{1}', brackets.open, brackets.close))",
    "format-bomb": "format('{0}{0}{0}{0}{0}{0}{0}{0}', format('{0}{0}{0}{0}{0}{0}{0}{0}', big))",
    "join-bomb": "join(fromJSON('[1,2,3,4,5,6,7,8]'), big)",
    "to-json-bomb": "toJSON(fromJSON(format('[{0}]', toJSON(big))))",
}


@pytest.mark.parametrize("text", CORPUS.values(), ids=CORPUS.keys())
def test_rejected_with_expression_error(text: str) -> None:
    try:
        evaluate(text, CONTEXTS)
    except ExpressionError:
        pass
    except BaseException as exc:  # the point of the test: nothing else may come out
        pytest.fail(f"{type(exc).__name__} escaped: {exc!r}")
    else:
        pytest.fail("accepted")


def test_memory_stays_small() -> None:
    tracemalloc.start()
    try:
        for text in CORPUS.values():
            tracemalloc.reset_peak()
            with pytest.raises(ExpressionError):
                evaluate(text, CONTEXTS)
            _, peak = tracemalloc.get_traced_memory()
            assert peak < 50 * 1024 * 1024, (text[:40], peak)
    finally:
        tracemalloc.stop()


def test_property_access_never_reads_python_attributes() -> None:
    class Thing(dict[str, Any]):
        secret = "attribute"

    assert evaluate("t.secret", {"t": Thing()}) is None
    assert evaluate("t.keys", {"t": {"a": 1}}) is None
    assert evaluate("t['__class__']", {"t": {}}) is None
