"""wfx benchmarks: each one times wfx against a baseline measured in the same run.

Run all with `make bench`, or some by name: `python bench/run.py validate_cold`.
Machines are noisy, so every figure is a median over interleaved repetitions and
every verdict is a ratio to the baseline, never an absolute time.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
WFX = str(BIN / "wfx")
PYTHON = sys.executable


@dataclass(frozen=True)
class Result:
    """One benchmark's figure against its limit."""

    name: str
    figure: float
    limit: float
    detail: str
    higher_is_better: bool = False

    @property
    def passed(self) -> bool:
        """True when the figure is within its limit."""
        return self.figure >= self.limit if self.higher_is_better else self.figure <= self.limit

    def line(self) -> str:
        """One line for the report."""
        verdict = "ok  " if self.passed else "FAIL"
        sign = ">=" if self.higher_is_better else "<="
        return f"{verdict} {self.name:<28} {self.figure:8.2f} (limit {sign} {self.limit}) {self.detail}"


def wall_time(argv: list[str], cwd: Path | None = None) -> float:
    """Seconds one run of `argv` takes, its output discarded; fails loudly on error."""
    started = time.perf_counter()
    completed = subprocess.run(argv, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - started
    if completed.returncode != 0:
        raise SystemExit(f"benchmark command failed: {argv}\n{completed.stderr.decode()}")
    return elapsed


def interleaved_medians(commands: dict[str, list[str]], repeat: int) -> dict[str, float]:
    """Median wall time of each command, runs interleaved so drift hits all alike."""
    samples: dict[str, list[float]] = {name: [] for name in commands}
    for name, argv in commands.items():
        wall_time(argv)  # warm the page cache and .pyc files
        samples[name].clear()
    for _ in range(repeat):
        for name, argv in commands.items():
            samples[name].append(wall_time(argv))
    return {name: statistics.median(values) for name, values in samples.items()}


def ten_step_workflow() -> str:
    """A realistic 10-step workflow: inputs, env, a parallel group, retries, a rollback."""
    steps = "\n".join(
        f"      - {{id: check{i}, run: 'echo check {i} ${{{{ inputs.env }}}}', timeout: 30s}}"
        for i in range(4)
    )
    rest = "\n".join(
        f"  - id: step{i}\n    run: echo step {i}\n    retries: 2\n    needs: [checks]"
        for i in range(5)
    )
    return (
        "wfx: 1\nname: ten steps\ninputs:\n  env: {type: string, enum: [dev, prd], default: dev}\n"
        "env:\n  TARGET: ${{ inputs.env }}\nsteps:\n  - id: checks\n    type: parallel\n"
        f"    steps:\n{steps}\n{rest}\n  - id: deploy\n    run: echo deploy\n"
        "    condition: ${{ inputs.env == 'prd' }}\n    rollback: {run: echo undo}\n"
    )


def bench_validate_cold(repeat: int) -> Result:
    """Cold `wfx validate` of a 10-step file vs `python -c 'import yaml, jsonschema, lark'`."""
    with tempfile.TemporaryDirectory() as tmp:
        workflow = Path(tmp) / "ten.yaml"
        workflow.write_text(ten_step_workflow())
        medians = interleaved_medians(
            {
                "baseline": [PYTHON, "-c", "import yaml, jsonschema, lark"],
                "wfx": [WFX, "validate", str(workflow)],
            },
            repeat,
        )
    ratio = medians["wfx"] / medians["baseline"]
    detail = f"wfx {medians['wfx'] * 1000:.0f} ms vs imports {medians['baseline'] * 1000:.0f} ms"
    return Result("validate_cold", ratio, 1.3, detail)


BENCHMARKS: dict[str, Callable[[int], Result]] = {
    "validate_cold": bench_validate_cold,
}


def main() -> int:
    """Run the chosen benchmarks and print one line each; exit 1 if any misses its limit."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("names", nargs="*", choices=[*BENCHMARKS, []], help="benchmarks to run")
    parser.add_argument("--repeat", type=int, default=21, help="repetitions per command")
    args = parser.parse_args()
    results = [BENCHMARKS[name](args.repeat) for name in args.names or BENCHMARKS]
    for result in results:
        print(result.line(), flush=True)
    return 0 if all(r.passed for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
