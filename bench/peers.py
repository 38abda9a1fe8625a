"""wfx beside make, go-task and doit, as users run them, with a verdict on each speed goal.

    python bench/peers.py [--runs 5] [--warmup 1] [--rounds 1] [--out DIR] [--only REGEX]
    python bench/peers.py --from-raw DIR/raw.json      # re-read an earlier run

Runs `../shared/bench/peers/run.sh` (hyperfine or a Python loop; every tool and floor
timed in the same run, so the ratios hold on a noisy machine) with this project's
`.venv/bin/wfx`, then prints the table of issue #15 with wfx's column and whether each
goal holds. Medians throughout; the goals compare ratios within the one run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PEERS = ROOT.parent / "shared" / "bench" / "peers"
TOOLS = ("make", "task-bintrue", "doit", "wfx")
DEPS_FLOOR = "floor:python import yaml,jsonschema,lark,anyio,rich,click"
HEADERS = ("make", "go-task (/bin/true)", "doit", "wfx", "floor")


@dataclass(frozen=True)
class Results:
    """Median seconds per (workload, tool), the step counts, and in-process floors."""

    wall: Mapping[tuple[str, str], float]
    steps: Mapping[tuple[str, str], int]
    per_step: Mapping[str, float]
    sleep: float
    least: Mapping[tuple[str, str], float] = dataclasses.field(default_factory=dict)
    """The fastest run of each (workload, tool): what start-up noise touches least."""

    def get(self, workload: str, tool: str) -> float:
        return self.wall.get((workload, tool), math.nan)

    def marginal(self, workload: str, tool: str) -> float:
        """Seconds per step beyond start-up: (workload - w0) / (N - 1)."""
        n = self.steps.get((workload, tool), 0)
        return (self.get(workload, tool) - self.get("w0", tool)) / (n - 1) if n > 1 else math.nan

    def least_marginal(self, workload: str, tool: str) -> float:
        """`marginal` from the fastest runs instead of the medians."""
        n = self.steps.get((workload, tool), 0)
        fastest = self.least.get((workload, tool), math.nan)
        return (fastest - self.least.get(("w0", tool), math.nan)) / (n - 1) if n > 1 else math.nan

    def rate(self, workload: str, tool: str) -> float:
        """Steps per second over the whole command (start-up included)."""
        return self.steps.get((workload, tool), 0) / self.get(workload, tool)


def load(raw: Path) -> Results:
    data = json.loads(raw.read_text())
    wall: dict[tuple[str, str], float] = {}
    least: dict[tuple[str, str], float] = {}
    steps: dict[tuple[str, str], int] = {}
    per_step: dict[str, float] = {}
    for case in data["cases"]:
        key = (case["workload"], case["tool"])
        if case["workload"] == "inproc":
            values = [x["per_step_us"] * 1e-6 for x in case["internal"]]
            per_step[case["tool"].removeprefix("floor:")] = statistics.median(values)
        elif case.get("times"):
            wall[key] = statistics.median(case["times"])
            least[key] = min(case["times"])
            steps[key] = case["n"]
    return Results(wall, steps, per_step, data["params"].get("sleep_s", 0.2), least)


def _ms(seconds: float) -> str:
    return "—" if math.isnan(seconds) else f"{seconds * 1e3:,.{1 if seconds < 0.1 else 0}f} ms"


def _rate(rate: float) -> str:
    return "—" if math.isnan(rate) else f"{rate:,.0f}/s"


def table(r: Results) -> list[list[str]]:
    """The rows of issue #15's table: each tool's figure for each workload, and the floor."""
    floor_p = {p: r.per_step.get(f"asyncio exec /bin/true fan-out P={p}", math.nan) for p in (2, 8)}
    rows = [
        ["w0 start-up + 1 step", *(_ms(r.get("w0", t)) for t in TOOLS)],
        ["w1 chain of 200, marginal per step", *(_ms(r.marginal("w1", t)) for t in TOOLS)],
    ]
    for p in (2, 8):
        rows.append(
            [f"w2 1,000 `true` at parallelism {p}", *(_rate(r.rate(f"w2p{p}", t)) for t in TOOLS)]
        )
    rows.append(
        [f"w3 50 × sleep {r.sleep} s at 50, ÷ {r.sleep} s"]
        + [f"{r.get('w3', t) / r.sleep:.2f}" for t in TOOLS]
    )
    rows.append(["w4 plan of 10 steps (cold)", *(_ms(r.get("w4", t)) for t in TOOLS)])
    floors = [
        f"python {_ms(r.get('w4', 'floor:python -c pass'))}",
        "—",
        f"asyncio {_rate(1 / floor_p[2])}",
        f"asyncio {_rate(1 / floor_p[8])}",
        "1.00 (ideal)",
        f"imports of the deps {_ms(r.get('w4', DEPS_FLOOR))}",
    ]
    return [[*row, floor] for row, floor in zip(rows, floors, strict=True)]


