"""In-process timings moved out of the unit tests, each against a baseline in the same process.

`python bench/timings.py NAME` prints one ratio (wfx's time / the baseline's time); the unit
tests keep the functional part (it is refused, with this error) and no clock.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROUNDS = 9
TESTS = Path(__file__).resolve().parent.parent / "tests"


def _median_seconds(action: Callable[[], object], rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def schema_warm() -> float:
    """A warm wfx schema validation of a 10-step file against a prebuilt jsonschema validator
    doing the same: near 1 while wfx reuses its validator, far above if it rebuilt it."""
    from jsonschema.validators import Draft202012Validator

    from wfx import schema as wfx_schema
    from wfx.resources import read_text
    from wfx.source import loads

    text = "wfx: 1\nsteps:\n" + "".join(
        f"  - id: s{n}\n    run: echo {n}\n    timeout: 5s\n    retries: {{max: 2, delay: 100ms}}\n"
        for n in range(10)
    )
    document = loads(text, "t.yaml")
    wfx_schema.validate(document)  # build wfx's validator once, outside the timing
    warm = _median_seconds(lambda: wfx_schema.validate(document), 31)
    plain = Draft202012Validator(json.loads(read_text("schema", wfx_schema.SCHEMA_FILE)))
    list(plain.iter_errors(document.data))
    return warm / _median_seconds(lambda: list(plain.iter_errors(document.data)), 31)


def sandbox_worst() -> float:
    """The slowest hostile expression of tests/expr/test_sandbox.py's corpus, refused with an
    ExpressionError, against parsing and evaluating a benign expression of nearly the longest
    allowed length (`1 == 1 && ...`, 20,000 characters)."""
    sys.path.insert(0, str(TESTS / "expr"))
    from test_sandbox import CONTEXTS, CORPUS

    from wfx.expr import ExpressionError, evaluate

    def refuse(text: str) -> None:
        try:
            evaluate(text, CONTEXTS)
        except ExpressionError:
            return
        raise SystemExit(f"accepted: {text[:40]}")

    evaluate("1", {})  # build the parser outside the timings
    times = {name: _median_seconds(lambda t=text: refuse(t), 3) for name, text in CORPUS.items()}
    worst = max(times.values())
    print("slowest:", max(times, key=times.__getitem__), f"{worst * 1000:.1f} ms", file=sys.stderr)
    benign = "1 == 1 && " * 1_999 + "true"
    return worst / _median_seconds(lambda: evaluate(benign, {}), 3)


def alias_bomb() -> float:
    """Refusing a billion-laughs document against loading a plain document of the same size
    (the bomb must be refused as it expands, not after)."""
    from wfx.diagnostics import DiagnosticsError
    from wfx.source import loads

    sys.path.insert(0, str(TESTS / "source"))
    from test_loader import _billion_laughs

    text = _billion_laughs()

    def refuse() -> None:
        try:
            loads(text, "bomb.yaml")
        except DiagnosticsError:
            return
        raise SystemExit("the alias bomb was accepted")

    plain = "".join(f"k{n}: [x, x, x, x, x, x, x, x, x]\n" for n in range(len(text) // 30))
    return _median_seconds(refuse) / _median_seconds(lambda: loads(plain, "plain.yaml"))


TIMINGS: dict[str, Callable[[], float]] = {
    "schema_warm": schema_warm,
    "sandbox_worst": sandbox_worst,
    "alias_bomb": alias_bomb,
}

if __name__ == "__main__":
    print(TIMINGS[sys.argv[1]]())
