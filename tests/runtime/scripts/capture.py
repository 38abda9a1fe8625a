"""Run one command through run_process in a fresh interpreter and print what it saw as JSON.

Its peak RSS (VmHWM) is the memory the capture needed, free of the test runner's own.
Usage: capture.py MAX_LINE LOG_PATH LOG_LIMIT -- ARGV...
"""

import json
import os
import sys
import time

import anyio

from wfx.runtime.process import Stream, run_process


def peak_rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM")


async def main() -> None:
    max_line, log_path, log_limit = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    argv = sys.argv[sys.argv.index("--") + 1 :]
    seen = {"stdout": 0, "stderr": 0}
    chunks = {"stdout": 0, "stderr": 0}
    longest = 0

    def on_output(stream: Stream, text: str) -> None:
        nonlocal longest
        seen[stream] += len(text)
        chunks[stream] += 1
        longest = max(longest, len(text))

    baseline = peak_rss_kb()
    started = time.monotonic()
    with open(log_path, "wb") as log:
        outcome = await run_process(
            argv,
            env=dict(os.environ),
            cwd=None,
            timeout=120,
            kill_grace=1,
            on_output=on_output,
            log=log,
            log_limit=log_limit,
            max_line=max_line,
        )
    report = {
        "returncode": outcome.returncode,
        "stdout_bytes": outcome.stdout_bytes,
        "stderr_bytes": outcome.stderr_bytes,
        "chars": seen,
        "chunks": chunks,
        "longest": longest,
        "wall": time.monotonic() - started,
        "baseline_rss_kb": baseline,
        "peak_rss_kb": peak_rss_kb(),
    }
    print(json.dumps(report))


anyio.run(main)
