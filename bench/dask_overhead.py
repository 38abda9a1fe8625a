"""Overhead per step of DaskExecutor against a direct local process, in the same run.

`python bench/dask_overhead.py [STEPS] [ROUNDS]` starts a LocalCluster (2 worker
processes, real TCP), then runs STEPS sequential `true` attempts through DaskExecutor and
STEPS through `run_process` on this machine (wfx's local floor), ROUNDS times interleaved.
It prints the median milliseconds per step of each (and of Dask alone: a no-op task), and
on its last line the ratio of a step through DaskExecutor to the sum of its two floors, a
process here and a no-op Dask task (about 10 ms: submit, schedule, run, report, gather):
what wfx's own part costs (streaming, the stop event, the sweep) on top of both.
"""

from __future__ import annotations

import statistics
import sys
import time

import anyio

from wfx.runtime.dask import DaskExecutor
from wfx.runtime.executor import AttemptRequest
from wfx.runtime.process import run_process


def _request(step: int) -> AttemptRequest:
    key = f"bench:s{step}:1"
    return AttemptRequest(key, ("true",), {"WFX_IDEMPOTENCY_KEY": key}, None, None, 1.0)


async def _through_dask(executor: DaskExecutor, steps: int) -> float:
    started = time.perf_counter()
    for step in range(steps):
        attempt = await executor.run_attempt(_request(step), lambda stream, text: None)
        assert attempt.status.value == "success", attempt
    return (time.perf_counter() - started) / steps


async def _direct(steps: int) -> float:
    started = time.perf_counter()
    for _ in range(steps):
        outcome = await run_process(["true"], env={}, cwd=None, timeout=None, kill_grace=1.0)
        assert outcome.succeeded
    return (time.perf_counter() - started) / steps


def _nothing() -> None:
    return None


async def _dask_floor(executor: DaskExecutor, steps: int) -> float:
    """Dask's own round trip: submit a function that does nothing, await its result."""
    client = executor._require()
    started = time.perf_counter()
    for _ in range(steps):
        await client.submit(_nothing, pure=False)
    return (time.perf_counter() - started) / steps


async def measure(steps: int, rounds: int) -> tuple[float, float, float]:
    """Median seconds per step: (through Dask, direct, Dask's floor)."""
    executor = DaskExecutor("dask:local", n_workers=2)
    await executor.start()
    try:
        await _through_dask(executor, 5)  # warm: imports and connections on the workers
        dask, local, floor = [], [], []
        for _ in range(rounds):
            dask.append(await _through_dask(executor, steps))
            local.append(await _direct(steps))
            floor.append(await _dask_floor(executor, steps))
    finally:
        await executor.close()
    return statistics.median(dask), statistics.median(local), statistics.median(floor)


def main() -> None:
    """Print both figures and the overhead (ms per step)."""
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 50
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 5
    dask, local, floor = anyio.run(measure, steps, rounds)
    print(f"dask  {dask * 1000:.1f} ms/step")
    print(f"local {local * 1000:.1f} ms/step")
    print(f"floor {floor * 1000:.1f} ms/task (Dask alone: submit a no-op, await it)")
    print(f"dask/local {dask / local:.1f}, overhead {(dask - local) * 1000:.1f} ms/step")
    print(f"{dask / (floor + local):.2f}")


if __name__ == "__main__":
    main()
