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


def secrets_mask() -> float:
    """Masking 20,000 lines of 1,000 characters with 5 secrets (every documented form of
    each: raw, JSON, URL, base64 at each alignment...) against one compiled alternation of
    the 5 raw values doing `re.sub` on the same lines (was a lines-per-second floor in
    tests/runtime/test_secrets.py)."""
    import random
    import re
    import string

    from wfx.runtime.secrets import MASK, SecretSet

    rng = random.Random(5)
    alphabet = string.ascii_letters + string.digits + " " * 12 + "=/:.-_"
    lines = ["".join(rng.choices(alphabet, k=1000)) for _ in range(20_000)]
    values = {f"S{i}": f"{rng.randbytes(18).hex()}+/{i}" for i in range(5)}
    five = SecretSet.of(values)
    raw = re.compile("|".join(map(re.escape, values.values())))

    def masked() -> None:
        for line in lines:
            five.mask(line)

    def substituted() -> None:
        for line in lines:
            raw.sub(MASK, line)

    return _median_seconds(masked, 5) / _median_seconds(substituted, 5)


def process_overhead() -> float:
    """Starting and waiting for `true` through wfx's run_process (own session, pipes drained
    on the event loop, exit awaited on a pidfd) against `subprocess.run(["true"])`, medians of
    interleaved runs (was tests/runtime/test_process.py's overhead test)."""
    import os
    import subprocess

    import anyio

    from wfx.runtime.process import run_process

    env = dict(os.environ)

    async def measure() -> float:
        ours, theirs = [], []
        await run_process(["true"], env=env, cwd=None, timeout=None, kill_grace=1)
        for _ in range(200):
            started = time.perf_counter()
            await run_process(["true"], env=env, cwd=None, timeout=None, kill_grace=1)
            ours.append(time.perf_counter() - started)
            started = time.perf_counter()
            subprocess.run(["true"], check=True)
            theirs.append(time.perf_counter() - started)
        return statistics.median(ours) / statistics.median(theirs)

    return anyio.run(measure)


def _views_against_a_bare_write(make_view: Callable[[], Callable[[object], None]]) -> float:
    """100,000 output events through a view against the least any consumer of them does:
    format `[step] text`, write it to a StringIO and flush."""
    import io

    from wfx.model import StepId
    from wfx.runtime.events import StepOutput

    events = [
        StepOutput("run-1", 0.0, StepId("build"), "stdout", f"line {i}") for i in range(100_000)
    ]

    def viewed() -> None:
        view = make_view()
        for event in events:
            view(event)

    def written() -> None:
        stream = io.StringIO()
        for event in events:
            stream.write(f"[{event.step}] {event.text}\n")
            stream.flush()

    return _median_seconds(viewed, 7) / _median_seconds(written, 7)


def plain_view() -> float:
    """The plain view taking 100,000 output lines (was a 0.5 s bound in
    tests/render/test_run_view.py)."""
    import io

    from wfx.render.run_view import PlainView

    return _views_against_a_bare_write(lambda: PlainView(io.StringIO()))  # type: ignore[arg-type]


def live_view() -> float:
    """The live view taking 100,000 output lines, not started, as between two refreshes
    (was a 0.5 s bound in tests/render/test_run_view.py)."""
    from rich.console import Console

    from wfx.render.run_view import LiveView

    def make() -> LiveView:
        console = Console(width=80, color_system=None, record=True, force_terminal=True)
        return LiveView(console)

    return _views_against_a_bare_write(make)  # type: ignore[arg-type]


TIMINGS: dict[str, Callable[[], float]] = {
    "schema_warm": schema_warm,
    "sandbox_worst": sandbox_worst,
    "alias_bomb": alias_bomb,
    "secrets_mask": secrets_mask,
    "process_overhead": process_overhead,
    "plain_view": plain_view,
    "live_view": live_view,
}

if __name__ == "__main__":
    print(TIMINGS[sys.argv[1]]())
