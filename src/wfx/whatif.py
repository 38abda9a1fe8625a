"""What-if plans: what a run does when chosen steps fail or time out (`wfx plan --fail`).

One truth: the answer is not a second model of the rules. The real engine
(runtime/engine.py) runs the compiled graph with a simulated executor that stands in
for every executor and for Python steps: it starts no process and calls no step code.
Every attempt succeeds at once with no outputs, except the attempts named to fail
(exit code 1) or to time out (after the step's timeout). Retry waits pass on a
simulated clock. The engine itself decides, as in a real run, which steps are
cancelled or skipped, which conditions hold, which rollbacks run in which order,
which `finally` steps run, and the exit code.

The simulation's assumptions, which the result lists as notes where they matter:
- A failure happens while every step that can run alongside it is still running
  (the worst case): those steps are cancelled, not finished.
- Steps write no outputs: an expression reading `steps.<id>.outputs` sees null.
- Every declared secret is set (to a placeholder that is never shown).
- Rollbacks and the steps not named succeed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

import anyio

from wfx.diagnostics import Diagnostic, DiagnosticsError, error
from wfx.expr import Expression
from wfx.graph import ExecutionGraph, Section
from wfx.model import StepId
from wfx.runtime import events as ev
from wfx.runtime.events import RunStatus, StepStatus
from wfx.runtime.simulation import simulate


@dataclass(frozen=True, slots=True)
class Failure:
    """One failure to simulate: `step` fails (or times out) at `attempt` (None: every one)."""

    step: StepId
    attempt: int | None
    timeout: bool = False

    def __str__(self) -> str:
        flag = "--timeout" if self.timeout else "--fail"
        at = "" if self.attempt is None else f"@{self.attempt}"
        return f"{flag} {self.step}{at}"


@dataclass(frozen=True, slots=True)
class StepOutcome:
    """How one step ends in the what-if run."""

    id: StepId
    section: Section
    status: StepStatus
    attempts: int
    reason: str | None
    retry_waits: tuple[float, ...] = ()
    rolled_back: StepStatus | None = None


@dataclass(frozen=True, slots=True)
class WhatIf:
    """What the run does under `failures`, as the engine decided it."""

    file: str
    failures: tuple[Failure, ...]
    status: RunStatus
    exit_code: int
    reason: str | None
    steps: tuple[StepOutcome, ...]
    compensation: tuple[StepId, ...]
    """The rollbacks that ran, in the order they ran."""
    notes: tuple[str, ...]

    def outcome(self, step: str) -> StepOutcome:
        """The outcome of one step."""
        return next(s for s in self.steps if s.id == step)


# -- the failures asked for --------------------------------------------------------------------


def parse_failures(
    graph: ExecutionGraph, fails: Iterable[str], timeouts: Iterable[str]
) -> tuple[Failure, ...]:
    """`--fail STEP[@N]` and `--timeout STEP[@N]` as Failures; every problem at once, as
    Diagnostics (exit 2)."""
    found: list[Failure] = []
    problems: list[Diagnostic] = []
    for spec, timeout in [*((f, False) for f in fails), *((t, True) for t in timeouts)]:
        try:
            found.append(_failure(graph, spec, timeout))
        except DiagnosticsError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise DiagnosticsError(problems)
    return tuple(found)


def _failure(graph: ExecutionGraph, spec: str, timeout: bool) -> Failure:
    option = "--timeout" if timeout else "--fail"
    name, at, number = spec.partition("@")
    step = StepId(name.strip())
    ids = [n.id for n in graph.steps()]
    if step not in ids:
        close = difflib.get_close_matches(step, ids, n=3)
        hint = ("did you mean " + ", ".join(f"`{c}`" for c in close) + "?") if close else None
        hint = hint or "name a step (not a group): " + ", ".join(ids[:10])
        raise _bad(f"{option} {spec}: no step `{step}`", hint)
    node = graph.node(step)
    assert node.settings is not None
    attempts = node.settings.retry.value.attempts
    attempt: int | None = None
    if at:
        if not number.isdigit() or int(number) < 1:
            raise _bad(f"{option} {spec}: `{number}` is not an attempt number", "STEP@1, STEP@2…")
        attempt = int(number)
        if attempt > attempts:
            raise _bad(
                f"{option} {spec}: `{step}` has {attempts} attempt(s), not {attempt}",
                "count the first attempt and each retry",
            )
    if timeout and node.settings.timeout.value is None:
        raise _bad(
            f"--timeout {spec}: `{step}` has no timeout, so it cannot time out",
            "give it `timeout:`, or ask what happens when it fails with --fail",
        )
    return Failure(step, attempt, timeout)


def _bad(message: str, hint: str | None) -> DiagnosticsError:
    return DiagnosticsError([error("plan.what-if", message, None, hint)])


# -- running it --------------------------------------------------------------------------------


def what_if(graph: ExecutionGraph, failures: Iterable[Failure]) -> WhatIf:
    """Run `graph` in the simulation with `failures`; return how every step ends."""
    chosen = tuple(failures)
    return anyio.run(_what_if, graph, chosen)


async def _what_if(graph: ExecutionGraph, failures: tuple[Failure, ...]) -> WhatIf:
    failing = {(str(f.step), f.attempt): "timeout" if f.timeout else "fail" for f in failures}
    result, recorded = await simulate(graph, failing)
    return _collect(graph, failures, recorded, result.status, result.reason)


def _collect(
    graph: ExecutionGraph,
    failures: tuple[Failure, ...],
    recorded: list[ev.Event],
    status: RunStatus,
    reason: str | None,
) -> WhatIf:
    finished: dict[str, ev.StepFinished] = {}
    waits: dict[str, list[float]] = {}
    rolled: dict[str, StepStatus] = {}
    order: list[StepId] = []
    for event in recorded:
        if isinstance(event, ev.StepFinished):
            finished[event.step] = event
        elif isinstance(event, ev.StepRetrying):
            waits.setdefault(event.step, []).append(event.delay)
        elif isinstance(event, ev.RollbackStarted):
            order.append(event.step)
        elif isinstance(event, ev.RollbackFinished):
            rolled[event.step] = event.status
    steps = tuple(
        StepOutcome(
            node.id,
            node.section,
            finished[node.id].status,
            finished[node.id].attempts,
            finished[node.id].reason,
            tuple(waits.get(node.id, ())),
            rolled.get(node.id),
        )
        for node in graph.steps()
    )
    return WhatIf(
        graph.workflow.file,
        failures,
        status,
        status.exit_code,
        reason,
        steps,
        tuple(order),
        tuple(_notes(graph, steps)),
    )


def _notes(graph: ExecutionGraph, steps: tuple[StepOutcome, ...]) -> Iterable[str]:
    """Where an outcome rests on a simulated value or on the simulation's timing, say so."""
    ended = {s.id: s for s in steps}
    for outcome in steps:
        if outcome.status is StepStatus.CANCELLED:
            yield (
                f"`{outcome.id}` cancelled: the failure is taken to come while it still runs;"
                " in a real run it may finish first"
            )
    for node in graph.steps():
        condition = node.step.condition
        if condition is None or condition.expression is None:
            continue
        read = _simulated_reads(condition.expression)
        if read:
            verdict = "skipped" if ended[node.id].status is StepStatus.SKIPPED else "ran"
            yield (
                f"`{node.id}` {verdict}: its condition reads {' and '.join(read)}; "
                "the real run decides on the real values"
            )


def _simulated_reads(expression: Expression) -> list[str]:
    """What simulated values an expression reads: step outputs (null), secrets (set)."""
    read: dict[str, None] = {}
    for reference in expression.references():
        path = [p.lower() for p in reference.path]
        if path[0] == "steps" and len(path) > 2 and path[2] == "outputs":
            read["step outputs (null here)"] = None
        elif path[0] == "secrets":
            read["secrets (set here)"] = None
    return list(read)