Goal = tuple[str, Callable[[Results], tuple[float, float]], str]

#: each goal: its words, (wfx's figure, the bound it must meet), and the comparison
GOALS: list[Goal] = [
    (
        "w1: marginal per step ≤ 0.9× doit's",
        lambda r: (r.marginal("w1", "wfx"), 0.9 * r.marginal("w1", "doit")),
        "<=",
    ),
    *[
        goal
        for p in (2, 8)
        for goal in (
            (
                f"w2p{p}: ≥ 1.2× doit's steps/s",
                lambda r, p=p: (r.rate(f"w2p{p}", "wfx"), 1.2 * r.rate(f"w2p{p}", "doit")),
                ">=",
            ),
            (
                f"w2p{p}: ≥ 0.6× the asyncio floor's steps/s",
                lambda r, p=p: (
                    r.rate(f"w2p{p}", "wfx"),
                    0.6 / r.per_step.get(f"asyncio exec /bin/true fan-out P={p}", math.nan),
                ),
                ">=",
            ),
        )
    ],
    ("w3: ≤ 1.5× the ideal", lambda r: (r.get("w3", "wfx") / r.sleep, 1.5), "<="),
    ("w0: ≤ doit's (unchanged file)", lambda r: (r.get("w0", "wfx"), r.get("w0", "doit")), "<="),
    ("w4: ≤ doit's (unchanged file)", lambda r: (r.get("w4", "wfx"), r.get("w4", "doit")), "<="),
]

#: the goals for a file never seen before, judged on the run where each wfx call has a
#: state directory of its own (bench/fresh_state_wfx.sh)
NEVER_SEEN_GOALS: list[Goal] = [
    (
        f"{workload}: ≤ 1.5× doit's (a file never seen)",
        lambda r, w=workload: (r.get(w, "wfx"), 1.5 * r.get(w, "doit")),
        "<=",
    )
    for workload in ("w0", "w4")
]
#: the cases of the never-seen run
NEVER_SEEN_ONLY = "^w[04] (wfx|doit)$"


def verdicts(r: Results, goals: list[Goal] = GOALS) -> list[str]:
    lines = []
    for words, figures, comparison in goals:
        mine, bound = figures(r)
        if math.isnan(mine) or math.isnan(bound):
            lines.append(f"- {words}: not measured")
            continue
        if mine <= 0 or bound <= 0:  # a marginal below zero: w0 ran slower than w1
            lines.append(f"- {words}: too noisy to judge (wfx {mine:.4g}, bound {bound:.4g})")
            continue
        met = mine <= bound if comparison == "<=" else mine >= bound
        lines.append(
            f"- {words}: {'MET' if met else 'not met'} "
            f"(wfx {mine:.4g}, bound {bound:.4g}, wfx/bound {mine / bound:.2f})"
        )
    return lines


def _w1_noise(r: Results) -> list[str]:
    """w1's goal compares two differences of medians, and a start-up that is sometimes
    slow (doit's w0 is at times 100 ms, at times 145) moves a marginal by a quarter of a
    millisecond: the same figures from each tool's fastest runs, said beside the verdict
    (which stays the goal's own statistic, the medians)."""
    mine, doit = r.least_marginal("w1", "wfx"), r.least_marginal("w1", "doit")
    if math.isnan(mine) or math.isnan(doit) or doit <= 0:
        return []
    spread = ", ".join(
        f"{tool} {_ms(r.least.get(('w0', tool), math.nan))}–{_ms(r.get('w0', tool))}"
        for tool in ("wfx", "doit")
    )
    return [
        f"  (w1 from each tool's fastest runs, for the noise: wfx {mine * 1e3:.2f} ms,"
        f" doit {doit * 1e3:.2f} ms, ratio {mine / doit:.2f}; w0 fastest–median: {spread})"
    ]


def markdown(r: Results, never_seen: Results | None = None) -> str:
    head = ["workload", *HEADERS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(row) + " |" for row in table(r)]
    judged = verdicts(r)
    judged[1:1] = _w1_noise(r)  # below w1's verdict
    lines += ["", "Goals (issue #15):", *judged]
    if never_seen is not None:
        lines += verdicts(never_seen, NEVER_SEEN_GOALS)
        lines += [
            f"  (never seen: wfx w0 {_ms(never_seen.get('w0', 'wfx'))}, w4"
            f" {_ms(never_seen.get('w4', 'wfx'))}; doit w0 {_ms(never_seen.get('w0', 'doit'))},"
            f" w4 {_ms(never_seen.get('w4', 'doit'))}, timed in their own run)"
        ]
    return "\n".join(lines)


#: the floor of the mandated stack (bench/floors.py --run-path) for the start-up goals
STACK_FLOOR = {
    "w0": ["fan", "1", "1", "true"],
    "w3": ["fan", "50", "50", "sleep"],
}


