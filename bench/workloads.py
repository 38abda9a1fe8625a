"""In-process engine workloads, each run in a fresh interpreter by bench/run.py.

`python bench/workloads.py NAME` prints one number: seconds, steps per second or MB.
"""

from __future__ import annotations

import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import anyio

from wfx.api import compile_file
from wfx.runtime.engine import RunOptions, run


def _graph(text: str) -> tuple[object, Path]:
    root = Path(tempfile.mkdtemp(prefix="wfx-bench-"))
    (root / "w.yaml").write_text(text)
    return compile_file(root / "w.yaml").graph, root


def _parallel(lines: list[str]) -> str:
    body = "\n".join(f"      - {line}" for line in lines)
    return f"wfx: 1\nsteps:\n  - type: parallel\n    steps:\n{body}\n"


async def _noop() -> None:
    return None


def _timed_run(text: str, actions: dict[str, Callable[..., object]] | None = None) -> float:
    graph, root = _graph(text)
    options = RunOptions(actions=actions or {}, workspace=root / "ws")

    async def main() -> float:
        started = time.perf_counter()
        await run(graph, options=options)  # type: ignore[arg-type]
        return time.perf_counter() - started

    try:
        return anyio.run(main)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def parallel_sleep() -> float:
    """Seconds for 50 parallel `sleep 0.2`."""
    return _timed_run(_parallel(["{cmd: [sleep, '0.2']}"] * 50))


def python_steps() -> float:
    """Steps per second for 10,000 independent async Python steps."""
    lines = [f"{{id: s{i}, uses: 'python:b:f'}}" for i in range(10_000)]
    return 10_000 / _timed_run(_parallel(lines), {"python:b:f": _noop})


def rss_10k() -> float:
    """Peak RSS in MB after a 10,000-step run."""
    python_steps()
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


WORKLOADS: dict[str, Callable[[], float]] = {
    "parallel_sleep": parallel_sleep,
    "python_steps": python_steps,
    "rss_10k": rss_10k,
}


def python_chain() -> float:
    """Steps per second for 10,000 sequential async Python steps."""
    body = "\n".join(f"  - {{id: s{i}, uses: 'python:b:f'}}" for i in range(10_000))
    return 10_000 / _timed_run(f"wfx: 1\nsteps:\n{body}\n", {"python:b:f": _noop})


WORKLOADS["python_chain"] = python_chain

if __name__ == "__main__":
    print(WORKLOADS[sys.argv[1]]())
