"""Floors: the least any runner built on wfx's stack can take, measured beside wfx.

`python bench/floors.py chain N` runs N `true` one after another; `python bench/floors.py
fan N P` runs N `true` at most P at a time. Each process is started the cheapest way
Python has (subprocess.Popen: vfork and exec), in its own session, with stdout and stderr
on pipes drained on the event loop and its exit awaited through a pidfd, on anyio, after
importing what reading a workflow needs (PyYAML, jsonschema, lark). No workflow is read,
nothing is validated, journaled, rendered or decided: whatever wfx costs beyond this is
wfx's, and a limit this floor itself misses cannot be met by any runner on this stack.
"""

from __future__ import annotations

import os
import subprocess
import sys

import anyio
import jsonschema  # noqa: F401  (imported for its start-up cost, as every run pays it)
import lark  # noqa: F401
import yaml  # noqa: F401


async def _drain(fd: int) -> None:
    os.set_blocking(fd, False)
    while True:
        try:
            if not os.read(fd, 65536):
                return
        except BlockingIOError:
            await anyio.wait_readable(fd)


async def _one(argv: list[str]) -> None:
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    err_read, err_write = os.pipe2(os.O_CLOEXEC)
    child = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=out_write, stderr=err_write, start_new_session=True
    )
    os.close(out_write)
    os.close(err_write)
    pidfd = os.pidfd_open(child.pid)
    async with anyio.create_task_group() as drains:
        drains.start_soon(_drain, out_read)
        drains.start_soon(_drain, err_read)
        while child.poll() is None:
            await anyio.wait_readable(pidfd)
    for fd in (out_read, err_read, pidfd):
        os.close(fd)


async def _worker(count: int) -> None:
    for _ in range(count):
        await _one(["true"])


async def _fan(total: int, parallel: int) -> None:
    async with anyio.create_task_group() as workers:
        for slot in range(parallel):
            workers.start_soon(_worker, total // parallel + (slot < total % parallel))


def main() -> None:
    """Run the floor named on the command line."""
    kind, total = sys.argv[1], int(sys.argv[2])
    parallel = int(sys.argv[3]) if kind == "fan" else 1
    anyio.run(_fan, total, parallel)


if __name__ == "__main__":
    main()