def stack_floor(raw: Path, runs: int) -> dict[str, tuple[float, float]]:
    """For w0 and w3: (doit, the mandated stack's floor), medians in seconds of `runs`
    calls of each, taken in turns. The floor starts Python, imports what a `wfx run` of
    a file seen before cannot do without (anyio with asyncio, click, sqlite3) and runs
    the workload's processes as cheaply as anyio can; it reads, checks and records
    nothing. A goal this floor misses is out of reach of any runner on wfx's stack.
    doit is the one run.sh installed (`$PEERS_VENV`, as run.sh finds it)."""
    data = json.loads(raw.read_text())
    sleep = str(data["params"].get("sleep_s", 0.2))
    doit = {c["workload"]: c for c in data["cases"] if c["tool"] == "doit" and c.get("times")}
    venv = os.environ.get("PEERS_VENV") or os.path.join(tempfile.gettempdir(), "wfx-peers-venv")
    env = {**os.environ, "PATH": f"{venv}/bin:{os.environ.get('PATH', '')}"}
    figures: dict[str, tuple[float, float]] = {}
    for workload, floor_args in STACK_FLOOR.items():
        case = doit.get(workload)
        if case is None:
            continue
        floor = [sys.executable, str(ROOT / "bench" / "floors.py"), "--run-path", *floor_args]
        floor += [sleep] if workload == "w3" else []
        times: dict[str, list[float]] = {"doit": [], "floor": []}
        for _ in range(runs + 1):  # the first round warms the caches and is dropped
            for name, (command, where) in {
                "doit": (case["run"], case["dir"]),
                "floor": (floor, str(ROOT)),
            }.items():
                start = time.perf_counter()
                subprocess.run(command, cwd=where, env=env, capture_output=True, check=False)
                times[name].append(time.perf_counter() - start)
        figures[workload] = (
            statistics.median(times["doit"][1:]),
            statistics.median(times["floor"][1:]),
        )
    return figures


def floor_lines(figures: Mapping[str, tuple[float, float]], sleep: float) -> list[str]:
    """What the mandated stack's floor says of the start-up goals it bounds."""
    lines = []
    if "w0" in figures:
        doit, floor = figures["w0"]
        lines.append(
            f"- floor of the mandated stack started cold, w0: {_ms(floor)} ="
            f" {floor / doit:.2f}× doit's {_ms(doit)} (what a process that imports the stack"
            " for each command takes; wfx's warm server does not: docs/server.md)"
        )
    if "w3" in figures:
        doit, floor = figures["w3"]
        lines.append(
            f"- floor of the mandated stack started cold, w3: {floor / sleep:.2f}× the ideal"
            f" ({_ms(floor)}; doit {doit / sleep:.2f}×)"
        )
    return lines


def _without_only(passed: list[str]) -> list[str]:
    """The run.sh arguments without a `--only` (the never-seen run chooses its own cases)."""
    kept: list[str] = []
    skip = False
    for argument in passed:
        if skip:
            skip = False
        elif argument == "--only":
            skip = True
        elif not argument.startswith("--only="):
            kept.append(argument)
    return kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from-raw", type=Path, help="print the table of an earlier raw.json")
    parser.add_argument("--out", type=Path, default=ROOT / ".bench-peers")
    parser.add_argument(
        "--floor-runs",
        type=int,
        default=7,
        help="calls of doit and of the mandated stack's floor for w0 and w3 (0: skip)",
    )
    parser.add_argument(
        "--no-never-seen",
        action="store_true",
        help="skip the second run, of w0 and w4 with a state directory per call",
    )
    args, passed = parser.parse_known_args(argv)
    raw = args.from_raw
    if raw is None:
        wfx = ROOT / ".venv" / "bin" / "wfx"
        # as users run it: Python (and wfx's class cache) may write bytecode caches
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        command = [str(PEERS / "run.sh"), "--out", str(args.out), *passed]
        ran = subprocess.run(command, cwd=ROOT, env={**env, "WFX": str(wfx)}, check=False)
        if ran.returncode != 0:
            return 1
        raw = args.out / "raw.json"
        if not args.no_never_seen:
            fresh = {**env, "WFX": str(ROOT / "bench" / "fresh_state_wfx.sh"), "WFX_REAL": str(wfx)}
            never = [str(PEERS / "run.sh"), "--out", str(args.out / "never-seen")]
            never += [*_without_only(passed), "--only", NEVER_SEEN_ONLY]
            if subprocess.run(never, cwd=ROOT, env=fresh, check=False).returncode != 0:
                return 1
    never_seen = raw.parent / "never-seen" / "raw.json"
    results = load(raw)
    print(markdown(results, load(never_seen) if never_seen.exists() else None))
    if args.floor_runs > 0 and args.from_raw is None:
        print("\n".join(floor_lines(stack_floor(raw, args.floor_runs), results.sleep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
