"""The per-step cost of a chain of `true` steps, this tree against another revision,
interleaved so both see the same phase of a noisy machine.

    python bench/ab.py REV [--steps 200] [--pairs 24]

REV is a git revision (checked out into a temporary worktree) or a directory holding
wfx's `src`. Two long-lived Python processes, one per tree, take turns running
`wfx run` of a 1-step and an N-step chain in-process; each turn gives one per-step figure
((chain - one) / (N - 1)) of wall time and of the process's own CPU time. The ratios of
the pairs' medians are the result: below 1, this tree is faster. Wall time includes the
children's own run; CPU time is wfx's process alone.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: what each of the two processes runs: one `wfx run` per line of its standard input
_WORKER = """
import contextlib, io, resource, sys, time
from wfx.cli import cli
for line in sys.stdin:
    before, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            cli.main(["run", line.strip()], standalone_mode=False)
        except SystemExit:
            pass
    after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - began
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    print(wall, cpu, flush=True)
"""


def chain(steps: int) -> str:
    """A workflow of `steps` `true` steps, each needing the one before."""
    lines = ["wfx: 1", f"name: chain{steps}", "maxParallel: 1", "steps:"]
    for i in range(steps):
        needs = f", needs: [s{i - 1}]" if i else ""
        lines.append(f"  - {{id: s{i}, run: 'true'{needs}}}")
    return "\n".join(lines) + "\n"


class Tree:
    """One long-lived process running wfx from the `src` directory `source`."""

    def __init__(self, source: Path, work: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(source), "WFX_SERVER": "0"}
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.process = subprocess.Popen(
            [sys.executable, "-c", _WORKER],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=work,
        )

    def run(self, workflow: Path) -> tuple[float, float]:
        """Wall and CPU seconds of one `wfx run` of `workflow`."""
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(f"{workflow}\n")
        self.process.stdin.flush()
        wall, cpu = self.process.stdout.readline().split()
        return float(wall), float(cpu)

    def per_step(self, one: Path, many: Path, steps: int) -> tuple[float, float]:
        """Microseconds of wall and CPU time per step of the chain, beyond its first."""
        wall_one, cpu_one = self.run(one)
        wall_many, cpu_many = self.run(many)
        scale = 1e6 / (steps - 1)
        return (wall_many - wall_one) * scale, (cpu_many - cpu_one) * scale

    def close(self) -> None:
        """End the process."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait()


def source_of(revision: str, scratch: Path) -> Path:
    """The `src` directory of `revision`: a directory as given, or a git worktree."""
    given = Path(revision)
    if given.is_dir():
        return given / "src" if (given / "src").is_dir() else given
    tree = scratch / "other"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
        check=True,
        capture_output=True,
    )
    return tree / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("revision", help="a git revision or a directory with wfx's src")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--pairs", type=int, default=24)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="wfx-ab-") as tmp:
        scratch = Path(tmp)
        one, many = scratch / "one.yaml", scratch / "many.yaml"
        one.write_text(chain(1))
        many.write_text(chain(options.steps))
        other_source = source_of(options.revision, scratch)
        try:
            trees = {"this": Tree(ROOT / "src", scratch), "other": Tree(other_source, scratch)}
            for tree in trees.values():  # warm both: imports, caches
                tree.per_step(one, many, options.steps)
            figures: dict[str, list[tuple[float, float]]] = {name: [] for name in trees}
            for pair in range(options.pairs):
                order = list(trees) if pair % 2 == 0 else list(reversed(trees))
                for name in order:
                    figures[name].append(trees[name].per_step(one, many, options.steps))
            for tree in trees.values():
                tree.close()
        finally:
            if not Path(options.revision).is_dir():
                subprocess.run(
                    [
                        "git",
                        "-C",
                        str(ROOT),
                        "worktree",
                        "remove",
                        "--force",
                        str(scratch / "other"),
                    ],
                    check=False,
                    capture_output=True,
                )
    report(figures, options.revision)


def report(figures: dict[str, list[tuple[float, float]]], revision: str) -> None:
    """Each tree's medians, and this tree's over the other's, pair by pair."""
    for name, runs in figures.items():
        wall = statistics.median(r[0] for r in runs)
        cpu = statistics.median(r[1] for r in runs)
        label = "this tree" if name == "this" else revision
        print(f"{label:>12}: wall {wall:7.0f} µs/step   cpu {cpu:7.0f} µs/step")
    pairs = list(zip(figures["this"], figures["other"], strict=True))
    wall_ratio = statistics.median(a[0] / b[0] for a, b in pairs)
    cpu_ratio = statistics.median(a[1] / b[1] for a, b in pairs)
    summary = f"wall {wall_ratio:.3f}  cpu {cpu_ratio:.3f}"
    print(f"this / {revision}, median of {len(pairs)} pairs: {summary}")


if __name__ == "__main__":
    main()
