"""T19: a stateful Hypothesis test. Random sequential workflows (conditions, retries,
onError continue/fail, compensations) meet random crash schedules (the journal stops
at a random write, as after kill -9) and resumes. A small reference model predicts
which steps succeed, the compensations in order, and the final status; the ledger
and the journal must agree with it."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from wfx.api import compile_file
from wfx.runtime import events as ev
from wfx.runtime.engine import RunOptions, run
from wfx.runtime.journal import Journal


class Crash(BaseException):
    """Raised by the journal wrapper to stop the engine dead, like kill -9."""


@dataclass(frozen=True)
class StepSpec:
    failures: int  # first attempts that fail
    retries: int
    on_error: str
    rollback: bool
    condition: str  # "", "false" or "always()"


def expected(specs: list[StepSpec]) -> tuple[list[str], list[str], str]:
    """The reference model: succeeded steps, compensations in order, final status."""
    succeeded: list[str] = []
    failing = tolerated = False
    for index, spec in enumerate(specs):
        name = f"s{index}"
        if spec.condition == "false" or (failing and spec.condition != "always()"):
            continue
        if spec.failures <= spec.retries:
            succeeded.append(name)
        elif spec.on_error == "continue":
            tolerated = True
        else:
            failing = True
    compensated = [s for s in reversed(succeeded) if specs[int(s[1:])].rollback] if failing else []
    status = "failed" if failing else "completedWithFailures" if tolerated else "success"
    return succeeded, compensated, status


def to_yaml(specs: list[StepSpec]) -> str:
    lines = ["wfx: 1", "steps:"]
    for index, spec in enumerate(specs):
        lines += [
            f"  - id: s{index}",
            "    uses: python:t:work",
            f"    with: {{step: s{index}, attempt: '${{{{ attempt }}}}'}}",
            f"    retries: {{max: {spec.retries}, delay: 0}}",
            f"    onError: {spec.on_error}",
        ]
        if spec.condition:
            lines.append(f"    condition: {spec.condition}")
        if spec.rollback:
            lines.append(f"    rollback: {{uses: 'python:t:undo', with: {{step: s{index}}}}}")
    return "\n".join(lines) + "\n"


specs_strategy = st.lists(
    st.builds(
        StepSpec,
        failures=st.sampled_from([0, 0, 1, 2, 5]),
        retries=st.integers(0, 2),
        on_error=st.sampled_from(["fail", "continue"]),
        rollback=st.booleans(),
        condition=st.sampled_from(["", "", "false", "always()"]),
    ),
    min_size=1,
    max_size=6,
)


class CrashingRuns(RuleBasedStateMachine):
    """Runs one workflow through crashes and resumes until it finishes."""

    @initialize(specs=specs_strategy)
    def setup(self, specs: list[StepSpec]) -> None:
        self.specs = specs
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name)
        (self.root / "wf.yaml").write_text(to_yaml(specs))
        self.graph = compile_file(self.root / "wf.yaml").graph
        self.ledger: list[tuple[str, str, int]] = []
        self.journal = Journal(self.root / "state.db")
        self.run_id: str | None = None
        self.crashes = 0
        self.done = False
        self.result: Any = None

    def teardown(self) -> None:
        if hasattr(self, "journal"):
            if not self.done:
                self._go(None)  # every schedule ends with a resume that finishes the run
                self.check_against_model()
            self.journal.close()
            self.tmp.cleanup()

    def _actions(self) -> dict[str, Any]:
        async def work(step: str, attempt: str) -> dict[str, Any]:
            self.ledger.append(("run", step, int(attempt)))
            if int(attempt) <= self.specs[int(step[1:])].failures:
                raise RuntimeError(f"{step} fails")
            return {"ok": True}

        async def undo(step: str) -> None:
            self.ledger.append(("undo", step, 0))

        return {"python:t:work": work, "python:t:undo": undo}

    def _go(self, crash_after: int | None) -> None:
        from wfx.plan import fingerprint

        writes = 0

        def sink(event: ev.Event) -> None:
            nonlocal writes
            if crash_after is not None and writes >= crash_after:
                raise Crash
            self.journal(event)
            writes += 1

        state = None
        if self.run_id is None:
            from wfx.runtime.engine import new_run_id

            self.run_id = new_run_id()
            self.journal.create_run(
                self.run_id,
                workflow="t",
                file=str(self.root / "wf.yaml"),
                fingerprint=fingerprint(self.graph.workflow, self.graph.inputs),
                definition="{}",
                inputs={},
            )
        else:
            self.journal.claim(self.run_id)
            state = self.journal.resume_state(self.run_id)
        options = RunOptions(
            actions=self._actions(),
            events=sink,
            run_id=self.run_id,
            resume=state,
            workspace=self.root / "ws",
        )
        try:
            self.result = anyio.run(lambda: run(self.graph, options=options))
            self.done = True
        except BaseException as exc:  # the crash, possibly wrapped in an exception group
            if not _is_crash(exc):
                raise
            self.crashes += 1

    @rule(after=st.integers(0, 12))
    def crash_then_resume_later(self, after: int) -> None:
        if not self.done:
            self._go(after)

    @precondition(lambda self: not self.done)
    @rule()
    def run_to_the_end(self) -> None:
        self._go(None)
        assert self.done
        self.check_against_model()

    def check_against_model(self) -> None:
        succeeded, compensated, status = expected(self.specs)
        assert self.result.status.value == status
        finished_ok = {
            s
            for s, r in self.result.steps.items()
            if r.status.value in ("success", "rolledBack", "rollbackFailed")
        }
        assert finished_ok == set(succeeded)
        undos = list(dict.fromkeys(s for kind, s, _ in self.ledger if kind == "undo"))
        assert undos == compensated

    @invariant()
    def no_step_repeats_more_than_the_crashes_allow(self) -> None:
        if not hasattr(self, "ledger"):
            return
        runs = Counter((s, a) for kind, s, a in self.ledger if kind == "run")
        assert sum(n - 1 for n in runs.values()) <= self.crashes
        undos = Counter(s for kind, s, _ in self.ledger if kind == "undo")
        assert sum(n - 1 for n in undos.values()) <= self.crashes
        assert self.journal.check_integrity() == "ok"


def _is_crash(exc: BaseException) -> bool:
    if isinstance(exc, Crash):
        return True
    if isinstance(exc, BaseExceptionGroup):
        return any(_is_crash(inner) for inner in exc.exceptions)
    return False


CrashingRuns.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCrashingRuns = CrashingRuns.TestCase
