"""Floors: the least any runner built on wfx's stack can take, measured beside wfx.

`python bench/floors.py chain N` runs N `true` one after another; `python bench/floors.py
fan N P [COMMAND...]` runs N `true` (or COMMAND) at most P at a time. Each process is
started the cheapest way Python has (subprocess.Popen: vfork and exec), in its own
session, with stdout and stderr on pipes drained on the event loop and its exit awaited
through a pidfd, on anyio, after importing what reading a workflow needs (PyYAML,
jsonschema, lark). No workflow is read, nothing is validated, journaled, rendered or
decided: whatever wfx costs beyond this is wfx's, and a limit this floor itself misses
cannot be met by any runner on this stack.

`--run-path` imports instead only what a `wfx run` of a file it has seen before cannot do
without on the mandated stack: anyio (and with it asyncio, its backend), click (the
command line) and sqlite3 (the journal). That is the floor `bench/peers.py` sets beside
doit for the start-up goals.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import anyio

#: what reading a workflow imports (the default floor)
READING = ("yaml", "jsonschema", "lark")
#: what a run of a file seen before imports on the mandated stack (--run-path)
RUN_PATH = ("click", "sqlite3")


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


async def _worker(count: int, argv: list[str]) -> None:
    for _ in range(count):
        await _one(argv)


async def _fan(total: int, parallel: int, argv: list[str]) -> None:
    async with anyio.create_task_group() as workers:
        for slot in range(parallel):
            workers.start_soon(_worker, total // parallel + (slot < total % parallel), argv)


def main() -> None:
    """Run the floor named on the command line."""
    args = sys.argv[1:]
    run_path = args[:1] == ["--run-path"]
    if run_path:
        args = args[1:]
    for module in RUN_PATH if run_path else READING:
        importlib.import_module(module)  # for its start-up cost, as every run pays it
    kind, total = args[0], int(args[1])
    parallel = int(args[2]) if kind == "fan" else 1
    argv = args[3:] if kind == "fan" and len(args) > 3 else ["true"]
    anyio.run(_fan, total, parallel, argv)


if __name__ == "__main__":
    main()
