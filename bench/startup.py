"""Where a cold `wfx validate` spends its time, phase by phase, in one fresh interpreter.

`python bench/startup.py [FILE]` prints the medians of several fresh runs: the imports
the validate_cold baseline pays (PyYAML, jsonschema, lark), click, wfx's own modules (and
how much of that is creating frozen dataclasses, which Python 3.11 does by compiling
generated source for every class), and the work itself. It explains the validate_cold
figure; it is not a benchmark with a limit.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

_PHASES = ("baseline imports", "click", "wfx imports", "of which dataclasses", "validate work")

_PROBE = r"""
import dataclasses, json, sys, time
started = time.perf_counter()
import yaml, jsonschema, lark
imported = time.perf_counter()
import click
clicked = time.perf_counter()
spent = [0.0, 0]
original = dataclasses._process_class
def timed(*args, **kwargs):
    begin = time.perf_counter()
    try:
        return original(*args, **kwargs)
    finally:
        spent[0] += time.perf_counter() - begin
        spent[1] += 1
dataclasses._process_class = timed
import wfx.cli, wfx.compiler, wfx.schema, wfx.render.diagnostics
from wfx import api
loaded = time.perf_counter()
api.check([sys.argv[1]])
done = time.perf_counter()
print(json.dumps([imported - started, clicked - imported, loaded - clicked, spent[0],
                  done - loaded, spent[1]]))
"""


def main() -> None:
    """Print the median of each phase over fresh interpreters."""
    with tempfile.TemporaryDirectory() as tmp:
        if len(sys.argv) > 1:
            workflow = Path(sys.argv[1])
        else:
            sys.path.insert(0, str(Path(__file__).parent))
            from run import ten_step_workflow

            workflow = Path(tmp) / "ten.yaml"
            workflow.write_text(ten_step_workflow())
        runs = [
            json.loads(
                subprocess.run(
                    [sys.executable, "-c", _PROBE, str(workflow)],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout
            )
            for _ in range(11)
        ]
    for index, phase in enumerate(_PHASES):
        median = statistics.median(run[index] for run in runs)
        print(f"{phase:<22} {median * 1000:7.1f} ms")
    print(f"{'dataclasses created':<22} {runs[0][5]:7d}")


if __name__ == "__main__":
    main()
